"""Execute the whole course headless and publish it: `make course` (or `python tools/build_course.py`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aigc_lib.course import build_course


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="auto", choices=["auto", "smoke", "quick", "full"])
    parser.add_argument("--out", default="build/course", type=Path)
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. --only 00 03")
    args = parser.parse_args()
    runs = build_course(args.out, args.profile, args.only)
    failed = [run.name for run in runs if not run.ok]
    if failed:
        print(f"[aigc.course] {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Execute the whole course headless and publish it: `make course` (or `python tools/build_course.py`).

Shows each notebook's progress (cell i of N, elapsed, time left), prints a summary table at the end and writes
OUT/index.html. `--only 03 05` runs the chapters whose names start with 03 or 05.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: aigc_lib is the repository's

from aigc_lib.course import build_course, select_notebooks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", choices=["auto", "smoke", "quick", "full"])
    parser.add_argument("--out", default="build/course", type=Path)
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook name prefixes, e.g. --only 03 05")
    args = parser.parse_args(argv)
    try:
        select_notebooks(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    runs = build_course(args.out, args.profile, args.only)
    failed = [run.name for run in runs if not run.ok]
    if failed:
        print(f"[aigc.course] {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

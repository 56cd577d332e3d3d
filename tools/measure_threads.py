"""Measure PyTorch's CPU thread choice with and without one competing busy process (docs/instructors.md).

    python tools/measure_threads.py --repeats 3 --steps 300

Each trial trains a small conv net for ``--steps`` steps in a fresh process with one thread setting:
``default`` (PyTorch's own: one thread per core), ``1``, or ``auto`` (``aigc_lib.threads.set_cpu_threads``).
Settings and competitor on/off are interleaved, so a machine whose load changes affects all of them alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = r"""
import json, sys, time, torch
from torch import nn
setting, steps = sys.argv[1], int(sys.argv[2])
if setting == "auto":
    from aigc_lib.threads import set_cpu_threads
    threads = set_cpu_threads().threads
elif setting != "default":
    torch.set_num_threads(int(setting))
threads = torch.get_num_threads()
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                    nn.Flatten(), nn.Linear(64 * 14 * 14, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), 1e-3)
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
start = time.perf_counter()
for _ in range(steps):
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(json.dumps({"seconds": time.perf_counter() - start, "threads": threads}))
"""
BUSY = "while True: pass"  # one core kept busy, as another program would


def trial(setting: str, steps: int) -> dict:
    """Run the workload once in a fresh process and return its seconds and thread count."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AIGC_THREADS")}
    out = subprocess.run([sys.executable, "-c", WORKLOAD, setting, str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--settings", nargs="+", default=["default", "1", "auto"])
    args = parser.parse_args()
    seconds: dict[tuple[str, bool], list[float]] = {}
    for rep in range(args.repeats):
        for competitor in (False, True):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if competitor else None
            try:
                time.sleep(1.0 if busy else 0.0)
                order = args.settings if rep % 2 == 0 else args.settings[::-1]
                for setting in order:
                    r = trial(setting, args.steps)
                    seconds.setdefault((setting, competitor), []).append(r["seconds"])
                    print(f"rep {rep} competitor {'on ' if competitor else 'off'} {setting:>7}: {r['threads']} "
                          f"threads, {r['seconds']:6.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    print(f"\nmedian seconds over {args.repeats} repeats, {args.steps} steps, {os.cpu_count()} cores:")
    for (setting, competitor), values in sorted(seconds.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  competitor {'on ' if competitor else 'off'}  {setting:>7}  {statistics.median(values):6.1f} s  "
              f"(all: {', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

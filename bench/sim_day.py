"""Benchmarks B5 and B2: the shipped 10 h day through `busagent-sim day`, wall time and the daemon's memory.

    .venv/bin/python bench/sim_day.py [--speedup 720] [--memory-speedup 100] [--skip-memory]

B5 runs `simulators/scenarios/tdc-s13-lundi.toml` (10.04 h) at ``--speedup`` and times the whole
command (simulators, gpsd, mosquitto, daemon, collector, maps): goal at most 60 s on a 2-core
machine, and the day must still match its scenario. B2 runs the same day at ``--memory-speedup``
(the daemon then reads the GPS at 1 Hz of simulated time) and reads the agent's resident memory
that the runner samples twice a second: goal peak at most 45 MB, and less than 2 MB more in the
day's last hour than in its first. Neither has a baseline: the goals are absolute.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BIN, ROOT, machine

DAY = ROOT / "simulators" / "scenarios" / "tdc-s13-lundi.toml"


def run_day(speedup: float, out: Path) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "busagent-sim"), "day", str(DAY), "--speedup", str(speedup), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    summary_path = out / "summary.json"
    if not summary_path.exists():
        print(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"busagent-sim day failed (exit {result.returncode})")
    summary: dict[str, object] = json.loads(summary_path.read_text())
    return wall, summary


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speedup", type=float, default=720.0)
    parser.add_argument("--memory-speedup", type=float, default=100.0)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        wall, summary = run_day(args.speedup, Path(tmp) / "b5")
        ok = wall <= 60.0 and bool(summary["ok"])
        failed |= not ok
        print(f"B5 simulated 10 h day at {args.speedup:g}x: {wall:.1f} s wall (goal <= 60 s), "
              f"matches the scenario: {summary['ok']} -> {'PASS' if ok else 'FAIL'}")  # fmt: skip
        if not args.skip_memory:
            _, summary = run_day(args.memory_speedup, Path(tmp) / "b2")
            run = summary["run"]
            assert isinstance(run, dict)
            memory = run["agent_memory"]
            growth = memory["last_hour_mb"] - memory["hour_1_mb"]
            ok = memory["peak_mb"] <= 45.0 and growth < 2.0
            failed |= not ok
            verdict = "PASS" if ok else "FAIL"
            print(f"B2 daemon memory over the day at {args.memory_speedup:g}x (GPS 1 Hz): peak "
                  f"{memory['peak_mb']} MB (goal <= 45), hour 1 {memory['hour_1_mb']} MB, last hour "
                  f"{memory['last_hour_mb']} MB, growth {growth:+.1f} MB (goal < 2): {verdict}")  # fmt: skip
    print(f"  machine: {machine()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

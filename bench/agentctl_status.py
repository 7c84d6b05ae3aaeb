"""Benchmark B4: wall time of `agentctl status` against a running daemon, against `python3 -c pass`.

    .venv/bin/python bench/agentctl_status.py [--runs 30]

The daemon is `busagent run` on the whole simulated bus (real gpsd, modem, power, printer) and the
simulated backend (mosquitto, collector), every device read once before timing starts.

Both commands run as installed on the bus (`make install`: a plain, not editable, install into a
venv, byte-code compiled): a throwaway venv on the same interpreter whose site-packages points at
this tree with a plain .pth line, an ``agentctl`` script as pip writes it, and a byte-code cache
(PYTHONPYCACHEPREFIX) filled by a first run. The development .venv's editable-install hook costs
every Python start there some 20 ms more; its agentctl figure is printed for reference.
The baseline is that venv's ``python3 -c pass``. Each command runs ``--runs`` times, interleaved
so that a busy moment of a shared machine hits both; wall-time medians are compared (CPU-time
medians are printed too: less disturbed by other jobs). Goal: at most 3 times the baseline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from _common import BIN, ROOT, Verdict, median, quiet_logs

from simulators.backend import SimulatedBackend
from simulators.devices import SimulatedBus
from tests.agent.daemon_harness import Daemon, agent_config, wait_for

GOAL_RATIO = 3.0


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run; an exit code other than agentctl's verdicts 0..3 is a failure."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1, 2, 3):
        raise RuntimeError(f"{command} exited {child.returncode}")
    return elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def installed_like(where: Path) -> tuple[Path, dict[str, str]]:
    """A venv as `make install` leaves it, for this tree: (its bin directory, the environment to use)."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    site = next((where / "lib").glob("python3*/site-packages"))
    (site / "busagent.pth").write_text(f"{ROOT}\n")
    script = where / "bin" / "agentctl"
    script.write_text(
        f"#!{where / 'bin' / 'python'}\nimport sys\nfrom agent.ctl import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(where / "pycache")
    return where / "bin", env


def every_device_read(daemon: Daemon) -> bool:
    status = daemon.status()
    return all(d["ok"] is not None for d in status["devices"].values()) and status["mqtt"]["connected"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each command")
    args = parser.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-agentctl-") as tmp:
        work = Path(tmp)
        bin_dir, env = installed_like(work / "venv")
        with (
            SimulatedBus(work / "bus") as bus,
            SimulatedBackend(work / "backend", settle_s=0.0) as backend,
        ):
            daemon = Daemon(work, agent_config(bus, backend))
            try:
                wait_for(lambda: every_device_read(daemon), 30, "every device read and the broker connected")
                config = ["status", "--config", str(daemon.config_path)]
                commands = {
                    "baseline": ([str(bin_dir / "python3"), "-c", "pass"], env),
                    "busagent": ([str(bin_dir / "agentctl"), *config], env),
                    "dev": ([str(BIN / "agentctl"), *config], None),
                }
                for command, command_env in commands.values():  # fill the caches
                    timed(command, command_env)
                wall: dict[str, list[float]] = {name: [] for name in commands}
                cpu: dict[str, list[float]] = {name: [] for name in commands}
                for _ in range(args.runs):
                    for name, (command, command_env) in commands.items():
                        w, c = timed(command, command_env)
                        wall[name].append(w)
                        cpu[name].append(c)
            finally:
                daemon.stop()
    print(f"B4 agentctl status wall time, {args.runs} interleaved runs each")
    print("  baseline: python3 -c pass; busagent: agentctl status --config <daemon's config>; installed-like")
    base, ours = median(cpu["baseline"]), median(cpu["busagent"])
    print(f"  CPU time medians: baseline {base:.1f} ms, busagent {ours:.1f} ms (ratio {ours / base:.2f})")
    print(f"  for reference, the development .venv's agentctl status: {median(wall['dev']):.1f} ms wall")
    verdict = Verdict(
        "B4-agentctl-status",
        "ms",
        wall["baseline"],
        wall["busagent"],
        goal=f"ratio <= {GOAL_RATIO}",
        met=median(wall["busagent"]) <= GOAL_RATIO * median(wall["baseline"]),
    )
    return verdict.report()


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: a simulated bus, read by the agent's drivers, before and after things go wrong.

Runs every device simulator (the real gpsd reads the simulated GPS), reads each device the way
`agentctl probe` does, then unplugs shore power, empties the printer's paper tray and pulls out
the modem, and reads again: what a technician sees on the bus.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from agent.logs import setup_logging
from agent.probe_cmd import format_table, read_all
from simulators.devices import SimulatedBus


def _show(title: str, config: Path) -> None:
    print(f"\n== {title}")
    print(format_table(read_all(str(config)), colour=sys.stdout.isatty()), flush=True)


def _wait_for_fix(config: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read_all(str(config)).get("gps", {}).get("fix_mode", 0) >= 2:
            return
        time.sleep(0.5)


def main() -> int:
    setup_logging("warning", sys.stderr)
    with tempfile.TemporaryDirectory(prefix="busagent-demo-") as tmp:
        workdir = Path(tmp)
        print("starting simulated devices: GPS (through the real gpsd), 4G modem, shore power, printer")
        with SimulatedBus(workdir) as bus:
            config = workdir / "agent.toml"
            config.write_text(bus.config_text())
            print(f"agent config pointing at them: {config}")
            _wait_for_fix(config)
            _show("the bus at the depot, everything working", config)
            for action in ("unplug-shore", "paper-out", "signal -112 -17 -2"):
                print(f"-> {bus.apply(action)}")
            _show("shore power gone, printer out of paper, weak signal", config)
            print(f"-> {bus.apply('modem-unplug')}")
            _show("modem unplugged", config)
            for action in ("modem-replug", "plug-shore", "printer-ok", "signal -88 -9 18"):
                print(f"-> {bus.apply(action)}")
            _show("all fixed", config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

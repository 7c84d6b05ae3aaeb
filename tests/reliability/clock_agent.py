"""The agent daemon of the clock tests: the real Service on a box whose wall clock is wrong at boot.

Like :mod:`simulators.day_agent` (same Service, a ScaledClock sharing the test's CLOCK_MONOTONIC
origin), with what a Raspberry Pi without RTC has: the system's wall clock reads ``--start-wall``
at the origin (1970, or a stale fake-hwclock value) while true time there is ``--true-wall``.

With ``--ntp-flag PATH``, NTP synchronises the box when that file appears, as systemd-timesyncd
does: from then on the wall clock reads true time (the kernel's clock was stepped) and the file
is what the Service's NTP check finds (``timesyncd_synchronized`` on that path, the production
function). Without it the box never gets NTP.

    python -m tests.reliability.clock_agent --config PATH --start-wall S --true-wall T \\
        --speedup N --origin MONO --boot-id ID [--ntp-flag PATH]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from agent.config import load_config
from agent.logs import setup_logging
from agent.runtime.clock import ScaledClock
from agent.runtime.service import Service
from agent.runtime.timesync import timesyncd_synchronized


class BootClock(ScaledClock):
    """Simulated time whose wall clock is wrong until NTP steps it (the flag file appears)."""

    def __init__(
        self, start_wall: float, true_wall: float, speedup: float, origin: float, ntp_flag: Path | None
    ) -> None:
        super().__init__(start_wall, speedup, origin_real=origin)
        self.true_wall = true_wall
        self.ntp_flag = ntp_flag

    def wall(self) -> float:
        if self.ntp_flag is not None and self.ntp_flag.exists():
            return self.true_wall + self.elapsed()
        return super().wall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.clock_agent")
    parser.add_argument("--config", required=True)
    parser.add_argument("--start-wall", type=float, required=True, help="the box's wall clock at origin")
    parser.add_argument("--true-wall", type=float, required=True, help="true time at origin")
    parser.add_argument("--speedup", type=float, required=True)
    parser.add_argument("--origin", type=float, required=True, help="CLOCK_MONOTONIC at the simulated start")
    parser.add_argument("--boot-id", required=True)
    parser.add_argument("--ntp-flag", type=Path, default=None)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    setup_logging(config.agent.log_level, sys.stdout)
    clock = BootClock(args.start_wall, args.true_wall, args.speedup, args.origin, args.ntp_flag)
    ntp = (
        functools.partial(timesyncd_synchronized, args.ntp_flag)
        if args.ntp_flag is not None
        else (lambda: False)
    )
    service = Service(config, args.config, clock=clock, boot_id=args.boot_id, ntp_synchronized=ntp)
    service.install_signal_handlers()
    return service.run()


if __name__ == "__main__":
    sys.exit(main())

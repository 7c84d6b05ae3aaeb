"""The agent daemon of a simulated day, in its own process, on the day's simulated clock.

The same :class:`agent.runtime.service.Service` that ``busagent run`` starts, given a
:class:`~agent.runtime.clock.ScaledClock` instead of the system clock: nothing in the agent
knows it is simulated. The runner passes the clock's origin (a CLOCK_MONOTONIC reading, shared by
every process of the machine), so this process and the simulators read the same simulated time.

    python -m simulators.day_agent --config PATH --start-wall EPOCH --speedup N --origin MONO
"""

from __future__ import annotations

import argparse
import sys

from agent.config import ConfigError, load_config
from agent.logs import setup_logging
from agent.runtime.clock import ScaledClock
from agent.runtime.service import Service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.day_agent")
    parser.add_argument("--config", required=True)
    parser.add_argument("--start-wall", type=float, required=True, help="simulated epoch seconds at origin")
    parser.add_argument("--speedup", type=float, required=True)
    parser.add_argument("--origin", type=float, required=True, help="CLOCK_MONOTONIC at the simulated start")
    parser.add_argument("--boot-id", required=True)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 78
    setup_logging(config.agent.log_level, sys.stdout)
    clock = ScaledClock(args.start_wall, args.speedup, origin_real=args.origin)
    service = Service(config, args.config, clock=clock, boot_id=args.boot_id)
    service.install_signal_handlers()
    return service.run()


if __name__ == "__main__":
    sys.exit(main())

"""busagent: the daemon entry point (`busagent run --config PATH`, systemd's ExecStart)."""

from __future__ import annotations

import argparse
import os
import sys

from agent.config import DEFAULT_PATH

#: sysexits(3) EX_CONFIG: busagent.service lists it in RestartPreventExitStatus=, so a bad config
#: is reported once instead of restarting in a loop.
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="busagent", description="busagent monitoring daemon")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon (systemd ExecStart)")
    run.add_argument("--config", default=DEFAULT_PATH, help=f"agent configuration (default {DEFAULT_PATH})")
    return parser


def run(config_path: str) -> int:
    from agent.config import ConfigError, load_config
    from agent.logs import setup_logging

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.agent.log_level, sys.stdout)

    from agent.outbox import OutboxError
    from agent.runtime.control import ControlSetupError
    from agent.runtime.service import Service

    service = Service(config, config_path, credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
    service.install_signal_handlers()
    try:
        return service.run()
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except ControlSetupError as exc:
        print(f"busagent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OutboxError, OSError) as exc:
        print(f"busagent: cannot keep records in {config.agent.data_dir}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.config)


if __name__ == "__main__":
    sys.exit(main())

"""agentctl: the technician's command. Kept lean: heavy modules are imported only by the
subcommand that needs them, so `agentctl status` starts fast on a Raspberry Pi."""

from __future__ import annotations

import argparse
import sys

from agent.config import DEFAULT_PATH

# Nagios plugin convention, also used by `agentctl status`.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3


def _not_yet(args: argparse.Namespace) -> int:
    print(f"agentctl {args.command}: not implemented yet", file=sys.stderr)
    return 2


def _config_check(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_config

    try:
        load_config(args.path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 1
    print(f"{args.path}: OK")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from agent.probe_cmd import run_probe

    return run_probe(args.config, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl", description="Inspect and drive the busagent daemon.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = sub.add_parser("status", help="one screen: what is working and what is not")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_not_yet)

    stops = sub.add_parser("stops", help="recent stop visits")
    stops.add_argument("--limit", type=int, default=10)
    stops.add_argument("--json", action="store_true")
    stops.set_defaults(func=_not_yet)

    test = sub.add_parser("test", help="run the connectivity probe suite now")
    test.add_argument("--label", default=None, help="name of the candidate site being surveyed")
    test.set_defaults(func=_not_yet)

    probe = sub.add_parser("probe", help="read every configured device once, without the daemon")
    probe.add_argument("--config", default=DEFAULT_PATH)
    probe.add_argument("--json", action="store_true", help="one JSON object keyed by device")
    probe.set_defaults(func=_probe)

    config = sub.add_parser("config", help="configuration file tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("path", nargs="?", default=DEFAULT_PATH)
    check.set_defaults(func=_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs go to stderr so that `--json` output on stdout stays parseable.
    from agent.logs import setup_logging

    setup_logging("warning", sys.stderr)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())

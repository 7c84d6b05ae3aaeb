"""agentctl: the technician's command. Kept lean: heavy modules are imported only by the
subcommand that needs them, so `agentctl status` starts fast on a Raspberry Pi."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from agent.control_client import DEFAULT_CONFIG_PATH, TIMEOUTS_S, ControlError, request, socket_path

# Nagios plugin convention, also used by `agentctl status`.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
#: Commands answered by the running daemon over the control socket (docs/control.md).
DAEMON_COMMANDS = ("status", "stops", "test")
MAX_LABEL_CHARS = 200  # the daemon refuses longer labels (docs/control.md)


def _colour(stream: TextIO) -> bool:
    """ANSI colours only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _ask(args: argparse.Namespace, message: dict[str, Any]) -> Any:
    path = socket_path(args.socket, args.config)
    return request(path, message, TIMEOUTS_S[message["cmd"]])


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _status(args: argparse.Namespace) -> int:
    from agent import status_view

    status = _ask(args, {"cmd": "status"})
    if not isinstance(status, dict):
        raise ControlError("garbage", f"the status answer is not an object: {str(status)[:80]!r}")
    checks = status_view.evaluate(status)
    verdict = status_view.verdict(checks)
    if args.json:
        checks_json = [check._asdict() for check in checks]
        _print_json({**status, "checks": checks_json, "verdict": verdict._asdict()})
    else:
        print(status_view.render(status, checks, colour=_colour(sys.stdout)))
    return verdict.exit_code


def _stops(args: argparse.Namespace) -> int:
    from agent.ctl_views import stops_table

    result = _ask(args, {"cmd": "stops", "limit": args.limit})
    visits = result.get("visits") if isinstance(result, dict) else None
    if not isinstance(visits, list):
        raise ControlError("garbage", f"the stops answer has no list of visits: {str(result)[:80]!r}")
    if args.json:
        _print_json({"visits": visits})
    else:
        print(stops_table(visits))
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    from agent.ctl_views import probe_report, probe_usable

    print("running the probe suite...", file=sys.stderr, flush=True)
    message: dict[str, Any] = {"cmd": "test"}
    if args.label:
        message["label"] = args.label
    record = _ask(args, message)
    if not isinstance(record, dict):
        raise ControlError("garbage", f"the test answer is not a probe result: {str(record)[:80]!r}")
    usable, reason = probe_usable(record)
    if args.json:
        _print_json({**record, "usable": usable, "usable_reason": reason})
    else:
        print(probe_report(record, usable, reason, args.label))
    return EXIT_OK if usable else EXIT_WARNING


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _label(text: str) -> str:
    if len(text) > MAX_LABEL_CHARS:
        raise argparse.ArgumentTypeError(f"at most {MAX_LABEL_CHARS} characters, got {len(text)}")
    return text


def _daemon_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print JSON instead of the readable form")
    command.add_argument("--socket", default=None, help="control socket (default: from the config file)")
    command.add_argument(
        "--config",
        default=DEFAULT_CONFIG_PATH,
        help="config file naming [agent] runtime_dir, where the socket is (default: %(default)s)",
    )


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

    status = sub.add_parser(
        "status",
        help="one screen: what is working and what is not",
        description="Exit 0 OK, 1 warning, 2 critical, 3 when the daemon cannot be asked.",
    )
    _daemon_options(status)
    status.set_defaults(func=_status)

    stops = sub.add_parser("stops", help="recent stop visits, newest first")
    stops.add_argument("--limit", type=_positive, default=10, help="how many visits (default: %(default)s)")
    _daemon_options(stops)
    stops.set_defaults(func=_stops)

    test = sub.add_parser(
        "test",
        help="run the connectivity probe suite now",
        description="Exit 0 when the link is usable for online procedures, 1 when not, 3 when the "
        "daemon cannot be asked.",
    )
    test.add_argument("--label", type=_label, default=None, help="name of the candidate site being surveyed")
    _daemon_options(test)
    test.set_defaults(func=_test)

    probe = sub.add_parser("probe", help="read every configured device once, without the daemon")
    probe.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    probe.add_argument("--json", action="store_true", help="one JSON object keyed by device")
    probe.set_defaults(func=_probe)

    config = sub.add_parser("config", help="configuration file tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("path", nargs="?", default=DEFAULT_CONFIG_PATH)
    check.set_defaults(func=_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in DAEMON_COMMANDS:  # they only print; structlog would slow their start
        # Logs go to stderr so that `--json` output on stdout stays parseable.
        from agent.logs import setup_logging

        setup_logging("warning", sys.stderr)
    try:
        result: int = args.func(args)
    except ControlError as exc:
        print(f"agentctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())

"""busagent: the daemon entry point (`busagent run --config PATH`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; the daemon itself is not implemented yet."""
    parser = argparse.ArgumentParser(prog="busagent", description="busagent monitoring daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon (systemd ExecStart)")
    run.add_argument("--config", default="/etc/busagent/agent.toml")
    parser.parse_args(argv)
    print("busagent run: not implemented yet", file=sys.stderr)
    return 2

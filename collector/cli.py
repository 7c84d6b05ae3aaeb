"""busagent-collector: ``run`` (subscribe and store), ``stats`` (is anything missing?), ``map`` (later)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sqlite3
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from types import FrameType

from agent.logs import setup_logging
from agent.mqtt.connection import BrokerUrl, LinkError, LinkSettings
from collector.ingest import Collector
from collector.store import Store
from collector.validate import DEFAULT_DIR, Schemas


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "map":
        print("busagent-collector map: not implemented yet", file=sys.stderr)
        return 2
    try:
        db = _db_path(args.db)
    except ValueError as exc:
        print(f"busagent-collector: {exc}", file=sys.stderr)
        return 2
    if args.command == "stats":
        return _stats(db, as_json=args.json)
    return _run(args, db)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="busagent-collector", description="busagent central collector")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="subscribe to busagent/+/# and store")
    run.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    run.add_argument("--db", required=True, help="SQLite file path (or sqlite:///path)")
    run.add_argument("--group", help="MQTT 5 shared-subscription group, to share a fleet between collectors")
    run.add_argument("--client-id", default=None)
    run.add_argument("--ca", type=Path, help="CA certificate that signed the broker's certificate")
    run.add_argument("--cert", type=Path, help="client certificate (with --key)")
    run.add_argument("--key", type=Path)
    run.add_argument("--secrets", type=Path, help="TOML file with [mqtt] username/password")
    run.add_argument("--ack-interval", type=float, default=1.0, help="seconds between acks per vehicle")
    run.add_argument("--schemas", type=Path, default=DEFAULT_DIR)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    stats = sub.add_parser("stats", help="per vehicle and stream: received, missing, duplicates, dropped")
    stats.add_argument("--db", required=True)
    stats.add_argument("--json", action="store_true")
    map_ = sub.add_parser("map", help="per-stop maps (not implemented yet)")
    map_.add_argument("--db")
    map_.add_argument("--out")
    return parser


def _db_path(db: str) -> Path:
    parts = urllib.parse.urlsplit(db)
    if parts.scheme in ("", "file"):
        return Path(parts.path if parts.scheme else db)
    if parts.scheme == "sqlite":
        return Path(parts.path)
    raise ValueError(f"--db {db!r}: only SQLite is supported yet (a path or sqlite:///path)")


def _run(args: argparse.Namespace, db: Path) -> int:
    setup_logging(args.log_level)
    try:
        link = LinkSettings(
            url=BrokerUrl.parse(args.broker),
            client_id=args.client_id or f"busagent-collector-{int(time.time() * 1000) % 10**9}",
            ca_file=args.ca,
            cert_file=args.cert,
            key_file=args.key,
            secrets_file=args.secrets,
            protocol="5",
        )
        collector = Collector(
            link, Store(db), schemas=Schemas(args.schemas), group=args.group, ack_interval_s=args.ack_interval
        )
    except sqlite3.Error as exc:
        return _not_a_database(db, exc)
    except (LinkError, RuntimeError, OSError) as exc:
        print(f"busagent-collector: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    collector.start()
    stopping.wait()
    collector.stop()
    collector.ingest.store.close()
    return 0


def _not_a_database(db: Path, exc: sqlite3.Error) -> int:
    """A corrupt file or something else than SQLite at --db: one line, not a traceback."""
    print(f"{db}: not a collector database ({exc})", file=sys.stderr)
    return 2


def _stats(db: Path, *, as_json: bool) -> int:
    if not db.exists():
        print(f"busagent-collector: no database at {db}", file=sys.stderr)
        return 2
    try:
        store = Store(db)
        try:
            rows, rejects = store.stream_rows(), store.rejects()
        finally:
            store.close()
    except sqlite3.Error as exc:
        return _not_a_database(db, exc)
    if as_json:
        doc = {"streams": [dataclasses.asdict(row) for row in rows], "rejected": rejects}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    header = ("vehicle", "stream", "received", "missing", "dupes", "dropped")
    print("{:<20} {:<22} {:>9} {:>8} {:>6} {:>8}  last seen".format(*header))
    for row in rows:
        seen = (
            "-"
            if row.last_seen is None
            else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.last_seen))
        )
        print(
            f"{row.vehicle:<20} {row.stream:<22} {row.received:>9} {row.missing:>8}"
            f" {row.duplicates:>6} {row.dropped:>8}  {seen}"
        )
    for reason, count in sorted(rejects.items()):
        print(f"rejected {reason}: {count}")
    return 0

"""busagent-collector: ``run`` (subscribe and store), ``stats`` (anything missing?), ``map`` (stop maps)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from agent.core.catalog import CatalogError, Site, parse_catalog
from agent.logs import setup_logging
from agent.mqtt.connection import BrokerUrl, LinkError, LinkSettings
from collector import maps
from collector.aggregate import WORST_FIRST
from collector.db import open_store, sqlite_path
from collector.ingest import Collector
from collector.store_api import CollectorStore, StoreError
from collector.validate import DEFAULT_DIR, Schemas

DB_HELP = "SQLite file path (or sqlite:///path), or postgresql://user@host/database (docs/collector.md)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "stats":
        return _stats(args.db, as_json=args.json)
    if args.command == "map":
        return _map(args, args.db)
    return _run(args, args.db)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="busagent-collector", description="busagent central collector")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="subscribe to busagent/+/# and store")
    run.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    run.add_argument("--db", required=True, help=DB_HELP)
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
    stats.add_argument("--db", required=True, help=DB_HELP)
    stats.add_argument("--json", action="store_true")
    map_ = sub.add_parser("map", help="per-stop maps: stops.html, stops.geojson, stops.csv (docs/maps.md)")
    map_.add_argument("--db", required=True, help=DB_HELP)
    map_.add_argument("--out", required=True, type=Path, help="directory to write the three files into")
    map_.add_argument("--since", help="only records from this date (2026-03-01, local time) or ISO date-time")
    map_.add_argument("--operator", help="only figures measured on this operator, MCC-MNC (208-01 or 20801)")
    map_.add_argument(
        "--catalog", type=Path, help="stop catalog (TOML or GeoJSON): show unvisited planned sites"
    )
    return parser


def _open(db: str, *, must_exist: bool) -> CollectorStore | None:
    """The store ``--db`` names, or None once a one-line error is printed (the caller exits 2)."""
    try:
        path = sqlite_path(db)
        if must_exist and path is not None and not path.exists():
            print(f"busagent-collector: no database at {path}", file=sys.stderr)
            return None
        return open_store(db)
    except ValueError as exc:  # a URL that names no store
        print(f"busagent-collector: --db {exc}", file=sys.stderr)
    except sqlite3.Error as exc:
        _not_a_database(db, exc)
    except StoreError as exc:  # PostgreSQL unreachable, refused, or a schema newer than this code
        print(f"busagent-collector: {exc}", file=sys.stderr)
    return None


def _run(args: argparse.Namespace, db: str) -> int:
    setup_logging(args.log_level)
    store = _open(db, must_exist=False)
    if store is None:
        return 2
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
            link, store, schemas=Schemas(args.schemas), group=args.group, ack_interval_s=args.ack_interval
        )
    except (LinkError, RuntimeError, OSError) as exc:
        store.close()
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


def _not_a_database(db: str, exc: sqlite3.Error) -> int:
    """A corrupt file or something else than SQLite at --db: one line, not a traceback."""
    print(f"{db}: not a collector database ({exc})", file=sys.stderr)
    return 2


def _stats(db: str, *, as_json: bool) -> int:
    store = _open(db, must_exist=True)
    if store is None:
        return 2
    try:
        rows, rejects = store.stream_rows(), store.rejects()
    except sqlite3.Error as exc:
        return _not_a_database(db, exc)
    except StoreError as exc:
        print(f"busagent-collector: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
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


def _map(args: argparse.Namespace, db: str) -> int:
    """``map``: the planners' files; bad option values and a missing database are one-line errors."""
    try:
        since = maps.parse_since(args.since) if args.since is not None else None
        operator = maps.parse_operator(args.operator) if args.operator is not None else None
        sites = _catalog_sites(args.catalog) if args.catalog is not None else ()
    except ValueError as exc:
        print(f"busagent-collector: {exc}", file=sys.stderr)
        return 2
    store = _open(db, must_exist=True)
    if store is None:
        return 2
    try:
        summary = maps.write_maps(store, args.out, since=since, operator=operator, catalog=sites)
    except sqlite3.Error as exc:
        return _not_a_database(db, exc)
    except StoreError as exc:
        print(f"busagent-collector: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"busagent-collector: cannot write the maps into {args.out}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    grades = Counter(summary.grades.values())
    counted = ", ".join(f"{grade} {grades[grade]}" for grade in WORST_FIRST if grades[grade])
    print(f"{summary.sites} sites ({counted or 'none'}) written to {args.out}:")
    for path in summary.files:
        print(f"  {path}")
    if summary.unplaced or summary.unreadable:
        print(f"left out: visits without a place {summary.unplaced}, unreadable records {summary.unreadable}")
    return 0


def _catalog_sites(path: Path) -> tuple[Site, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--catalog {path}: cannot read it ({exc})") from None
    try:
        return parse_catalog(text, str(path)).sites
    except CatalogError as exc:
        raise ValueError("\n".join(exc.errors)) from None

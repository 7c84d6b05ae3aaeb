"""PostgreSQL store on a real server: two collectors writing one stream at once, versioned
migrations, a dropped connection, and the same ingest and maps as on SQLite."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.mqtt import wire
from agent.mqtt.wire import AckView
from agent.outbox import Record
from collector.db import open_store
from collector.ingest import Ingest
from collector.maps import write_maps
from collector.pg_schema import MIGRATIONS
from collector.store_api import StoreError
from collector.store_pg import PgStore
from collector.validate import Schemas
from tests.collector.map_fleet import build_fleet
from tests.collector.postgres import Postgres
from tests.collector.test_store_behaviour import EPOCH, STREAM, VEHICLE, batch, view

# -- two collectors, one stream --------------------------------------------------------------------

Op = tuple[str, list[int]]  # ("records", seqs) or ("dropped", [first, last])


def shared_plan(n: int, seed: int) -> tuple[list[list[Op]], set[int], set[int]]:
    """Work for two collectors: each seq goes to one of them or, as a redelivery, to both; a few
    seqs are announced dropped instead. Each works through its batches in a locally shuffled order,
    so both run ahead of holes the other one fills."""
    rng = random.Random(seed)
    dropped = set(range(11, n + 1, 11))
    sent = [s for s in range(1, n + 1) if s not in dropped]
    shares: list[list[int]] = [[], []]
    for seq in sent:
        pick = rng.random()
        for member in (0, 1):
            if pick >= 0.8 or (pick < 0.4) == (member == 0):
                shares[member].append(seq)
    plans: list[list[Op]] = []
    for share in shares:
        ops: list[Op] = []
        at = 0
        while at < len(share):
            size = rng.randint(1, 30)
            ops.append(("records", share[at : at + size]))
            at += size
        ops += [("dropped", [d, d]) for d in dropped if rng.random() < 0.6]
        ops.sort(key=lambda op: op[1][0] + rng.randint(-150, 150))
        plans.append(ops)
    for d in dropped:  # each dropped seq announced by at least one of them
        plans[d % 2].append(("dropped", [d, d]))
    return plans, set(sent), dropped


def test_two_collectors_writing_one_stream_at_once_store_each_seq_once_and_ack_it_exactly(
    postgres: Postgres,
) -> None:
    url = postgres.new_database()
    n = 1500
    plans, sent, dropped = shared_plan(n, seed=11)
    writers = [PgStore(url), PgStore(url)]
    start = threading.Barrier(3)
    totals = [[0, 0], [0, 0]]  # per writer: stored, duplicates
    seen: list[tuple[int, int]] = []  # (contiguous stored, contiguous by definition) per snapshot
    writing = threading.Event()
    writing.set()

    def write(i: int) -> None:
        start.wait()
        for kind, seqs in plans[i]:
            if kind == "records":
                stored, dupes = writers[i].store_records(VEHICLE, EPOCH, batch(*seqs), now=1.0)
                totals[i][0] += stored
                totals[i][1] += dupes
            else:
                writers[i].store_dropped(VEHICLE, EPOCH, STREAM, [seqs], now=1.0)

    def watch() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait()
            while writing.is_set():
                seen.append(snapshot_contiguous(conn))
                time.sleep(0.005)  # leave the two writers most of the two cores

    threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
    watcher = threading.Thread(target=watch)
    try:
        for thread in (*threads, watcher):
            thread.start()
        for thread in threads:
            thread.join(120)
        writing.clear()
        watcher.join(10)
        seqs = [seq for seq, _ in writers[0].payloads(VEHICLE, STREAM)]
        assert sorted(seqs) == sorted(sent)  # every seq once
        sends = sum(len(seqs) for plan in plans for kind, seqs in plan if kind == "records")
        assert sum(t[0] for t in totals) == len(sent)
        assert sum(t[1] for t in totals) == sends - len(sent) > 0
        (row,) = writers[1].stream_rows()
        assert (row.received, row.duplicates, row.missing, row.dropped) == (
            len(sent), sends - len(sent), 0, len(dropped),
        )  # fmt: skip
        assert view(writers[0]) == AckView(n)
        # Every committed state the watcher saw held the exact ack, and it never went back.
        assert len(seen) > 20 and all(stored == exact for stored, exact in seen), seen
        assert [stored for stored, _ in seen] == sorted(stored for stored, _ in seen)
    finally:
        for store in writers:
            store.close()


def snapshot_contiguous(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """From one committed state: the stored ``contiguous`` and the one its rows define."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT contiguous FROM streams").fetchone()
        have = {seq for (seq,) in conn.execute("SELECT seq FROM messages")}
        for first, last in conn.execute("SELECT first_seq, last_seq FROM dropped"):
            have.update(range(first, last + 1))
    stored = row[0] if row else 0
    exact = 0
    while exact + 1 in have:
        exact += 1
    return stored, exact


def test_a_dropped_range_and_a_batch_written_at_once_by_two_collectors_are_acked_together(
    postgres: Postgres,
) -> None:
    """Collector A stores the dropped seq 2 while collector B stores seq 3, the two transactions
    overlapping: whichever goes second must see the other's rows, or the ack stays at 2 with 3 held.
    Two locks held by the test make them overlap the worst way: A waits before its commit while B
    computes, B waits before its commit while A computes."""
    url = postgres.new_database()
    a, b = PgStore(url), PgStore(url)
    a.store_records(VEHICLE, EPOCH, batch(1), now=1.0)
    with (
        psycopg.connect(url) as hold_range,
        psycopg.connect(url) as hold_vehicle,
        psycopg.connect(url, autocommit=True) as looker,
    ):
        try:
            hold_range.execute("INSERT INTO dropped VALUES (%s, %s, %s, 2, 2)", (VEHICLE, EPOCH, STREAM))
            hold_vehicle.execute("SELECT 1 FROM vehicles WHERE vehicle = %s FOR UPDATE", (VEHICLE,))
            writer_a = threading.Thread(target=a.store_dropped, args=(VEHICLE, EPOCH, STREAM, [[2, 2]], 2.0))
            writer_a.start()
            wait_for_waiters(looker, 1)
            writer_b = threading.Thread(target=b.store_records, args=(VEHICLE, EPOCH, batch(3), 3.0))
            writer_b.start()
            wait_for_waiters(looker, 2)
            hold_range.rollback()
            wait_for_waiters(looker, 2, not_by=hold_range.info.backend_pid)
            hold_vehicle.rollback()
            for writer in (writer_a, writer_b):
                writer.join(10)
            assert view(a) == AckView(3)
        finally:
            a.close()
            b.close()


def wait_for_waiters(looker: psycopg.Connection[Any], count: int, not_by: int = 0) -> None:
    """Until ``count`` store connections wait for a lock, none of them for the backend ``not_by``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = looker.execute(
            "SELECT count(*), count(*) FILTER (WHERE %s = ANY(pg_blocking_pids(pid))) FROM pg_stat_activity"
            " WHERE application_name = 'busagent-collector' AND wait_event_type = 'Lock'",
            (not_by,),
        ).fetchone()
        if row is not None and row[0] >= count and row[1] == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} store connections waiting for a lock after 10 s")


# -- migrations -------------------------------------------------------------------------------------


def versions(url: str) -> list[tuple[int, Any]]:
    with psycopg.connect(url) as conn:
        return [(int(v), at) for v, at in conn.execute("SELECT version, applied_at FROM schema_version")]


def has_table(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row and row[0])


def test_opening_a_migrated_database_again_applies_nothing_and_keeps_the_data(postgres: Postgres) -> None:
    url = postgres.new_database()
    store = PgStore(url)
    store.store_records(VEHICLE, EPOCH, batch(1, 2), now=1.0)
    store.close()
    before = versions(url)
    assert [v for v, _ in before] == list(range(1, len(MIGRATIONS) + 1))
    store = PgStore(url)
    try:
        assert versions(url) == before  # same rows, same applied_at
        assert view(store) == AckView(2)
    finally:
        store.close()


def test_collectors_starting_together_on_an_empty_database_migrate_it_once(postgres: Postgres) -> None:
    url = postgres.new_database()
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: PgStore(url), range(4)))
    for store in stores:
        store.close()
    assert [v for v, _ in versions(url)] == list(range(1, len(MIGRATIONS) + 1))


def test_a_failing_migration_is_undone_whole_and_leaves_the_version_before_it(postgres: Postgres) -> None:
    url = postgres.new_database()
    broken = (*MIGRATIONS, "CREATE TABLE extra (x integer); SELECT 1 / 0")
    with pytest.raises(StoreError, match="division by zero") as caught:
        PgStore(url, migrations=broken)
    assert str(caught.value).startswith(f"{url}: cannot bring the schema up to date")
    assert [v for v, _ in versions(url)] == list(range(1, len(MIGRATIONS) + 1))
    assert not has_table(url, "extra")
    PgStore(url, migrations=(*MIGRATIONS, "CREATE TABLE extra (x integer)")).close()
    assert [v for v, _ in versions(url)][-1] == len(MIGRATIONS) + 1
    assert has_table(url, "extra")


def test_a_database_newer_than_this_collector_is_refused_naming_both_versions(postgres: Postgres) -> None:
    url = postgres.new_database()
    PgStore(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 5,))
    with pytest.raises(StoreError) as caught:
        PgStore(url)
    assert str(caught.value) == (
        f"{url}: the collector schema there is version {len(MIGRATIONS) + 5}, newer than this"
        f" busagent-collector knows ({len(MIGRATIONS)}); upgrade busagent-collector, or use another database"
    )


def test_a_schema_chosen_in_the_url_holds_the_tables(postgres: Postgres) -> None:
    url = postgres.new_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA fleet")
    store = PgStore(f"{url}?options=-c%20search_path%3Dfleet")
    store.store_records(VEHICLE, EPOCH, batch(1), now=1.0)
    store.close()
    assert has_table(url, "fleet.messages") and not has_table(url, "public.messages")


# -- a dropped connection ---------------------------------------------------------------------------


def test_a_store_whose_connection_the_server_ended_fails_one_call_then_reconnects(postgres: Postgres) -> None:
    url = postgres.new_database()
    store = PgStore(url)
    try:
        store.store_records(VEHICLE, EPOCH, batch(1), now=1.0)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'busagent-collector'"
            )
        with pytest.raises(StoreError, match=f"^{url}: "):
            store.store_records(VEHICLE, EPOCH, batch(2), now=2.0)
        assert store.store_records(VEHICLE, EPOCH, batch(2), now=3.0) == (1, 0)  # nothing half-stored
        assert view(store) == AckView(2)
    finally:
        store.close()


# -- the same messages, both stores -----------------------------------------------------------------


def record_message(seq: int, *, wall_source: str = "gps", boot_id: str = "boot-a") -> bytes:
    stream = "events"
    record = Record(
        stream=stream, seq=seq, msg_id=wire.record_msg_id(VEHICLE, boot_id, stream, seq), priority="high",
        payload={"event": "arrived", "seq": seq, "site": "Mairie ✓"}, mono=float(seq), wall=1e9 + seq,
        wall_source=wall_source, boot_id=boot_id, state="pending", sent_at=None, id=seq,
    )  # fmt: skip
    return wire.dumps(wire.record_doc(record, EPOCH))


def traffic() -> Iterator[tuple[str, bytes]]:
    topic = f"busagent/{VEHICLE}/events"
    status = wire.status_doc(
        VEHICLE, state="online", reason="birth", boot_id="boot-a", epoch=EPOCH, at=5.0, serial=1
    )
    yield f"busagent/{VEHICLE}/status", wire.dumps(status)
    for seq in (1, 2, 2, 5, 7, 1):
        yield topic, record_message(seq)
    yield topic, record_message(3, wall_source="g\x00ps")  # free text holding a NUL: still a record
    dropped = wire.dropped_doc(VEHICLE, boot_id="boot-a", epoch=EPOCH, stream="events", ranges=[(4, 4)])
    yield f"busagent/{VEHICLE}/dropped", wire.dumps(dropped)
    yield topic, b"{not json"
    yield topic, b"\x00" * 40
    yield f"busagent/{VEHICLE}/stops/visit", record_message(9)
    yield "elsewhere/x", record_message(10)


def test_ingest_has_the_same_outcome_on_sqlite_and_postgresql(tmp_path: Path, postgres: Postgres) -> None:
    outcomes = []
    for store in (open_store(str(tmp_path / "c.db")), open_store(postgres.new_database())):
        try:
            ingest = Ingest(store, Schemas(), wall=lambda: 100.0)
            handled = [ingest.handle(topic, payload) for topic, payload in traffic()]
            outcomes.append(
                (handled, store.stream_rows(), store.rejects(), store.ack_state(VEHICLE),
                 store.payloads(VEHICLE, "events"))
            )  # fmt: skip
        finally:
            store.close()
    assert outcomes[0] == outcomes[1]
    handled, _, rejects, ack, _ = outcomes[1]
    assert handled.count("stored") == 9 and sum(rejects.values()) == 4
    assert ack == (EPOCH, {"events": AckView(5, 7, ((6, 6),))})


GENERATED = re.compile(r'("generated":\s*)"[^"]*"')


def test_the_maps_from_postgresql_are_the_maps_from_sqlite(tmp_path: Path, postgres: Postgres) -> None:
    written = []
    for name, url in (("sqlite", str(tmp_path / "c.db")), ("postgresql", postgres.new_database())):
        store = open_store(url)
        try:
            build_fleet(store)  # type: ignore[arg-type]  # a CollectorStore where a Store is named
            summary = write_maps(store, tmp_path / name)
        finally:
            store.close()
        texts = [GENERATED.sub(r'\1"-"', path.read_text()) for path in summary.files]  # when, not what
        written.append((summary.sites, summary.grades, texts))
    assert written[0] == written[1]
    assert written[0][0] > 0

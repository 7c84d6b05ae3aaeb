"""Recovery: bad files are moved aside (never a crash loop), and SIGKILL never loses a returned append."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from tests.outbox.helpers import VEHICLE, open_outbox, put, query

ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "directory"


def real_outbox(path: Path, records: int = 200) -> None:
    with open_outbox(path) as outbox:
        for i in range(records):
            put(outbox, "events", i, pad="x" * 300)


def write_garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(50_000))


def truncate_in_the_middle(path: Path) -> None:
    real_outbox(path)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def zero_length(path: Path) -> None:
    path.touch()


def a_directory(path: Path) -> None:
    path.mkdir()


def foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, jpeg BLOB)")
    conn.commit()
    conn.close()


def zero_length_beside_its_wal(path: Path) -> None:
    """What ext4 can leave after a power cut: the database emptied, committed pages still in the WAL."""
    with open_outbox(path) as outbox:
        put(outbox, "events", 0)
        wal = path.with_name(path.name + "-wal").read_bytes()
    path.write_bytes(b"")
    path.with_name(path.name + "-wal").write_bytes(wal)


def garbage_with_companions(path: Path) -> None:
    write_garbage(path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).write_bytes(b"not a wal" * 100)


@pytest.mark.parametrize(
    "damage",
    [
        write_garbage,
        truncate_in_the_middle,
        zero_length,
        zero_length_beside_its_wal,
        a_directory,
        foreign_database,
        garbage_with_companions,
    ],
)
def test_an_unusable_file_is_moved_aside_loudly_and_a_fresh_outbox_starts(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "outbox.db"
    damage(path)
    originals = {p.name: digest(p) for p in tmp_path.iterdir()}
    with structlog.testing.capture_logs() as logs, open_outbox(path) as outbox:
        assert put(outbox, "events", 0).seq == 1
    events = [e for e in logs if e["event"] == "outbox.corrupt_moved_aside"]
    assert len(events) == 1, logs
    assert events[0]["path"] == str(path) and events[0]["error"] and events[0]["log_level"] == "critical"
    moved = Path(events[0]["moved_to"])
    assert moved.name.startswith("outbox.db.corrupt-") and moved.name.endswith("Z")
    # The set moves together and untouched: a technician can still open it for forensics.
    assert {
        p.name.replace(moved.name, "outbox.db"): digest(p) for p in tmp_path.glob(moved.name + "*")
    } == originals
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("mode", [0o000, 0o444], ids=["unreadable", "read-only"])
def test_a_file_we_may_not_read_or_write_is_moved_aside(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "outbox.db"
    real_outbox(path, records=3)
    path.chmod(mode)
    # Root reads any file whatever its mode: the child then runs without the capabilities that
    # override file permissions (setpriv is in util-linux), still as the owner of the test files.
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    script = (
        "import json, sys, structlog\n"
        "from pathlib import Path\n"
        "from tests.outbox.helpers import open_outbox, put\n"
        "with structlog.testing.capture_logs() as logs, open_outbox(Path(sys.argv[1])) as outbox:\n"
        "    seq = put(outbox, 'events', 0).seq\n"
        "print(json.dumps({'seq': seq, 'events': [e['event'] for e in logs]}))\n"
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"seq": 1, "events": ["outbox.corrupt_moved_aside", "outbox.created", "outbox.opened"]}
    (moved,) = tmp_path.glob("outbox.db.corrupt-*Z")
    assert moved.stat().st_mode & 0o777 == mode  # the very file, moved as it was


def test_a_healthy_outbox_is_never_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    real_outbox(path, records=5)
    with structlog.testing.capture_logs() as logs, open_outbox(path) as outbox:
        assert put(outbox, "events", 5).seq == 6
    assert [e["event"] for e in logs] == ["outbox.opened"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.db"]


def test_a_wal_left_without_its_database_is_not_replayed_into_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    wal = tmp_path / "outbox.db-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + b"\x00" * 4000)  # a WAL header's magic, nothing usable
    with structlog.testing.capture_logs() as logs, open_outbox(path) as outbox:
        assert put(outbox, "events", 0).seq == 1
    assert "outbox.orphan_wal_moved_aside" in [e["event"] for e in logs]
    assert len(list(tmp_path.glob("outbox.db.orphan-*-wal"))) == 1


def test_an_outbox_of_another_vehicle_is_moved_aside_not_mixed_in(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    real_outbox(path, records=3)
    with structlog.testing.capture_logs() as logs:
        with open_outbox(path) as outbox:
            first_epoch = outbox.epoch
        from agent.outbox import Outbox

        with Outbox.open(path, vehicle_id="bus-tdc-02", boot_id="b") as other:
            assert other.append("events", {}, mono=0.0, wall=0.0, wall_source="unsynced").seq == 1
            assert other.epoch != first_epoch
    assert "outbox.vehicle_changed_moved_aside" in [e["event"] for e in logs]
    moved = next(tmp_path.glob("outbox.db.vehicle-changed-*"))
    assert query(moved, "SELECT value FROM meta WHERE key = 'vehicle_id'") == [(VEHICLE,)]


def parse_claims(text: str) -> set[tuple[str, int]]:
    complete = text.split("\n")[:-1]  # the text after the last newline may be a half-written claim
    return {(line.split()[0], int(line.split()[1])) for line in complete}


def append_until_killed(path: Path, delay_s: float) -> tuple[set[tuple[str, int]], str]:
    """Start the appending child, SIGKILL it ``delay_s`` after its first append; (claims, stderr)."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.crash_child", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # appending has begun
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return parse_claims(first + proc.stdout.read()), proc.stderr.read()


def test_sigkill_at_random_moments_loses_no_returned_append_and_seqs_stay_gap_free(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    claimed: set[tuple[str, int]] = set()
    for run in range(6):
        claims, errors = append_until_killed(path, rng.uniform(0.0, 0.3))
        assert "Traceback" not in errors, f"run {run} seed {seed}: {errors}"
        claimed |= claims
        assert query(path, "PRAGMA integrity_check") == [("ok",)], f"run {run} seed {seed}"
        with structlog.testing.capture_logs() as logs, open_outbox(path) as outbox:
            stored = {(r.stream, r.seq) for r in outbox.pending(1_000_000)}
        assert [e["event"] for e in logs] == ["outbox.opened"], f"run {run} seed {seed}"
        assert claimed <= stored, f"run {run} seed {seed}: lost {sorted(claimed - stored)[:5]}"
        for stream in ("probes/result", "events"):
            numbers = sorted(seq for name, seq in stored if name == stream)
            assert numbers == list(range(1, len(numbers) + 1)), f"gap in {stream}, run {run} seed {seed}"
    assert len(claimed) > 100

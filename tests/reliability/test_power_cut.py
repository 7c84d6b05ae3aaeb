"""Power cut: with synchronous=FULL every append that returned survives losing the unsynced writes.

A child process appends records (power_cut_child.py) under power_cut_shim.so, which journals
every write and sync it makes in the outbox's directory. The test SIGKILLs it at a random moment,
rebuilds the directory as the disk would hold it after a power cut (power_cut_disk.py: only what
each file had synced, the names the directory had synced, plus at random some or torn or garbled
sectors of the later writes), and opens that with ``Outbox.open``: every record whose append
returned must be there with its own payload, the file must pass integrity_check (or have been
moved aside, loudly, once), and the next open must find a healthy outbox. The next child starts
from the rebuilt directory, as a bus starts each morning from what the evening's cut left.

The same cuts with synchronous=NORMAL show what FULL is for: there appends that returned are
rolled back, and their seqs are handed out again to other records. A card that lies about
syncing (every write of the run may be lost or torn) shows the other promise: records may go,
but the outbox always opens, moving a damaged file aside, and never fails the same way twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from agent.outbox import Outbox, Synchronous
from tests.reliability.conftest import report, scale
from tests.reliability.power_cut_child import VEHICLE
from tests.reliability.power_cut_disk import Disk, Loss, read_journal, snapshot, write_files

ROOT = Path(__file__).resolve().parents[2]
SHIM_SOURCE = Path(__file__).with_name("power_cut_shim.c")
#: A chain of cuts on one outbox, then a fresh directory (keeps the file, and the soak, bounded).
CHAIN = 20

Key = tuple[str, int]  # (stream, seq)
Payload = tuple[int, int]  # (run, i): which child made the record, and its index there


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The journaling shim, compiled with the system's C compiler (Debian: gcc)."""
    library = tmp_path_factory.mktemp("shim") / "power_cut_shim.so"
    flags = ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra"]
    subprocess.run(["cc", *flags, "-o", str(library), str(SHIM_SOURCE), "-ldl"], check=True, timeout=120)
    return library


@dataclasses.dataclass
class Tally:
    """What the cuts of one synchronous mode did."""

    cuts: int = 0
    promised: int = 0
    rolled_back: int = 0
    reused: int = 0
    moved_aside: int = 0
    before_first_append: int = 0
    journal_entries: int = 0


def parse_promises(text: str) -> dict[Key, Payload]:
    complete = text.split("\n")[:-1]  # after the last newline may be a half-written line
    promises = {}
    for line in complete:
        stream, seq, run, index = line.split()
        promises[(stream, int(seq))] = (int(run), int(index))
    return promises


def run_child(
    shim: Path, disk_dir: Path, journal: Path, mode: Synchronous, run: int, rng: random.Random
) -> str:
    """Start the appending child on ``disk_dir``, SIGKILL it at a random moment; its promises' text."""
    out = journal.with_suffix(".out")
    env = dict(os.environ, LD_PRELOAD=str(shim), POWERCUT_DIR=str(disk_dir), POWERCUT_JOURNAL=str(journal))
    argv = [sys.executable, "-m", "tests.reliability.power_cut_child", str(disk_dir / "outbox.sqlite"), mode]
    with out.open("wb") as stdout:
        proc = subprocess.Popen([*argv, str(run)], cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    # FULL: now and then during start-up (creation, WAL recovery, the open counter's commit).
    # NORMAL: always after some appends, so that its figure is about appends.
    if mode == "FULL" and rng.random() < 0.2:
        time.sleep(rng.uniform(0.0, 0.5))
    else:
        deadline = time.monotonic() + 30
        while out.stat().st_size == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    errors = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"run {run}: the child ended by itself:\n{errors}"
    assert "Traceback" not in errors, f"run {run}: {errors}"
    return out.read_text()


def journal_is_complete(start: dict[str, tuple[int, bytes]], journal: Path, disk_dir: Path) -> bool:
    """The journal replayed in full gives the files the child left: no write escaped the shim.

    The shim journals a write just before making it, so a kill between the two leaves the last
    entry unperformed: the replay without it must then match instead.
    """
    names = {p.name: p.stat().st_ino for p in disk_dir.iterdir() if p.is_file()}
    real = {name: (disk_dir / name).read_bytes() for name in names if not name.endswith("-shm")}
    entries = read_journal(journal)
    for upto in (len(entries), len(entries) - 1):
        disk = Disk(start)
        disk.replay(entries[:upto])
        if disk.as_written(names) == real:
            return True
    return False


def open_after_cut(disk_dir: Path, check_dir: Path) -> tuple[dict[Key, Payload], list[str]]:
    """Open a copy as the agent would at the next start: (records it holds, events logged).

    The open must not raise, the outbox must take an append, the file must then pass
    integrity_check, and the open after that must find nothing to repair or move aside.
    """
    shutil.rmtree(check_dir, ignore_errors=True)
    shutil.copytree(disk_dir, check_dir)
    path = check_dir / "outbox.sqlite"
    with (
        structlog.testing.capture_logs() as logs,
        Outbox.open(path, vehicle_id=VEHICLE, boot_id="check") as box,
    ):
        held = {(r.stream, r.seq): (r.payload["run"], r.payload["i"]) for r in box.pending(10**9)}
        box.append("events", {"run": -1, "i": -1}, mono=0.0, wall=0.0, wall_source="unsynced")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], f"{path} after the open"
    with structlog.testing.capture_logs() as again, Outbox.open(path, vehicle_id=VEHICLE, boot_id="again"):
        pass
    assert [e["event"] for e in again] == ["outbox.opened"], f"{path}: the second open was not clean: {again}"
    return held, [str(e["event"]) for e in logs]


def cut_many(
    shim: Path, work: Path, mode: Synchronous, cuts: int, rng: random.Random, *, lying: bool = False
) -> Tally:
    """``cuts`` power cuts, in chains; on an honest disk with FULL, no promise may be broken."""
    work.mkdir()
    tally = Tally()
    promised: dict[Key, Payload] = {}
    ever: dict[Key, Payload] = {}
    disk_dir = work / "fresh-0"
    for run in range(cuts):
        if run % CHAIN == 0:  # a new outbox (seqs start again at 1)
            shutil.rmtree(disk_dir, ignore_errors=True)
            promised, ever, disk_dir = {}, {}, work / f"fresh-{run}"
            disk_dir.mkdir()
        journal = work / f"journal-{run}"
        start = snapshot(disk_dir)
        new = parse_promises(run_child(shim, disk_dir, journal, mode, run, rng))
        assert journal_is_complete(start, journal, disk_dir), f"run {run}: a write escaped the journal"
        entries = read_journal(journal)
        disk = Disk(start, honours_sync=not lying)
        disk.replay(entries)
        loss = rng.choice(list(Loss))
        after = work / f"disk-{run + 1}"
        write_files(after, disk.after_cut(loss, rng))
        held, events = open_after_cut(after, work / "check")
        tally.cuts += 1
        tally.promised += len(new)
        tally.journal_entries += len(entries)
        tally.before_first_append += not new
        tally.moved_aside += "outbox.corrupt_moved_aside" in events
        tally.reused += sum(1 for key, made in new.items() if key in ever and ever[key] != made)
        ever.update(new)
        promised.update(new)
        lost = {key: made for key, made in promised.items() if held.get(key) != made}
        if mode == "FULL" and not lying:
            where = f"run {run} ({loss.value})"
            assert not lost, f"{where}: lost {len(lost)} promised records, e.g. {sorted(lost)[:5]}"
            assert "outbox.corrupt_moved_aside" not in events, f"{where}: {events}"
        tally.rolled_back += len(lost)
        promised = {key: made for key, made in promised.items() if key not in lost}
        shutil.rmtree(disk_dir)
        journal.unlink()
        disk_dir = after
    return tally


def figures(tally: Tally, seed: int, started: float) -> dict[str, object]:
    return {"seed": seed, **dataclasses.asdict(tally), "seconds": round(time.monotonic() - started, 1)}


@pytest.mark.timeout(3600)
def test_with_full_every_append_that_returned_survives_a_power_cut(shim: Path, tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    started = time.monotonic()
    tally = cut_many(shim, tmp_path / "full", "FULL", scale(10, 200), random.Random(seed))
    report("power_cut_full", **figures(tally, seed, started))
    assert tally.rolled_back == 0 and tally.moved_aside == 0  # asserted at each cut, with details
    assert tally.promised > 100 * scale(1, 10), "the children made too few appends to prove much"


@pytest.mark.timeout(3600)
def test_with_normal_appends_that_returned_are_rolled_back_by_a_power_cut(shim: Path, tmp_path: Path) -> None:
    """Why FULL: the same cuts under NORMAL lose appends and hand their seqs out again.

    This is also the FULL test's control: it shows that the rebuilt disk really drops unsynced
    writes (were it keeping them, FULL's clean record would prove nothing).
    """
    seed = int.from_bytes(os.urandom(4), "big")
    started = time.monotonic()
    tally = cut_many(shim, tmp_path / "normal", "NORMAL", scale(4, 50), random.Random(seed))
    report("power_cut_normal", **figures(tally, seed, started))
    assert tally.rolled_back > 0, f"seed {seed}: NORMAL lost nothing: the simulated cut loses nothing"


@pytest.mark.timeout(3600)
def test_a_card_that_lies_about_syncing_never_stops_the_outbox_from_opening(
    shim: Path, tmp_path: Path
) -> None:
    """Every write of the run may be lost, torn or garbled: records can go, but each open succeeds
    (moving a damaged file aside), the outbox takes appends, and the next open is clean."""
    seed = int.from_bytes(os.urandom(4), "big")
    started = time.monotonic()
    tally = cut_many(shim, tmp_path / "lying", "FULL", scale(4, 50), random.Random(seed), lying=True)
    report("power_cut_lying_card", **figures(tally, seed, started))
    assert tally.cuts == scale(4, 50)  # each cut's checks ran in open_after_cut

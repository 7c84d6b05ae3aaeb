"""Rebuild a directory as a power cut would leave it, from the journal of power_cut_shim.c.

An honest disk is modelled as POSIX promises and no more: a file keeps what was written to it before
its last fsync/fdatasync; the directory keeps the names it had at its last fsync (a file created
or renamed since is gone, whatever its data). What was written after a file's last sync may or
may not be there: ``Loss`` says which of those later writes survive, each one cut at 512-byte
sector boundaries (a torn write), as SQLite's src/test6.c does for its crash tests. A write never
damages bytes outside its own range (SQLite's default "powersafe overwrite" assumption).
"""

from __future__ import annotations

import dataclasses
import enum
import random
import struct
from pathlib import Path

SECTOR = 512
HEADER = struct.Struct("<4sIQQQ")
MAGIC = b"PCJ1"
#: SQLite rebuilds the WAL index whenever it finds no other connection; its content never matters.
VOLATILE_SUFFIXES = ("-shm",)


class Loss(enum.Enum):
    """What happens to writes made after a file's last sync."""

    ALL = "all"  # none of them reached the platter
    SOME = "some"  # each sector of each later write survives or not, at random
    GARBAGE = "garbage"  # each sector survives, is lost, or holds random bytes (a half-programmed page)


@dataclasses.dataclass(frozen=True)
class Entry:
    op: str
    ino: int
    offset: int
    data: bytes


def read_journal(path: Path) -> list[Entry]:
    """Every complete entry; a truncated last one (the process died inside a write) is ignored."""
    raw = path.read_bytes() if path.exists() else b""
    entries: list[Entry] = []
    at = 0
    while at + HEADER.size <= len(raw):
        magic, op, ino, offset, length = HEADER.unpack_from(raw, at)
        if magic != MAGIC:
            raise ValueError(f"{path}: bad journal entry at byte {at}")
        if at + HEADER.size + length > len(raw):
            break
        entries.append(Entry(chr(op), ino, offset, raw[at + HEADER.size : at + HEADER.size + length]))
        at += HEADER.size + length
    return entries


@dataclasses.dataclass
class Inode:
    durable: bytearray
    later: list[Entry] = dataclasses.field(default_factory=list)


class Disk:
    """The directory's files as the disk holds them while the journal is replayed."""

    def __init__(self, start: dict[str, tuple[int, bytes]], *, honours_sync: bool = True) -> None:
        """``start``: name -> (inode number, content) of the files there before the process ran.

        ``honours_sync=False`` is a card that lies: it acknowledges a file's sync without flushing,
        so every write of the run may or may not be there after the cut.
        """
        self.honours_sync = honours_sync
        self.generation: dict[int, int] = {}
        self.inodes: dict[tuple[int, int], Inode] = {}
        self.names: dict[str, tuple[int, int]] = {}
        for name, (ino, content) in start.items():
            self.inodes[(ino, 0)] = Inode(bytearray(content))
            self.names[name] = (ino, 0)
            self.generation[ino] = 0

    def _key(self, ino: int) -> tuple[int, int]:
        key = (ino, self.generation.setdefault(ino, 0))
        self.inodes.setdefault(key, Inode(bytearray()))
        return key

    def replay(self, entries: list[Entry]) -> None:
        for entry in entries:
            if entry.op == "C":  # a new file; its inode number may have served an unlinked one
                self.generation[entry.ino] = self.generation.get(entry.ino, -1) + 1
                self._key(entry.ino)
            elif entry.op in "WT":
                self.inodes[self._key(entry.ino)].later.append(entry)
            elif entry.op == "S" and self.honours_sync:
                inode = self.inodes[self._key(entry.ino)]
                for done in inode.later:
                    apply(inode.durable, done, range(0, len(done.data)))
                inode.later.clear()
            elif entry.op == "S":
                pass  # the lying card said "done"
            elif entry.op == "D":
                self.names = {}
                for line in entry.data.decode().splitlines():
                    ino, name = line.split("\t", 1)
                    self.names[name] = self._key(int(ino))
            else:
                raise ValueError(f"unknown journal op {entry.op!r}")

    def after_cut(self, loss: Loss, rng: random.Random) -> dict[str, bytes]:
        """Name -> content once the power is back."""
        files = {}
        for name, key in self.names.items():
            if name.endswith(VOLATILE_SUFFIXES):
                continue
            inode = self.inodes[key]
            content = bytearray(inode.durable)
            if loss is not Loss.ALL:
                for entry in inode.later:
                    survive(content, entry, loss, rng)
            files[name] = bytes(content)
        return files

    def as_written(self, names: dict[str, int]) -> dict[str, bytes]:
        """What the process itself sees (every write applied) for the files ``names`` (name -> inode)."""
        files = {}
        for name, ino in names.items():
            if name.endswith(VOLATILE_SUFFIXES):
                continue
            inode = self.inodes.get((ino, self.generation.get(ino, 0)), Inode(bytearray()))
            content = bytearray(inode.durable)
            for entry in inode.later:
                apply(content, entry, range(0, len(entry.data)))
            files[name] = bytes(content)
        return files


def apply(content: bytearray, entry: Entry, part: range) -> None:
    """Apply bytes ``part`` of a write (or a whole truncation) to ``content``."""
    if entry.op == "T":
        del content[entry.offset :]
        content.extend(bytes(max(0, entry.offset - len(content))))
        return
    start = entry.offset + part.start
    if len(content) < start:
        content.extend(bytes(start - len(content)))
    content[start : start + len(part)] = entry.data[part.start : part.stop]


def survive(content: bytearray, entry: Entry, loss: Loss, rng: random.Random) -> None:
    """Let some sectors of a write made after the last sync reach the disk."""
    if entry.op == "T":
        if rng.random() < 0.5:
            apply(content, entry, range(0))
        return
    for part in sectors(entry.offset, len(entry.data)):
        roll = rng.random()
        if roll < 0.5:
            continue  # lost
        if loss is Loss.GARBAGE and roll < 0.75:
            garbage = Entry("W", entry.ino, entry.offset, rng.randbytes(len(entry.data)))
            apply(content, garbage, part)
        else:
            apply(content, entry, part)


def sectors(offset: int, length: int) -> list[range]:
    """The write's byte ranges (relative to its start) cut at absolute sector boundaries."""
    parts = []
    at = 0
    while at < length:
        end = min(length, (offset + at) // SECTOR * SECTOR + SECTOR - offset)
        parts.append(range(at, end))
        at = end
    return parts


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Name -> (inode, content) of the regular files in ``directory``."""
    return {
        path.name: (path.stat().st_ino, path.read_bytes())
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)

"""Benchmark: outbox appends per second with synchronous=FULL against NORMAL, in the same run.

    .venv/bin/python bench/outbox_append.py [--count 3000] [--dir /data/busagent] [--fsyncs]

Run it on the target's data partition (``--dir``): the figure is dominated by how long the storage
takes to honour an fsync, which differs by orders of magnitude between a VM disk and an SD card.
``--fsyncs`` also counts fsync/fdatasync calls per append by re-running each mode under strace.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from agent.outbox import Outbox, Synchronous  # noqa: E402

#: One 1 Hz GPS fix as the runtime would store it (about 200 bytes of JSON).
FIX = {
    "v": 1,
    "lat": 44.03951,
    "lon": 1.10692,
    "alt_m": 112.4,
    "speed_mps": 13.2,
    "track_deg": 87.5,
    "hdop": 0.9,
    "sats_used": 11,
    "mode": 3,
    "time": "2026-03-02T08:00:00.000Z",
}


def io_written() -> int | None:
    """Bytes this process has handed to write() so far (Linux /proc/self/io "wchar"), None elsewhere."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ") for line in text.splitlines())
    return int(fields["wchar"])


def appends_per_second(directory: Path, synchronous: Synchronous, count: int) -> tuple[float, float | None]:
    """Open a fresh outbox in ``directory``, time ``count`` appends; (appends/s, bytes written per append)."""
    path = directory / f"bench-{synchronous.lower()}.db"
    with Outbox.open(path, vehicle_id="bench", boot_id="bench", synchronous=synchronous) as outbox:
        written = io_written()
        started = time.perf_counter()
        for i in range(count):
            outbox.append(
                "telemetry/gps", FIX, priority="low", mono=float(i), wall=float(i), wall_source="unsynced"
            )
        rate = count / (time.perf_counter() - started)
        after = io_written()
    per_append = None if written is None or after is None else (after - written) / count
    return rate, per_append


def fsyncs_per_append(directory: Path, synchronous: Synchronous, count: int) -> float | None:
    """fsync + fdatasync calls per append, counted by strace on a child run; None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    command = [
        sys.executable,
        __file__,
        "--only",
        synchronous,
        "--count",
        str(count),
        "--dir",
        str(directory),
    ]
    run = subprocess.run(
        [strace, "-f", "-c", "-e", "trace=fsync,fdatasync", *command],
        capture_output=True,
        text=True,
        check=True,
    )
    # strace -c's table: "% time  seconds  usecs/call  calls  [errors]  syscall".
    rows = [line.split() for line in run.stderr.splitlines()]
    return sum(int(row[3]) for row in rows if row and row[-1] in {"fsync", "fdatasync"}) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="appends per mode")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the test databases")
    parser.add_argument("--fsyncs", action="store_true", help="also count fsyncs per append (needs strace)")
    parser.add_argument("--only", choices=["FULL", "NORMAL"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    directory = Path(tempfile.mkdtemp(prefix="outbox-bench-", dir=args.dir))
    try:
        if args.only:
            appends_per_second(directory, args.only, args.count)
            return
        full, full_bytes = appends_per_second(directory, "FULL", args.count)
        normal, normal_bytes = appends_per_second(directory, "NORMAL", args.count)
        print(f"outbox appends/s in {directory.parent} ({args.count} appends of a ~200-byte GPS fix)")
        print(f"  synchronous=NORMAL  {normal:10.0f} appends/s   (baseline)")
        print(f"  synchronous=FULL    {full:10.0f} appends/s   ratio FULL/NORMAL = {full / normal:.2f}")
        if full_bytes is not None and normal_bytes is not None:
            print(
                f"  bytes written per append (WAL frames + checkpoints): NORMAL {normal_bytes:.0f},"
                f" FULL {full_bytes:.0f}"
            )
        if args.fsyncs:
            for mode in ("NORMAL", "FULL"):
                per = fsyncs_per_append(directory, mode, args.count)
                print(
                    f"  fsyncs per append, {mode:6}: " + ("strace not found" if per is None else f"{per:.3f}")
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()

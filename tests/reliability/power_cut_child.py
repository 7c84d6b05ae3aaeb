"""Child process of the power-cut test: append forever, printing each record once append() returned.

Run as ``python -m tests.reliability.power_cut_child PATH SYNCHRONOUS RUN`` from the repository
root, with power_cut_shim.so preloaded. A line ``stream seq run i`` on stdout is the outbox's
promise that the record (payload ``{"run": RUN, "i": i}``) is durable; the parent cuts the power
and checks every promise against what the disk kept.
"""

from __future__ import annotations

import sys

from agent.logs import setup_logging
from agent.outbox import Outbox, Synchronous

STREAMS = ("events", "probes/result")
VEHICLE = "bus-tdc-01"


def main(path: str, synchronous: str, run: int) -> None:
    setup_logging("warning", sys.stderr)  # stdout carries only the promises
    mode: Synchronous = "NORMAL" if synchronous == "NORMAL" else "FULL"
    outbox = Outbox.open(path, vehicle_id=VEHICLE, boot_id=f"boot-{run}", synchronous=mode)
    index = 0
    while True:
        record = outbox.append(
            STREAMS[index % len(STREAMS)],
            {"run": run, "i": index, "pad": "x" * 150},
            priority="high",
            mono=float(index),
            wall=0.0,
            wall_source="unsynced",
        )
        sys.stdout.write(f"{record.stream} {record.seq} {run} {index}\n")
        sys.stdout.flush()
        index += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""Child process of the SIGKILL test: append forever, printing "stream seq" once each append() returned.

Run as ``python -m tests.outbox.crash_child PATH`` from the repository root. A line on stdout is
the child's claim that the record is durable; the parent kills it and checks every claim.
"""

from __future__ import annotations

import sys

from agent.logs import setup_logging
from agent.outbox import Outbox

STREAMS = ("probes/result", "events")


def main(path: str) -> None:
    setup_logging("warning", sys.stderr)  # stdout carries only the claims
    outbox = Outbox.open(path, vehicle_id="bus-tdc-01", boot_id="boot-crash")
    index = 0
    while True:
        stream = STREAMS[index % len(STREAMS)]
        record = outbox.append(
            stream,
            {"i": index, "pad": "x" * 200},
            priority="high",
            mono=float(index),
            wall=0.0,
            wall_source="unsynced",
        )
        sys.stdout.write(f"{record.stream} {record.seq}\n")
        sys.stdout.flush()
        index += 1


if __name__ == "__main__":
    main(sys.argv[1])

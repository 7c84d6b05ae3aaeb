"""Child process of the long-outage test: the bus side alone, so that its resident memory is its own.

Run as ``python -m tests.reliability.outage_child OUTBOX RELAY_PORT RECORDS BATCH`` from the
repository root. It starts the real Publisher towards the relay (cut by the parent), appends
RECORDS GPS fixes at 1 Hz of simulated time (the outbox clock moves one second per fix) and an
event every 10 minutes, prints one JSON line, waits for a line on stdin (the parent has restored
the link), then prints a second JSON line once the collector has acknowledged everything.
Resident memory (VmRSS) is sampled every 10 minutes of records, then every half second of drain.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.logs import setup_logging
from agent.mqtt import BatchPolicy, BrokerUrl, Publisher
from agent.outbox import Outbox
from tests.mqtt.conftest import FakeClock, append_events, append_gps, fast_settings, open_outbox

EVENT_EVERY = 600  # one event record per 10 simulated minutes
DRAIN_LIMIT_S = 3000.0


def proc_status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB: VmRSS now, VmHWM the peak since the process began."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def publisher_for(outbox: Outbox, port: int, batch: int) -> Publisher:
    settings = fast_settings(
        BrokerUrl("127.0.0.1", port, tls=False),
        batch=BatchPolicy(max_records=batch, wait_s=0.2),
        # Nothing is lost in this test: a resend would be a record sent twice for nothing.
        ack_timeout_s=60.0,
        # An attempt every 50 ms: the outage's seconds of appending make as many connection
        # attempts as hours at the production cap (120 s), so a leak per attempt would show.
        backoff_min_s=0.02,
        backoff_max_s=0.05,
    )
    return Publisher(outbox, settings)


def outage(outbox: Outbox, clock: FakeClock, publisher: Publisher, records: int) -> dict[str, Any]:
    samples = [proc_status_kib("VmRSS")]
    started = time.monotonic()
    for start in range(0, records, EVENT_EVERY):
        append_gps(outbox, min(EVENT_EVERY, records - start), start=start, clock=clock)
        append_events(outbox, 1)
        samples.append(proc_status_kib("VmRSS"))
    stats = outbox.stats()
    return {
        "append_s": time.monotonic() - started,
        "pending": stats.pending,
        "file_bytes": stats.file_bytes,
        "oldest_pending_age_s": stats.oldest_pending_age_s,
        "connected": publisher.status().connected,
        "rss_kib": samples,
    }


def drain(outbox: Outbox, publisher: Publisher) -> dict[str, Any]:
    started = time.monotonic()
    samples = [proc_status_kib("VmRSS")]
    while time.monotonic() - started < DRAIN_LIMIT_S:
        stats = outbox.stats()
        if stats.pending == 0 and stats.sent_unacked == 0:
            break
        time.sleep(0.5)
        samples.append(proc_status_kib("VmRSS"))
    drain_s = time.monotonic() - started
    status = publisher.status()
    stats = outbox.stats()
    return {
        "drain_s": drain_s,
        "pending": stats.pending,
        "sent_unacked": stats.sent_unacked,
        "connections": status.connections,
        "records_sent": status.records_sent,
        "records_resent": status.records_resent,
        "records_acknowledged": status.records_acknowledged,
        "internal_errors": status.internal_errors,
        "rss_kib": samples,
        "hwm_kib": proc_status_kib("VmHWM"),
    }


def main(path: str, port: int, records: int, batch: int) -> None:
    setup_logging("error", sys.stderr)  # the outage logs a warning per connection attempt
    clock = FakeClock()
    outbox = open_outbox(Path(path), clock=clock)
    publisher = publisher_for(outbox, port, batch)
    publisher.start()
    say(outage(outbox, clock, publisher, records))
    sys.stdin.readline()  # the link is back
    clock.run()  # from now on the outbox clock runs with real time, so timeouts can expire
    say(drain(outbox, publisher))
    publisher.stop(timeout_s=2)
    outbox.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

"""A day offline: the backlog waits in the outbox, drains after the link returns, nothing lost, memory flat.

The bus side (real Outbox and Publisher) runs in its own process (outage_child.py), so that its
resident memory is measured alone; the central side (real mosquitto and collector) runs here, the
link between them is a relay cut for the whole outage. Records are GPS fixes at 1 Hz of simulated
time plus an event every 10 minutes. Two cases:

- minute batches (the production setting): 60 fixes per message;
- one record per message: more than 65,535 PUBLISH on one connection in the soak, so paho's packet
  ids wrap around; a publisher that keyed anything on them would lose or repeat records.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.broker_rig import Central, central
from tests.reliability.conftest import report, scale

REPO = Path(__file__).resolve().parents[2]
EVENT_EVERY = 600  # as outage_child.py
START = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=datetime.UTC)  # tests/mqtt's gps_payload
#: Resident memory may grow this much while appending, and while draining (read-ahead, paho, JSON):
#: a fixed amount, whatever the backlog. Holding a day's backlog of records would take ~150 MB.
OUTAGE_GROWTH_KIB = 8 * 1024
DRAIN_GROWTH_KIB = 16 * 1024

CASES = {
    # name: (records per message, fixes in the short run, in the soak)
    "minute-batches": (60, 20_000, 86_400),
    "one-record-per-message": (1, 5_000, 86_400),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.timeout(scale(240, 7200))
def test_a_day_offline_then_the_backlog_drains_with_nothing_lost_and_flat_memory(
    tmp_path: Path, case: str
) -> None:
    batch, short, soak = CASES[case]
    fixes = scale(short, soak)
    events = -(-fixes // EVENT_EVERY)
    # The production ack cadence for minute batches; one-record messages need acks ten times as
    # often to move at the collector's pace through the publisher's window of 100 messages.
    with central(tmp_path, ack_interval_s=1.0 if batch > 1 else 0.1) as rig:
        rig.relay.cut()
        child = start_child(tmp_path / "outbox.db", rig.relay.port, fixes, batch)
        try:
            outage = read_line(child)
            attempts = len(rig.relay.accepted)
            rig.relay.restore()
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
            drained = read_line(child)
            assert child.wait(30) == 0
        finally:
            child.kill()
        check_delivery(rig, fixes, events)
        duplicates = sum(row.duplicates for row in rig.rows().values())
    assert outage["pending"] == fixes + events and not outage["connected"]
    assert drained["pending"] == 0 and drained["sent_unacked"] == 0, drained
    assert drained["connections"] == 1 and drained["internal_errors"] == 0
    assert drained["records_resent"] == 0  # nothing was lost: nothing needed sending twice
    outage_growth = max(outage["rss_kib"]) - outage["rss_kib"][0]
    drain_growth = max(drained["rss_kib"]) - drained["rss_kib"][0]
    messages = -(-fixes // batch) + events  # records per message: the last batch may be short
    report(
        f"long_outage[{case}]",
        records=fixes + events,
        simulated_hours=round(fixes / 3600, 1),
        outbox_file_mb=round(outage["file_bytes"] / 1e6, 1),
        append_s=round(outage["append_s"], 1),
        attempts_during_outage=attempts,
        drain_s=round(drained["drain_s"], 1),
        records_per_s=round((fixes + events) / drained["drain_s"]),
        msg_per_s=round(messages / drained["drain_s"]),
        publishes_on_one_connection=messages,
        packet_ids_wrapped=messages > 65535,
        resent=drained["records_resent"],
        duplicates=duplicates,
        rss_start_mb=round(outage["rss_kib"][0] / 1024, 1),
        rss_growth_outage_mb=round(outage_growth / 1024, 1),
        rss_growth_drain_mb=round(drain_growth / 1024, 1),
        rss_peak_mb=round(drained["hwm_kib"] / 1024, 1),
    )
    assert outage_growth < OUTAGE_GROWTH_KIB, outage["rss_kib"]
    assert drain_growth < DRAIN_GROWTH_KIB, drained["rss_kib"]


def start_child(path: Path, port: int, fixes: int, batch: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.outage_child",
            str(path),
            str(port),
            str(fixes),
            str(batch),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )


def read_line(child: subprocess.Popen[str]) -> Any:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the bus process ended (exit status {child.poll()})"
    return json.loads(line)


def check_delivery(rig: Central, fixes: int, events: int) -> None:
    """Every seq of both streams once, and each fix carries its own time (the content arrived too)."""
    rig.assert_complete({"telemetry/gps": fixes, "events": events})
    for seq, payload in rig.payloads("telemetry/gps"):
        when = START + datetime.timedelta(seconds=seq - 1)
        assert payload["gps_time_utc"] == when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), seq

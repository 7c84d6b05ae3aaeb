"""The end-to-end window: few messages wait between the broker's PUBACK and the collector's ack.

mosquitto holds at most ``max_queued_messages`` (default 1000) for a subscriber and silently drops
the rest. A publisher paced by PUBACKs alone outruns a slower collector: the broker drops, acks
lag behind ``ack_timeout_s`` and records still queued are sent again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.mqtt import BrokerUrl, Publisher, PublisherSettings
from agent.outbox import Outbox
from collector.ingest import Collector
from simulators.relay import TcpRelay
from tests.mqtt.conftest import (
    Mosquitto,
    append_events,
    fast_settings,
    fully_acknowledged,
    open_outbox,
    wait_until,
)
from tests.mqtt.test_publish import assert_complete, retained_status

Start = Callable[[Outbox, PublisherSettings], Publisher]
QUEUE = 40  # the broker's queue for the collector, far below mosquitto's default to show the effect


@pytest.fixture
def small_queue_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    work = tmp_path / "broker"
    work.mkdir()
    mosquitto = Mosquitto(work)
    with mosquitto.config_path.open("a") as config:
        config.write(f"max_queued_messages {QUEUE}\n")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def test_a_collector_slower_than_the_agent_never_makes_the_broker_drop_and_nothing_is_sent_twice(
    tmp_path: Path, small_queue_broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    broker = small_queue_broker
    collector = collectors(broker.url)  # one fsync per message: slower than the broker's PUBACKs
    wait_until(collector.subscribed.is_set, 5, "the collector's subscription")
    outbox = open_outbox(tmp_path / "outbox.db")
    append_events(outbox, 1500)  # one record per message
    # Resends come only after a minute: a message the broker dropped shows as a timeout below.
    settings = fast_settings(broker.url, collector_window=QUEUE // 2, ack_timeout_s=60.0)
    publisher = publishers(outbox, settings)
    wait_until(lambda: fully_acknowledged(outbox), 45, "the outbox to be acknowledged without a resend")
    assert_complete(collector, {"events": 1500})
    assert publisher.status().records_resent == 0
    assert publisher.status().records_sent == 1500
    assert "dropped for client" not in broker.log_path.read_text()


def test_with_no_collector_listening_only_a_window_of_messages_is_sent_into_the_void(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    append_events(outbox, 500)
    publisher = publishers(outbox, fast_settings(broker.url, collector_window=25, ack_timeout_s=2.0))
    wait_until(lambda: publisher.status().records_sent >= 20, 10, "the first messages")
    time.sleep(1.0)  # time enough to send the whole backlog were nothing holding it back
    assert publisher.status().records_sent <= 25
    collectors(broker.url)
    wait_until(
        lambda: fully_acknowledged(outbox), 30, "the outbox to be acknowledged once the collector listens"
    )
    assert outbox.stats().streams["events"].acked_seq == 500


def test_a_link_that_stalls_while_the_window_is_full_is_noticed_by_the_probe_not_after_the_ack_timeout(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    relay = TcpRelay(broker.port).start()
    try:
        outbox = open_outbox(tmp_path / "outbox.db")
        append_events(outbox, 300)
        # No collector yet: the window fills and nothing is in flight, so no PUBACK can be late.
        settings = fast_settings(
            BrokerUrl("127.0.0.1", relay.port, tls=False),
            collector_window=20,
            inflight_timeout_s=1.0,
            ack_timeout_s=5.0,  # a resend would end the wait too, but only after 5 s
        )
        publisher = publishers(outbox, settings)
        wait_until(lambda: publisher.status().records_sent >= 20, 10, "the window to fill")
        relay.stall()
        stalled = time.monotonic()
        wait_until(
            lambda: "no PUBACK" in (publisher.status().last_error or ""), 10, "the stall to be noticed"
        )
        noticed = time.monotonic() - stalled
        assert noticed < 0.5 + 1.0 + 1.5  # probe_s (inflight_timeout_s / 2) + inflight_timeout_s + slack
        relay.restore()
        collectors(broker.url)
        wait_until(lambda: fully_acknowledged(outbox), 60, "the outbox to be acknowledged after the stall")
    finally:
        relay.stop()


def test_stopping_with_the_in_flight_window_full_still_leaves_the_retained_status_offline(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    collectors(broker.url)
    relay = TcpRelay(broker.port).start()
    try:
        outbox = open_outbox(tmp_path / "outbox.db")
        append_events(outbox, 3000)
        url = BrokerUrl("127.0.0.1", relay.port, tls=False)
        publisher = publishers(outbox, fast_settings(url, collector_window=1000))
        wait_until(lambda: publisher.status().records_sent > 100, 10, "the drain to start")
        relay.stall()  # a slow uplink: PUBACKs come late, every slot of the window is taken
        wait_until(lambda: publisher.status().in_flight == 20, 5, "a full window")
        stopping = threading.Thread(target=publisher.stop, kwargs={"timeout_s": 0.1})
        stopping.start()
        time.sleep(0.3)  # the goodbye is being said while the window is still full
        relay.resume()
        stopping.join(10)
        assert not fully_acknowledged(outbox)
        assert retained_status(broker)["state"] == "offline"
    finally:
        relay.stop()

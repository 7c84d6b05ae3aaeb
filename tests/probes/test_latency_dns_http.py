"""Latency, DNS and HTTP probes: codecs on crafted bytes, and the probes against the simulated
services over 127.0.0.1, checked against what the simulated link really delivered."""

from __future__ import annotations

import os
import random
import statistics
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.probes import DEFAULT_DNS_NAMES, DEFAULT_PORTAL_URLS
from agent.probes import dns as dns_probe
from agent.probes import http as http_probe
from agent.probes import latency as latency_probe
from agent.probes.dns import DnsReply, Malformed, decode_reply, encode_query, parse_server
from agent.probes.latency import echo_request, is_echo_reply, parse_target
from simulators.netsvc.dns_server import DnsServer
from simulators.netsvc.http_portal import HttpPortal
from simulators.netsvc.link import Link, LinkProfile

# Measurements of a simulated link in real time: a scheduler stall on a shared 2-core machine can
# delay one run by tens of milliseconds. A wrong measurement fails all three attempts.
pytestmark = pytest.mark.flaky(reruns=2)


LATENCY_TOLERANCE_MS = 20.0
RATE_TOLERANCE = 0.25
GOOD_STOP = LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0)
POOR_STOP = LinkProfile(down_mbps=2.0, up_mbps=1.0, rtt_ms=120.0)
PROFILES = [pytest.param(GOOD_STOP, id="12M-45ms"), pytest.param(POOR_STOP, id="2M-120ms")]


@pytest.fixture
def portal() -> Iterator[HttpPortal]:
    with HttpPortal(Link(GOOD_STOP, seed=7), page_bytes=2_000) as service:
        yield service


@pytest.fixture
def resolver() -> Iterator[DnsServer]:
    records = {"www.caf.fr": ["192.0.2.10", "192.0.2.11"], "ants.gouv.fr": ["198.51.100.4"]}
    with DnsServer(Link(GOOD_STOP, seed=7), records) as server:
        yield server


# =========================================================================== latency


def test_latency_targets_parse_from_urls() -> None:
    assert parse_target("tcp://10.0.0.1:443") == latency_probe.Target("tcp", "10.0.0.1", 443)
    assert parse_target("https://www.caf.fr") == latency_probe.Target("http", "www.caf.fr", 443, "/", True)
    assert parse_target("http://h:8080/a?b=1") == latency_probe.Target("http", "h", 8080, "/a?b=1", False)
    assert parse_target("icmp://192.0.2.1").method == "icmp"
    assert parse_target("https://www.caf.fr/").host_header == "www.caf.fr"
    assert parse_target("http://[::1]:8080/").host_header == "[::1]:8080"
    for bad in ("tcp://host", "ftp://host/", "no-scheme", "http://h:99999/"):
        with pytest.raises(ValueError):
            parse_target(bad)


@pytest.mark.parametrize("target", ["tcp://host", "gopher://x/", "://", "http://h:port/"])
def test_a_bad_latency_target_is_a_failed_result_not_an_exception(target: str) -> None:
    result = latency_probe.measure(target, tries=2, interval_s=0)
    assert not result.ok
    assert result.reason
    assert result.loss == 1.0


@pytest.mark.parametrize("profile", PROFILES)
def test_http_latency_is_the_simulated_round_trip(profile: LinkProfile) -> None:
    with HttpPortal(Link(profile)) as service:
        result = latency_probe.measure(service.url + "/", tries=5, timeout_s=2.0, interval_s=0)
    assert result.ok and result.method == "http"
    assert result.loss == 0.0 and result.answered == 5
    assert result.rtt_median_ms == pytest.approx(profile.rtt_ms, abs=LATENCY_TOLERANCE_MS)
    # Never faster than the link: every answer waited out the round trip.
    assert all(t is not None and t >= profile.rtt_ms - 1 for t in result.rtt_ms)
    low, middle, high = result.rtt_min_ms, result.rtt_median_ms, result.rtt_max_ms
    assert low is not None and middle is not None and high is not None and result.rtt_mean_ms is not None
    assert low <= middle <= high
    assert low <= result.rtt_mean_ms <= high
    # The connect happens on loopback in the kernel: it cannot see the simulated round trip.
    assert all(c is not None and c < LATENCY_TOLERANCE_MS for c in result.connect_ms)
    assert service.wait_idle()
    assert service.history.count("answered") == 5
    assert all(e.detail["method"] == "HEAD" for e in service.history.events if e.name == "request")
    assert result.bytes_used > 5 * 60  # five requests and their header blocks


def test_a_changed_link_profile_is_measured_without_restarting_the_service(portal: HttpPortal) -> None:
    before = latency_probe.measure(portal.url + "/", tries=5, interval_s=0)
    portal.link.set_profile(POOR_STOP)  # the bus moved on to a worse stop
    after = latency_probe.measure(portal.url + "/", tries=5, interval_s=0)
    assert before.rtt_median_ms == pytest.approx(GOOD_STOP.rtt_ms, abs=LATENCY_TOLERANCE_MS)
    assert after.rtt_median_ms == pytest.approx(POOR_STOP.rtt_ms, abs=LATENCY_TOLERANCE_MS)
    assert portal.link.history.names() == ["set_profile"]


def test_tcp_latency_times_the_connect_alone(portal: HttpPortal) -> None:
    result = latency_probe.measure("tcp://" + portal.url.removeprefix("http://"), tries=3, interval_s=0)
    assert result.ok and result.method == "tcp" and result.answered == 3
    assert result.rtt_median_ms is not None and result.rtt_median_ms < LATENCY_TOLERANCE_MS
    assert portal.history.count("request") == 0  # nothing was asked over HTTP


def test_measured_loss_is_the_share_of_requests_the_link_dropped() -> None:
    lossy = LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0, loss=0.4)
    with HttpPortal(Link(lossy, seed=2026)) as service:
        result = latency_probe.measure(service.url + "/", tries=20, timeout_s=0.25, interval_s=0)
        dropped = service.history.count("dropped")
    assert result.tries == 20
    assert result.loss == pytest.approx(dropped / 20)
    assert 0.2 <= result.loss <= 0.6
    assert result.ok  # some tries were answered
    assert result.reason is not None and "no answer within 0.25 s" in result.reason
    answered = [t for t in result.rtt_ms if t is not None]
    assert len(answered) == result.answered == 20 - dropped
    assert result.rtt_median_ms == pytest.approx(lossy.rtt_ms, abs=LATENCY_TOLERANCE_MS)


def test_latency_to_a_stopped_server_is_total_loss_with_a_reason(portal: HttpPortal) -> None:
    url = portal.url + "/"
    portal.stop()
    result = latency_probe.measure(url, tries=3, timeout_s=1.0, interval_s=0)
    assert not result.ok
    assert result.loss == 1.0 and result.answered == 0
    assert result.rtt_median_ms is None
    assert result.reason == f"3 of 3 tries to {url} unanswered: connection refused"


def test_latency_to_an_unresolvable_host_fails_with_a_reason() -> None:
    result = latency_probe.measure("tcp://no-such-host.invalid:443", tries=2, timeout_s=2.0, interval_s=0)
    assert not result.ok
    assert result.reason is not None and result.reason.startswith(
        "cannot probe tcp://no-such-host.invalid:443"
    )


def _ping_permitted() -> bool:
    with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as fh:
        low, high = (int(v) for v in fh.read().split())
    return any(low <= gid <= high for gid in {os.getgid(), *os.getgroups()})


def test_icmp_is_measured_when_permitted_and_reported_unavailable_otherwise() -> None:
    result = latency_probe.measure("icmp://127.0.0.1", tries=2, timeout_s=1.0, interval_s=0)
    assert result.method == "icmp"
    if _ping_permitted():
        assert result.ok and result.rtt_max_ms is not None and result.rtt_max_ms < LATENCY_TOLERANCE_MS
    else:
        assert not result.ok
        assert result.reason is not None and "ping_group_range" in result.reason


def test_echo_request_carries_a_valid_checksum_and_replies_are_matched_by_sequence() -> None:
    packet = echo_request(513)
    assert packet[0] == 8 and struct.unpack_from("!H", packet, 6)[0] == 513
    assert latency_probe._checksum(packet) == 0  # a packet with its checksum in sums to zero
    reply = b"\x00\x00" + packet[2:]
    assert is_echo_reply(reply, 513)
    assert not is_echo_reply(reply, 514)
    assert not is_echo_reply(packet, 513)  # our own request type 8 is not an answer
    assert not is_echo_reply(b"\x00\x00", 513)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=70000))
def test_echo_reply_matching_never_raises(data: bytes, seq: int) -> None:
    assert is_echo_reply(data, seq) in (True, False)


# =========================================================================== DNS codec

# dig-style reply for www.caf.fr: a CNAME then two A records, names compressed (pointers to 0x0c).
QUESTION = b"\x03www\x03caf\x02fr\x00\x00\x01\x00\x01"
RECORDED_REPLY = (
    b"\xbe\xef\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00"
    + QUESTION
    + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x0e\x10\x00\x06\x03cdn\xc0\x10"  # CNAME cdn.caf.fr
    + b"\xc0\x28\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x0a"  # A 192.0.2.10
    + b"\xc0\x28\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x0b"  # A 192.0.2.11
)
NXDOMAIN_REPLY = b"\x12\x34\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + QUESTION


def test_query_is_an_a_question_with_recursion_desired() -> None:
    assert (
        encode_query(0xBEEF, "www.caf.fr") == b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + QUESTION
    )
    assert encode_query(1, "www.caf.fr.") == encode_query(1, "www.caf.fr")


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64 + ".fr", ("a." * 130) + "fr"])
def test_names_dns_cannot_carry_are_refused_by_the_encoder(name: str) -> None:
    with pytest.raises(ValueError):
        encode_query(1, name)


def test_recorded_reply_decodes_to_its_a_records_past_a_cname() -> None:
    assert decode_reply(RECORDED_REPLY) == DnsReply(
        qid=0xBEEF, rcode=0, truncated=False, addresses=("192.0.2.10", "192.0.2.11")
    )
    assert decode_reply(NXDOMAIN_REPLY) == DnsReply(qid=0x1234, rcode=3, truncated=False, addresses=())


@pytest.mark.parametrize("cut", [3, 11, 20, 30, 45, len(RECORDED_REPLY) - 1])
def test_truncated_replies_are_malformed_not_exceptions(cut: int) -> None:
    assert isinstance(decode_reply(RECORDED_REPLY[:cut]), Malformed)


def test_a_query_or_reserved_label_types_are_not_replies() -> None:
    assert decode_reply(encode_query(5, "www.caf.fr")) == Malformed("not a response (QR bit clear)")
    bad_label = RECORDED_REPLY[:12] + b"\x43www" + RECORDED_REPLY[16:]
    assert isinstance(decode_reply(bad_label), Malformed)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_dns_decoder_never_raises_on_any_bytes(data: bytes) -> None:
    assert isinstance(decode_reply(data), DnsReply | Malformed)


@given(st.binary(min_size=12, max_size=120))
def test_dns_decoder_never_raises_on_garbage_behind_a_valid_header(tail: bytes) -> None:
    assert isinstance(
        decode_reply(b"\x00\x01\x81\x80\x00\x02\x00\x05\x00\x00\x00\x00" + tail), DnsReply | Malformed
    )


def test_dns_servers_are_given_by_address() -> None:
    assert parse_server("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:53") == ("::1", 53)
    for bad in ("dns.example.org", "127.0.0.1:0", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            parse_server(bad)


# =========================================================================== DNS probe


@pytest.mark.parametrize("profile", PROFILES)
def test_dns_resolution_time_is_the_simulated_round_trip(profile: LinkProfile) -> None:
    with DnsServer(Link(profile), {"www.caf.fr": ["192.0.2.10"]}) as server:
        results = [dns_probe.resolve("www.caf.fr", server=server.address, timeout_s=1.0) for _ in range(5)]
    for result in results:
        assert result.ok and result.reason is None
        assert result.addresses == ("192.0.2.10",) and result.rcode == 0 and result.attempts == 1
        assert result.resolve_ms is not None and result.resolve_ms >= profile.rtt_ms - 1  # never faster
        assert 40 < result.bytes_used < 120  # one small query, one small answer
    times = [r.resolve_ms for r in results if r.resolve_ms is not None]
    assert statistics.median(times) == pytest.approx(profile.rtt_ms, abs=LATENCY_TOLERANCE_MS)
    assert server.history.count("query") == 5


def test_nxdomain_is_a_failed_result_that_still_has_its_answer_time(resolver: DnsServer) -> None:
    result = dns_probe.resolve("nope.caf.fr", server=resolver.address, timeout_s=1.0)
    assert not result.ok
    assert result.rcode == 3
    assert result.reason == f"{resolver.address} answered NXDOMAIN for nope.caf.fr"
    assert result.resolve_ms is not None and result.resolve_ms >= GOOD_STOP.rtt_ms - 1


def test_a_name_without_a_records_is_a_failed_result(resolver: DnsServer) -> None:
    resolver.set_record("empty.caf.fr", [])
    result = dns_probe.resolve("empty.caf.fr", server=resolver.address, timeout_s=1.0)
    assert not result.ok and result.rcode == 0
    assert result.reason == f"{resolver.address} has no A record for empty.caf.fr"


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("garbage", "unreadable answer from"),
        ("truncated", "unreadable answer from"),
        ("servfail", "answered SERVFAIL for www.caf.fr"),
    ],
)
def test_bad_answers_become_failed_results(resolver: DnsServer, how: str, expected: str) -> None:
    resolver.misbehave(how)  # type: ignore[arg-type]
    result = dns_probe.resolve("www.caf.fr", server=resolver.address, timeout_s=1.0)
    assert not result.ok
    assert result.reason is not None and expected in result.reason
    assert result.addresses == ()


def test_answers_with_another_id_are_ignored_until_the_timeout(resolver: DnsServer) -> None:
    resolver.misbehave("wrong-id")
    result = dns_probe.resolve("www.caf.fr", server=resolver.address, timeout_s=0.3, retries=1)
    assert not result.ok
    assert result.attempts == 2 and resolver.history.count("query") == 2
    assert result.reason == f"{resolver.address}: no answer within 0.3 s after 2 attempts"


def _seed_dropping_first_query_only(loss: float) -> int:
    """A seed whose first draw is lost and second is not, with the link's own RNG (random.Random)."""
    for seed in range(1000):
        draws = random.Random(seed)
        if draws.random() < loss <= draws.random():
            return seed
    raise AssertionError("no such seed")


def test_a_dropped_query_is_retried_and_the_wait_counts_in_the_resolution_time() -> None:
    lossy = LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0, loss=0.5)
    with DnsServer(
        Link(lossy, seed=_seed_dropping_first_query_only(0.5)), {"caf.fr": ["192.0.2.1"]}
    ) as server:
        result = dns_probe.resolve("caf.fr", server=server.address, timeout_s=0.3, retries=1)
        assert server.history.names()[-2:] == ["dropped", "query"]
    assert result.ok and result.attempts == 2
    # The silent first attempt is part of the wait: at least its timeout plus the answer's round trip,
    # and less than a third attempt would have taken.
    assert result.resolve_ms is not None and 300 + lossy.rtt_ms - 1 <= result.resolve_ms < 600


def test_a_stopped_dns_server_fails_at_once_with_a_reason(resolver: DnsServer) -> None:
    address = resolver.address
    resolver.stop()
    result = dns_probe.resolve("www.caf.fr", server=address, timeout_s=2.0)
    assert not result.ok
    assert result.reason == f"no DNS server listening at {address} (port unreachable)"
    assert result.duration_s < 1.0


def test_a_bad_server_setting_is_a_failed_result() -> None:
    result = dns_probe.resolve("caf.fr", server="resolver.example.org")
    assert not result.ok and result.reason is not None and "want ip[:port]" in result.reason


def test_the_system_resolver_is_timed() -> None:
    result = dns_probe.resolve("localhost", timeout_s=2.0)
    assert result.ok and result.server == "system"
    assert "127.0.0.1" in result.addresses or "::1" in result.addresses
    assert result.resolve_ms is not None and 0 < result.resolve_ms < 2000


# =========================================================================== HTTP probe


def test_defaults_are_the_portals_the_agents_use() -> None:
    assert http_probe.HttpConfig().urls == DEFAULT_PORTAL_URLS
    assert "www.impots.gouv.fr" in DEFAULT_DNS_NAMES and "ants.gouv.fr" in DEFAULT_DNS_NAMES
    assert dns_probe.DnsConfig().names == DEFAULT_DNS_NAMES


@pytest.mark.parametrize(("profile", "page_bytes"), [(GOOD_STOP, 300_000), (POOR_STOP, 60_000)])
def test_fetch_times_follow_the_link(profile: LinkProfile, page_bytes: int) -> None:
    with HttpPortal(Link(profile), page_bytes=page_bytes) as service:
        results = [http_probe.fetch(service.url + "/allocataires", timeout_s=5.0) for _ in range(3)]
        assert service.wait_idle()
        sent = service.body_bytes_sent
    ttfbs, rates = [], []
    for result in results:
        assert result.ok and result.status == 200 and result.redirects == 0
        assert result.body_bytes == page_bytes
        assert page_bytes < result.bytes_used < page_bytes + 1000
        assert result.ttfb_ms is not None and result.fetch_ms is not None
        ttfbs.append(result.ttfb_ms)
        rates.append(result.body_bytes * 8 / ((result.fetch_ms - result.ttfb_ms) / 1000) / 1e6)
    assert sent == 3 * page_bytes
    assert min(ttfbs) >= profile.rtt_ms - 1
    assert statistics.median(ttfbs) == pytest.approx(profile.rtt_ms, abs=LATENCY_TOLERANCE_MS)
    assert statistics.median(rates) == pytest.approx(profile.down_mbps, rel=RATE_TOLERANCE)


def test_redirects_are_followed_and_the_final_page_is_timed(portal: HttpPortal) -> None:
    portal.redirect("/", "/accueil", 301)
    portal.redirect("/accueil", portal.url + "/fr/accueil")
    result = http_probe.fetch(portal.url + "/", timeout_s=5.0)
    assert result.ok and result.status == 200
    assert result.redirects == 2
    assert result.final_url == portal.url + "/fr/accueil"
    assert [e.detail["path"] for e in portal.history.events if e.name == "request"] == [
        "/",
        "/accueil",
        "/fr/accueil",
    ]
    # Three requests, each one round trip late: the first byte of the final page comes after all three.
    assert result.ttfb_ms is not None and result.ttfb_ms >= 3 * GOOD_STOP.rtt_ms - 1


def test_no_more_than_three_redirects_are_followed(portal: HttpPortal) -> None:
    portal.redirect("/loop", "/loop")
    result = http_probe.fetch(portal.url + "/loop", timeout_s=5.0)
    assert not result.ok
    assert result.status == 302 and result.redirects == 3
    assert result.reason is not None and "more than 3 redirects" in result.reason
    assert portal.history.count("request") == 4


def test_an_error_status_is_a_failed_result_with_the_status(portal: HttpPortal) -> None:
    portal.fail("/", 503)
    result = http_probe.fetch(portal.url + "/", timeout_s=5.0)
    assert not result.ok and result.status == 503
    assert result.reason == f"{portal.url}/: HTTP 503"
    assert result.body_bytes == 200


def test_a_stopped_portal_fails_with_a_reason(portal: HttpPortal) -> None:
    url = portal.url + "/"
    portal.stop()
    result = http_probe.fetch(url, timeout_s=2.0)
    assert not result.ok and result.status is None
    assert result.reason == f"{url}: connection refused"


def test_an_unanswered_request_fails_at_the_timeout() -> None:
    with HttpPortal(Link(LinkProfile(12.0, 3.0, 45.0, loss=1.0))) as service:
        url = service.url + "/"
        result = http_probe.fetch(url, timeout_s=0.5)
        assert service.history.count("dropped") == 1
    assert not result.ok
    assert result.reason == f"{url}: no complete answer within 0.5 s"
    assert result.duration_s < 2.0


def test_a_body_over_the_cap_is_cut_and_flagged(portal: HttpPortal) -> None:
    portal.set_page("/big", 50_000)
    result = http_probe.fetch(portal.url + "/big", timeout_s=5.0, max_body_bytes=10_000)
    assert result.ok and result.truncated
    assert result.body_bytes == 10_000


@pytest.mark.parametrize("url", ["ftp://example.org/", "not a url", "http:///nohost"])
def test_urls_the_probe_cannot_fetch_are_failed_results(url: str) -> None:
    result = http_probe.fetch(url, timeout_s=1.0)
    assert not result.ok and result.reason

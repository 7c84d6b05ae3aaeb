"""Connectivity grades: the online-procedure floor of one probe run, and a stop's grade with its reason."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.core.grading import (
    ANY_USE,
    COMFORTABLE,
    GRADE_MEANING,
    GRADES,
    ONLINE_PROCEDURES,
    LinkFigures,
    SignalMedians,
    StopEvidence,
    grade_stop,
    main_signal,
    run_figures,
    run_usable,
)
from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult
from drivers.modem import quality

CAF = "https://www.caf.fr/"
GOOD_SIGNAL = SignalMedians("20801", "LTE", 100, rsrp_dbm=-85.0, rsrq_db=-9.0, sinr_db=15.0)
POOR_SIGNAL = SignalMedians("20801", "LTE", 100, rsrp_dbm=-112.0, rsrq_db=-12.0, sinr_db=5.0)
FAST = LinkFigures(rtt_ms=40.0, loss=0.0, down_bps=20e6, up_bps=5e6)


def run(
    *,
    down_mbps: float | None = 12.0,
    up_mbps: float | None = 3.0,
    rtts: tuple[float | None, ...] = (40.0, 45.0, 50.0),
    throughput: bool = True,
    http: tuple[HttpResult, ...] = (),
    dns: tuple[DnsResult, ...] = (),
) -> SuiteResult:
    answered = sum(rtt is not None for rtt in rtts)
    latency = LatencyResult(
        target="ants.gouv.fr:443",
        method="tcp",
        tries=len(rtts),
        answered=answered,
        loss=1 - answered / len(rtts),
        rtt_ms=rtts,
    )
    speed = None
    if throughput:
        speed = ThroughputResult(
            server_url="http://127.0.0.1/speedtest/",
            down_bps=None if down_mbps is None else down_mbps * 1e6,
            up_bps=None if up_mbps is None else up_mbps * 1e6,
            ok=down_mbps is not None,
            reason=None if down_mbps is not None else "timed out after 30 s",
        )
    return SuiteResult(
        started_mono_s=0.0, finished_mono_s=30.0, latency=(latency,), http=http, dns=dns, throughput=speed
    )


def evidence(
    link: LinkFigures, runs: int = 4, usable: int = 4, signal: SignalMedians = GOOD_SIGNAL
) -> StopEvidence:
    return StopEvidence(
        signal=(signal,),
        modem_readings=100,
        registered_readings=100,
        runs=runs,
        usable_runs=usable,
        link=link,
    )


# -- one run ---------------------------------------------------------------------------------------


def test_run_figures_take_the_median_of_every_answered_try_and_loss_over_all_tries() -> None:
    suite = run(rtts=(30.0, None, 90.0, 60.0))
    suite = SuiteResult(
        started_mono_s=0.0,
        finished_mono_s=1.0,
        latency=(
            *suite.latency,
            LatencyResult(
                target="caf.fr:443", method="tcp", tries=4, answered=4, rtt_ms=(10.0, 20.0, 200.0, 300.0)
            ),
        ),
    )
    figures = run_figures(suite)
    assert figures.rtt_ms == 60.0  # median of 10, 20, 30, 60, 90, 200, 300
    assert figures.loss == 1 / 8
    assert figures.down_bps is None


def test_a_run_meeting_every_floor_is_usable() -> None:
    usable, reason = run_usable(run())
    assert usable
    assert reason == (
        "download 12 Mbit/s, upload 3 Mbit/s, latency 45 ms, loss 0 %: meets the floors for online procedures"
    )


def test_a_slow_download_makes_a_run_unusable_and_says_by_how_much() -> None:
    usable, reason = run_usable(run(down_mbps=0.8))
    assert not usable
    assert reason == "download 0.8 Mbit/s under the 2 Mbit/s floor for online procedures"


def test_every_missed_floor_is_named() -> None:
    usable, reason = run_usable(run(up_mbps=0.3, rtts=(180.0, 200.0, None, 190.0)))
    assert not usable
    assert "upload 0.3 Mbit/s under the 0.5 Mbit/s floor" in reason
    assert "latency 190 ms over the 150 ms limit" in reason
    assert "loss 25 % over the 5 % limit" in reason


def test_the_floors_are_inclusive() -> None:
    at_floor = run(down_mbps=2.0, up_mbps=0.5, rtts=(150.0,) * 20)
    assert run_usable(at_floor)[0]


def test_a_portal_fetch_without_answer_makes_the_run_unusable() -> None:
    failed = HttpResult(url=CAF, ok=False, reason="no answer within 20 s")
    usable, reason = run_usable(run(http=(failed,)))
    assert not usable
    assert reason == f"fetch of {CAF} failed: no answer within 20 s"


def test_a_portal_answering_a_server_error_is_the_portals_fault_not_the_links() -> None:
    down = HttpResult(url=CAF, ok=False, status=503, reason="HTTP 503", ttfb_ms=80.0, fetch_ms=90.0)
    assert run_usable(run(http=(down,)))[0]


def test_dns_without_answer_is_unusable_but_nxdomain_is_a_configuration_mistake() -> None:
    lost = DnsResult(name="impots.gouv.fr", server="system", ok=False, reason="timed out")
    assert run_usable(run(dns=(lost,))) == (False, "DNS impots.gouv.fr got no answer: timed out")
    typo = DnsResult(name="impots.gouv.frr", server="10.0.0.53:53", ok=False, resolve_ms=30.0, rcode=3)
    assert run_usable(run(dns=(typo,)))[0]


def test_a_run_without_throughput_is_judged_on_the_rest_and_says_so() -> None:
    usable, reason = run_usable(run(throughput=False))
    assert usable
    assert reason.endswith("(throughput not measured)")


def test_a_failed_speed_test_makes_the_run_unusable() -> None:
    usable, reason = run_usable(run(down_mbps=None))
    assert not usable
    assert reason == "speed test failed: timed out after 30 s"


def test_an_empty_run_is_not_usable() -> None:
    usable, reason = run_usable(SuiteResult(started_mono_s=0.0, finished_mono_s=0.0))
    assert not usable
    assert reason.startswith("nothing measured")


# -- a stop ----------------------------------------------------------------------------------------


def test_floors_are_ordered_from_any_use_to_comfortable() -> None:
    for low, high in ((ANY_USE, ONLINE_PROCEDURES), (ONLINE_PROCEDURES, COMFORTABLE)):
        assert low.down_bps < high.down_bps and low.up_bps < high.up_bps
        assert low.rtt_ms > high.rtt_ms and low.loss > high.loss


def test_every_grade_has_a_meaning_for_planners() -> None:
    assert set(GRADE_MEANING) == set(GRADES)


def test_grade_good_when_medians_clear_the_comfortable_floors() -> None:
    graded = grade_stop(evidence(FAST))
    assert graded.grade == "good"
    assert graded.reason == (
        "medians meet the floors for comfortable use "
        "(download 20 Mbit/s, upload 5 Mbit/s, latency 40 ms, loss 0 %)"
    )


def test_grade_usable_names_what_keeps_it_from_good() -> None:
    graded = grade_stop(evidence(LinkFigures(rtt_ms=60.0, loss=0.0, down_bps=4e6, up_bps=1e6)))
    assert graded.grade == "usable"
    assert graded.reason.startswith("medians meet the floors for online procedures (download 4 Mbit/s")
    assert "median download 4 Mbit/s under the 8 Mbit/s floor for comfortable use" in graded.reason
    assert "median upload 1 Mbit/s under the 2 Mbit/s floor for comfortable use" in graded.reason


def test_grade_poor_when_a_median_misses_the_online_procedure_floor() -> None:
    graded = grade_stop(evidence(LinkFigures(rtt_ms=60.0, loss=0.0, down_bps=0.8e6, up_bps=1e6), usable=1))
    assert graded.grade == "poor"
    assert graded.reason.startswith(
        "median download 0.8 Mbit/s under the 2 Mbit/s floor for online procedures"
    )


def test_grade_poor_when_most_runs_failed_although_the_medians_pass() -> None:
    graded = grade_stop(evidence(FAST, runs=4, usable=1))
    assert graded == grade_stop(evidence(FAST, runs=4, usable=1))
    assert graded.grade == "poor"
    assert graded.reason == "only 1 of 4 probe runs met the floors for online procedures"


def test_grade_unusable_under_the_floor_of_any_online_use() -> None:
    graded = grade_stop(evidence(LinkFigures(rtt_ms=1400.0, loss=0.4, down_bps=0.3e6, up_bps=None), usable=0))
    assert graded.grade == "unusable"
    assert graded.reason == (
        "median download 0.3 Mbit/s under the 0.5 Mbit/s floor for any online use; "
        "median latency 1400 ms over the 1000 ms limit for any online use; "
        "median loss 40 % over the 25 % limit for any online use"
    )


def test_a_poor_signal_keeps_a_fast_stop_at_usable() -> None:
    graded = grade_stop(evidence(FAST, signal=POOR_SIGNAL))
    assert graded.grade == "usable"
    assert graded.reason.endswith(
        "median RSRP -112 dBm (under -100 dBm) on 20801 LTE is poor: the link may drop"
    )


def test_good_needs_the_throughput_measured() -> None:
    graded = grade_stop(evidence(LinkFigures(rtt_ms=40.0, loss=0.0)))
    assert graded.grade == "usable"
    assert graded.reason.endswith("throughput not measured")


def test_without_probes_the_grade_comes_from_the_signal_buckets_of_the_modem_quality_module() -> None:
    cases = [
        (
            GOOD_SIGNAL,
            "good",
            "median RSRP -85 dBm (-90 to -80 dBm), median SINR 15 dB (13 to 20 dB) on 20801 LTE is good",
        ),
        (
            SignalMedians("20810", "LTE", 5, -95.0),
            "usable",
            "median RSRP -95 dBm (-100 to -90 dBm) on 20810 LTE is fair",
        ),
        (
            POOR_SIGNAL,
            "poor",
            f"median RSRP -112 dBm (under {quality.RSRP_DBM[-1]:g} dBm) on 20801 LTE is poor",
        ),
    ]
    for signal, grade, why in cases:
        graded = grade_stop(StopEvidence(signal=(signal,), modem_readings=5, registered_readings=5))
        assert graded.grade == grade
        assert graded.reason == f"no probe ran; from the signal alone: {why}"


def test_without_probes_and_never_registered_the_stop_is_unusable() -> None:
    graded = grade_stop(StopEvidence(modem_readings=30, registered_readings=0))
    assert graded.grade == "unusable"
    assert graded.reason == "no probe ran; the modem never registered to a network (30 readings)"


def test_without_probes_or_modem_readings_the_grade_is_unknown() -> None:
    graded = grade_stop(StopEvidence())
    assert (graded.grade, graded.reason) == ("unknown", "no probe ran and the modem gave no reading")


def test_runs_that_measured_nothing_fall_back_to_the_signal() -> None:
    graded = grade_stop(StopEvidence(signal=(GOOD_SIGNAL,), modem_readings=9, registered_readings=9, runs=2))
    assert graded.grade == "good"
    assert graded.reason.startswith(
        "no latency or throughput measured in 2 probe runs; from the signal alone"
    )


def test_the_operator_the_modem_was_on_most_grades_the_stop() -> None:
    brief_visit = SignalMedians("20815", "LTE", 3, rsrp_dbm=-70.0)
    no_lte = SignalMedians("20801", "UMTS", 500)
    assert main_signal([brief_visit, POOR_SIGNAL, no_lte]) == POOR_SIGNAL
    assert main_signal([no_lte]) is None


_figure = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False))


@given(
    rtt=_figure,
    loss=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    down=_figure,
    up=_figure,
    runs=st.integers(0, 50),
    usable=st.integers(0, 50),
    rsrp=st.one_of(st.none(), st.floats(-150, -40)),
    sinr=st.one_of(st.none(), st.floats(-30, 40)),
)
def test_any_evidence_gets_a_grade_and_a_reason(
    rtt: float | None,
    loss: float | None,
    down: float | None,
    up: float | None,
    runs: int,
    usable: int,
    rsrp: float | None,
    sinr: float | None,
) -> None:
    signal = SignalMedians("20801", "LTE", 10, rsrp_dbm=rsrp, sinr_db=sinr)
    graded = grade_stop(
        StopEvidence(
            signal=(signal,),
            modem_readings=10,
            registered_readings=10,
            runs=runs,
            usable_runs=min(usable, runs),
            link=LinkFigures(rtt, loss, down, up),
        )
    )
    assert graded.grade in GRADES
    assert graded.reason

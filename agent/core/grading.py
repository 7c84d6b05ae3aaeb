"""The one place where connectivity figures become a grade a planner reads, with the reason and the sources.

Two questions are answered here, by the agent at each stop and later by the collector's maps:

- :func:`run_usable`: could the agents do their online procedures during this one probe run?
- :func:`grade_stop`: what is this stop's connectivity, from the medians of its probe runs and
  signal readings? One word from :data:`GRADES` plus a reason naming the deciding figures.

Signal buckets are not restated here: they come from :mod:`drivers.modem.quality` (Teltonika's
table, docs/protocols.md 1.6). Pure: plain data in, plain data out.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Literal

from agent.probes.results import SuiteResult
from drivers.modem import quality
from drivers.snapshots import Quality

Grade = Literal["good", "usable", "poor", "unusable", "unknown"]

#: Best first: the collector sorts and colours map markers by this order.
GRADES: tuple[Grade, ...] = ("good", "usable", "poor", "unusable", "unknown")

#: What each grade means to a planner (shown in map legends).
GRADE_MEANING: dict[Grade, str] = {
    "good": "online procedures, document uploads and a video appointment work without waiting",
    "usable": "online procedures work; large uploads or a video call may be slow",
    "poor": "pages load slowly and uploads often fail: expect procedures to be interrupted",
    "unusable": "pages and uploads time out: online procedures cannot be done here",
    "unknown": "nothing was measured at this stop",
}


@dataclasses.dataclass(frozen=True)
class Floors:
    """Minimum data rates and maximum latency/loss for one level of use; ``name`` ends each reason."""

    name: str
    down_bps: float
    up_bps: float
    rtt_ms: float
    loss: float  # share of unanswered tries, 0.0 .. 1.0


# "Usable for online procedures" (CAF, impots.gouv, ANTS, France Travail, ameli), one probe run:
# - down 2 Mbit/s: the median mobile web page weighs about 2 MB (HTTP Archive, Web Almanac 2022,
#   "Page Weight"); at 2 Mbit/s a portal page first loads in ~8 s, the most an agent with a
#   member of the public at the desk will wait. Later pages come partly from the cache.
# - up 0.5 Mbit/s: procedures upload scanned justificatifs (ID, proof of address, payslips), a
#   few MB each as PDF/JPEG from a 300 dpi A4 scan; 3 MB takes ~50 s at 0.5 Mbit/s. Slower, and a
#   file of several documents outlasts the portal's upload form (our estimate, not a portal figure).
# - round trip 150 ms: a FranceConnect login chains redirects across domains, each new HTTPS
#   connection costing 2-3 round trips; ~20 sequential round trips stay near 3 s. An uncongested
#   LTE cell gives 30-60 ms; over 150 ms means standing queues in the cell or the modem.
# - loss 5 %: TCP throughput is bounded by MSS/RTT * 1.22/sqrt(p) (Mathis et al., "The Macroscopic
#   Behavior of the TCP Congestion Avoidance Algorithm", 1997): at 5 % and 100 ms a connection
#   holds ~0.6 Mbit/s, under the download floor, and lost SYNs stall page loads by 1 s or more
#   (initial retransmission timeout, RFC 6298).
# - portal fetches succeed (see run_figures): a fetch that got no answer means the procedure
#   could not have been done from here at that moment.
ONLINE_PROCEDURES = Floors("online procedures", down_bps=2e6, up_bps=0.5e6, rtt_ms=150.0, loss=0.05)

# "Comfortable": what makes a stop good rather than just usable.
# - down 8 Mbit/s: "bon haut débit", the French broadband plan's target (Plan France Très Haut
#   Débit, Arcep), with room for several PCs and the printer's driver downloads.
# - up 2 Mbit/s: a 720p video call needs ~1.2 Mbit/s each way (Zoom's published requirements for
#   1:1 HD video); France Services hold visio appointments with CAF or France Travail advisors.
# - 80 ms and 1 %: no standing queue, and loss a video call hides.
COMFORTABLE = Floors("comfortable use", down_bps=8e6, up_bps=2e6, rtt_ms=80.0, loss=0.01)

# Under these nothing works: a 2 MB page takes over 30 s (0.5 Mbit/s), a 2 MB scan nearly 3 minutes
# (0.1 Mbit/s), every HTTPS request waits 4-6 round trips of over a second (1000 ms), or one
# connection try in four is lost and retried after 1 s, 3 s, ... (25 %).
ANY_USE = Floors("any online use", down_bps=0.5e6, up_bps=0.1e6, rtt_ms=1000.0, loss=0.25)

#: Share of probe runs that must meet ONLINE_PROCEDURES: a stop is only as usable as most of its
#: runs, whatever the medians say (each run can fail on a different figure); "good" needs nearly all.
USABLE_SHARE = 0.5
GOOD_SHARE = 0.9

#: Signal qualities (drivers.modem.quality) and the grade each gives when no probe ran. A strong,
#: clean LTE signal nearly always carries the floors above; a cell can still be congested, so the
#: reason says the grade comes from the signal alone.
_SIGNAL_GRADE: dict[Quality, Grade] = {
    "excellent": "good",
    "good": "good",
    "fair": "usable",
    "poor": "poor",
    "none": "unknown",
}


@dataclasses.dataclass(frozen=True)
class LinkFigures:
    """What the link gave; None means "not measured". Per run, or medians over runs."""

    rtt_ms: float | None = None
    loss: float | None = None
    down_bps: float | None = None
    up_bps: float | None = None

    @property
    def measured(self) -> bool:
        return any(value is not None for value in (self.rtt_ms, self.loss, self.down_bps, self.up_bps))


@dataclasses.dataclass(frozen=True)
class RunFigures(LinkFigures):
    """One run's figures plus what failed for reasons of the link (each a short sentence)."""

    failures: tuple[str, ...] = ()


def run_figures(suite: SuiteResult) -> RunFigures:
    """The figures of one probe run: round trip is the median over every answered try of every target;
    loss is unanswered tries over all tries."""
    rtts = [rtt for result in suite.latency for rtt in result.rtt_ms if rtt is not None]
    tries = sum(result.tries for result in suite.latency)
    answered = sum(result.answered for result in suite.latency)
    throughput = suite.throughput
    return RunFigures(
        rtt_ms=statistics.median(rtts) if rtts else None,
        loss=(tries - answered) / tries if tries > 0 else None,
        down_bps=_finite(throughput.down_bps) if throughput is not None else None,
        up_bps=_finite(throughput.up_bps) if throughput is not None else None,
        failures=tuple(_link_failures(suite)),
    )


def _finite(value: float | None) -> float | None:
    """None for a figure no comparison can judge (NaN, infinity from a zero-length timing)."""
    return value if value is not None and math.isfinite(value) else None


def _link_failures(suite: SuiteResult) -> Iterable[str]:
    """Probe failures that say the link could not carry a procedure.

    A portal answering 5xx was reached over the link: its outage is not the stop's fault, so it
    does not count. A DNS name answered NXDOMAIN is a configuration mistake, not the link.
    """
    for http in suite.http:
        if not http.ok and not (http.status is not None and http.status >= 500):
            yield f"fetch of {http.url} failed: {http.reason or 'no reason given'}"
    for dns in suite.dns:
        if not dns.ok and dns.resolve_ms is None:
            yield f"DNS {dns.name} got no answer: {dns.reason or 'no reason given'}"
    throughput = suite.throughput
    if throughput is not None and not throughput.ok and throughput.down_bps is None:
        yield f"speed test failed: {throughput.reason or 'no reason given'}"


def shortfalls(figures: LinkFigures, floors: Floors, prefix: str = "") -> list[str]:
    """One phrase per measured figure that misses ``floors``; ``prefix`` is e.g. "median "."""
    found: list[str] = []
    tail = f"for {floors.name}"
    if figures.down_bps is not None and figures.down_bps < floors.down_bps:
        found.append(
            f"{prefix}download {_mbit(figures.down_bps)} under the {_mbit(floors.down_bps)} floor {tail}"
        )
    if figures.up_bps is not None and figures.up_bps < floors.up_bps:
        found.append(f"{prefix}upload {_mbit(figures.up_bps)} under the {_mbit(floors.up_bps)} floor {tail}")
    if figures.rtt_ms is not None and figures.rtt_ms > floors.rtt_ms:
        found.append(
            f"{prefix}latency {_num(figures.rtt_ms)} ms over the {_num(floors.rtt_ms)} ms limit {tail}"
        )
    if figures.loss is not None and figures.loss > floors.loss:
        found.append(f"{prefix}loss {_pct(figures.loss)} over the {_pct(floors.loss)} limit {tail}")
    return found


def run_usable(suite: SuiteResult) -> tuple[bool, str]:
    """Did this run meet :data:`ONLINE_PROCEDURES`, and why (or why not)?

    Judged on what was measured: a run without throughput (data budget) can still pass on
    latency, loss and portal fetches, and its reason says throughput was not measured.
    """
    figures = run_figures(suite)
    if not figures.measured and not suite.http:
        return False, "nothing measured: the run had no latency, portal fetch or throughput result"
    problems = [*shortfalls(figures, ONLINE_PROCEDURES), *figures.failures]
    if problems:
        return False, "; ".join(problems)
    seen = [describe(figures)] if figures.measured else []
    if suite.http:
        seen.append(f"{len(suite.http)} portal fetches answered")
    reason = f"{', '.join(seen)}: meets the floors for online procedures"
    if figures.down_bps is None:
        reason += " (throughput not measured)"
    return True, reason


# -- a stop's grade ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SignalMedians:
    """Median signal of one operator and radio technology at a stop."""

    operator_code: str | None
    rat: str | None
    samples: int
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None

    @property
    def quality(self) -> Quality:
        return quality.grade(self.rsrp_dbm, self.rsrq_db, self.sinr_db)

    @property
    def label(self) -> str:
        return f"{self.operator_code or 'unknown operator'} {self.rat or ''}".strip()


@dataclasses.dataclass(frozen=True)
class StopEvidence:
    """Everything a stop's grade is decided from (medians over the stop's readings and runs)."""

    signal: tuple[SignalMedians, ...] = ()
    modem_readings: int = 0  # successful modem reads
    registered_readings: int = 0  # ... of which registered to a network (home or roaming)
    runs: int = 0
    usable_runs: int = 0
    link: LinkFigures = LinkFigures()


@dataclasses.dataclass(frozen=True)
class StopGrade:
    grade: Grade
    reason: str


def main_signal(groups: Sequence[SignalMedians]) -> SignalMedians | None:
    """The signal that grades a stop: the operator and RAT with an RSRP the modem was on most
    (the bus's own SIM; a roaming or fallback cell seen briefly does not decide)."""
    with_rsrp = [group for group in groups if group.rsrp_dbm is not None]
    if not with_rsrp:
        return None
    return max(with_rsrp, key=lambda group: (group.samples, group.label))


def grade_stop(evidence: StopEvidence) -> StopGrade:
    """Grade a stop from its probe medians (what the agents got), tempered by its signal."""
    link = evidence.link
    if evidence.runs == 0:
        return _signal_only(evidence, "no probe ran")
    if not link.measured:
        return _signal_only(evidence, f"no latency or throughput measured in {_runs(evidence.runs)}")
    broken = shortfalls(link, ANY_USE, "median ")
    if broken:
        return StopGrade("unusable", "; ".join(broken))
    missed = shortfalls(link, ONLINE_PROCEDURES, "median ")
    if evidence.usable_runs < USABLE_SHARE * evidence.runs:
        missed.append(_share(evidence))
    if missed:
        return StopGrade("poor", "; ".join(missed))
    return _usable_or_good(evidence)


def _usable_or_good(evidence: StopEvidence) -> StopGrade:
    link = evidence.link
    short = shortfalls(link, COMFORTABLE, "median ")
    if link.down_bps is None or link.up_bps is None:
        short.append("throughput not measured")
    if evidence.usable_runs < GOOD_SHARE * evidence.runs:
        short.append(_share(evidence))
    # What the probes saw held that day; a poor signal says it may not hold on the next visit.
    signal = main_signal(evidence.signal)
    if signal is not None and signal.quality == "poor":
        short.append(f"{_signal_reason(signal)}: the link may drop")
    if short:
        head = f"medians meet the floors for online procedures ({describe(link)})"
        return StopGrade("usable", "; ".join([head, *short]))
    return StopGrade("good", f"medians meet the floors for comfortable use ({describe(link)})")


def _signal_only(evidence: StopEvidence, why: str) -> StopGrade:
    if evidence.modem_readings == 0:
        return StopGrade("unknown", f"{why} and the modem gave no reading")
    if evidence.registered_readings == 0:
        return StopGrade(
            "unusable", f"{why}; the modem never registered to a network ({evidence.modem_readings} readings)"
        )
    signal = main_signal(evidence.signal)
    if signal is None:
        return StopGrade("unknown", f"{why} and the modem gave no LTE signal figures")
    return StopGrade(_SIGNAL_GRADE[signal.quality], f"{why}; from the signal alone: {_signal_reason(signal)}")


def _signal_reason(signal: SignalMedians) -> str:
    """ "median RSRP -112 dBm on 20801 LTE is poor (under -100 dBm)": the figure(s) that set the quality."""
    word = signal.quality
    figures = (
        ("RSRP", signal.rsrp_dbm, "dBm", quality.RSRP_DBM),
        ("RSRQ", signal.rsrq_db, "dB", quality.RSRQ_DB),
        ("SINR", signal.sinr_db, "dB", quality.SINR_DB),
    )
    deciding = [
        f"median {name} {_num(value)} {unit} ({_bucket_text(value, limits, unit)})"
        for name, value, unit, limits in figures
        if value is not None and _bucket(value, limits) == _QUALITY_INDEX[word]
    ]
    return f"{', '.join(deciding)} on {signal.label} is {word}"


# quality.grade's buckets by index: 0 excellent .. 3 poor, each figure's limits as (excellent, good, fair).
_QUALITY_INDEX: dict[Quality, int] = {"excellent": 0, "good": 1, "fair": 2, "poor": 3, "none": -1}


def _bucket(value: float, limits: tuple[float, float, float]) -> int:
    return next((index for index, limit in enumerate(limits) if value >= limit), len(limits))


def _bucket_text(value: float, limits: tuple[float, float, float], unit: str) -> str:
    index = _bucket(value, limits)
    if index == 0:
        return f"at least {_num(limits[0])} {unit}"
    if index == len(limits):
        return f"under {_num(limits[-1])} {unit}"
    return f"{_num(limits[index])} to {_num(limits[index - 1])} {unit}"


# -- wording -------------------------------------------------------------------------------------------


def describe(figures: LinkFigures) -> str:
    """ "download 12 Mbit/s, upload 3 Mbit/s, latency 45 ms, loss 0 %" for the figures measured."""
    parts = []
    if figures.down_bps is not None:
        parts.append(f"download {_mbit(figures.down_bps)}")
    if figures.up_bps is not None:
        parts.append(f"upload {_mbit(figures.up_bps)}")
    if figures.rtt_ms is not None:
        parts.append(f"latency {_num(figures.rtt_ms)} ms")
    if figures.loss is not None:
        parts.append(f"loss {_pct(figures.loss)}")
    return ", ".join(parts) or "nothing measured"


def _share(evidence: StopEvidence) -> str:
    return f"only {evidence.usable_runs} of {_runs(evidence.runs)} met the floors for online procedures"


def _runs(count: int) -> str:
    return f"{count} probe run" if count == 1 else f"{count} probe runs"


def _num(value: float) -> str:
    """3 significant figures, no exponent, no trailing zeros: 0.8, 12.3, 125, -112."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _mbit(bps: float) -> str:
    return f"{_num(bps / 1e6)} Mbit/s"


def _pct(share: float) -> str:
    return f"{_num(share * 100)} %"

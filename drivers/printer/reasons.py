"""Plain words for IPP ``printer-state-reasons`` keywords, and which of them need a technician.

Pure data and functions (no I/O), shared by the driver, the stop-visit summary and agentctl.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # agentctl imports these words; the snapshot module would pull in the driver base
    from drivers.snapshots import PrinterSnapshot

REASON_WORDS = {
    "media-empty": "out of paper",
    "media-needed": "out of paper",
    "media-low": "paper low",
    "media-jam": "paper jam",
    "toner-low": "toner low",
    "toner-empty": "out of toner",
    "marker-supply-low": "ink or toner low",
    "marker-supply-empty": "out of ink or toner",
    "marker-waste-almost-full": "waste toner almost full",
    "marker-waste-full": "waste toner full",
    "developer-low": "developer low",
    "developer-empty": "out of developer",
    "opc-near-eol": "drum near end of life",
    "opc-life-over": "drum worn out",
    "fuser-over-temp": "fuser too hot",
    "fuser-under-temp": "fuser too cold",
    "cover-open": "cover open",
    "door-open": "door open",
    "interlock-open": "interlock open",
    "input-tray-missing": "paper tray missing",
    "output-tray-missing": "output tray missing",
    "output-area-almost-full": "output tray almost full",
    "output-area-full": "output tray full",
    "offline": "offline",
    "shutdown": "switched off",
    "paused": "paused",
    "moving-to-paused": "pausing",
    "stopping": "stopping",
    "stopped-partly": "partly stopped",
    "spool-area-full": "spool full",
    "connecting-to-device": "connecting to the printer",
    "timed-out": "not answering",
    "interpreter-resource-unavailable": "printer out of memory or fonts",
    "other": "other problem",
}
_SEVERITIES = ("report", "warning", "error")
# CUPS says offline-report when its backend cannot reach the printer: a "report" by suffix,
# but for a bus full of people waiting for a print it is the worst problem there is.
ALWAYS_A_PROBLEM = frozenset({"offline", "shutdown", "timed-out"})


def split_reason(keyword: str) -> tuple[str, str]:
    """``("media-empty", "error")`` for media-empty-error; no suffix counts as an error (RFC 8011)."""
    base, _, suffix = keyword.rpartition("-")
    if base and suffix in _SEVERITIES:
        return base, suffix
    return keyword, "error"


def describe_reasons(reasons: Iterable[str]) -> list[str]:
    """Plain words for printer-state-reasons keywords, in order, each once; "none" is dropped."""
    words: list[str] = []
    for keyword in reasons:
        base, _ = split_reason(keyword)
        if base == "none":
            continue
        word = REASON_WORDS.get(base, base.replace("-", " "))
        if word not in words:
            words.append(word)
    return words


def problem_keyword(reason: str) -> str | None:
    """The bare keyword of a reason a technician must act on, or None (a mere report, "none", garbage)."""
    keyword = reason.strip()
    if not keyword or len(keyword) > 64 or keyword == "none":
        return None  # an overlong keyword is garbage from the printer, not a problem to list
    base, severity = split_reason(keyword)
    if severity == "report" and base not in ALWAYS_A_PROBLEM:
        return None
    return base


def problems(snapshot: PrinterSnapshot) -> tuple[str, ...]:
    """What a technician must act on: the read failure, or warning/error reasons in plain words."""
    if not snapshot.ok:
        return (snapshot.reason or "printer not read",)
    found = describe_reasons(r for r in snapshot.reasons if problem_keyword(r))
    if snapshot.accepting_jobs is False:
        found.append("not accepting jobs")
    return tuple(found)

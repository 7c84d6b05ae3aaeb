"""The one place where LTE signal figures become a quality word.

Thresholds: Teltonika wiki, "Mobile Signal Strength Recommendations" (RSRP and RSRQ verified;
the SINR row as copied by third-party code), restated in docs/protocols.md 1.6:

    quality     RSRP dBm     RSRQ dB     SINR dB
    excellent   >= -80       >= -10      >= 20
    good        -80..-90     -10..-15    13..20
    fair        -90..-100    -15..-20    0..13
    poor        < -100       < -20       < 0

The grade is the worst of the figures the modem gave: a strong RSRP with a SINR under 0 dB is
a cell you hear well but cannot use. "none" means no LTE measurement at all (not registered).
"""

from __future__ import annotations

from drivers.snapshots import Quality

# (minimum for excellent, good, fair); anything lower is poor.
RSRP_DBM = (-80.0, -90.0, -100.0)
RSRQ_DB = (-10.0, -15.0, -20.0)
SINR_DB = (20.0, 13.0, 0.0)

_ORDER: tuple[Quality, ...] = ("excellent", "good", "fair", "poor")


def _bucket(value: float, limits: tuple[float, float, float]) -> int:
    for index, limit in enumerate(limits):
        if value >= limit:
            return index
    return len(limits)


def grade(rsrp_dbm: float | None, rsrq_db: float | None = None, sinr_db: float | None = None) -> Quality:
    """Quality word for one measurement; RSRP is required, RSRQ and SINR refine it."""
    if rsrp_dbm is None:
        return "none"
    worst = _bucket(rsrp_dbm, RSRP_DBM)
    if rsrq_db is not None:
        worst = max(worst, _bucket(rsrq_db, RSRQ_DB))
    if sinr_db is not None:
        worst = max(worst, _bucket(sinr_db, SINR_DB))
    return _ORDER[worst]

"""A small valid scenario as text, for the parser and itinerary tests to start from and break.

The depot, stop A 2 km east of it and stop B 2 km north of A; 36 km/h (10 m/s), so each of the
three legs (2 km, 2 km, 2.8 km back) takes its length in decimetres plus a 60 s red light.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from simulators.scenario import Scenario, parse_scenario

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))).timestamp()
SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"

BASE = """\
[vehicle]
id = "bus-test-01"
start = "2026-03-02T08:00:00+01:00"
depot = { lat = 44.0395, lon = 1.1069 }
speed_kmh = 36

[[stops]]
name = "Mairie A"
lat = 44.0395
lon = 1.1319
arrive = "08:10"
depart = "09:00"
signal = { operator = "20801", rat = "LTE", rsrp = -90, rsrq = -9, sinr = 12 }
link = { down_mbps = 20.0, up_mbps = 5.0, rtt_ms = 40 }

[[stops]]
name = "Poste B"
lat = 44.0575
lon = 1.1319
arrive = "09:10"
depart = "10:00"
shore_power = false
signal = { operator = "20815", rat = "LTE", rsrp = -115, rsrq = -17, sinr = -3 }
link = { down_mbps = 1.0, up_mbps = 0.25, rtt_ms = 150, loss = 0.05 }
printer = [ { at = "09:30", state = "stopped", reasons = ["media-empty"] },
            { at = "09:40", state = "idle", reasons = [] } ]

[[outages]]
from = "09:15"
to = "09:25"
"""


def at(clock: str) -> float:
    """Epoch seconds of "HH:MM[:SS]" on the base scenario's day."""
    parts = [int(p) for p in clock.split(":")] + [0]
    return START + (parts[0] - 8) * 3600 + parts[1] * 60 + parts[2]


def base(replace: dict[str, str] | None = None, source: str = "day.toml") -> Scenario:
    """The base scenario, with each ``old: new`` text replacement applied first."""
    text = BASE
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_scenario(text, source)

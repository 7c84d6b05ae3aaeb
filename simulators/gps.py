"""A GPS receiver on a pty: NMEA epochs (GGA, GSA, GSV, RMC, VTG) with verbs to move, park and lose the fix.

The driver side (or the real gpsd) opens ``port.path`` as it would open ``/dev/ttyACM0``. Where the
bus is comes from the injected ``clock`` (so a route is driven at the right pace on a fast
simulated clock); the time written in the sentences comes from ``utc_now``. The sentences are
built here with their own checksum code, independently of ``drivers.gps.nmea``, so that tests of
one against the other can fail.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from functools import reduce

from simulators.base import Clock, History, ServingLoop, finite
from simulators.pty import PtyPort

EARTH_RADIUS_M = 6_371_000.0
KNOT_MPS = 0.514444
GEOID_SEPARATION_M = 49.0  # about right for France; gpsd reports it as geoidSep
# Fixed sky: PRNs in view with (elevation, azimuth), the first ``used`` of them take part in the fix.
SKY = tuple(
    (prn, 15 + (prn * 37) % 70, (prn * 83) % 360)
    for prn in (5, 13, 15, 18, 20, 23, 24, 26, 29, 2, 10, 12, 16, 25, 31, 7)
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sentence(body: str) -> bytes:
    """``$body*hh\\r\\n`` with the XOR checksum of ``body``."""
    return f"${body}*{reduce(lambda acc, c: acc ^ ord(c), body, 0):02X}\r\n".encode("ascii")


def _ddmm(value: float, degree_digits: int, hemispheres: str) -> str:
    """Signed degrees as ``ddmm.mmmmm,H`` (5 decimals of minutes, ~2 cm, as u-blox receivers give)."""
    units = round(abs(value) * 60 * 100_000)  # 1e-5 minutes, rounded once so minutes never print 60
    degrees, rest = divmod(units, 60 * 100_000)
    return f"{degrees:0{degree_digits}d}{rest / 100_000:08.5f},{hemispheres[value < 0]}"


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Initial course from ``a`` to ``b``, degrees true."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset(origin: tuple[float, float], track_deg: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` from ``origin`` along ``track_deg`` (flat-earth: fine below ~100 km)."""
    north = metres * math.cos(math.radians(track_deg))
    east = metres * math.sin(math.radians(track_deg))
    lat = origin[0] + math.degrees(north / EARTH_RADIUS_M)
    lon = origin[1] + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(origin[0]))))
    return lat, (lon + 180.0) % 360.0 - 180.0


def _checked_point(lat: float, lon: float) -> tuple[float, float]:
    return finite("lat", lat, -90.0, 90.0), finite("lon", lon, -180.0, 180.0)


@dataclasses.dataclass(frozen=True)
class Truth:
    """Where the simulated bus really is at one moment (before jitter)."""

    lat_deg: float
    lon_deg: float
    speed_mps: float
    track_deg: float


@dataclasses.dataclass(frozen=True)
class _Route:
    points: tuple[tuple[float, float], ...]
    speed_mps: float
    started: float

    def at(self, now: float) -> Truth:
        travelled = self.speed_mps * max(0.0, now - self.started)
        track = 0.0
        for start, end in zip(self.points, self.points[1:], strict=False):
            length, track = distance_m(start, end), bearing_deg(start, end)
            if travelled < length:
                lat, lon = offset(start, track, travelled)
                return Truth(lat, lon, self.speed_mps, track)
            travelled -= length
        return Truth(*self.points[-1], speed_mps=0.0, track_deg=track)  # arrived: parked at the end


class GpsSimulator:
    """An NMEA receiver writing one epoch per ``1/rate_hz`` s of real time on ``port``."""

    def __init__(
        self,
        port: PtyPort,
        *,
        clock: Clock = time.monotonic,
        utc_now: Callable[[], dt.datetime] = _utc_now,
        rate_hz: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz}")
        self.port = port
        self.history = History(clock)
        self.epochs = 0
        self._clock = clock
        self._utc_now = utc_now
        self._period_s = 1.0 / rate_hz
        self._rng = rng or random.Random()  # noqa: S311 - wander of a fake fix, not a secret
        self._lock = threading.Lock()  # verbs come from the test thread, epochs from ours
        # One epoch failing is recorded in history; the receiver keeps talking, as a real one does.
        self._loop = ServingLoop(
            "gps-sim", self._write_epoch, self.history, where="epoch", after_error_s=self._period_s
        )
        self._anchor = Truth(48.8566, 2.3522, 0.0, 0.0)
        self._anchored_at = clock()
        self._route: _Route | None = None
        self._source: Callable[[], Truth] | None = None
        self._alt_m = 35.0
        self._fixed = True
        self._used, self._seen = 8, 11
        self._jitter_m = 0.0
        self._wander = (0.0, 0.0)  # current jitter offset, metres north and east

    # --- verbs ---

    def set_position(self, lat: float, lon: float, alt_m: float | None = None) -> None:
        """Put the receiver here now; it keeps its speed and track (0 by default)."""
        lat, lon = _checked_point(lat, lon)
        alt_m = None if alt_m is None else finite("alt_m", alt_m)
        with self._lock:
            current = self._truth(self._clock())
            self._anchor = Truth(lat, lon, current.speed_mps, current.track_deg)
            self._anchored_at, self._route, self._source = self._clock(), None, None
            self._alt_m = self._alt_m if alt_m is None else alt_m
        self.history.record("set_position", lat=lat, lon=lon, alt_m=alt_m)

    def set_motion(self, speed_mps: float, track_deg: float) -> None:
        """Drive straight on from where we are, at this speed over ground and course."""
        speed_mps, track_deg = finite("speed_mps", speed_mps, 0.0), finite("track_deg", track_deg)
        with self._lock:
            now = self._clock()
            current = self._truth(now)
            self._anchor = Truth(current.lat_deg, current.lon_deg, speed_mps, track_deg % 360.0)
            self._anchored_at, self._route, self._source = now, None, None
        self.history.record("set_motion", speed_mps=speed_mps, track_deg=track_deg)

    def follow_route(self, points: Sequence[tuple[float, float]], speed_mps: float) -> None:
        """Drive the straight segments between ``points`` from now on, then park at the last one."""
        if len(points) < 2 or finite("speed_mps", speed_mps) <= 0:
            raise ValueError("a route needs two points or more and a positive speed")
        points = [_checked_point(lat, lon) for lat, lon in points]
        with self._lock:
            self._route, self._source = _Route(tuple(points), speed_mps, self._clock()), None
        self.history.record("follow_route", points=list(points), speed_mps=speed_mps)

    def follow(self, source: Callable[[], Truth] | None) -> None:
        """Take the truth from ``source`` from now on (a scripted day's itinerary); None: stay put."""
        with self._lock:
            if source is None and self._source is not None:
                self._anchor, self._anchored_at = self._source(), self._clock()
                self._anchor = Truth(self._anchor.lat_deg, self._anchor.lon_deg, 0.0, self._anchor.track_deg)
            self._source, self._route = source, None
        self.history.record("follow", on=source is not None)

    def lose_fix(self) -> None:
        """Sky blocked (tunnel, garage): sentences keep coming, saying "no fix"."""
        with self._lock:
            self._fixed = False
        self.history.record("lose_fix")

    def regain_fix(self) -> None:
        with self._lock:
            self._fixed = True
        self.history.record("regain_fix")

    def set_jitter(self, metres: float) -> None:
        """While parked, let the reported fix wander randomly within ``metres`` of the truth."""
        metres = finite("metres", metres)
        with self._lock:
            self._jitter_m = max(0.0, metres)
            self._wander = (0.0, 0.0)
        self.history.record("set_jitter", metres=metres)

    def set_satellites(self, used: int, seen: int) -> None:
        """Satellites in the fix and in view (default 8 of 11); under 4 used is 2D, under 3 no fix."""
        if not 0 <= used <= min(seen, 12) or seen > len(SKY):
            raise ValueError(f"need 0 <= used <= min(seen, 12) and seen <= {len(SKY)}")
        with self._lock:
            self._used, self._seen = used, seen
        self.history.record("set_satellites", used=used, seen=seen)

    def emit_garbage(self, data: bytes) -> None:
        """Write raw bytes on the line now (noise, a wrong baud rate, a cut sentence)."""
        with self._lock:
            self.port.write(data)
        self.history.record("emit_garbage", size=len(data))

    def truth(self) -> Truth:
        """Where the receiver really is now (without jitter)."""
        with self._lock:
            return self._truth(self._clock())

    # --- running ---

    def start(self) -> None:
        if self._loop.alive:
            return
        self._loop.start()
        self.history.record("start", path=self.port.path)

    def stop(self) -> None:
        if not self._loop.alive:
            return
        self._loop.stop()
        self.history.record("stop")

    def __enter__(self) -> GpsSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_epoch(self) -> float:
        with self._lock:
            self.port.write(self._epoch(self._utc_now()))
        self.epochs += 1
        return self._period_s

    # --- model (callers hold the lock) ---

    def _truth(self, now: float) -> Truth:
        if self._source is not None:
            return self._source()
        if self._route is not None:
            return self._route.at(now)
        a = self._anchor
        lat, lon = offset((a.lat_deg, a.lon_deg), a.track_deg, a.speed_mps * (now - self._anchored_at))
        return Truth(lat, lon, a.speed_mps, a.track_deg)

    def _reported(self) -> Truth:
        """The truth plus, while parked, a bounded random walk (and the small speeds it causes)."""
        truth = self._truth(self._clock())
        if self._jitter_m <= 0 or truth.speed_mps > 0:
            self._wander = (0.0, 0.0)
            return truth
        step = self._jitter_m / 4
        north = self._wander[0] + self._rng.gauss(0.0, step)
        east = self._wander[1] + self._rng.gauss(0.0, step)
        scale = min(1.0, self._jitter_m / max(math.hypot(north, east), 1e-9))
        self._wander = (north * scale, east * scale)
        lat, lon = offset((truth.lat_deg, truth.lon_deg), 0.0, self._wander[0])
        lat, lon = offset((lat, lon), 90.0, self._wander[1])
        return Truth(lat, lon, abs(self._rng.gauss(0.0, 0.05)), truth.track_deg)

    def _epoch(self, utc: dt.datetime) -> bytes:
        hms = utc.strftime("%H%M%S") + f".{utc.microsecond // 10_000:02d}"
        date = utc.strftime("%d%m%y")
        # As a real receiver: 4 satellites for a 3D fix, 3 for 2D, fewer is no fix at all.
        if not self._fixed or self._used < 3:
            return self._no_fix_epoch(hms, date)
        mode = 3 if self._used >= 4 else 2
        fix = self._reported()
        position = f"{_ddmm(fix.lat_deg, 2, 'NS')},{_ddmm(fix.lon_deg, 3, 'EW')}"
        knots, hdop = fix.speed_mps / KNOT_MPS, round(max(0.6, 7.2 / max(self._used, 1)), 1)
        used = [f"{prn:02d}" for prn, _, _ in SKY[: self._used]]
        return b"".join(
            [
                sentence(
                    f"GPGGA,{hms},{position},1,{self._used:02d},{hdop:.1f},{self._alt_m:.1f},M,"
                    f"{GEOID_SEPARATION_M:.1f},M,,"
                ),
                sentence(
                    f"GPGSA,A,{mode},{','.join(used + [''] * (12 - len(used)))},"
                    f"{hdop * 1.6:.1f},{hdop:.1f},{hdop * 1.3:.1f}"
                ),
                *self._gsv(fixed=True),
                sentence(f"GPRMC,{hms},A,{position},{knots:.3f},{fix.track_deg:.2f},{date},,,A"),
                sentence(f"GPVTG,{fix.track_deg:.2f},T,,M,{knots:.3f},N,{fix.speed_mps * 3.6:.3f},K,A"),
            ]
        )

    def _no_fix_epoch(self, hms: str, date: str) -> bytes:
        return b"".join(
            [
                sentence(f"GPGGA,{hms},,,,,0,00,99.99,,,,,,"),
                sentence("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
                *self._gsv(fixed=False),
                sentence(f"GPRMC,{hms},V,,,,,,,{date},,,N"),
                sentence("GPVTG,,T,,M,,N,,K,N"),
            ]
        )

    def _gsv(self, *, fixed: bool) -> list[bytes]:
        """Satellites in view, four per sentence; the used ones are the strong ones."""
        sky = SKY[: self._seen]
        pages = max(1, math.ceil(len(sky) / 4))
        lines = []
        for page in range(pages):
            fields = []
            for index, (prn, elevation, azimuth) in enumerate(sky[page * 4 : page * 4 + 4], page * 4):
                snr = 38 + prn % 8 if fixed and index < self._used else 12 + prn % 10
                fields.append(f"{prn:02d},{elevation:02d},{azimuth:03d},{snr:02d}")
            lines.append(sentence(",".join([f"GPGSV,{pages},{page + 1},{len(sky):02d}", *fields])))
        return lines

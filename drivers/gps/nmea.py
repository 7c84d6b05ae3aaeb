"""NMEA 0183 parsing: checksummed lines into typed GGA/RMC/VTG/GSA/GSV messages, folded into a GpsSnapshot.

Pure code, no I/O, so the serial driver and the tests share it. Reference: gpsd "NMEA Revealed",
restated in docs/protocols.md 4.3. A receiver line can be anything (noise at power-up, a
wrong baud rate, a sentence cut by a buffer overrun): :func:`split_sentence` and :func:`decode`
raise :class:`NmeaError` for those, and :meth:`NmeaState.feed` counts and drops them, never raising.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
import string
from collections.abc import Callable
from functools import reduce

from drivers.snapshots import FixMode, GpsSnapshot

KNOT_MPS = 0.514444
KMH_MPS = 1 / 3.6
# The standard says 82 bytes; some receivers exceed it with long GSV lines, so allow some slack but
# refuse runaway garbage (e.g. a whole buffer of noise without a newline).
MAX_LINE_CHARS = 160
_HEX = set(string.hexdigits)


class NmeaError(ValueError):
    """A line that is not a usable NMEA sentence; the message says why."""


class ChecksumError(NmeaError):
    """The sentence's checksum does not match its content (line noise or a cut line)."""


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One checksum-verified sentence: ``$GPGGA,...`` has talker "GP", kind "GGA"."""

    talker: str
    kind: str
    fields: tuple[str, ...]

    def get(self, index: int) -> str:
        """Field ``index`` (1-based after the address), "" when the receiver left it out."""
        return self.fields[index - 1] if 0 < index <= len(self.fields) else ""


def checksum(body: str) -> int:
    """XOR of every character between ``$`` and ``*``."""
    return reduce(lambda acc, char: acc ^ ord(char), body, 0)


def split_sentence(line: bytes | str) -> Sentence:
    """Verify and split one line; raises NmeaError (or ChecksumError) when it is not a sentence."""
    text = line.decode("ascii", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if len(text) > MAX_LINE_CHARS:
        raise NmeaError(f"line of {len(text)} characters is too long for NMEA")
    # Start at the last "$": noise before a sentence (or a cut sentence glued to the next one) is
    # dropped and the intact sentence at the end is kept.
    start = text.rfind("$")
    if start < 0:
        raise NmeaError("no '$' sentence start")
    text = text[start:]
    if len(text) < 4 or text[-3] != "*" or not set(text[-2:]) <= _HEX:
        raise NmeaError("no '*hh' checksum at the end")
    body, written = text[1:-3], int(text[-2:], 16)
    if not body.isascii() or not body.isprintable():
        raise NmeaError("non-printable characters")
    if checksum(body) != written:
        raise ChecksumError(f"checksum {written:02X} but content gives {checksum(body):02X}")
    address, *fields = body.split(",")
    if len(address) < 3 or not address.isalnum():
        raise NmeaError(f"bad address field {address!r}")
    # Proprietary sentences ($PUBX, $PGRME) have a one-letter "talker" P.
    talker = "P" if address[0] == "P" else address[:2]
    return Sentence(talker=talker, kind=address[len(talker) :], fields=tuple(fields))


# --- field decoding: each helper returns None for an empty field and raises NmeaError for junk ---


def _float(value: str) -> float | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise NmeaError(f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise NmeaError(f"not a finite number: {value!r}")
    return number


def _int(value: str) -> int | None:
    if value == "":
        return None
    if not value.isdigit():
        raise NmeaError(f"not an integer: {value!r}")
    return int(value)


def _coordinate(value: str, hemisphere: str, negative: str, limit: float) -> float | None:
    """``ddmm.mmmm`` (or ``dddmm.mmmm``) plus N/S or E/W into signed decimal degrees."""
    raw = _float(value)
    if raw is None:
        return None
    if raw < 0 or hemisphere not in ("NS" if negative == "S" else "EW"):
        raise NmeaError(f"bad coordinate {value!r},{hemisphere!r}")
    degrees, minutes = divmod(raw, 100.0)
    result = degrees + minutes / 60.0
    if minutes >= 60.0 or result > limit:
        raise NmeaError(f"coordinate out of range: {value!r}")
    return -result if hemisphere == negative else result


def _utc_time(value: str) -> dt.time | None:
    """``hhmmss[.ss]``."""
    if value == "":
        return None
    if len(value) < 6 or not value[:6].isdigit():
        raise NmeaError(f"bad UTC time {value!r}")
    seconds = _float(value[4:]) or 0.0
    whole = int(seconds)
    try:
        return dt.time(int(value[:2]), int(value[2:4]), whole, min(round((seconds - whole) * 1e6), 999_999))
    except (ValueError, OverflowError):  # OverflowError: seconds past a C int ("2637583231404227")
        raise NmeaError(f"bad UTC time {value!r}") from None


def _date(value: str) -> dt.date | None:
    """``ddmmyy``; two-digit years are this century (GPS receivers have no earlier dates)."""
    if value == "":
        return None
    if len(value) != 6 or not value.isdigit():
        raise NmeaError(f"bad date {value!r}")
    try:
        return dt.date(2000 + int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError:
        raise NmeaError(f"bad date {value!r}") from None


def _speed(value: str, factor: float) -> float | None:
    speed = _float(value)
    return None if speed is None else speed * factor


# --- typed messages ---


@dataclasses.dataclass(frozen=True)
class Gga:
    """Fix data: position, quality (0 = no fix), satellites used, HDOP, altitude above mean sea level."""

    time: dt.time | None
    lat_deg: float | None
    lon_deg: float | None
    quality: int
    satellites_used: int | None
    hdop: float | None
    altitude_m: float | None


@dataclasses.dataclass(frozen=True)
class Rmc:
    """Recommended minimum: validity, position, speed, track and the date."""

    time: dt.time | None
    valid: bool
    lat_deg: float | None
    lon_deg: float | None
    speed_mps: float | None
    track_deg: float | None
    date: dt.date | None


@dataclasses.dataclass(frozen=True)
class Vtg:
    """Track and speed over ground."""

    track_deg: float | None
    speed_mps: float | None


@dataclasses.dataclass(frozen=True)
class Gsa:
    """DOP and active satellites: ``mode`` 1 no fix, 2 2D, 3 3D; ``prns`` used in the fix."""

    mode: int | None
    prns: tuple[int, ...]
    hdop: float | None


@dataclasses.dataclass(frozen=True)
class Gsv:
    """One page of satellites in view; only the total matters to us."""

    talker: str
    satellites_seen: int | None


Message = Gga | Rmc | Vtg | Gsa | Gsv


def _gga(s: Sentence) -> Gga:
    return Gga(
        time=_utc_time(s.get(1)),
        lat_deg=_coordinate(s.get(2), s.get(3), "S", 90.0),
        lon_deg=_coordinate(s.get(4), s.get(5), "W", 180.0),
        quality=_int(s.get(6)) or 0,
        satellites_used=_int(s.get(7)),
        hdop=_float(s.get(8)),
        altitude_m=_float(s.get(9)),
    )


def _rmc(s: Sentence) -> Rmc:
    if s.get(2) not in ("A", "V"):
        raise NmeaError(f"RMC status {s.get(2)!r} is neither A nor V")
    return Rmc(
        time=_utc_time(s.get(1)),
        valid=s.get(2) == "A",
        lat_deg=_coordinate(s.get(3), s.get(4), "S", 90.0),
        lon_deg=_coordinate(s.get(5), s.get(6), "W", 180.0),
        speed_mps=_speed(s.get(7), KNOT_MPS),
        track_deg=_float(s.get(8)),
        date=_date(s.get(9)),
    )


def _vtg(s: Sentence) -> Vtg:
    # NMEA 3.01+ tags each value with a unit letter (084.4,T,,M,12.4,N,23.0,K); older receivers
    # send the four values bare (084.4,,12.4,23.0). Field 2 being "T" tells them apart.
    if s.get(2) == "T":
        track, knots, kmh = s.get(1), s.get(5), s.get(7)
    else:
        track, knots, kmh = s.get(1), s.get(3), s.get(4)
    speed = _speed(knots, KNOT_MPS)
    return Vtg(track_deg=_float(track), speed_mps=speed if speed is not None else _speed(kmh, KMH_MPS))


def _gsa(s: Sentence) -> Gsa:
    mode = _int(s.get(2))
    if mode is not None and mode not in (1, 2, 3):
        raise NmeaError(f"GSA fix mode {mode} is not 1, 2 or 3")
    prns = tuple(prn for prn in (_int(s.get(i)) for i in range(3, 15)) if prn is not None)
    return Gsa(mode=mode, prns=prns, hdop=_float(s.get(16)))


def _gsv(s: Sentence) -> Gsv:
    return Gsv(talker=s.talker, satellites_seen=_int(s.get(3)))


_DECODERS: dict[str, Callable[[Sentence], Message]] = {
    "GGA": _gga,
    "RMC": _rmc,
    "VTG": _vtg,
    "GSA": _gsa,
    "GSV": _gsv,
}


def decode(sentence: Sentence) -> Message | None:
    """The typed message, None for sentence types we do not use (GLL, ZDA, TXT...)."""
    decoder = _DECODERS.get(sentence.kind)
    return decoder(sentence) if decoder else None


def parse(line: bytes | str) -> Message | None:
    """Verify, split and decode one line; raises NmeaError for a bad one."""
    return decode(split_sentence(line))


class NmeaState:
    """Folds a receiver's sentences into its current fix; :meth:`feed` never raises.

    Fields keep the last value a sentence gave, so a reading taken between sentences of one epoch
    still carries the satellites and DOP of the previous one. :meth:`begin_epoch` and
    :attr:`epoch_complete` let a reader wait for a whole epoch (GGA and RMC of the same second).
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: collections.Counter[str] = collections.Counter()  # reason class -> count
        self.ignored = 0  # valid sentences of types we do not use
        self._gga: Gga | None = None
        self._rmc: Rmc | None = None
        self._gsa: Gsa | None = None
        self._seen_by_talker: dict[str, int] = {}
        self._lat: float | None = None
        self._lon: float | None = None
        self._speed: float | None = None
        self._track: float | None = None
        self._hdop: float | None = None
        self._epoch_gga: dt.time | None = None
        self._epoch_rmc: dt.time | None = None
        self._epoch_positions = 0  # GGA and RMC accepted since begin_epoch

    def feed(self, line: bytes | str) -> Message | None:
        """Take one line; returns the decoded message, None when it was dropped or not used."""
        if not line.strip():
            return None  # blank lines (a bare CR LF) are line framing, not errors
        try:
            message = parse(line)
        except ChecksumError:
            self.rejected["bad checksum"] += 1
            return None
        except NmeaError:
            self.rejected["malformed"] += 1
            return None
        if message is None:
            self.ignored += 1
            return None
        self.accepted += 1
        self._apply(message)
        return message

    def _apply(self, message: Message) -> None:
        if isinstance(message, Gga | Rmc):
            self._epoch_positions += 1
        if isinstance(message, Gga):
            self._gga, self._epoch_gga = message, message.time
            self._lat, self._lon = message.lat_deg, message.lon_deg
            self._hdop = message.hdop if message.hdop is not None else self._hdop
        elif isinstance(message, Rmc):
            self._rmc, self._epoch_rmc = message, message.time
            self._lat, self._lon = message.lat_deg, message.lon_deg
            self._speed, self._track = message.speed_mps, message.track_deg
        elif isinstance(message, Vtg):
            self._speed, self._track = message.speed_mps, message.track_deg
        elif isinstance(message, Gsa):
            self._gsa = message
            self._hdop = message.hdop if message.hdop is not None else self._hdop
        elif message.satellites_seen is not None:
            # Multi-GNSS receivers send one GSV series per constellation (GPGSV, GLGSV...).
            self._seen_by_talker[message.talker] = message.satellites_seen

    def begin_epoch(self) -> None:
        """Forget which epoch GGA and RMC were last seen in, to wait for a fresh one."""
        self._epoch_gga = self._epoch_rmc = None
        self._epoch_positions = 0

    @property
    def epoch_has_position(self) -> bool:
        """A GGA or RMC arrived since :meth:`begin_epoch`: without one, the position is the old one."""
        return self._epoch_positions > 0

    @property
    def epoch_complete(self) -> bool:
        """GGA and RMC of the same time arrived since :meth:`begin_epoch`."""
        return self._epoch_gga is not None and self._epoch_gga == self._epoch_rmc

    @property
    def fix_mode(self) -> FixMode:
        """0 nothing heard, 1 no fix, 2 2D, 3 3D; any sentence saying "no fix" wins."""
        gga, rmc, gsa = self._gga, self._rmc, self._gsa
        if gga is None and rmc is None and gsa is None:
            return 0
        if (gga is not None and gga.quality == 0) or (rmc is not None and not rmc.valid):
            return 1
        if gsa is not None and gsa.mode in (1, 2, 3):
            return 1 if gsa.mode == 1 else 2 if gsa.mode == 2 else 3
        if gga is not None:
            return 3 if gga.altitude_m is not None else 2
        return 2 if rmc is not None else 1

    def _time_iso(self) -> str | None:
        rmc = self._rmc
        if rmc is None or rmc.date is None or rmc.time is None:
            return None
        stamp = dt.datetime.combine(rmc.date, rmc.time)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"

    def _satellites_used(self) -> int | None:
        if self._gga is not None and self._gga.satellites_used is not None:
            return self._gga.satellites_used
        return len(self._gsa.prns) if self._gsa is not None else None

    def snapshot(self) -> GpsSnapshot:
        """The current fix. Position, motion and time are only given with a fix, as gpsd does."""
        mode = self.fix_mode
        fixed = mode >= 2
        return GpsSnapshot(
            source="nmea",
            fix_mode=mode,
            lat_deg=self._lat if fixed else None,
            lon_deg=self._lon if fixed else None,
            speed_mps=self._speed if fixed else None,
            track_deg=self._track if fixed else None,
            altitude_m=self._gga.altitude_m if mode == 3 and self._gga is not None else None,
            satellites_used=self._satellites_used(),
            satellites_seen=sum(self._seen_by_talker.values()) if self._seen_by_talker else None,
            hdop=self._hdop,
            gps_time_utc=self._time_iso() if fixed else None,
        )

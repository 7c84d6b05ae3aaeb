"""GPS through gpsd: one kept JSON connection (``?WATCH``), a ``?POLL;`` per read, decoded into a GpsSnapshot.

The fix itself is interpreted by gpsd-py3's ``GpsResponse.from_json`` (mode gating, satellites
used), but its transport is not used, for reasons found in its 0.3.0 source and against gpsd 3.22:

- ``gpsd.connect()`` connects and reads the VERSION/DEVICES/WATCH lines with no timeout: a peer
  that accepts and stays silent blocks it forever, and a timeout can only be set after it returns.
  It also keeps the connection in module globals, so two drivers in one process would share one.
- ``gpsd.get_current()`` reads exactly one line (any notice before the POLL reply breaks it) and
  discards the raw POLL, so HDOP and ``altMSL`` cannot be had from it; after a socket timeout its
  text stream is unusable ("cannot read from timed out object").

So the session below is a small JSON exchange where one Deadline bounds a whole read (name
lookup, connect, handshake, POLL and DEVICES together); the packet it reads is handed to
``from_json`` and completed with what gpsd-py3 ignores: HDOP, ``uSat``/``nSat``, ``altMSL`` (gpsd
3.22 still sends the deprecated ``alt`` too, newer releases drop it), and staleness:

- gpsd 3.22 keeps serving a receiver's last TPV (mode 3) after the receiver stops talking (seen
  with a hung-up pty), so a TPV whose time has not moved for ``stale_after_s`` is a failure;
- a POLL with ``active`` 0 means gpsd has the device open but has decoded nothing from it yet:
  a fix mode 0 at first (a receiver just plugged in), a failure once it lasts ``stale_after_s``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import gpsd

from drivers.base import DeviceReportedError, DeviceTimeout, DeviceUnavailable, Driver, ProtocolError
from drivers.deadline import Deadline
from drivers.errors import os_reason
from drivers.snapshots import FixMode, GpsSnapshot
from drivers.tcp import Lookup, LookupTimeout, connect, system_lookup

DEFAULT_PORT = 2947
MAX_LINE_BYTES = 65_536  # gpsd truncates its own lines at 10240; anything far longer is not gpsd
_MODES: dict[int, FixMode] = {0: 0, 1: 1, 2: 2, 3: 3}


class _ConnectionLost(DeviceUnavailable):
    """A kept connection died (gpsd restarted or stopped): worth one fresh attempt at once."""


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``gpsd://host:port`` into (host, port); the port defaults to 2947. ValueError when malformed."""
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme != "gpsd" or not url.hostname:
        raise ValueError(f"not a gpsd://host[:port] endpoint: {endpoint!r}")
    return url.hostname, url.port or DEFAULT_PORT


class GpsdSession:
    """A line-oriented JSON session with gpsd; every wait ends at the Deadline of the read in progress."""

    def __init__(self, host: str, port: int, deadline: Deadline, lookup: Lookup = system_lookup) -> None:
        self.where = f"{host}:{port}"
        self._buffer = b""
        try:
            self._sock = connect(host, port, deadline, lookup)
        except LookupTimeout:
            raise DeviceTimeout(f"cannot resolve {host} for gpsd within {deadline.budget_s:g} s") from None
        except TimeoutError:
            raise self._timeout(deadline) from None
        except (OSError, UnicodeError) as exc:
            raise DeviceUnavailable(f"gpsd not reachable at {self.where}: {os_reason(exc)}") from None
        try:
            self._handshake(deadline)
        except BaseException:
            self.close()
            raise

    def _handshake(self, deadline: Deadline) -> None:
        first = self._read_object(deadline)
        if first.get("class") != "VERSION":
            raise ProtocolError(
                f"not gpsd at {self.where}: first message is {first.get('class')!r}, not VERSION"
            )
        # Watching (without "json") keeps the receivers active for ?POLL and sends no stream.
        self.request('?WATCH={"enable":true}', "WATCH", deadline)

    def request(self, command: str, want: str, deadline: Deadline) -> dict[str, Any]:
        """Send ``command`` and return its reply of class ``want``, skipping other objects on the way."""
        try:
            self._sock.settimeout(deadline.left())
            self._sock.sendall(command.encode("ascii") + b"\n")
        except TimeoutError:
            raise self._timeout(deadline) from None
        except OSError as exc:
            raise _ConnectionLost(f"gpsd at {self.where} dropped the connection: {os_reason(exc)}") from None
        while True:
            reply = self._read_object(deadline)
            if reply.get("class") == "ERROR":
                raise DeviceReportedError(f"gpsd at {self.where}: {reply.get('message', 'error')}")
            if reply.get("class") == want:
                return reply

    def _read_object(self, deadline: Deadline) -> dict[str, Any]:
        line = self._read_line(deadline)
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            # RecursionError: thousands of nested brackets fit well inside the line limit.
            raise ProtocolError(f"gpsd at {self.where} sent a line that is not JSON: {line[:60]!r}") from None
        if not isinstance(value, dict):
            raise ProtocolError(f"gpsd at {self.where} sent JSON that is not an object: {line[:60]!r}")
        return value

    def _read_line(self, deadline: Deadline) -> bytes:
        while b"\n" not in self._buffer:
            try:
                self._sock.settimeout(deadline.left())
                chunk = self._sock.recv(65_536)
            except TimeoutError:
                raise self._timeout(deadline) from None
            except OSError as exc:
                raise _ConnectionLost(
                    f"gpsd at {self.where} dropped the connection: {os_reason(exc)}"
                ) from None
            if not chunk:
                raise _ConnectionLost(f"gpsd at {self.where} closed the connection")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ProtocolError(f"gpsd at {self.where} sent a line over {MAX_LINE_BYTES} bytes")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.strip()

    def _timeout(self, deadline: Deadline) -> DeviceTimeout:
        return DeviceTimeout(f"gpsd at {self.where} did not answer within {deadline.budget_s:g} s")

    def close(self) -> None:
        self._sock.close()


# --- decoding a POLL reply ---


def latest_reports(packet: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The newest TPV and SKY of a POLL reply ({} when gpsd has none yet)."""
    tpvs, skies = packet.get("tpv"), packet.get("sky")
    if not isinstance(tpvs, list) or not isinstance(skies, list):
        raise ProtocolError(f"gpsd at {where} sent a POLL without tpv/sky lists")
    tpv = tpvs[-1] if tpvs else {"class": "TPV", "mode": 0}
    sky = skies[-1] if skies else {}
    if not isinstance(tpv, dict) or not isinstance(sky, dict):
        raise ProtocolError(f"gpsd at {where} sent a POLL with malformed TPV/SKY")
    return tpv, sky


def _number(report: Mapping[str, Any], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits: no float holds it
        return None
    return number if math.isfinite(number) else None


def _count(report: Mapping[str, Any], key: str) -> int | None:
    value = report.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _iso_ms(value: object) -> str | None:
    """gpsd's ISO time as ``YYYY-MM-DDTHH:MM:SS.sssZ`` (it may omit the fraction); None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: an offset moving it out of years 1..9999
        return None
    # isoformat, not strftime: "%Y" prints year 999 as "999", which is not ISO 8601.
    return stamp.isoformat(timespec="milliseconds") + "Z"


def snapshot_from_reports(tpv: Mapping[str, Any], sky: Mapping[str, Any], where: str) -> GpsSnapshot:
    """A GpsSnapshot from gpsd's newest TPV and SKY, via gpsd-py3's interpretation of them."""
    satellites = sky.get("satellites")
    listed: list[Any] | None = satellites if isinstance(satellites, list) else None
    counted = listed is not None
    # gpsd-py3 needs a "used" key on every satellite (KeyError otherwise) and at least one SKY.
    sky_for_py3 = (
        {}
        if listed is None
        else {"satellites": [{**s, "used": s.get("used") is True} for s in listed if isinstance(s, dict)]}
    )
    try:
        fix = gpsd.GpsResponse.from_json({"active": 1, "tpv": [dict(tpv)], "sky": [sky_for_py3]})
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(
            f"gpsd at {where} sent a TPV gpsd-py3 cannot read ({type(exc).__name__}: {exc})"
        ) from None
    mode = _MODES.get(fix.mode) if type(fix.mode) is int else None
    if mode is None:
        raise ProtocolError(f"gpsd at {where} sent TPV mode {fix.mode!r}")
    fixed, three_d = mode >= 2, mode == 3
    # gpsd-py3 fills absent keys with 0.0, which is a real place: take a value only when gpsd sent it.
    altitude = _number(tpv, "altMSL") if "altMSL" in tpv else _number(tpv, "alt")
    return GpsSnapshot(
        source="gpsd",
        fix_mode=mode,
        lat_deg=_number(tpv, "lat") if fixed else None,
        lon_deg=_number(tpv, "lon") if fixed else None,
        speed_mps=_number(tpv, "speed") if fixed else None,
        track_deg=_number(tpv, "track") if fixed else None,
        altitude_m=altitude if three_d else None,
        satellites_used=_count(sky, "uSat") if "uSat" in sky else fix.sats_valid if counted else None,
        satellites_seen=_count(sky, "nSat") if "nSat" in sky else fix.sats if counted else None,
        hdop=_number(sky, "hdop"),
        gps_time_utc=_iso_ms(fix.time) if fixed else None,
    )


# --- the driver ---


class GpsdDriver(Driver[GpsSnapshot]):
    """Reads the fix from gpsd at ``gpsd://host:port``; keeps one connection, reconnects after failures."""

    kind = "gps"

    def __init__(self, endpoint: str, timeout_s: float = 2.0, stale_after_s: float = 5.0) -> None:
        super().__init__(endpoint)
        self.host, self.port = parse_endpoint(endpoint)
        self.where = f"{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._session: GpsdSession | None = None
        # Newest TPV time and since when (monotonic) it has not changed; kept across reconnects on
        # purpose, so that reconnecting does not make a frozen fix look fresh again.
        self._fresh_key: object = None
        self._fresh_since = 0.0

    def _read(self) -> GpsSnapshot:
        # One deadline for everything this read does: reconnecting, the handshake and every request.
        deadline = Deadline(self.timeout_s)
        if self._session is not None:
            try:
                return self._poll(self._session, deadline)
            except _ConnectionLost:
                self.close()  # gpsd went away or restarted: one fresh connection decides
        self._session = GpsdSession(self.host, self.port, deadline)
        return self._poll(self._session, deadline)

    def _poll(self, session: GpsdSession, deadline: Deadline) -> GpsSnapshot:
        packet = session.request("?POLL;", "POLL", deadline)
        if not packet.get("active"):
            return self._silent(session, deadline)
        tpv, sky = latest_reports(packet, self.where)
        self._check_fresh(tpv.get("time"), f"had nothing new from {tpv.get('device', 'the receiver')}")
        return snapshot_from_reports(tpv, sky, self.where)

    def _silent(self, session: GpsdSession, deadline: Deadline) -> GpsSnapshot:
        """gpsd has heard nothing yet: fine for a receiver just plugged in, a failure if it lasts."""
        listed = session.request("?DEVICES;", "DEVICES", deadline).get("devices")
        paths = (
            [str(d.get("path")) for d in listed if isinstance(d, dict)] if isinstance(listed, list) else []
        )
        if not paths:
            raise DeviceUnavailable(f"gpsd at {self.where} has no GPS receiver (unplugged?)")
        self._check_fresh("silent", f"heard nothing from {', '.join(paths)}")
        return GpsSnapshot(source="gpsd", fix_mode=0)

    def _check_fresh(self, key: object, what: str) -> None:
        """Fail when ``key`` (the newest TPV time) has not moved for ``stale_after_s``; None: cannot tell."""
        now = time.monotonic()
        if key is None or key != self._fresh_key:
            self._fresh_key, self._fresh_since = key, now
            return
        frozen_s = now - self._fresh_since
        if frozen_s > self.stale_after_s:
            raise DeviceTimeout(f"gpsd at {self.where} has {what} for {frozen_s:.0f} s")

    def _failed(self, reason: str) -> GpsSnapshot:
        return GpsSnapshot(ok=False, reason=reason, source="gpsd")

    def _after_failure(self) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

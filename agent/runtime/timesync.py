"""Has NTP synchronised the system clock? systemd-timesyncd's flag file, else the kernel's own word.

The agent takes the system clock as true time only when this says yes: a fake-hwclock value
restored at boot looks plausible and is wrong by however long the box was off.

- systemd-timesyncd touches ``/run/systemd/timesync/synchronized`` at each synchronisation. /run is
  empty at every boot, so a flag left by an earlier boot cannot mislead.
- Other NTP daemons (chrony, ntpd) tell the kernel, and adjtimex(2) reads it back. As systemd's own
  ``ntp_synced()`` does, the clock counts as synchronised when the kernel's maximum error is under
  16 s; STA_UNSYNC alone says nothing, as a daemon may keep it set to keep the kernel off the RTC.
  busagent.service's ``ProtectClock=yes`` refuses adjtimex even for reading (EPERM, systemd issue
  #26413): under the shipped unit the timesyncd flag is the only way, which is what Debian and
  Raspberry Pi OS run by default.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
#: adjtimex's maximum error (microseconds) at or above which the kernel clock is not synchronised.
UNSYNCED_MAXERROR_US = 16_000_000


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """``struct timex`` of adjtimex(2), the libc symbol's own layout (``long`` fields)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    )


def timesyncd_synchronized(flag: Path = TIMESYNCD_FLAG) -> bool:
    """True when systemd-timesyncd has synchronised the clock since boot."""
    try:
        return flag.exists()
    except OSError:
        return False


def kernel_synchronized() -> bool:
    """True when the kernel says an NTP daemon keeps the clock within 16 s; False when it cannot say."""
    try:
        adjtimex = ctypes.CDLL(None).adjtimex  # the C library the interpreter already runs on
    except (OSError, AttributeError):
        return False
    timex = _Timex()  # modes 0: read only
    if adjtimex(ctypes.byref(timex)) < 0:
        return False  # EPERM under ProtectClock=yes
    return bool(0 <= timex.maxerror < UNSYNCED_MAXERROR_US)


def ntp_synchronized(flag: Path = TIMESYNCD_FLAG) -> bool:
    """Has an NTP daemon synchronised the system clock? (the daemon's default check)"""
    return timesyncd_synchronized(flag) or kernel_synchronized()

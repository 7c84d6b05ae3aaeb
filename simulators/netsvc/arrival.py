"""When a request reached this host, dated by the kernel, so a round trip is counted from there.

A simulated service holds each answer one round trip of its link. Counted from when the serving
thread got round to the request, the wait would also include the accept, the thread start and
the parsing, and any scheduler stall in between: on a busy 2-core machine that adds milliseconds
to tens of milliseconds that the link did not add. The kernel stamps every packet as it arrives
(``SO_TIMESTAMPNS``); the services read that stamp with the request and answer one round trip
after it. Where the stamp is unavailable (not Linux, or not given), "now" is the arrival.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import time

# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which Python's socket module does not name.
SO_TIMESTAMPNS = 35
# The stamp is a struct timespec of two C longs (the "old" timespec the kernel gives this option).
_TIMESPEC = struct.Struct("@ll")
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
# A request is read within milliseconds of arriving; an older stamp means the wall clock was set
# meanwhile (the stamp is wall-clock time), so it is not trusted.
MAX_AGE_S = 1.0


def stamp_arrivals(sock: socket.socket) -> None:
    """Ask the kernel to stamp what arrives on ``sock`` (accepted sockets inherit it); best effort."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def arrival(ancdata: list[tuple[int, int, bytes]]) -> float:
    """The ``time.monotonic()`` instant the packet with this ancillary data arrived; now if unknown."""
    now, wall = time.monotonic(), time.time()
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            age = wall - (int(seconds) + int(nanoseconds) / 1e9)
            if 0.0 <= age <= MAX_AGE_S:
                return now - age
    return now


def stream_arrival(sock: socket.socket) -> float:
    """When the next unread bytes of a TCP connection arrived: waits for them (the socket's timeout)
    and leaves them unread. Now, when the peer closed or nothing came."""
    try:
        _, ancdata, _, _ = sock.recvmsg(1, ANCILLARY_BYTES, socket.MSG_PEEK)
    except OSError:  # timed out or reset: the request parser meets the same and gives up
        return time.monotonic()
    return arrival(ancdata)

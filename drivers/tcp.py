"""TCP connections whose name lookup and connect both end at a read's :class:`Deadline`.

``socket.getaddrinfo`` has no timeout of its own: with a dead DNS server in the resolver
configuration it blocks for the resolver's retries (tens of seconds), whatever timeout the caller
gave the socket. So names are looked up on a daemon thread that is abandoned when the deadline
passes; IP literals never wait for it. Abandoned lookups still hold a thread until the resolver
gives up, so only a few may be pending at once: past that, a lookup fails at once instead of
piling threads up behind a dead resolver.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from drivers.deadline import Deadline

AddrInfo = tuple[Any, ...]
Lookup = Callable[[str, int], Sequence[AddrInfo]]

MAX_PENDING_LOOKUPS = 8
# Shared on purpose: the limit is on threads stuck behind the one system resolver, whoever started them.
_pending = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)


class LookupTimeout(TimeoutError):
    """The name was not resolved before the deadline."""


def system_lookup(host: str, port: int) -> Sequence[AddrInfo]:
    """The system resolver, for TCP."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def resolve(host: str, port: int, deadline: Deadline, lookup: Lookup = system_lookup) -> list[AddrInfo]:
    """Addresses of ``host``; LookupTimeout when the resolver has not answered by the deadline.

    Raises what ``lookup`` raises otherwise (``socket.gaierror``, ``UnicodeError`` for a name
    that is not valid IDNA).
    """
    if _is_literal(host):
        return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    if not _pending.acquire(blocking=False):
        raise LookupTimeout(f"resolver busy: {MAX_PENDING_LOOKUPS} earlier lookups still unanswered")
    box: list[Sequence[AddrInfo] | Exception] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(lookup(host, port))
        except (OSError, UnicodeError) as exc:  # re-raised in the caller's thread
            box.append(exc)
        finally:
            _pending.release()
            done.set()

    threading.Thread(target=work, name=f"getaddrinfo-{host}", daemon=True).start()
    if not done.wait(deadline.remaining()):
        raise LookupTimeout(f"{host} not resolved within {deadline.budget_s:g} s")
    if not box:  # the lookup died of something unexpected (printed by threading.excepthook)
        raise OSError(f"lookup of {host} failed")
    if isinstance(box[0], Exception):
        raise box[0]
    return list(box[0])


def connect(host: str, port: int, deadline: Deadline, lookup: Lookup = system_lookup) -> socket.socket:
    """A connected TCP socket to ``host``; every address is tried while time remains.

    Raises TimeoutError (LookupTimeout for the name) or the OSError of the last address tried.
    """
    infos = resolve(host, port, deadline, lookup)
    last: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _name, address in infos:
        left = deadline.left()  # TimeoutError once the budget is spent
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

"""Tell systemd how the daemon is doing (sd_notify): a silent no-op when not started by systemd.

One AF_UNIX datagram per call to ``$NOTIFY_SOCKET`` holding ``KEY=VALUE`` lines (sd_notify(3)).
A leading ``@`` names a socket in the abstract namespace. Nothing here ever raises: losing the
notify socket must not take down the service it reports on; the first failure is logged.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends notifications to the socket named in an environment (``os.environ`` by default)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")

    @property
    def enabled(self) -> bool:
        """True when started by systemd with a notify socket."""
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` fields (``READY=1``...); True when the datagram went out."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            # Say it once per socket, not on every watchdog ping for the rest of the process.
            if self._address not in _warned:
                _warned.add(self._address)
                log.warning("sdnotify.send_failed", socket=_printable(self._address), error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        fields: dict[str, str | int] = {"READY": 1}
        if status is not None:
            fields["STATUS"] = status
        return self.notify(**fields)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 for Type=notify-reload; older
        # versions ignore the extra field.
        return self.notify(RELOADING=1, MONOTONIC_USEC=time_monotonic_usec())

    def watchdog_period_s(self) -> float | None:
        """How often to ping: half of WatchdogSec (sd_watchdog_enabled(3)); None when off or not ours."""
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1e6 / 2 if usec > 0 else None


def time_monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against."""
    return time.monotonic_ns() // 1000


def _address(value: str) -> str | bytes | None:
    if not value or not (value.startswith("/") or value.startswith("@")):
        return None  # unset, or a vsock:/ other form we do not speak: stay silent
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _one_line(value: str | int) -> str:
    # A newline would start a new assignment: STATUS text from a device must not inject READY=1.
    return str(value).replace("\n", " ")


def _printable(address: str | bytes) -> str:
    return address if isinstance(address, str) else "@" + address[1:].decode(errors="replace")


#: Sockets whose failure was already logged (shared by every Notifier of the process).
_warned: set[str | bytes] = set()


def _notifier() -> Notifier:
    """A notifier on the current environment: read on every call, so it is cheap and never stale."""
    return Notifier()


def notify(**fields: str | int) -> bool:
    return _notifier().notify(**fields)


def ready(status: str | None = None) -> bool:
    return _notifier().ready(status)


def status(text: str) -> bool:
    return _notifier().status(text)


def watchdog() -> bool:
    return _notifier().watchdog()


def stopping() -> bool:
    return _notifier().stopping()


def reloading() -> bool:
    return _notifier().reloading()


def watchdog_period_s() -> float | None:
    return _notifier().watchdog_period_s()

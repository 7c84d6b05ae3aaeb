"""The driver contract: the DriverError family and the boundary that turns failures into snapshots.

Every driver reads one device through its real protocol and returns a frozen snapshot. Inside a
driver, failures are raised as :class:`DriverError` subclasses; :meth:`Driver.read` is the one
boundary where they (and anything unexpected) become ``ok=False`` plus a reason, so that no
exception ever leaves a driver and one broken device never stops the daemon.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)


class DriverError(Exception):
    """A device could not be read; the message is shown to technicians as the reason."""


class DeviceUnavailable(DriverError):
    """The endpoint is missing or refuses connections (unplugged, service down)."""


class DeviceTimeout(DriverError):
    """The device did not answer in time."""


class ProtocolError(DriverError):
    """The device answered with something the protocol does not allow (garbage, bad checksum)."""


class DeviceReportedError(DriverError):
    """The device answered with an explicit error (``+CME ERROR``, HiLink error body, IPP status)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Fields every snapshot carries: success, the reason when not, and when it was read."""

    ok: bool = True
    reason: str | None = None
    read_mono_s: float = 0.0


S = TypeVar("S", bound=Snapshot)


class Driver(abc.ABC, Generic[S]):
    """Base of every driver: subclasses implement :meth:`_read`; callers only use :meth:`read`."""

    #: Short device family name used in logs and in ``agentctl probe`` output.
    kind: str = "device"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @abc.abstractmethod
    def _read(self) -> S:
        """Read the device once; raise a DriverError on failure."""

    @abc.abstractmethod
    def _failed(self, reason: str) -> S:
        """A snapshot of this driver's type that says the read failed for ``reason``."""

    def read(self) -> S:
        """Read the device once; never raises."""
        try:
            snap = self._read()
        except DriverError as exc:
            log.debug("driver.read_failed", device=self.kind, endpoint=self.endpoint, reason=str(exc))
            self._after_failure()
            return self._stamp(self._failed(str(exc) or type(exc).__name__))
        except Exception as exc:
            log.exception("driver.bug", device=self.kind, endpoint=self.endpoint)
            self._after_failure()
            return self._stamp(self._failed(f"internal error: {type(exc).__name__}: {exc}"))
        return self._stamp(snap)

    def _after_failure(self) -> None:
        """Drop connection state after a failure so the next read starts clean (override)."""

    def close(self) -> None:
        """Release the endpoint (override when the driver holds one open)."""

    @staticmethod
    def _stamp(snap: S) -> S:
        return dataclasses.replace(snap, read_mono_s=time.monotonic())

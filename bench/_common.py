"""What every benchmark shares: medians, the machine line, the verdict, a broker and a counting proxy.

Not a benchmark itself (``make bench`` runs ``bench/[!_]*.py``). Each benchmark runs its baseline
and busagent in the same run, several times, interleaved where it can, and judges the medians:
the machine may be shared, and single runs move by tens of percent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from simulators.broker import Mosquitto  # noqa: E402
from simulators.process import terminate  # noqa: E402

BIN = Path(sys.executable).parent


def quiet_logs() -> None:
    """Errors only: a benchmark's output is its figures."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """``min..max`` of the runs, to show the noise next to the median."""
    return f"{min(values):.4g}..{max(values):.4g}"


def machine() -> str:
    """nproc, CPU model, RAM and the load average right now (the machine may be shared)."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown RAM"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        ram = f"{kib / 1024**2:.1f} GiB RAM"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, {model}, {ram}, load average {load}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One benchmark's outcome: the medians, their ratio and whether the goal is met."""

    name: str
    unit: str
    baseline: list[float]
    busagent: list[float]
    goal: str
    met: bool

    @property
    def ratio(self) -> float:
        return median(self.busagent) / median(self.baseline)

    def report(self) -> int:
        """Print the figures and the verdict; the process exit code (1 when the goal is missed)."""
        print(f"  baseline  median {median(self.baseline):.4g} {self.unit}  (runs {spread(self.baseline)})")
        print(f"  busagent  median {median(self.busagent):.4g} {self.unit}  (runs {spread(self.busagent)})")
        print(
            f"  ratio busagent/baseline {self.ratio:.3g}; goal {self.goal}: {'PASS' if self.met else 'FAIL'}"
        )
        print(f"  machine: {machine()}")
        print(
            f"RESULT {self.name} baseline={median(self.baseline):.4g} busagent={median(self.busagent):.4g}"
            f" unit={self.unit.replace(' ', '_')} ratio={self.ratio:.3g} {'PASS' if self.met else 'FAIL'}"
        )
        return 0 if self.met else 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)


def start_broker(workdir: Path, extra: str = "") -> Mosquitto:
    """The real mosquitto on a free port; ``extra`` adds config lines (limits, queues)."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir)
    if extra:
        with broker.config_path.open("a") as handle:
            handle.write(extra.rstrip("\n") + "\n")
    broker.start()
    return broker


#: MQTT control packet types by the high nibble of the first byte.
PACKET_TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    8: "SUBSCRIBE",
    9: "SUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
}


class FrameCounter:
    """Splits one direction of an MQTT byte stream into packets; bytes per packet type and per topic."""

    def __init__(self) -> None:
        self.bytes = 0
        self.by_type: Counter[str] = Counter()
        self.by_topic: Counter[str] = Counter()
        self.publishes: Counter[str] = Counter()
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        self._buffer += data
        while (frame := self._next_frame()) is not None:
            kind = PACKET_TYPES.get(frame[0] >> 4, f"type{frame[0] >> 4}")
            self.by_type[kind] += len(frame)
            if kind == "PUBLISH":
                topic = self._topic(frame)
                self.by_topic[topic] += len(frame)
                self.publishes[topic] += 1

    def _next_frame(self) -> bytes | None:
        """The next whole packet off the buffer (fixed header + variable length), None if incomplete."""
        length, multiplier, i = 0, 1, 1
        while True:
            if i >= len(self._buffer):
                return None
            byte = self._buffer[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
        if len(self._buffer) < i + length:
            return None
        frame, self._buffer = self._buffer[: i + length], self._buffer[i + length :]
        return frame

    @staticmethod
    def _topic(frame: bytes) -> str:
        i = 1
        while frame[i] & 0x80:
            i += 1
        i += 1
        size = int.from_bytes(frame[i : i + 2], "big")
        return frame[i + 2 : i + 2 + size].decode(errors="replace")


class CountingProxy:
    """A 127.0.0.1 TCP proxy in front of the broker that counts every MQTT packet each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = FrameCounter()  # client -> broker
        self.down = FrameCounter()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return
            self._sockets += [client, upstream]
            self._spawn(self._pipe, client, upstream, self.up)
            self._spawn(self._pipe, upstream, client, self.down)

    def _pipe(self, source: socket.socket, sink: socket.socket, counter: FrameCounter) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    counter.feed(data)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in (self._server, *self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(2)


@contextlib.contextmanager
def broker_running(workdir: Path, extra: str = "") -> Iterator[Mosquitto]:
    broker = start_broker(workdir, extra)
    try:
        yield broker
    finally:
        broker.stop()


#: mosquitto's default log plus subscriptions, so a benchmark can see a subscriber is ready.
LOG_SUBSCRIPTIONS = "\n".join(
    f"log_type {kind}" for kind in ("error", "warning", "notice", "information", "subscribe")
)


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


class CollectorProcess:
    """``busagent-collector run`` in its own process, as at the fleet's central site."""

    def __init__(self, broker: Mosquitto, db: Path, *, ack_interval_s: float = 1.0) -> None:
        self.db = db
        self.log_path = db.with_suffix(".log")
        client_id = f"collector-{db.stem}"
        command = [
            str(BIN / "busagent-collector"),
            "run",
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--db",
            str(db),
            "--client-id",
            client_id,
            "--ack-interval",
            str(ack_interval_s),
            "--log-level",
            "warning",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # mosquitto logs "<client id> <qos> <filter>" once the subscription is in place.
        wait_until(
            lambda: (
                f"{client_id} 1 busagent/+/#" in broker.log_path.read_text(errors="replace")
                or self.proc.poll() is not None
            ),
            20,
            "the collector's subscription",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"the collector exited: {self.log_path.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        terminate(self.proc, timeout_s=20)

    def expect(self, records: int, timeout_s: float = 10.0) -> None:
        """Check the database holds ``records`` records; RuntimeError naming what it holds if not."""
        try:
            wait_until(lambda: sum(self.stored().values()) == records, timeout_s, "the collector's count")
        except RuntimeError:
            raise RuntimeError(
                f"the collector holds {self.stored()} in {self.db}, expected {records} records in all;"
                f" its log ends: {self.log_path.read_text(errors='replace')[-1500:]}"
            ) from None

    def stored(self) -> dict[str, int]:
        """Records stored per stream, read from the collector's database."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return {
                str(s): int(n)
                for s, n in conn.execute("SELECT stream, SUM(received) FROM streams GROUP BY stream")
            }

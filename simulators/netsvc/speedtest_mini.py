"""The fleet's Speedtest Mini server on 127.0.0.1, seen through a shaped link (docs/protocols.md section 7).

Serves what speedtest-cli 2.1.3's ``--mini`` mode asks for: ``/`` (a page naming
``upload_extension: "php"``), ``/speedtest/upload.php`` (GET ``size=0``; POST reads the body at the
link's up rate and answers ``size=N``), ``/speedtest/latency.txt`` (``test=test``) and
``/speedtest/random{N}x{N}.jpg`` (about 2·N² bytes, as the real images weigh, streamed at the
link's down rate). Every answer waits one round trip of the link first. Loss is not applied here:
a speed test over a lossy link still moves bytes, and the latency and HTTP probes measure loss.
"""

from __future__ import annotations

import http.server
import re
import time
from urllib.parse import urlsplit

from simulators.base import Clock
from simulators.netsvc.link import Link, LinkedHandler, LinkedHttpService

INDEX_PAGE = (
    b"<!doctype html><html><head><title>Speedtest Mini</title><script>\n"
    b'var settings = { upload_extension: "php" };\n'
    b"</script></head><body>busagent fleet speed test</body></html>\n"
)
_RANDOM_RE = re.compile(r"^/speedtest/random(\d{2,5})x(\d{2,5})\.jpg$")
_PATTERN = bytes(range(256)) * 256  # 64 KiB, sliced for every download


def image_bytes(side: int) -> int:
    """Size of ``random{side}x{side}.jpg``: the real files weigh about two bytes per pixel."""
    return 2 * side * side


class SpeedtestMini(LinkedHttpService):
    """A Speedtest Mini; give ``url + "/"`` to the throughput probe as its server URL."""

    thread_name = "netsvc-speedtest"

    def __init__(
        self, link: Link, *, host: str = "127.0.0.1", port: int = 0, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(link, host=host, port=port, clock=clock)

    @property
    def download_bytes(self) -> int:
        """Image bytes written to clients (what the download test really got over the link)."""
        return sum(e.detail["bytes"] for e in self.history.events if e.name == "download")

    @property
    def upload_bytes(self) -> int:
        """Upload body bytes read from clients."""
        return sum(e.detail["bytes"] for e in self.history.events if e.name == "upload")

    def handle(self, handler: LinkedHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        self.history.record("request", method=method, path=path)
        if method == "POST":
            # Read the body first, at the up rate: the round trip is paid once it has arrived.
            length = _content_length(handler)
            got = self.link.receive(handler.rfile, length, self.stopping)
            self.history.record("upload", path=path, declared=length, bytes=got)
            if got < length or not self.link.wait_rtt(self.stopping):
                handler.close_connection = True
                return
            self._reply(handler, 200, f"size={got}".encode())
            return
        if not self.link.wait_rtt(self.stopping, since=handler.arrived):
            return
        match = _RANDOM_RE.match(path)
        if match and match.group(1) == match.group(2):
            self._stream_image(handler, int(match.group(1)), head=method == "HEAD")
        elif path == "/speedtest/latency.txt":
            self._reply(handler, 200, b"test=test")
        elif path == "/speedtest/upload.php":
            self._reply(handler, 200, b"size=0")
        elif path in ("/", "/index.html"):
            self._reply(handler, 200, INDEX_PAGE, content_type="text/html")
        else:
            self._reply(handler, 404, b"not found")

    def _stream_image(self, handler: http.server.BaseHTTPRequestHandler, side: int, *, head: bool) -> None:
        size = image_bytes(side)
        self._headers(handler, 200, size, "image/jpeg")
        sent = 0
        while not head and sent < size and not self.stopping.is_set():
            piece = _PATTERN[: min(len(_PATTERN), size - sent)]
            written = self.link.send(handler.connection, piece, self.stopping)
            sent += written
            if written < len(piece):
                break  # the client stopped reading: its test length is over
        self.history.record("download", path=handler.path, size=size, bytes=sent)

    def _reply(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
    ) -> None:
        self._headers(handler, status, len(body), content_type)
        handler.wfile.write(body)

    @staticmethod
    def _headers(handler: http.server.BaseHTTPRequestHandler, status: int, length: int, ctype: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True


def _content_length(handler: http.server.BaseHTTPRequestHandler) -> int:
    try:
        return max(0, int(handler.headers.get("Content-Length", "0")))
    except ValueError:
        return 0

"""Control channel of a running `busagent-sim devices`: JSON lines over a Unix socket.

A request is ``{"action": "paper-out"}``; the answer is ``{"ok": true, "done": "..."}`` or
``{"ok": false, "error": "..."}``. Used by `busagent-sim do` and by the demo.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path

from simulators.serving import REQUEST_TIMEOUT_S, ClosingThreadingMixIn

MAX_REQUEST = 4096


def control_socket_for(config_path: str | Path) -> Path:
    """Where the control socket of the simulators behind a config lives (next to the config)."""
    path = Path(config_path)
    return path.with_name(path.name + ".sim.sock")


class _UnixServer(ClosingThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per client, each with a timeout; stop() cuts them all."""


class ControlServer:
    """Serves ``apply(line) -> str`` on a Unix socket; every request gets an answer, nothing crashes it."""

    def __init__(
        self, path: Path, apply: Callable[[str], str], *, request_timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self.path = path
        self._apply = apply
        self._lock = threading.Lock()  # simulator verbs run one at a time
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                # Bounded reads: a client that never sends a newline cannot grow our buffer.
                while raw := self.rfile.readline(MAX_REQUEST + 1):
                    self.wfile.write(json.dumps(outer.answer(raw)).encode() + b"\n")
                    if len(raw) > MAX_REQUEST:
                        return  # the rest of that line is not a request: hang up

        if path.exists() or path.is_symlink():
            path.unlink()
        self._server = _UnixServer(str(path), Handler)
        self._server.request_timeout_s = request_timeout_s
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-control", daemon=True)

    def answer(self, raw: bytes) -> dict[str, object]:
        """The answer to one request line; never raises, whatever the line or the verb does."""
        if len(raw) > MAX_REQUEST:
            return {"ok": False, "error": f"request too long (over {MAX_REQUEST} bytes)"}
        try:
            request = json.loads(raw)
            line = request["action"]
            if not isinstance(line, str):
                raise TypeError("action must be a string")
        except Exception as exc:  # noqa: BLE001 - any undecodable line (deep nesting: RecursionError)
            return {"ok": False, "error": f"bad request: {type(exc).__name__}: {exc}"}
        try:
            with self._lock:
                return {"ok": True, "done": self._apply(line)}
        except (ValueError, TypeError, OSError) as exc:  # a refused verb: its message says why
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug in a verb is answered too, never a hang-up
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def send(path: Path, line: str, timeout_s: float = 10.0) -> dict[str, object]:
    """Send one action to a running simulator; raises OSError when none is listening."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps({"action": line}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    answer: dict[str, object] = json.loads(data)
    return answer

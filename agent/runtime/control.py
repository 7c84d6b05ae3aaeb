"""The control socket: a Unix stream socket speaking JSON lines to agentctl (docs/control.md).

Defensive by construction: the file is 0660 with a chosen group, every peer's credentials are
checked again (SO_PEERCRED) at accept, a request line is at most ``MAX_LINE`` bytes, a silent
client is dropped after ``IDLE_S``, at most ``MAX_CLIENTS`` are served at once, and whatever a
client sends is answered with an error line rather than reaching the daemon as an exception.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MAX_LINE = 4096
IDLE_S = 10.0
MAX_CLIENTS = 8
SOCKET_NAME = "control.sock"

Handler = Callable[[dict[str, Any]], Any]


class ControlError(Exception):
    """A request the daemon will not serve; the message goes back to the client."""


class ControlSetupError(Exception):
    """The socket cannot be set up (directory, group, another daemon); the message says why."""


def socket_path(runtime_dir: str | Path) -> Path:
    return Path(runtime_dir) / SOCKET_NAME


def resolve_group(name: str) -> int:
    """The gid the socket is given: ``name``'s, or the daemon's own group when ``name`` is empty."""
    if not name:
        return os.getegid()
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ControlSetupError(f"agent.control_group: no such group {name!r} on this system") from None


class ControlServer:
    """Serves ``handler`` on ``path`` in background threads: ``start()``, then ``stop()``."""

    def __init__(self, path: Path, handler: Handler, *, gid: int) -> None:
        self.path = path
        self.handler = handler
        self.gid = gid
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._sock = _listen(self.path, self.gid)
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        log.info("control.listening", path=str(self.path), gid=self.gid)

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                _answer(conn, _error("busy: too many control connections, try again"))
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="control-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                denied = self._refused(conn)
                if denied:
                    _answer(conn, _error(denied))
                    return
                conn.settimeout(IDLE_S)
                self._converse(conn)
        except Exception:  # a client must never take a thread down silently
            log.exception("control.client_failed")
        finally:
            self._slots.release()

    def _converse(self, conn: socket.socket) -> None:
        reader = _LineReader(conn)
        while True:
            try:
                line = reader.next_line()
            except (TimeoutError, OSError):
                return
            except ControlError as exc:
                _answer(conn, _error(str(exc)))
                return
            if line is None:
                return
            answer, keep = self._answer_for(line)
            if not _answer(conn, answer) or not keep:
                return

    def _answer_for(self, line: bytes) -> tuple[dict[str, Any], bool]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line of thousands of "[" fits in MAX_LINE
            return _error('the request is not JSON: send one object per line, e.g. {"cmd": "status"}'), False
        if not isinstance(request, dict):
            return _error('the request must be a JSON object, e.g. {"cmd": "status"}'), False
        try:
            return {"ok": True, "result": self.handler(request)}, True
        except ControlError as exc:
            return _error(str(exc)), False
        except Exception as exc:  # a bug in one command must not end the daemon
            log.exception("control.handler_failed", cmd=str(request.get("cmd"))[:40])
            return _error(f"internal error: {type(exc).__name__}: {exc}"), False

    def _refused(self, conn: socket.socket) -> str | None:
        """Why the peer may not talk to us, or None."""
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        if uid in (0, os.geteuid()) or gid == self.gid or self.gid in _supplementary_groups(pid, uid):
            return None
        log.warning("control.refused", pid=pid, uid=uid, gid=gid)
        group = _group_name(self.gid)
        return f"permission denied: uid {uid} is not root, the daemon's user, nor in group {group!r}"


class _LineReader:
    """Splits a stream into lines no longer than MAX_LINE bytes."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def next_line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ControlError(f"request line longer than {MAX_LINE} bytes")
            chunk = self.conn.recv(MAX_LINE)
            if not chunk:
                return None  # the client closed; a partial line without newline is ignored
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        if len(line) > MAX_LINE:
            raise ControlError(f"request line longer than {MAX_LINE} bytes")
        return line


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _answer(conn: socket.socket, answer: dict[str, Any]) -> bool:
    data = json.dumps(answer, separators=(",", ":"), allow_nan=False, default=str).encode() + b"\n"
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def _listen(path: Path, gid: int) -> socket.socket:
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # created 0660: never world-accessible, not even for an instant
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlSetupError(f"{path}: cannot create the control socket: {exc.strerror}") from exc
    finally:
        os.umask(old_umask)
    try:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    except OSError as exc:
        sock.close()
        raise ControlSetupError(
            f"{path}: cannot give the control socket to gid {gid}: {exc.strerror}"
        ) from exc
    sock.listen(MAX_CLIENTS)
    return sock


def _clear_stale(path: Path) -> None:
    """Remove a socket left by a daemon that died; refuse when a live daemon answers on it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSetupError(f"{path}: exists and is not a socket; remove it or change agent.runtime_dir")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise ControlSetupError(f"{path}: another busagent daemon is already running here")


def _supplementary_groups(pid: int, uid: int) -> set[int]:
    """The peer process's groups (from /proc), else the groups its user is listed in."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return set()
    return {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)

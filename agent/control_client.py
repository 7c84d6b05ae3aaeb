"""The client side of the control socket (docs/control.md): one request line out, one answer line back.

Used by ``agentctl status``, ``stops`` and ``test``. Every way the exchange can fail becomes a
:class:`ControlError` whose message tells a technician what is wrong and what to do about it:
daemon not running, not allowed, stale socket, no answer in time, an answer that is not the
protocol, or the daemon's own ``{"ok": false, "error": ...}``. Standard library only, so that
``agentctl status`` starts fast.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import socket
import stat
import time
import tomllib
from typing import Any

# agent.config.DEFAULT_PATH, restated: importing agent.config loads the whole schema (a test
# checks the two stay equal).
DEFAULT_CONFIG_PATH = "/etc/busagent/agent.toml"
DEFAULT_RUNTIME_DIR = "/run/busagent"  # [agent] runtime_dir when the key is absent
SOCKET_NAME = "control.sock"
#: A status object is a few KiB and a stop list a few hundred KiB; this only stops a runaway peer.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: Seconds to wait for an answer. The daemon answers status and stops at once; a probe suite takes
#: a minute or so with a throughput test and may first wait for one already running.
TIMEOUTS_S = {"status": 10.0, "stops": 10.0, "test": 600.0}

_START_HINT = "start it with `systemctl start busagent` (or `busagent run --config PATH`)"


class ControlError(Exception):
    """The daemon could not be asked, or refused; ``kind`` names the case for scripts and tests."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def socket_path(socket_arg: str | None, config_arg: str | None) -> str:
    """``--socket`` if given, else ``<runtime_dir>/control.sock`` from the config file.

    A missing default config file (a box configured elsewhere) gives the systemd default; a config
    file named on the command line must exist, and one that cannot be read or parsed is an error,
    not a guess.
    """
    if socket_arg:
        return socket_arg
    config = config_arg or DEFAULT_CONFIG_PATH  # a str: pathlib would cost agentctl's start ~10%
    try:
        with open(config, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if str(config) != DEFAULT_CONFIG_PATH:
            raise ControlError(
                "config", f"{config}: no such file; pass --config PATH or --socket PATH"
            ) from None
        return os.path.join(DEFAULT_RUNTIME_DIR, SOCKET_NAME)
    except (OSError, UnicodeDecodeError) as exc:
        raise ControlError(
            "config", f"{config}: cannot read the socket path ({_why(exc)}); pass --socket PATH"
        ) from None
    try:
        agent = tomllib.loads(text).get("agent", {})
    except tomllib.TOMLDecodeError as exc:
        raise ControlError("config", f"{config}: not valid TOML ({exc}); pass --socket PATH") from None
    runtime_dir = agent.get("runtime_dir", DEFAULT_RUNTIME_DIR) if isinstance(agent, dict) else None
    if not isinstance(runtime_dir, str) or not os.path.isabs(runtime_dir):
        raise ControlError(
            "config", f"{config}:agent.runtime_dir: expected an absolute directory path, got {runtime_dir!r}"
        )
    return os.path.join(runtime_dir, SOCKET_NAME)


def request(path: str, message: dict[str, Any], timeout_s: float) -> Any:
    """Send ``message`` to the daemon at ``path``; the answer's ``result``, or :class:`ControlError`."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        _connect(sock, path)
        line = json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"
        try:
            sock.sendall(line)
            answer = _read_line(sock, path, deadline)
        except TimeoutError:
            raise ControlError(
                "timeout",
                f"busagent did not answer within {timeout_s:g} s on {path} "
                "(busy or hung? see `journalctl -u busagent`)",
            ) from None
        except OSError as exc:
            raise ControlError("io", f"connection to busagent on {path} broke: {_why(exc)}") from None
    return _result(answer, path)


def _connect(sock: socket.socket, path: str) -> None:
    try:
        sock.connect(path)
    except FileNotFoundError:
        raise ControlError(
            "not-running", f"busagent is not running (no control socket at {path}): {_START_HINT}"
        ) from None
    except PermissionError:
        raise ControlError("permission", _permission_message(path)) from None
    except ConnectionRefusedError:
        raise ControlError("refused", _refused_message(path)) from None
    except TimeoutError:
        raise ControlError("timeout", f"busagent did not accept the connection on {path} in time") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise ControlError(
                "not-running", f"busagent is not running (no directory for {path}): {_START_HINT}"
            ) from None
        raise ControlError("io", f"cannot connect to busagent on {path}: {_why(exc)}") from None


def _refused_message(path: str) -> str:
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = True
    if not is_socket:
        return f"{path} is not a socket: check --socket or [agent] runtime_dir in the config"
    return f"busagent is not running: {path} is a stale socket with nobody listening; {_START_HINT}"


def socket_group(path: str) -> str | None:
    """The group that may use the socket: the socket file's group (or its directory's, if hidden)."""
    for candidate in (path, os.path.dirname(path) or "."):
        try:
            gid = os.stat(candidate).st_gid
        except OSError:
            continue
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)
    return None


def _permission_message(path: str) -> str:
    group = socket_group(path)
    if group is None:
        return f"permission denied on {path}: ask an administrator to add your account to the busagent group"
    return (
        f"permission denied on {path}: add your account to the group '{group}' "
        f"(`sudo usermod -aG {group} $USER`, then log in again)"
    )


def _read_line(sock: socket.socket, path: str, deadline: float) -> bytes:
    """Bytes up to the first newline; at most MAX_ANSWER_BYTES; TimeoutError past ``deadline``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)  # closed before a newline: _result says what that means
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks) + b"\n"
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ControlError("garbage", f"the answer on {path} exceeds {MAX_ANSWER_BYTES} bytes")


def _result(answer: bytes, path: str) -> Any:
    if not answer:
        raise ControlError("garbage", f"busagent on {path} closed the connection without answering")
    if not answer.endswith(b"\n"):
        raise ControlError("garbage", f"busagent on {path} closed the connection in the middle of its answer")
    try:
        decoded = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError("garbage", f"the answer on {path} is not JSON: {_excerpt(answer)}") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("ok"), bool):
        raise ControlError("garbage", f"the answer on {path} is not a control answer: {_excerpt(answer)}")
    if not decoded["ok"]:
        error = str(decoded.get("error") or "no reason given")
        message = f"busagent refused: {error}"
        if error.startswith("permission denied"):
            message += f" ({_permission_message(path).split(': ', 1)[1]})"
        raise ControlError("error", message)
    if "result" not in decoded:
        raise ControlError("garbage", f"the answer on {path} has no result: {_excerpt(answer)}")
    return decoded["result"]


def _excerpt(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)

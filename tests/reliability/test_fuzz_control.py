"""Fuzzing the control socket: whatever bytes a client sends, each answer is one JSON ok/error line.

A real :class:`ControlServer` listens on a Unix socket in a temporary directory, with a handler that
validates like the daemon's (status, stops with a limit, anything else refused). Each input is a
whole conversation: request lines (valid, wrong, deep, huge, not UTF-8, not JSON), split into
arbitrary sends, then end of input. The answers must be exactly what docs/control.md promises for
those lines, and the server must still serve a plain status request after all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.runtime.control import MAX_LINE, ControlError, ControlServer
from tests.reliability.fuzzing import Campaign, fuzz_settings, junk_text, quiet_logs, scaling

STATUS = {
    "v": 1,
    "vehicle_id": "bus-tdc-01",
    "uptime_s": 5400.2,
    "mqtt": None,
    "devices": {"gps": {"ok": True}},
}


def handler(request: dict[str, Any]) -> Any:
    """The daemon's argument checks (agent/runtime/service.py), without a daemon behind them."""
    cmd = request.get("cmd")
    if cmd == "status":
        return STATUS
    if cmd == "stops":
        limit = request.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise ControlError(f"limit must be an integer 1..1000, got {str(limit)[:40]}")
        return {"visits": [{"site_id": "x"}] * min(limit, 3)}
    raise ControlError(f"unknown cmd {str(cmd)[:40]!r}; known: status, stops")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("control") / "control.sock"
    control = ControlServer(path, handler, gid=os.getegid())
    control.start()
    yield path
    control.stop()


def converse(path: Path, chunks: list[bytes]) -> list[bytes]:
    """Send ``chunks`` (then end of input) while reading every answer line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)  # for sendall, the whole send: a slow machine may take seconds for 1 MiB
        sock.connect(str(path))

        def send() -> None:
            # The server closes after an error answer: the rest of the input meets a closed socket.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for chunk in chunks:
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65_536):
                received += chunk
        sender.join(5)
    lines = bytes(received).split(b"\n")
    assert lines[-1] == b"", f"an answer was cut: {bytes(received[-80:])!r}"
    return lines[:-1]


def expected_answers(data: bytes) -> list[str]:
    """ "ok" or "error" for each answer docs/control.md promises for ``data``, in order."""
    *complete, partial = data.split(b"\n")
    answers = []
    for line in complete:
        verdict = verdict_of(line)
        answers.append(verdict)
        if verdict == "error":
            return answers  # the connection is closed after an error
    return [*answers, "error"] if len(partial) > MAX_LINE else answers


def verdict_of(line: bytes) -> str:
    if len(line) > MAX_LINE:
        return "error"
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return "error"
    if not isinstance(request, dict):
        return "error"
    try:
        handler(request)
    except (ControlError, RecursionError):
        return "error"
    return "ok"


def check_answers(answers: list[bytes], data: bytes) -> None:
    kinds = []
    for raw in answers:
        answer = json.loads(raw)
        assert isinstance(answer, dict) and set(answer) in ({"ok", "result"}, {"ok", "error"}), raw[:120]
        if answer["ok"] is True:
            kinds.append("ok")
        else:
            assert answer["ok"] is False and isinstance(answer["error"], str) and answer["error"], raw[:120]
            kinds.append("error")
    assert kinds == expected_answers(data), data[:200]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_logs():
        yield


# -- inputs -----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | junk_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
requests = st.one_of(
    st.just({"cmd": "status"}),
    st.fixed_dictionaries({"cmd": st.just("stops"), "limit": json_values | st.integers(-5, 1200)}),
    st.fixed_dictionaries({"cmd": json_values | st.sampled_from(["status", "stops", "test", "STATUS"])}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
).map(lambda doc: json.dumps(doc, ensure_ascii=False).encode())


@st.composite
def request_lines(draw: st.DrawFn) -> bytes:
    """One line of a conversation, without its newline."""
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return draw(requests)
    if kind == 4:
        return json.dumps(draw(json_values)).encode()
    if kind == 5:
        depth = draw(st.integers(1, 3000))
        return b'{"cmd": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == 6:
        return draw(st.sampled_from([b"NaN", b'{"cmd": NaN}', b'{"cmd": 1e999}', b"\xef\xbb\xbf{}", b"\r"]))
    if kind == 7:
        return b'{"cmd": "status", "pad": "' + b"x" * draw(st.integers(4000, 4200)) + b'"}'
    if kind == 8:
        # json.loads takes bytes in UTF-16 and UTF-32 too: such a request is valid.
        return draw(requests).decode().encode(draw(st.sampled_from(["utf-16", "utf-32", "utf-16-be"])))
    return draw(st.binary(max_size=300)).replace(b"\n", b"")


@st.composite
def conversations(draw: st.DrawFn) -> list[bytes]:
    """Lines joined by newlines (the last one maybe unfinished), cut into arbitrary sends."""
    lines = draw(st.lists(request_lines(), min_size=1, max_size=8))
    data = b"\n".join(lines) + draw(st.sampled_from([b"\n", b"", b"\n\n", b"\r\n"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]


def padded_requests(size: int) -> list[bytes]:
    """``size`` bytes of status requests as long as a line may be: the reader's cost per byte."""
    line = b'{"cmd": "status", "pad": "' + b"x" * (MAX_LINE - 40) + b'"}\n'
    return [line * (size // len(line))]


# -- tests ------------------------------------------------------------------------------------------


def test_a_request_nested_thousands_deep_is_answered_as_not_json_and_the_server_goes_on(server: Path) -> None:
    # json.loads raised RecursionError, which is not a ValueError: the client got no answer at all.
    answers = converse(server, [b"[" * 4000 + b"\n"])
    assert [json.loads(a) for a in answers] == [
        {"ok": False, "error": 'the request is not JSON: send one object per line, e.g. {"cmd": "status"}'}
    ]
    assert json.loads(converse(server, [b'{"cmd": "status"}\n'])[0]) == {"ok": True, "result": STATUS}


def test_any_conversation_gets_exactly_the_promised_json_lines_and_the_server_keeps_serving(
    server: Path,
) -> None:
    campaign = Campaign("fuzz_control_socket")

    @fuzz_settings(600)
    @given(conversations())
    def run(chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        answers = campaign.run(len(data), lambda: converse(server, chunks))
        check_answers(answers, data)
        campaign.count(f"{len(answers)}-answers")

    run()
    assert json.loads(converse(server, [b'{"cmd": "status"}\n'])[0])["ok"] is True
    figures = scaling("control socket", padded_requests, lambda chunks: converse(server, chunks))
    campaign.report(**figures)

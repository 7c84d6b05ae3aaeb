"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe``, stdlib only.

Headless Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4.
:class:`Browser` opens pages, evaluates JavaScript, and records what a person would see go wrong:
uncaught exceptions, ``console.error``, non-network log errors (CSP violations included) and
JavaScript dialogs (``alert``). Every host name resolves to nothing (``--host-resolver-rules``), so
a page can only reach files and 127.0.0.1: its tiles and CDN scripts fail the way they do offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Runs in the child: put the two pipe ends on fds 3 and 4 (via fds >= 10, so neither is overwritten
# before it is copied), then become Chromium.
_LAUNCH = (
    "import fcntl, os, sys\n"
    "a = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
    "b = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
    "os.dup2(a, 3); os.dup2(b, 4); os.close(a); os.close(b)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no chromium on PATH: install the Debian package chromium (apt-get install chromium)")


class Browser:
    """One headless Chromium; :meth:`open` gives a :class:`Page`."""

    def __init__(self, profile: Path, *, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        to_browser_r, self._to_browser_w = os.pipe()
        self._from_browser_r, from_browser_w = os.pipe()
        flags = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--no-first-run",
            "--disable-gpu",
            "--window-size=1280,900",
        ]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log_path = profile.with_suffix(".log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _LAUNCH,
                    str(to_browser_r),
                    str(from_browser_w),
                    chromium_path(),
                    *flags,
                ],
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._events_changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser_r, 65536)
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._lock:
                box = self._replies.pop(message["id"], None)
            if box is not None:
                box.put(message)
            return
        with self._events_changed:
            self.events.append(message)
            self._events_changed.notify_all()
        if message.get("method") == "Page.javascriptDialogOpening":
            # Answer from another thread: the reader must stay free to read the reply.
            threading.Thread(
                target=self.send,
                args=("Page.handleJavaScriptDialog", {"accept": True}, message.get("sessionId")),
                daemon=True,
            ).start()

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue(1)
            self._replies[ident] = box
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser_w, json.dumps(message).encode() + b"\0")
        try:
            reply = box.get(timeout=self.timeout_s)
        except queue.Empty:
            raise TimeoutError(
                f"no reply to {method} within {self.timeout_s} s (see {self.log_path})"
            ) from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_event(self, method: str, session: str, since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        with self._events_changed:
            while True:
                for event in self.events[since:]:
                    if event.get("method") == method and event.get("sessionId") == session:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} within {self.timeout_s} s")
                self._events_changed.wait(left)

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        mark = len(self.events)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session, mark)
        return Page(self, session)

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._to_browser_w)
        self._reader.join(5)
        os.close(self._from_browser_r)


class Page:
    """One tab: JavaScript evaluation, and what went wrong in it."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def eval(self, expression: str) -> Any:
        reply = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed false for {timeout_s} s")
            time.sleep(0.1)

    def _mine(self) -> list[dict[str, Any]]:
        return [event for event in list(self.browser.events) if event.get("sessionId") == self.session]

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert, and log errors other than failed network loads."""
        found = []
        for event in self._mine():
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(
                    f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error" and entry.get("source") != "network":
                    found.append(f"log ({entry.get('source')}): {entry.get('text')}")
        return found

    def network_failures(self) -> list[str]:
        return [
            event["params"]["entry"].get("url", "")
            for event in self._mine()
            if event.get("method") == "Log.entryAdded" and event["params"]["entry"].get("source") == "network"
        ]

    def dialogs(self) -> list[str]:
        return [
            event["params"].get("message", "")
            for event in self._mine()
            if event.get("method") == "Page.javascriptDialogOpening"
        ]

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        path.write_bytes(base64.b64decode(data))

"""A real PostgreSQL server from Debian's packages for tests: a fresh cluster in a temporary
directory, on 127.0.0.1 at a free port, one empty database per test, removed at the end.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
(``nobody`` if the package did not make one); the directory is made outside pytest's tmp_path,
which only root may enter. Durability is off (``fsync``): the data is thrown away anyway, and
PgStore's own commit settings do not depend on it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from simulators.process import free_port

SUPERUSER = "busagent"


class PostgresError(RuntimeError):
    """The server is missing or did not start; the message carries the end of its log."""


def bindir() -> Path:
    """The newest installed server's programs (Debian keeps them per major version)."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin/postgres") if p.parts[-3].isdigit()]
    found = sorted(versions, key=lambda p: int(p.parts[-3]))
    if not found:
        raise PostgresError("no /usr/lib/postgresql/*/bin/postgres: install the Debian package postgresql")
    return found[-1].parent


class Postgres:
    """initdb + postgres; :meth:`new_database` hands each test an empty database of its own."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="busagent-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._owner: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = _system_user()
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._owner = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.bin / "postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port),
                    "-k", self.dir, "-F", "-c", "max_connections=40", "-c", "full_page_writes=off",
                ],
                stdout=log, stderr=subprocess.STDOUT, **self._owner,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self._accepting():
            if time.monotonic() > deadline:
                raise PostgresError(f"postgres not accepting after {timeout_s} s: {self._log_tail()}")
            time.sleep(0.02)

    def _run(self, *argv: object) -> None:
        done = subprocess.run([str(a) for a in argv], capture_output=True, check=False, **self._owner)
        if done.returncode != 0:
            raise PostgresError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")

    def _accepting(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise PostgresError(f"postgres exited ({self.proc.returncode}): {self._log_tail()}")
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def new_database(self) -> str:
        """An empty database of its own, as a URL (file copy: fast, nothing to log with fsync off)."""
        name = f"test_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY file_copy")
        return self.url(name)

    @contextlib.contextmanager
    def admin(self, database: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """A superuser connection outside any store, for setting up and looking in."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            yield conn

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, SIGTERM would wait for them)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _system_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresError("neither a postgres nor a nobody user to run the server as (it refuses root)")

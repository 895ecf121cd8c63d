"""A throwaway PostgreSQL 15 cluster on a free loopback port, for the scale-out backend's tests.

`initdb` refuses root, so as root the cluster runs as the `postgres` user, in a directory under /var/tmp that
user can write (pytest's temp dirs are 0700). fsync is off: the tests need a database, not durability.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests import reaper
from tests.procs import free_port


def _bin() -> Path:
    """$MEMTRACE_PG_BIN, else the newest Debian server binaries (/usr/lib/postgresql/<major>/bin)."""
    if os.environ.get("MEMTRACE_PG_BIN"):
        return Path(os.environ["MEMTRACE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = _bin()


def available() -> bool:
    return (BIN / "initdb").exists() and _driver()


def _driver() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


class PgCluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="memtrace-pg-", dir="/var/tmp"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._names = itertools.count()
        reaper.register(self, self.destroy)
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        self.start()

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=200")
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}_{time.monotonic_ns() % 10_000_000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        reaper.forget(self)

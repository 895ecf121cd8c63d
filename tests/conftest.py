"""Shared fixtures: a real embedded Arc store and a real Memtrace server (Granian) per test module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from memtrace.client import MemtraceClient
from tests import reaper
from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, provision


def pytest_configure(config: pytest.Config) -> None:
    reaper.install()  # SIGTERM / SIGHUP tear down like Ctrl-C: no arclite, Granian or PostgreSQL left behind


@dataclass
class Stack:
    arc: ArcLite
    server: MemtraceServer
    data_dir: Path
    tenant: Tenant

    @property
    def db(self) -> Path:
        return self.data_dir / "memtrace.db"

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"x-api-key": key or self.tenant.key}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)


@contextlib.contextmanager
def running_stack(base: Path, org: str, *, workers: int = 1, arc_extra: Sequence[str] = ()) -> Iterator[Stack]:
    """arclite + Memtrace under `base`, org `org` bound to the arclite with a read,write key; both stop after."""
    arc = ArcLite(base / "arc", extra=list(arc_extra))
    try:
        data_dir = base / "memtrace"
        data_dir.mkdir()
        tenant = provision(data_dir / "memtrace.db", org, arc.url)
        server = MemtraceServer(data_dir, workers=workers)
        try:
            yield Stack(arc, server, data_dir, tenant)
        finally:
            server.stop()
    finally:
        arc.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """arclite (deletes enabled) + Memtrace (1 worker) + org `acme` bound to it, with a read,write key."""
    with running_stack(tmp_path_factory.mktemp("stack"), "acme", arc_extra=["--delete-enabled"]) as running:
        yield running


@pytest.fixture(scope="module")
def sync_mt(stack: Stack) -> Iterator[MemtraceClient]:
    """The bundled blocking client on `stack`'s tenant key (what the framework integrations talk through)."""
    with MemtraceClient(stack.server.url, stack.tenant.key) as client:
        yield client


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """One throwaway PostgreSQL cluster for the session (skipped where PostgreSQL is not installed)."""
    from tests import pgcluster

    if not pgcluster.available():
        pytest.skip("PostgreSQL 15 or psycopg is not installed (make postgresql)")
    cluster = pgcluster.PgCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()

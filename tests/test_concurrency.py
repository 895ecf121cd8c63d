"""Exact dedup under concurrency, on 1 and 2 Granian worker processes (and on a shared PostgreSQL), and admin
changes seen live."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, provision
from tests.waiting import wait_until


@pytest.fixture(scope="module", params=[1, 2, "postgres"], ids=["1-worker", "2-workers", "postgres-2-workers"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[MemtraceServer, Tenant, str]]:
    """The server and the metadata store the admin CLI is pointed at (`--db`): a SQLite file, or with
    "postgres" a shared PostgreSQL database (metadata.url) that the same tests run against."""
    base = tmp_path_factory.mktemp(f"conc{request.param}")
    arc = ArcLite(base / "arc")
    data = base / "mt"
    data.mkdir()
    try:
        env: dict[str, str] = {}
        db = str(data / "memtrace.db")
        if request.param == "postgres":
            db = request.getfixturevalue("pg_cluster").new_database()
            env["MEMTRACE_METADATA_URL"] = db
        tenant = provision(db if request.param == "postgres" else Path(db), "conc", arc.url)
        server = MemtraceServer(data, workers=2 if request.param == "postgres" else int(request.param), env=env)
    except BaseException:
        arc.stop()
        raise
    try:
        yield server, tenant, db
    finally:
        server.stop()
        arc.stop()


async def _burst(url: str, key: str, payload: dict[str, object], n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/api/v1/memories", json=payload) for _ in range(n)))
    return [r.status_code for r in responses]


def test_concurrent_identical_posts_give_exactly_one_201(served: tuple[MemtraceServer, Tenant, str]) -> None:
    server, tenant, _ = served
    for _ in range(3):
        payload = {"agent_id": "racer", "content": f"same {uuid.uuid4().hex}"}
        codes = asyncio.run(_burst(server.url, tenant.key, payload, 50))
        assert sorted(set(codes)) == [201, 409]
        assert codes.count(201) == 1
        assert codes.count(409) == 49


def test_revocation_is_seen_within_five_seconds(served: tuple[MemtraceServer, Tenant, str]) -> None:
    server, tenant, db = served
    created = subprocess.run(
        [sys.executable, "-m", "memtrace.admin", "--db", db, "--json", "key", "create", "--org", tenant.org_id,
         "--name", f"temp-{uuid.uuid4().hex[:6]}"], capture_output=True, text=True, check=True)
    info = json.loads(created.stdout)
    headers = {"x-api-key": info["key"]}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for _ in range(4):  # reach every worker's cache
            assert client.get("/api/v1/agents").status_code == 200
        subprocess.run([sys.executable, "-m", "memtrace.admin", "--db", db, "key", "revoke", info["id"]],
                       check=True, capture_output=True)
        wait_until(lambda: {client.get("/api/v1/agents").status_code for _ in range(4)} == {401},
                   "every worker refusing the revoked key", 5, interval=0.1)


def _created(resp: httpx.Response) -> httpx.Response | None:
    return resp if resp.status_code == 201 else None


def test_new_org_and_binding_from_the_cli_are_seen_without_restart(
        served: tuple[MemtraceServer, Tenant, str]) -> None:
    server, tenant, db = served

    def admin(*args: str) -> dict[str, str]:
        done = subprocess.run([sys.executable, "-m", "memtrace.admin", "--db", db, "--json", *args],
                              capture_output=True, text=True, check=True)
        result: dict[str, str] = json.loads(done.stdout)
        return result

    org = admin("org", "create", f"late-{uuid.uuid4().hex[:6]}")
    key = admin("key", "create", "--org", org["id"], "--name", "k")["key"]
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}) as client:
        first = client.post("/api/v1/memories", json={"agent_id": "a", "content": "before binding"})
        assert first.status_code == 503
        assert "arc instance" in first.json()["error"]
        arc_url = admin("org", "show-arc", tenant.org_id)["url"]
        admin("org", "add-arc", org["id"], "--url", arc_url, "--database", "late_db")
        resp = wait_until(lambda: _created(client.post("/api/v1/memories", json={"agent_id": "a",
                                                                                  "content": "after binding"})),
                          "a write accepted after the binding", 5, interval=0.1)
        assert resp.json()["org_id"] == org["id"]

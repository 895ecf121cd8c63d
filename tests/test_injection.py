"""Injection corpus: hostile strings in every free-text field and filter are stored and returned verbatim,
matched literally, and never executed; pattern-checked fields refuse them with 400."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memtrace.memory.model import EVENT_TYPE_PATTERN, ID_PATTERN, TAG_PATTERN
from tests.procs import ArcLite, MemtraceServer, wait_until_pruned
from tests.provision import Tenant, provision

CORPUS = [
    "it's", "O''Brien", "back\\slash", "trailing\\", "100%", "under_score", "%_%", "\\%", "\\_",
    "nul\x00byte", "tab\tand\nnewline", "emoji 🧠 and ümlaut and 中文", "RTL \u202e override",
    "'; DROP TABLE events; --", "' OR '1'='1", "\" OR \"\"=\"", "1); DELETE FROM events WHERE (1=1",
    "$$ dollar $$", "/* comment */", "-- line comment", "E'\\x41'", "${jndi:ldap://x}", "%00", "\\x00",
    "ATTACH 'x.db' AS x", "COPY events TO '/tmp/x'", "SELECT * FROM read_csv('/etc/passwd')", "`backtick`",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MemtraceServer, Tenant, ArcLite]]:
    base: Path = tmp_path_factory.mktemp("inj")
    arc = ArcLite(base / "arc")
    data = base / "mt"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "inj", arc.url)
    server = MemtraceServer(data, env={"MEMTRACE_JOURNAL_RETENTION_S": "0.5"})
    try:
        yield server, tenant, arc
    finally:
        server.stop()
        arc.stop()


def test_hostile_strings_round_trip_and_match_literally(served: tuple[MemtraceServer, Tenant, ArcLite]) -> None:
    server, tenant, arc = served
    agent = f"inj_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
        payload = [{"agent_id": agent, "content": f"<{text}>", "metadata": {"k": text, text: [text]}}
                   for text in CORPUS]
        created = client.post("/api/v1/memories", json={"memories": payload})
        assert created.status_code == 201, created.text
        by_id = {m["id"]: m for m in created.json()["memories"]}
        assert len(by_id) == len(CORPUS)

        def check_all(where: str) -> None:
            listed = client.get("/api/v1/memories", params={"agent_id": agent, "limit": 1000}).json()["memories"]
            assert {m["id"]: (m["content"], m["metadata"]) for m in listed} == {
                i: (m["content"], m["metadata"]) for i, m in by_id.items()}, where
            for text in CORPUS:
                resp = client.post("/api/v1/search", json={"agent_id": agent, "content_contains": text, "limit": 100})
                assert resp.status_code == 200, (where, text, resp.text)
                found = sorted(m["content"] for m in resp.json()["results"])
                expected = sorted(f"<{t}>" for t in CORPUS if text.lower() in f"<{t}>".lower())
                assert found == expected, (where, text)

        check_all("journal")
        wait_until_pruned(server.data_dir, tenant.org_id)  # delivered and pruned locally: Arc alone answers
        check_all("arc")
    # the store is intact: nothing was dropped or deleted
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": "SELECT count(*) FROM events"},
                      headers={"x-arc-database": tenant.database})
    assert resp.json()["data"][0][0] >= len(CORPUS)


@pytest.mark.parametrize(("field", "pattern"), [
    ("agent_id", ID_PATTERN), ("session_id", ID_PATTERN), ("parent_id", ID_PATTERN),
    ("event_type", EVENT_TYPE_PATTERN),
])
def test_pattern_fields_refuse_hostile_strings(
        served: tuple[MemtraceServer, Tenant, ArcLite], field: str, pattern: str) -> None:
    server, tenant, _ = served
    hostile = [text for text in CORPUS if not re.match(pattern, text)]
    assert len(hostile) >= len(CORPUS) - 3
    with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
        for text in hostile:
            resp = client.post("/api/v1/memories", json={"agent_id": "a", "content": "x", field: text})
            assert resp.status_code == 400, (field, text, resp.text)
            assert field in resp.json()["error"]
            if field != "parent_id":  # parent_id is not a filter
                listed = client.get("/api/v1/memories", params={field: text})
                assert listed.status_code == 400, (field, text, listed.text)
                searched = client.post("/api/v1/search", json={f"{field}s" if field == "event_type" else field:
                                                                [text] if field == "event_type" else text})
                assert searched.status_code == 400, (field, text, searched.text)


def test_hostile_tags_are_refused(served: tuple[MemtraceServer, Tenant, ArcLite]) -> None:
    server, tenant, _ = served
    with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}) as client:
        for text in CORPUS:
            if re.match(TAG_PATTERN, text):
                continue
            assert client.post("/api/v1/memories", json={"agent_id": "a", "content": "x", "tags": [text]}
                               ).status_code == 400, text
            assert client.post("/api/v1/search", json={"tags": [text]}).status_code == 400, text

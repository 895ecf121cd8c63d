"""memtrace.client against a real Memtrace + embedded Arc (the `stack` fixture), plus its retry logic against a
small aiohttp server of our own that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from aiohttp import web

from memtrace.client import (
    AsyncMemtraceClient,
    AuthenticationError,
    ConflictError,
    MemtraceClient,
    NewMemory,
    NoArcInstanceError,
    NotFoundError,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    SearchQuery,
    ServerUnreachable,
    Skipped,
    ValidationError,
)
from tests.conftest import Stack
from tests.provision import add_key, provision


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def mt(stack: Stack) -> AsyncIterator[AsyncMemtraceClient]:
    async with AsyncMemtraceClient(stack.server.url, stack.tenant.key) as client:
        yield client


async def test_add_get_list_memory(mt: AsyncMemtraceClient, stack: Stack) -> None:
    agent, session = uid("agent"), uid("sess")
    new = NewMemory(agent_id=agent, content=f"crawled page {uuid.uuid4()}", memory_type="episodic",
                    event_type="page_crawled", session_id=session, metadata={"url": "https://example.com"},
                    tags=["web", "crawl"], importance=0.7)
    mem = await mt.add_memory(new)
    assert mem.id.startswith("mem_")
    assert (mem.agent_id, mem.session_id, mem.memory_type, mem.event_type) == (agent, session, "episodic",
                                                                              "page_crawled")
    assert (mem.content, mem.metadata, sorted(mem.tags), mem.importance) == (new.content, new.metadata,
                                                                           ["crawl", "web"], 0.7)
    assert mem.org_id == stack.tenant.org_id
    assert mem.time.tzinfo is not None

    assert await mt.get_memory(mem.id) == mem
    listed = await mt.list_memories(agent_id=agent)
    assert [m.id for m in listed.memories] == [mem.id]
    assert listed.count == 1 and not listed.has_more
    assert (await mt.list_memories(agent_id=agent, memory_type="decision")).count == 0

    second = await mt.remember(agent, f"second {uuid.uuid4()}", session_id=session, tags=["web"])
    assert [m.id for m in (await mt.list_memories(agent_id=agent, tags=["web", "crawl"])).memories] == [mem.id]
    assert {m.id for m in (await mt.list_memories(agent_id=agent, tags=["web"])).memories} == {mem.id, second.id}
    assert (await mt.list_memories(agent_id=agent, tags=["we"])).count == 0
    assert (await mt.list_memories(session_id=session)).count == 2
    page = await mt.list_memories(agent_id=agent, limit=1, order="asc")
    assert [m.id for m in page.memories] == [mem.id] and page.has_more
    page2 = await mt.list_memories(agent_id=agent, limit=1, offset=1, order="asc")
    assert [m.id for m in page2.memories] == [second.id] and not page2.has_more

    with pytest.raises(ConflictError) as conflict:
        await mt.add_memory(new)
    assert conflict.value.status == 409 and "duplicate" in conflict.value.message
    assert conflict.value.memory_id == mem.id  # what it duplicates: a retry after a lost answer is a success
    with pytest.raises(NotFoundError) as missing:
        await mt.get_memory("mem_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.value.status == 404
    with pytest.raises(ValidationError) as invalid:
        await mt.remember(agent, "too important", importance=2)
    assert invalid.value.status == 400 and "importance" in invalid.value.message
    with pytest.raises(ValidationError):
        await mt.list_memories(agent_id=agent, since="yesterday")


async def test_batch_counts_duplicates(mt: AsyncMemtraceClient) -> None:
    agent = uid("agent")
    first = await mt.remember(agent, "already stored")
    items = [NewMemory(agent_id=agent, content=f"batch item {i}", tags=["batch"]) for i in range(3)]
    result = await mt.add_memories([*items, NewMemory(agent_id=agent, content="already stored")])
    assert (result.count, result.duplicates) == (3, 1)
    assert result.skipped == [Skipped(index=3, memory_id=first.id)]
    assert sorted(m.content for m in result.memories) == ["batch item 0", "batch item 1", "batch item 2"]
    listed = await mt.list_memories(agent_id=agent, tags=["batch"])
    assert {m.id for m in listed.memories} == {m.id for m in result.memories}
    assert first.id not in {m.id for m in listed.memories}
    with pytest.raises(ValidationError) as invalid:
        await mt.add_memories([NewMemory(agent_id=agent, content="ok"), NewMemory(agent_id=agent, content="")])
    assert "1" in invalid.value.message


async def test_search(mt: AsyncMemtraceClient) -> None:
    agent = uid("agent")
    low = await mt.remember(agent, "discount is 50% today", importance=0.2, tags=["pricing"])
    high = await mt.decide(agent, "Use 50_percent rule", "it is simpler", importance=0.9)
    await mt.remember(agent, "discount is 500 today")

    found = await mt.search(agent_id=agent, content_contains="50%")
    assert [m.id for m in found.results] == [low.id] and found.count == 1
    assert [m.id for m in (await mt.search(agent_id=agent, content_contains="50_p")).results] == [high.id]
    assert [m.id for m in (await mt.search(agent_id=agent, min_importance=0.6)).results] == [high.id]
    query = SearchQuery(agent_id=agent, memory_types=["decision"])
    assert [m.id for m in (await mt.search(query)).results] == [high.id]
    assert [m.id for m in (await mt.search(query, memory_types=["episodic"], tags=["pricing"])).results] == [low.id]
    assert (await mt.search(agent_id=agent, since="1h", limit=10)).count == 3


async def test_agents(mt: AsyncMemtraceClient, stack: Stack) -> None:
    name = uid("crawler")
    agent = await mt.register_agent(name, "crawls the web", {"depth": 2})
    assert agent.id.startswith("agent_") and agent.org_id == stack.tenant.org_id
    assert (agent.name, agent.description, agent.config) == (name, "crawls the web", {"depth": 2})
    with pytest.raises(ConflictError):
        await mt.register_agent(name)
    newer = await mt.register_agent(uid("writer"))
    listed = await mt.list_agents()
    ids = [a.id for a in listed.agents]
    assert listed.count == len(ids) and ids.index(newer.id) < ids.index(agent.id)
    assert await mt.get_agent(agent.id) == await mt.get_agent(name)

    await mt.remember(name, "did a thing")
    await mt.remember(name, "it failed", event_type="error")
    await mt.decide(name, "stop", "too many errors")
    await mt.create_session(name)
    memories = await mt.agent_memories(name)
    assert sorted(m.content for m in memories.memories) == ["did a thing", "it failed", "stop"]
    assert await mt.agent_memories(agent.id) == memories
    assert (await mt.agent_memories(name, memory_type="decision")).count == 1
    stats = await mt.agent_stats(name)
    assert (stats.memory_count, stats.memories_24h, stats.errors_24h) == (3, 3, 1)
    assert (stats.session_count, stats.active_sessions) == (1, 1)
    assert stats.memory_types == {"episodic": 2, "decision": 1}
    assert stats.last_active_at is not None

    await mt.delete_agent(agent.id)
    with pytest.raises(NotFoundError):
        await mt.get_agent(name)
    with pytest.raises(NotFoundError):
        await mt.delete_agent(name)


async def test_sessions_and_context(mt: AsyncMemtraceClient) -> None:
    agent = uid("agent")
    session = await mt.create_session(agent, {"task": "crawl"})
    assert session.id.startswith("sess_") and session.status == "active" and session.closed_at is None
    assert (session.agent_id, session.metadata) == (agent, {"task": "crawl"})
    assert (await mt.get_agent(agent)).name == agent  # registered on the fly
    other = await mt.create_session(agent)
    listed = await mt.list_sessions(agent)
    assert [s.id for s in listed.sessions] == [other.id, session.id] and listed.count == 2
    assert session.id in {s.id for s in (await mt.list_sessions()).sessions}
    assert await mt.get_session(session.id) == session

    await mt.remember(agent, "Crawled https://example.com\nfound 3 products", session_id=session.id,
                      event_type="page_crawled")
    await mt.decide(agent, "Skip pagination", "only 2 pages deep", session_id=session.id)
    await mt.remember(agent, "Rate limited", session_id=session.id, event_type="error", memory_type="decision")
    await mt.remember(agent, "elsewhere", session_id=other.id)
    mems = await mt.session_memories(session.id)
    assert mems.count == 3 and {m.session_id for m in mems.memories} == {session.id}
    assert (await mt.session_memories(session.id, event_type="error")).count == 1

    ctx = await mt.session_context(session.id)
    assert ctx.session_id == session.id and ctx.memory_count == 3
    lines = ctx.context.splitlines()
    assert lines[0] == f"## Session Context ({session.id})"
    assert "### Recent Actions (1)" in lines and "### Decisions Made (1)" in lines and "### Errors (1)" in lines
    assert any("page_crawled: Crawled https://example.com found 3 products" in line for line in lines)
    assert any("decision: Skip pagination" in line and "(why: only 2 pages deep)" in line for line in lines)
    only_decisions = await mt.context(session.id, include_types=["decision"], max_tokens=2000)
    assert "### Recent Actions" not in only_decisions and "### Decisions Made (1)" in only_decisions

    updated = await mt.update_session(session.id, metadata={"task": "crawl", "pages": 2})
    assert updated.metadata == {"task": "crawl", "pages": 2} and updated.status == "active"
    closed = await mt.close_session(session.id)
    assert closed.status == "closed" and closed.closed_at is not None
    with pytest.raises(NotFoundError):
        await mt.close_session("sess_doesnotexist")
    with pytest.raises(NotFoundError):
        await mt.get_session("sess_doesnotexist")
    empty = await mt.session_context("sess_doesnotexist")
    assert empty.memory_count == 0 and empty.context.startswith("## Session Context (sess_doesnotexist)")


async def test_conveniences_and_health(mt: AsyncMemtraceClient) -> None:
    agent = uid("agent")
    mem = await mt.remember(agent, "User prefers dark mode", tags=["prefs"])
    assert (mem.memory_type, mem.event_type) == ("episodic", "general")
    decision = await mt.decide(agent, "Use dark theme", "user asked")
    assert (decision.memory_type, decision.event_type, decision.metadata) == ("decision", "decision",
                                                                              {"reasoning": "user asked"})
    recalled = await mt.recall(agent, since="1h")
    assert [m.id for m in recalled.memories] == [decision.id, mem.id]
    assert [m.id for m in (await mt.recall(agent, memory_type="episodic")).memories] == [mem.id]
    health = await mt.health()
    assert health.status == "ok"
    assert (await mt.ready()).ready


async def test_forgetting(mt: AsyncMemtraceClient, stack: Stack) -> None:
    agent = uid("forget")
    kept = await mt.remember(agent, "keep me", tags=["keep"])
    doomed = await mt.remember(agent, "forget me", tags=["gdpr"])
    assert await mt.delete_memory(doomed.id) is True
    with pytest.raises(NotFoundError):
        await mt.get_memory(doomed.id)
    with pytest.raises(NotFoundError):
        await mt.delete_memory(doomed.id)
    dry = await mt.forget(agent_id=agent, tags=["keep"], dry_run=True)
    assert (dry.matched, dry.deleted, dry.dry_run, dry.pending) == (1, 0, True, False)
    with pytest.raises(ValidationError):
        await mt.forget()
    assert (await mt.get_agent(agent)).name == agent  # its memories registered it
    assert await mt.erase_agent(agent) is True
    with pytest.raises(NotFoundError):
        await mt.get_memory(kept.id)
    with pytest.raises(NotFoundError):
        await mt.get_agent(agent)
    with MemtraceClient(stack.server.url, stack.tenant.key) as sync:
        memory = sync.remember(agent, "sync forget")
        assert sync.forget(agent_id=agent).deleted == 1
        with pytest.raises(NotFoundError):
            sync.delete_memory(memory.id)
        assert sync.erase_agent(agent) is True


async def test_auth_permission_and_no_arc(stack: Stack) -> None:
    async with AsyncMemtraceClient(stack.server.url, "mtk_not_a_real_key") as bad:
        with pytest.raises(AuthenticationError) as unauthorized:
            await bad.list_agents()
        assert unauthorized.value.status == 401 and unauthorized.value.status_code == 401
        assert (await bad.health()).status == "ok"  # public route
    async with AsyncMemtraceClient(stack.server.url, "") as keyless:
        with pytest.raises(AuthenticationError, match="missing"):
            await keyless.recall("agent_1")

    read_key = await asyncio.to_thread(add_key, stack.db, stack.tenant.org_id, uid("reader"), "read")
    async with AsyncMemtraceClient(stack.server.url, read_key) as reader:
        with pytest.raises(PermissionDenied) as denied:
            await reader.remember("agent_1", "not allowed")
        assert denied.value.status == 403
        with pytest.raises(PermissionDenied):
            await reader.register_agent(uid("agent"))
        assert (await reader.recall("agent_1")).count == 0  # reading is allowed

    unbound = await asyncio.to_thread(provision, stack.db, uid("noarc"), None)
    async with AsyncMemtraceClient(stack.server.url, unbound.key) as client:
        with pytest.raises(NoArcInstanceError) as no_arc:
            await client.remember("agent_1", "nowhere to go")
        assert no_arc.value.status == 503 and "arc instance" in no_arc.value.message
        assert no_arc.value.hint is not None and "add-arc" in no_arc.value.hint
        with pytest.raises(NoArcInstanceError):
            await client.search(agent_id="agent_1")
        agent = await client.register_agent("still_works")  # agents and sessions live in SQLite
        assert (await client.create_session(agent.id)).agent_id == agent.id


def test_sync_client(stack: Stack) -> None:
    agent = uid("agent")
    with MemtraceClient(stack.server.url, stack.tenant.key) as mt:
        registered = mt.register_agent(agent, "sync")
        mem = mt.remember(agent, "from blocking code", importance=0.9)
        assert mt.get_memory(mem.id) == mem
        assert [m.id for m in mt.recall(agent).memories] == [mem.id]
        assert mt.search(agent_id=agent, content_contains="BLOCKING").count == 1
        session = mt.create_session(agent)
        mt.decide(agent, "ship it", "tests pass", session_id=session.id)
        assert "ship it" in mt.context(session.id)
        assert mt.agent_stats(agent).memory_count == 2
        assert mt.close_session(session.id).status == "closed"
        with pytest.raises(ConflictError):
            mt.remember(agent, "from blocking code")
        mt.delete_agent(registered.id)
        with pytest.raises(NotFoundError):
            mt.get_agent(registered.id)
    with pytest.raises(RuntimeError):
        mt.health()


# --- retry behaviour, against a local server that answers what we tell it to --------------------------------

MEMORY_JSON: dict[str, object] = {
    "id": "mem_1", "time": "2026-02-07T20:15:00.000000Z", "org_id": "org_1", "agent_id": "a", "session_id": None,
    "memory_type": "episodic", "event_type": "general", "content": "hi", "metadata": {}, "tags": [],
    "dedup_key": "k", "importance": 0.5, "parent_id": None, "an_extra_field": True,
}


class Scripted:
    """Answers each request with the next (status, headers, body) of a script, repeating the last one."""

    def __init__(self, script: list[tuple[int, dict[str, str], object]]) -> None:
        self.script = script
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        status, headers, body = self.script[min(self.hits, len(self.script) - 1)]
        self.hits += 1
        return web.Response(status=status, headers=headers, body=msgspec.json.encode(body),
                            content_type="application/json")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    script = Scripted([])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield script, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_retry_honours_retry_after(scripted: tuple[Scripted, str], caplog: pytest.LogCaptureFixture) -> None:
    script, url = scripted
    busy = {"error": "buffer full, retry later"}
    script.script = [(429, {"Retry-After": "0.05"}, busy), (503, {"Retry-After": "0.1"}, busy), (201, {}, MEMORY_JSON)]
    caplog.set_level(logging.WARNING, logger="memtrace.client")
    async with AsyncMemtraceClient(url, "mtk_x", retry=RetryPolicy(attempts=3, max_delay=5)) as mt:
        mem = await mt.remember("a", "hi")
    assert mem.id == "mem_1" and script.hits == 3
    retries = [(r.__dict__["retry_status"], r.__dict__["retry_delay"]) for r in caplog.records]
    assert retries == [(429, 0.05), (503, 0.1)]

    script.hits, caplog.records[:] = 0, []
    script.script = [(429, {"Retry-After": "3600"}, busy)]
    async with AsyncMemtraceClient(url, "mtk_x", retry=RetryPolicy(attempts=2, max_delay=0.05)) as mt:
        with pytest.raises(RateLimited) as limited:
            await mt.remember("a", "hi")
    assert limited.value.retry_after == 3600 and limited.value.message == busy["error"]
    assert script.hits == 2 and [r.__dict__["retry_delay"] for r in caplog.records] == [0.05]  # capped


async def test_no_retry_on_final_answers(scripted: tuple[Scripted, str]) -> None:
    script, url = scripted
    script.script = [(503, {}, {"error": "no arc instance configured for this org", "hint": "run: add-arc"})]
    async with AsyncMemtraceClient(url, "mtk_x") as mt:
        with pytest.raises(NoArcInstanceError):
            await mt.recall("a")
        assert script.hits == 1
        script.hits, script.script = 0, [(413, {}, {"error": "body too large"})]
        with pytest.raises(ValidationError) as too_large:
            await mt.add_memories([NewMemory(agent_id="a", content="x")])
        assert script.hits == 1 and too_large.value.status == 413


@pytest.fixture
def dead_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connections are refused


async def test_unreachable_server(dead_url: str) -> None:
    async with AsyncMemtraceClient(dead_url, "mtk_x", retry=RetryPolicy(attempts=2, backoff=0.01)) as mt:
        with pytest.raises(ServerUnreachable) as unreachable:
            await mt.remember("a", "hi")
    assert unreachable.value.status == 0 and dead_url in unreachable.value.message

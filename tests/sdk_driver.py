"""Drives the published `memtrace-sdk` 0.2.0, unchanged, against a running Memtrace.

Runs in its own virtualenv (the SDK imports as `memtrace` too) with `python -I`, so our package is never
on its path. Every method of the sync and async clients is called and its returned values are checked.
Prints one JSON line `{"checks": N, "failures": [...]}` and exits 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import memtrace
from memtrace import (
    AddMemoryRequest,
    AsyncMemtrace,
    AuthenticationError,
    ConflictError,
    ContextOptions,
    CreateSessionRequest,
    ListOptions,
    Memtrace,
    MemtraceError,
    NoArcInstanceError,
    NotFoundError,
    RegisterAgentRequest,
    SearchQuery,
)

checks = 0
failures: list[str] = []


def check(condition: bool, what: str) -> None:
    global checks
    checks += 1
    if not condition:
        failures.append(what)


def raises(exc_type: type[BaseException], fn: Any, what: str) -> None:
    try:
        fn()
    except exc_type:
        check(True, what)
    except Exception as exc:  # report the wrong exception as a failure
        check(False, f"{what}: raised {type(exc).__name__}: {exc}")
    else:
        check(False, f"{what}: did not raise")


def sync_suite(url: str, key: str, noarc_key: str) -> None:
    tag = uuid.uuid4().hex[:8]
    agent = f"sdk_agent_{tag}"
    with Memtrace(url, key) as client:
        registered = client.register_agent(RegisterAgentRequest(name=agent, description="sdk test", config={"m": 1}))
        check(registered.name == agent and registered.id.startswith("agent_"), "register_agent")
        raises(ConflictError, lambda: client.register_agent(RegisterAgentRequest(name=agent)), "duplicate agent")
        check(client.get_agent(agent).id == registered.id, "get_agent by name")
        check(client.get_agent(registered.id).name == agent, "get_agent by id")
        check(any(a.id == registered.id for a in client.list_agents().agents), "list_agents")
        raises(NotFoundError, lambda: client.get_agent(f"missing_{tag}"), "get unknown agent")

        session = client.create_session(CreateSessionRequest(agent_id=agent, metadata={"task": "sdk"}))
        check(session.status == "active" and session.agent_id == agent, "create_session")
        check(client.get_session(session.id).id == session.id, "get_session")
        check([s.id for s in client.list_sessions(agent).sessions] == [session.id], "list_sessions by agent")
        raises(NotFoundError, lambda: client.get_session("sess_doesnotexist"), "get unknown session")

        m1 = client.remember(agent, f"User prefers dark mode {tag}")
        check(m1.agent_id == agent and m1.memory_type == "episodic", "remember")
        raises(ConflictError, lambda: client.remember(agent, f"User prefers dark mode {tag}"), "remember duplicate")
        d1 = client.decide(agent, f"Skip pagination {tag}", "only 2 pages deep")
        check(d1.memory_type == "decision" and (d1.metadata or {}).get("reasoning") == "only 2 pages deep", "decide")
        m2 = client.add_memory(AddMemoryRequest(
            agent_id=agent, session_id=session.id, memory_type="episodic", event_type="page_crawled",
            content=f"Crawled example.com {tag}", tags=["crawl", tag], importance=0.8, metadata={"n": 3},
        ))
        check(m2.session_id == session.id and m2.tags == ["crawl", tag] and m2.importance == 0.8, "add_memory")
        batch = client.add_memories([
            AddMemoryRequest(agent_id=agent, session_id=session.id, memory_type="episodic", event_type="error",
                             content=f"Rate limited {tag}"),
            AddMemoryRequest(agent_id=agent, session_id=session.id, memory_type="entity", event_type="fact",
                             content=f"example.com has 3 products {tag}"),
        ])
        check(len(batch) == 2, "add_memories")

        recalled = client.recall(agent)
        check(recalled.count == 5 and {m.content for m in recalled.memories} >= {m1.content, d1.content},
              f"recall shows writes immediately (count={recalled.count})")
        listed = client.list_memories(ListOptions(agent_id=agent, memory_type="decision"))
        check([m.content for m in listed.memories] == [d1.content], "list_memories filter")
        paged = client.list_memories(ListOptions(agent_id=agent, limit=2))
        check(paged.count == 2 and paged.has_more is True, "list_memories has_more")
        tagged = client.list_memories(ListOptions(agent_id=agent, tags=f"crawl,{tag}"))
        check([m.content for m in tagged.memories] == [m2.content], "list_memories tags")
        found = client.search_memories(SearchQuery(agent_id=agent, content_contains="RATE LIMITED"))
        check(found.count == 1 and found.results[0].event_type == "error", "search_memories")
        check(isinstance(found.query_time_ms, int), "search query_time_ms")

        agent_memories = client.get_agent_memories(agent, ListOptions(limit=10))
        check(agent_memories.count == 5, "get_agent_memories")
        session_memories = client.get_session_memories(session.id)
        check(session_memories.count == 3, "get_session_memories")
        stats = client.get_agent_stats(agent)
        check(stats.memory_count == 5 and stats.errors_24h == 1 and stats.memory_types.get("decision") == 1,
              f"get_agent_stats ({stats})")
        check(stats.session_count == 1 and stats.active_sessions == 1, "stats sessions")

        context = client.get_session_context(session.id, ContextOptions(max_tokens=2000))
        check(context.memory_count == 3 and f"Crawled example.com {tag}" in context.context, "get_session_context")
        check(context.context.startswith(f"## Session Context ({session.id})"), "context header")
        only = client.get_session_context(session.id, ContextOptions(include_types=["entity"]))
        check(only.memory_count == 1 and "### Known Entities (1)" in only.context, "context include_types")

        closed = client.close_session(session.id)
        check(closed.status == "closed" and closed.closed_at is not None, "close_session")
        client.delete_agent(agent)
        raises(NotFoundError, lambda: client.get_agent(agent), "deleted agent is gone")
        raises(NotFoundError, lambda: client.delete_agent(agent), "delete unknown agent")

    with Memtrace(url, "mtk_" + "x" * 43) as bad:
        raises(AuthenticationError, lambda: bad.list_agents(), "bad key")
    with Memtrace(url, noarc_key) as unbound:
        raises(NoArcInstanceError, lambda: unbound.remember("a1", "no arc"), "org without arc")
        check(isinstance(unbound.list_agents().count, int), "org without arc still lists agents")


async def async_suite(url: str, key: str) -> None:
    tag = uuid.uuid4().hex[:8]
    agent = f"sdk_async_{tag}"
    async with AsyncMemtrace(url, key) as client:
        registered = await client.register_agent(RegisterAgentRequest(name=agent))
        check((await client.get_agent(agent)).id == registered.id, "async get_agent")
        check(any(a.name == agent for a in (await client.list_agents()).agents), "async list_agents")
        session = await client.create_session(CreateSessionRequest(agent_id=agent))
        check((await client.get_session(session.id)).status == "active", "async get_session")
        check(len((await client.list_sessions(agent)).sessions) == 1, "async list_sessions")
        m = await client.remember(agent, f"async memory {tag}")
        try:
            await client.remember(agent, f"async memory {tag}")
            check(False, "async duplicate did not raise")
        except ConflictError:
            check(True, "async duplicate")
        await client.decide(agent, f"async decision {tag}", "because")
        await client.add_memory(AddMemoryRequest(agent_id=agent, session_id=session.id, memory_type="session",
                                                 event_type="state", content=f"state {tag}"))
        created = await client.add_memories([
            AddMemoryRequest(agent_id=agent, memory_type="episodic", event_type="general", content=f"b{i} {tag}")
            for i in range(3)
        ])
        check(len(created) == 3, "async add_memories")
        recalled = await client.recall(agent, since="1h")
        check(recalled.count == 6 and recalled.memories[-1].content == m.content, "async recall order")
        oldest = await client.list_memories(ListOptions(agent_id=agent, order="asc", limit=1))
        check(oldest.memories[0].content == m.content and oldest.has_more, "async list asc")
        found = await client.search_memories(SearchQuery(agent_id=agent, memory_types=["decision"]))
        check(found.count == 1, "async search")
        check((await client.get_agent_memories(agent)).count == 6, "async get_agent_memories")
        check((await client.get_session_memories(session.id)).count == 1, "async get_session_memories")
        stats = await client.get_agent_stats(agent)
        check(stats.memory_count == 6 and stats.memory_types.get("session") == 1, "async stats")
        ctx = await client.get_session_context(session.id)
        check("### Session State (1)" in ctx.context, "async context")
        check((await client.close_session(session.id)).status == "closed", "async close_session")
        await client.delete_agent(agent)
        try:
            await client.get_agent(agent)
            check(False, "async deleted agent still there")
        except NotFoundError:
            check(True, "async delete_agent")


def main() -> int:
    url, key, noarc_key = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.monotonic()
    check(memtrace.__version__ == "0.2.0", f"the published SDK is the one under test ({memtrace.__file__})")
    try:
        sync_suite(url, key, noarc_key)
        asyncio.run(async_suite(url, key))
    except MemtraceError as exc:
        failures.append(f"unexpected {type(exc).__name__} {exc.status_code}: {exc.message}")
    print(json.dumps({"checks": checks, "failures": failures, "seconds": round(time.monotonic() - started, 2)}))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

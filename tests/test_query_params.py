"""Unknown query parameters are refused on every route (a misspelt filter must never widen a read), and every
parameter a known client sends stays accepted: the original TypeScript and Go SDKs, the published Python SDK
`memtrace-sdk` 0.2.0, the bundled client (also behind the MCP server and the OpenAI Agents integration), the
Vercel AI SDK integration's client, and the web console. Against the real server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from memtrace.api.openapi import accepted_queries
from memtrace.client import AsyncMemtraceClient
from tests.conftest import Stack

MEMORY_ID = "mem_01JZZZZZZZZZZZZZZZZZZZZZZZ"
PATH_VALUES = {"{agent}": "agent_q", "{session_id}": "sess_q", "{memory_id}": MEMORY_ID}
LIST = "agent_id, session_id, memory_type, event_type, tags, since, until, limit, offset, order"

ALL_LIST = {"agent_id": "agent_q", "session_id": "sess_q", "memory_type": "episodic", "event_type": "general",
            "tags": "a,b", "since": "24h", "until": "2099-01-01T00:00:00Z", "limit": "100", "offset": "1",
            "order": "desc"}
NO_AGENT = {k: v for k, v in ALL_LIST.items() if k != "agent_id"}
NO_SESSION = {k: v for k, v in ALL_LIST.items() if k != "session_id"}

# (who sends it, path, the parameters): each must answer 200.
CLIENT_QUERIES: list[tuple[str, str, dict[str, str]]] = [
    # github.com/Basekick-Labs/memtrace sdks/typescript/src/client.ts and pkg/sdk/client.go (ListMemories, Recall,
    # listSessions); both send each ListOptions field when set.
    ("typescript+go listMemories", "/api/v1/memories", ALL_LIST),
    ("typescript+go recall", "/api/v1/memories", {"agent_id": "agent_q", "since": "24h", "order": "desc",
                                                   "limit": "100"}),
    ("typescript listSessions", "/api/v1/sessions", {"agent_id": "agent_q"}),
    # integrations/vercel-ai/src/client.ts listMemories: every ListQuery field that is set
    ("vercel-ai listMemories", "/api/v1/memories", ALL_LIST),
    # memtrace-sdk 0.2.0: ListOptions.model_dump(exclude_none=True); agent/session routes pop their own id
    ("memtrace-sdk list_memories", "/api/v1/memories", ALL_LIST),
    ("memtrace-sdk agent memories", "/api/v1/agents/agent_q/memories", NO_AGENT),
    ("memtrace-sdk session memories", "/api/v1/sessions/sess_q/memories", NO_SESSION),
    ("memtrace-sdk list_sessions", "/api/v1/sessions", {"agent_id": "agent_q"}),
    # the console (memtrace/api/static/console/*.js)
    ("console memories", "/api/v1/memories", {"agent_id": "agent_q", "session_id": "sess_q",
                                              "memory_type": "decision", "tags": "a", "since": "7d",
                                              "until": "2099-01-01", "limit": "50", "offset": "50"}),
    ("console agent", "/api/v1/agents/agent_q/memories", {"since": "24h", "limit": "20"}),
    ("console agent timeline", "/api/v1/agents/agent_q/timeline", {"since": "24h", "bucket": "1h"}),
    ("console sessions", "/api/v1/sessions", {"agent_id": "agent_q"}),
    ("console session memories", "/api/v1/sessions/sess_q/memories", {"limit": "50"}),
    ("console session timeline", "/api/v1/sessions/sess_q/timeline", {"since": "7d", "bucket": "1h"}),
    # also accepted: a route's own id repeated in the query (ignored, as before)
    ("agent memories with agent_id", "/api/v1/agents/agent_q/memories", {"agent_id": "other"}),
    ("session memories with session_id", "/api/v1/sessions/sess_q/memories", {"session_id": "other"}),
]


def test_a_misspelt_filter_is_refused_naming_it(api: httpx.Client) -> None:
    resp = api.get("/api/v1/memories", params={"agnet_id": "x"})
    assert resp.status_code == 400
    assert resp.json() == {"error": f"unknown query parameter 'agnet_id'; this route accepts {LIST}"}
    several = api.get("/api/v1/memories?agent_id=a&agnet_id=x&limt=5&agnet_id=y&empty=")
    assert several.json() == {"error": f"unknown query parameters 'agnet_id', 'limt', 'empty'; this route accepts "
                                       f"{LIST}"}
    none = api.get("/api/v1/agents/agent_q/stats", params={"verbose": "1"})
    assert (none.status_code, none.json()) == (400, {"error": "unknown query parameter 'verbose'; this route takes "
                                                              "no query parameters"})


@pytest.mark.parametrize(("method", "path"), sorted(accepted_queries()))
def test_every_route_refuses_an_unknown_parameter(stack: Stack, method: str, path: str) -> None:
    """Before anything else, even before the key is checked: a request naming an unknown parameter cannot mean
    what its sender thinks."""
    target = path
    for placeholder, value in PATH_VALUES.items():
        target = target.replace(placeholder, value)
    accepted = accepted_queries()[(method, path)]
    expected = ("unknown query parameter 'agnet_id'; "
                + (f"this route accepts {', '.join(accepted)}" if accepted else "this route takes no query parameters"))
    for headers in ({"x-api-key": stack.tenant.key}, {}):
        resp = httpx.request(method, f"{stack.server.url}{target}", params={"agnet_id": "x"}, headers=headers)
        assert (resp.status_code, resp.json()) == (400, {"error": expected}), (method, target, headers)


@pytest.mark.parametrize(("who", "path", "params"), CLIENT_QUERIES, ids=[c[0] for c in CLIENT_QUERIES])
def test_every_parameter_a_client_sends_is_accepted(api: httpx.Client, who: str, path: str,
                                                    params: dict[str, str]) -> None:
    resp = api.get(path, params=params)
    assert resp.status_code == 200, (who, resp.text)


async def test_the_bundled_client_sends_only_accepted_parameters(stack: Stack) -> None:
    """Every query-taking method of the bundled client, with every one of its parameters set."""
    agent, session = f"q_{uuid.uuid4().hex[:8]}", f"s_{uuid.uuid4().hex[:8]}"
    filters = {"memory_type": "episodic", "event_type": "general", "tags": ["a", "b"], "until": "2099-01-01",
               "limit": 10, "offset": 1, "order": "asc"}
    async with AsyncMemtraceClient(stack.server.url, stack.tenant.key) as mt:
        await mt.remember(agent, "query parameters", session_id=session)
        await mt.list_memories(agent_id=agent, session_id=session, since="1h", **filters)  # type: ignore[arg-type]
        await mt.agent_memories(agent, session_id=session, since="1h", **filters)  # type: ignore[arg-type]
        await mt.session_memories(session, since="1h", **filters)  # type: ignore[arg-type]
        until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        await mt.agent_timeline(agent, since="1d", until=until, bucket="1h")
        await mt.session_timeline(session, since="1d", until=until, bucket="1h")
        await mt.list_sessions(agent_id=agent)
        await mt.recall(agent, since="1h", session_id=session, memory_type="episodic")
        assert await mt.erase_agent(agent) in (True, False)

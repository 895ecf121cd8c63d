"""`python -m memtrace.mcp` driven by the official MCP SDK client, over stdio and Streamable HTTP, against a real
Memtrace (the `stack` fixture); what the tools write is read back through the HTTP API with plain httpx."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from memtrace.mcp import TOOL_NAMES
from tests.conftest import Stack
from tests.procs import REPO, Proc, free_port

SCHEMA_PARAMS = {
    "memtrace_remember": ({"agent_id", "content"}, {"memory_type", "event_type", "session_id", "tags", "importance",
                                                   "metadata"}),
    "memtrace_recall": (set(), {"query", "agent_id", "since", "session_id", "memory_type", "limit", "max_tokens"}),
    "memtrace_search": (set(), {"query", "agent_id", "content_contains", "memory_types", "tags", "since",
                                "min_importance", "limit"}),
    "memtrace_decide": ({"agent_id", "decision", "reasoning"}, set()),
    "memtrace_session_create": ({"agent_id"}, {"metadata"}),
    "memtrace_session_context": ({"session_id"}, {"since", "include_types", "max_tokens"}),
    "memtrace_agent_register": ({"name"}, {"description"}),
    "memtrace_forget": (set(), {"agent_id", "session_id", "memory_types", "tags", "since", "until", "confirm"}),
}


def mcp_env(url: str, key: str | None) -> dict[str, str]:
    env = {"MEMTRACE_URL": url, "PYTHONUNBUFFERED": "1"}
    if key is not None:
        env["MEMTRACE_API_KEY"] = key
    return env


@asynccontextmanager
async def over_stdio(env: dict[str, str], errlog: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "memtrace.mcp"], env=env, cwd=REPO)
    with errlog.open("a") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as session:
            yield session


@asynccontextmanager
async def over_http(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        yield session


def text(result: CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    return result.content[0].text


async def call(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return text(result)


async def call_error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error
    return text(result)


async def exercise(session: ClientSession, api: httpx.Client) -> None:
    """Initialize, list the tools, call each one, and check through the HTTP API what it wrote."""
    init = await session.initialize()
    assert init.server_info.name == "memtrace"
    assert init.instructions is not None and "since" in init.instructions and "temporal" in init.instructions

    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES) == set(SCHEMA_PARAMS)
    for name, (required, optional) in SCHEMA_PARAMS.items():
        schema = tools[name].input_schema
        assert schema["type"] == "object" and set(schema.get("required", [])) == required, name
        assert set(schema["properties"]) == required | optional, name
        assert tools[name].description
    remember_props = tools["memtrace_remember"].input_schema["properties"]
    assert remember_props["memory_type"]["enum"] == ["episodic", "session", "decision", "entity"]
    assert tools["memtrace_recall"].input_schema["properties"]["since"]["default"] is None  # 24h without a query
    assert tools["memtrace_search"].input_schema["properties"]["limit"]["default"] == 50

    name = f"mcp_agent_{uuid.uuid4().hex[:8]}"
    agent = json.loads(await call(session, "memtrace_agent_register", name=name, description="via MCP"))
    assert api.get(f"/api/v1/agents/{name}").json()["id"] == agent["id"]
    assert "409" in await call_error(session, "memtrace_agent_register", name=name)

    sess = json.loads(await call(session, "memtrace_session_create", agent_id=name, metadata={"task": "demo"}))
    stored_session = api.get(f"/api/v1/sessions/{sess['id']}").json()
    assert (stored_session["agent_id"], stored_session["metadata"]) == (name, {"task": "demo"})

    memory = json.loads(await call(session, "memtrace_remember", agent_id=name, content="Crawled example.com",
                                   event_type="page_crawled", session_id=sess["id"], tags=["web"], importance=0.8,
                                   metadata={"pages": 3}))
    stored = api.get(f"/api/v1/memories/{memory['id']}").json()
    assert (stored["content"], stored["event_type"], stored["session_id"]) == ("Crawled example.com",
                                                                             "page_crawled", sess["id"])
    assert (stored["tags"], stored["importance"], stored["metadata"]) == (["web"], 0.8, {"pages": 3})

    decision = json.loads(await call(session, "memtrace_decide", agent_id=name, decision="Skip pagination",
                                     reasoning="only 2 pages deep"))
    stored = api.get(f"/api/v1/memories/{decision['id']}").json()
    assert (stored["memory_type"], stored["content"]) == ("decision", "Skip pagination")
    assert stored["metadata"]["reasoning"] == "only 2 pages deep"

    recalled = json.loads(await call(session, "memtrace_recall", agent_id=name, since="1h"))
    assert [m["id"] for m in recalled["memories"]] == [decision["id"], memory["id"]] and recalled["count"] == 2
    only_session = json.loads(await call(session, "memtrace_recall", agent_id=name, session_id=sess["id"], limit=5))
    assert [m["id"] for m in only_session["memories"]] == [memory["id"]]

    found = json.loads(await call(session, "memtrace_search", agent_id=name, content_contains="EXAMPLE",
                                  tags=["web"], since="1h", min_importance=0.5, memory_types=["episodic"]))
    assert [m["id"] for m in found["results"]] == [memory["id"]]
    ranked = json.loads(await call(session, "memtrace_search", query="which pages were crawled?", agent_id=name))
    assert [m["id"] for m in ranked["results"]] == [memory["id"]] and ranked["results"][0]["score"] > 0
    markdown = await call(session, "memtrace_recall", query="what was crawled?", agent_id=name)
    assert markdown.startswith('## Recalled for "what was crawled?"')
    assert "page_crawled: Crawled example.com" in markdown
    assert "needs a query" in await call_error(session, "memtrace_recall")

    context = await call(session, "memtrace_session_context", session_id=sess["id"], max_tokens=500)
    assert context.startswith(f"## Session Context ({sess['id']})")
    assert "page_crawled: Crawled example.com" in context
    only_episodic = await call(session, "memtrace_session_context", session_id=sess["id"], since="1h",
                               include_types=["episodic"])
    assert "Recent Actions (1)" in only_episodic and "Decisions Made" not in only_episodic

    duplicate = await call_error(session, "memtrace_remember", agent_id=name, content="Crawled example.com",
                                 event_type="page_crawled")
    assert "409" in duplicate and "duplicate memory" in duplicate
    bad_window = await call_error(session, "memtrace_recall", agent_id=name, since="yesterday")
    assert "400" in bad_window and "since" in bad_window
    assert "agent_id" in await call_error(session, "memtrace_recall", agent_id="not valid!")

    # Forgetting: a filter is required, and without confirm it only counts.
    assert "needs a filter" in await call_error(session, "memtrace_forget")
    dry = json.loads(await call(session, "memtrace_forget", agent_id=name, session_id=sess["id"]))
    assert (dry["matched"], dry["deleted"], dry["dry_run"]) == (1, 0, True)
    assert api.get(f"/api/v1/memories/{memory['id']}").status_code == 200
    done = json.loads(await call(session, "memtrace_forget", agent_id=name, session_id=sess["id"], confirm=True))
    assert (done["matched"], done["deleted"], done["dry_run"]) == (1, 1, False)
    assert api.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    assert api.get(f"/api/v1/memories/{decision['id']}").status_code == 200


async def test_stdio_transport(stack: Stack, api: httpx.Client, tmp_path: Path) -> None:
    async with over_stdio(mcp_env(stack.server.url, stack.tenant.key), tmp_path / "stderr.log") as session:
        await exercise(session, api)


@pytest.fixture
def http_mcp(stack: Stack) -> Iterator[str]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "memtrace.mcp", "--transport", "http", "--host", "127.0.0.1",
                 "--port", str(port)], env=mcp_env(stack.server.url, stack.tenant.key))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.popen.poll() is None, proc.output()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, proc.output()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.stop()


async def test_streamable_http_transport(http_mcp: str, api: httpx.Client) -> None:
    async with over_http(http_mcp) as session:
        await exercise(session, api)
    async with over_http(http_mcp) as again:  # the process keeps serving new sessions
        await again.initialize()
        assert len((await again.list_tools()).tools) == len(TOOL_NAMES)


def test_missing_api_key_exits_with_one_line() -> None:
    env = {"PATH": "/usr/bin:/bin", **mcp_env("http://127.0.0.1:9", None)}
    done = subprocess.run([sys.executable, "-m", "memtrace.mcp"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MEMTRACE_API_KEY" in lines[0]


async def test_dead_server_is_a_tool_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # bound but never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with over_stdio(mcp_env(dead, "mtk_whatever"), tmp_path / "stderr.log") as session:
            await session.initialize()
            message = await call_error(session, "memtrace_remember", agent_id="a1", content="hello")
            assert "cannot reach Memtrace" in message and dead in message
            message = await call_error(session, "memtrace_session_context", session_id="sess_1")
            assert "cannot reach Memtrace" in message
            assert len((await session.list_tools()).tools) == len(TOOL_NAMES)  # still serving


def test_help_names_the_environment_variables() -> None:
    done = subprocess.run([sys.executable, "-m", "memtrace.mcp", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert "MEMTRACE_URL" in done.stdout and "MEMTRACE_API_KEY" in done.stdout


def test_invalid_key_is_refused_at_start_with_one_line(stack: Stack) -> None:
    env = {"PATH": "/usr/bin:/bin", **mcp_env(stack.server.url, "mtk_" + "x" * 43)}
    done = subprocess.run([sys.executable, "-m", "memtrace.mcp"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MEMTRACE_API_KEY" in lines[0] and "401" in lines[0], done.stderr

"""Hostile input against the real server: whatever a client sends is answered below 500, with the exact 4xx.

Issue 11: deep nesting, stored poison, trailing newlines in patterns, offset/limit extremes, raw bytes in
paths, malformed chunked bodies and the Go SDK's "" fields.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrace.arc.encode import encode_rows
from memtrace.ids import memory_id
from memtrace.jsonlimits import MAX_JSON_DEPTH
from memtrace.memory.model import MAX_OFFSET
from memtrace.rows import MemoryRow
from tests.conftest import Stack
from tests.procs import ArcLite
from tests.provision import provision

JSON_HEADERS = {"content-type": "application/json"}


def unique(prefix: str = "a") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def nested(depth: int) -> bytes:
    """A JSON object `depth` levels deep: {"a":{"a":...{}}}."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def with_field(prefix: bytes, value: bytes) -> bytes:
    """`prefix` is an object's opening without the closing brace, e.g. b'{"agent_id":"x","metadata":'."""
    return prefix + value + b"}"


@pytest.fixture
def raw(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


# -- 1. stored JSON objects are bounded at write time -------------------------------------------------

def _object_routes(agent: str) -> list[tuple[str, bytes, str]]:
    """(path, body prefix, field named in the 400) for every JSON object a client can store."""
    return [
        ("/api/v1/memories", b'{"agent_id":"%s","content":"c1","metadata":' % agent.encode(), "metadata"),
        ("/api/v1/memories", b'{"memories":[{"agent_id":"%s","content":"c0"},{"agent_id":"%s","content":"c2",'
         b'"metadata":' % (agent.encode(), agent.encode()), "memories[1].metadata"),
        ("/api/v1/sessions", b'{"agent_id":"%s","metadata":' % agent.encode(), "metadata"),
        ("/api/v1/agents", b'{"name":"%s","config":' % unique("cfg").encode(), "config"),
    ]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900])
def test_deep_object_fields_are_refused_naming_the_field(raw: httpx.Client, depth: int) -> None:
    agent = unique()
    for path, prefix, field in _object_routes(agent):
        body = with_field(prefix, nested(depth))
        if field.startswith("memories["):
            body += b"]}"
        resp = raw.post(path, content=body, headers=JSON_HEADERS)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json() == {"error": f"{field} must be a JSON object nested at most {MAX_JSON_DEPTH} levels deep"
                                        " (the object itself is level 1)"}


def test_object_fields_at_the_depth_bound_are_stored(raw: httpx.Client) -> None:
    agent = unique()
    session = raw.post("/api/v1/sessions", content=with_field(b'{"agent_id":"%s","metadata":' % agent.encode(),
                                                               nested(MAX_JSON_DEPTH)), headers=JSON_HEADERS)
    assert session.status_code == 201, session.text
    assert msgspec.json.encode(session.json()["metadata"]) == nested(MAX_JSON_DEPTH)
    # brackets inside strings are not nesting
    meta = {"text": "[" * 100 + "{" * 100}
    memory = raw.post("/api/v1/memories", json={"agent_id": agent, "content": unique("c"), "metadata": meta})
    assert memory.status_code == 201, memory.text
    assert memory.json()["metadata"] == meta


def test_session_and_agent_objects_have_a_size_cap(raw: httpx.Client) -> None:
    big = {"x": "y" * (64 * 1024)}
    resp = raw.post("/api/v1/sessions", json={"agent_id": unique(), "metadata": big})
    assert resp.status_code == 413 and "metadata" in resp.json()["error"]
    resp = raw.post("/api/v1/agents", json={"name": unique(), "config": big})
    assert resp.status_code == 413 and "config" in resp.json()["error"]


def _poison_metadata_db(stack: Stack, agent: str, depth: int) -> tuple[str, str]:
    """Rows written before the bound existed: an agent config and a session metadata `depth` deep."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    agent_id, session_id = unique("agent"), unique("sess")
    deep = nested(depth).decode()
    with sqlite3.connect(stack.db) as db:
        db.execute("INSERT INTO agents (id, org_id, name, description, config_json, created_at, last_active_at) "
                   "VALUES (?, ?, ?, '', ?, ?, ?)", (agent_id, stack.tenant.org_id, agent, deep, now, now))
        db.execute("INSERT INTO sessions (id, org_id, agent_id, status, metadata_json, created_at, updated_at, "
                   "closed_at, last_active_at) VALUES (?, ?, ?, 'active', ?, ?, ?, NULL, ?)",
                   (session_id, stack.tenant.org_id, agent, deep, now, now, now))
    return agent_id, session_id


def _poison_arc(stack: Stack, agent: str, session_id: str, depth: int) -> str:
    """A decision memory with deep metadata written straight into the org's Arc (not through the API)."""
    time_us = time.time_ns() // 1000
    row = MemoryRow(id=memory_id(time_us), time_us=time_us, org_id=stack.tenant.org_id, agent_id=agent,
                    session_id=session_id, memory_type="decision", event_type="decision", content="poison",
                    metadata_json=nested(depth).decode().replace('"a"', '"reasoning"', 1), tags_csv="",
                    dedup_key=unique("k"), importance=0.5, parent_id="")
    headers = {"Content-Type": "application/msgpack", "x-arc-database": stack.tenant.database}
    resp = httpx.post(f"{stack.arc.url}/api/v1/write/msgpack", content=encode_rows("events", [row]),
                      headers=headers)
    assert resp.status_code in (200, 204), resp.text
    assert httpx.post(f"{stack.arc.url}/api/v1/write/line-protocol/flush").status_code == 200
    return row.id


@pytest.mark.parametrize("depth", [990, 5000])
def test_stored_poison_never_breaks_reads(raw: httpx.Client, stack: Stack, depth: int) -> None:
    agent = unique()
    agent_id, session_id = _poison_metadata_db(stack, agent, depth)
    mem_id = _poison_arc(stack, agent, session_id, depth)
    for path in ("/api/v1/agents", f"/api/v1/agents/{agent_id}", "/api/v1/sessions",
                 f"/api/v1/sessions?agent_id={agent}", f"/api/v1/sessions/{session_id}",
                 f"/api/v1/memories/{mem_id}", f"/api/v1/memories?agent_id={agent}",
                 f"/api/v1/sessions/{session_id}/memories"):
        resp = raw.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert "{}" in resp.text, path  # the over-deep value is shown as an empty object
    ctx = raw.post(f"/api/v1/sessions/{session_id}/context", json={})
    assert ctx.status_code == 200, ctx.text
    assert "poison" in ctx.json()["context"]
    search = raw.post("/api/v1/search", json={"agent_id": agent})
    assert search.status_code == 200 and search.json()["count"] == 1
    # the poisoned session can be repaired through the API
    fixed = raw.put(f"/api/v1/sessions/{session_id}", json={"metadata": {"ok": True}})
    assert fixed.status_code == 200 and fixed.json()["metadata"] == {"ok": True}
    assert raw.put(f"/api/v1/sessions/{session_id}", json={"status": "closed"}).json()["metadata"] == {"ok": True}
    assert raw.delete(f"/api/v1/agents/{agent_id}").status_code == 204


# -- 2. any body nested too deeply is a 400 on every JSON route ----------------------------------------

def _json_routes(raw: httpx.Client) -> list[tuple[str, str]]:
    agent = unique()
    session = raw.post("/api/v1/sessions", json={"agent_id": agent}).json()["id"]
    return [("POST", "/api/v1/memories"), ("POST", "/api/v1/search"), ("POST", "/api/v1/agents"),
            ("POST", "/api/v1/sessions"), ("PUT", f"/api/v1/sessions/{session}"),
            ("POST", f"/api/v1/sessions/{session}/context")]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_bodies_are_400_on_every_json_route(raw: httpx.Client, depth: int) -> None:
    bodies = {
        "object": nested(depth),
        "array": b"[" * depth + b"]" * depth,
        "in a known field": with_field(b'{"memories":', b"[" * depth + b"]" * depth),
        "in an unknown field": with_field(b'{"agent_id":"a1","content":"x","name":"n1","zzz":', nested(depth)),
    }
    for method, path in _json_routes(raw):
        for what, body in bodies.items():
            resp = raw.request(method, path, content=body, headers=JSON_HEADERS)
            assert resp.status_code == 400, (method, path, what, resp.text)
            error = resp.json()["error"]
            assert error.startswith("malformed JSON") or " must " in error, resp.text  # a rule in words


# -- 3. offset and limit are bounded at the edge; our own query errors never trip the org's breaker ---------

BAD_PAGES = [("offset", -1), ("offset", MAX_OFFSET + 1), ("offset", 2**63), ("offset", 2**64), ("offset", 10**30),
             ("limit", 0), ("limit", 1001), ("limit", -1), ("limit", 2**64)]


@pytest.mark.parametrize(("name", "value"), BAD_PAGES)
def test_offset_and_limit_out_of_bounds_are_400(raw: httpx.Client, name: str, value: int) -> None:
    agent = unique()
    for resp in (raw.get("/api/v1/memories", params={name: str(value)}),
                 raw.get(f"/api/v1/agents/{agent}/memories", params={name: str(value)}),
                 raw.post("/api/v1/search", content=b'{"%s":%d}' % (name.encode(), value), headers=JSON_HEADERS)):
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"].startswith(f"{name} must be a whole number from "), resp.text


def test_offset_at_the_bound_is_answered(raw: httpx.Client) -> None:
    assert raw.get("/api/v1/memories", params={"offset": MAX_OFFSET, "limit": 1000}).status_code == 200
    search = raw.post("/api/v1/search", json={"offset": MAX_OFFSET, "limit": 1000})
    assert search.status_code == 200 and search.json()["count"] == 0


def test_a_burst_of_bad_pages_leaves_good_reads_answered(raw: httpx.Client) -> None:
    agent = unique()
    assert raw.post("/api/v1/memories", json={"agent_id": agent, "content": "kept"}).status_code == 201
    for value in range(20):
        assert raw.get("/api/v1/memories", params={"offset": str(2**64 + value)}).status_code == 400
    good = raw.get("/api/v1/memories", params={"agent_id": agent})
    assert good.status_code == 200 and good.json()["count"] == 1


# -- 4. every pattern matches the whole value: a trailing newline is invalid -----------------------------

MEMORY_FIELDS_NL = [("agent_id", "agent_1\n"), ("session_id", "sess_1\n"), ("parent_id", "mem_1\n"),
                    ("event_type", "error\n"), ("dedup_key", "key_1\n"), ("tags", ["tag\n"])]


@pytest.mark.parametrize(("field", "value"), MEMORY_FIELDS_NL)
def test_trailing_newline_in_memory_fields_is_400(raw: httpx.Client, field: str, value: object) -> None:
    item = {"agent_id": unique(), "content": unique("c"), field: value}
    resp = raw.post("/api/v1/memories", json=item)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith((f"{field} must ", f"{field}[0] must ")), resp.text
    resp = raw.post("/api/v1/memories", json={"memories": [{"agent_id": unique(), "content": "x"}, item]})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith((f"memories[1].{field} must ", f"memories[1].{field}[0] must ")), resp.text


@pytest.mark.parametrize(("field", "value"), [("agent_id", "a1\n"), ("session_id", "s1\n"),
                                              ("event_types", ["error\n"]), ("tags", ["t\n"])])
def test_trailing_newline_in_search_fields_is_400(raw: httpx.Client, field: str, value: object) -> None:
    resp = raw.post("/api/v1/search", json={field: value})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith((f"{field} must ", f"{field}[0] must ")), resp.text


@pytest.mark.parametrize("field", ["agent_id", "session_id", "event_type"])  # tags are a trimmed comma list
def test_trailing_newline_in_list_parameters_is_400(raw: httpx.Client, field: str) -> None:
    resp = raw.get("/api/v1/memories", params={field: "abc\n"})
    assert resp.status_code == 400 and resp.json()["error"].startswith(f"{field} must "), resp.text


def test_trailing_newline_in_names_and_paths(raw: httpx.Client) -> None:
    assert raw.post("/api/v1/agents", json={"name": "bot\n"}).status_code == 400
    assert raw.post("/api/v1/sessions", json={"agent_id": "bot\n"}).status_code == 400
    for path in ("/api/v1/memories/mem_01ARZ3NDEKTSV4RRFFQ69G5FAV%0A", "/api/v1/sessions/sess_1%0A",
                 "/api/v1/sessions/sess_1%0A/memories", "/api/v1/agents/bot_1%0A/memories",
                 "/api/v1/agents/bot_1%0A/stats"):
        resp = raw.get(path)
        assert resp.status_code == 404, (path, resp.text)
    assert raw.post("/api/v1/sessions/sess_1%0A/context", json={}).status_code == 404


# -- 5. raw bytes in the path and malformed chunked bodies are 4xx ----------------------------------------

def raw_http(stack: Stack, request: bytes, half_close: bool = False) -> tuple[int, bytes]:
    """Send `request` as is over a socket; the status code and body of the answer.

    `half_close` ends the sending side (the server then sees the body end early).
    """
    with socket.create_connection(("127.0.0.1", stack.server.port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return status, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2:]
    return out


def _get(stack: Stack, target: bytes) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nConnection: close\r\n\r\n" % (
        target, stack.tenant.key.encode())


@pytest.mark.parametrize("target", [b"/api/v1/agents/\xc3\xa9", b"/api/v1/agents/a\xc3\xa9/memories",
                                    b"/api/v1/memories/mem_\xe2\x82\xac", b"/api/v1/sessions/s\xc3\xa9/context",
                                    b"/nowhere/\xc3\xa9", b"/api/v1/memories?agent_id=\xc3\xa9"])
def test_raw_utf8_in_the_request_target_is_400_json(stack: Stack, target: bytes) -> None:
    status, body = raw_http(stack, _get(stack, target))
    assert status == 400, (status, body)
    assert msgspec.json.decode(body) == {"error": "invalid request target: non-ASCII bytes must be percent-encoded"}


@pytest.mark.parametrize("target", [b"/api/v1/agents/\xff", b"/api/v1/agents/\xc3(", b"/api/v1/memories/mem_\xff",
                                    b"/\xff\xfe"])
def test_raw_invalid_utf8_in_the_path_is_400(stack: Stack, target: bytes) -> None:
    """Granian refuses these itself (empty 400 body) before any application code runs."""
    status, body = raw_http(stack, _get(stack, target))
    assert status == 400, (status, body)


def test_percent_encoded_non_ascii_is_an_ordinary_lookup(stack: Stack) -> None:
    status, body = raw_http(stack, _get(stack, b"/api/v1/agents/%C3%A9"))
    assert (status, msgspec.json.decode(body)) == (404, {"error": "agent not found"})


@pytest.mark.parametrize("chunks", [
    b"zz\r\n{}\r\n0\r\n\r\n",  # size is not hex
    b"5\r\n{}\r\n0\r\n\r\n",  # size larger than the data
    b"2\r\n{}XX0\r\n\r\n",  # no CRLF after the data
    b"fffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",  # absurd size
    b"2\r\n{}\r\n",  # never terminated
])
def test_malformed_chunked_bodies_are_4xx(stack: Stack, chunks: bytes) -> None:
    for path in (b"/api/v1/memories", b"/api/v1/search", b"/api/v1/agents"):
        request = (b"POST %s HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (path, stack.tenant.key.encode()))
        status, body = raw_http(stack, request + chunks, half_close=True)
        assert status == 400, (path, chunks, status, body)
        assert msgspec.json.decode(body)["error"].startswith("malformed request body"), body


# -- 6. Arc trouble is answered without internals (host:port, Arc's or DuckDB's messages) ------------------

ARC_DOWN = "this org's Arc is unavailable; retry later"


def _wait_bound(client: httpx.Client) -> httpx.Response:
    """The first answer after the server picked up the org's new Arc binding (metadata refresh ~1 s)."""
    deadline = time.monotonic() + 15
    while True:
        resp = client.get("/api/v1/memories")
        unbound = resp.status_code == 401 or (resp.status_code == 503 and "arc instance" in resp.text)
        if not unbound or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def test_unreachable_arc_answers_503_without_internals(stack: Stack) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        tenant = provision(stack.db, unique("dead"), f"http://127.0.0.1:{port}")
        with stack.client(tenant.key) as client:
            answers = [_wait_bound(client)] + [client.get("/api/v1/memories") for _ in range(6)]  # opens the circuit
            answers.append(client.post("/api/v1/search", json={}))
    for resp in answers:
        assert resp.status_code == 503, resp.text
        assert resp.json() == {"error": ARC_DOWN}
        assert int(resp.headers["Retry-After"]) >= 1
        assert str(port) not in resp.text and "127.0.0.1" not in resp.text


def test_arc_rejection_answers_502_without_internals(stack: Stack, tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc", token="arc-secret-1f2e3d")  # Memtrace holds no key for it: Arc says 401
    try:
        tenant = provision(stack.db, unique("refused"), arc.url)
        with stack.client(tenant.key) as client:
            resp = _wait_bound(client)
    finally:
        arc.stop()
    assert resp.status_code == 502, resp.text
    assert resp.json() == {"error": "the org's Arc refused a request Memtrace built; the details are in the server log"}
    assert str(arc.port) not in resp.text


# -- 7. the original Go SDK's bodies: "" for unset optional strings, `null` as a context body ---------------

def _go_memory(agent: str, content: str) -> bytes:
    """AddMemoryRequest as Go's encoding/json writes it with no `omitempty`: every field, zero values."""
    return (b'{"agent_id":"%s","session_id":"","memory_type":"","event_type":"","content":"%s","metadata":null,'
            b'"tags":null,"dedup_key":"","importance":0,"parent_id":""}' % (agent.encode(), content.encode()))


def test_go_sdk_empty_strings_mean_absent(raw: httpx.Client) -> None:
    agent = unique("go")
    resp = raw.post("/api/v1/memories", content=_go_memory(agent, "hello from go"), headers=JSON_HEADERS)
    assert resp.status_code == 201, resp.text
    memory = resp.json()
    assert (memory["memory_type"], memory["event_type"], memory["session_id"], memory["parent_id"]) == (
        "episodic", "general", "", "")
    assert len(memory["dedup_key"]) == 32  # derived, as when absent
    batch = b'{"memories":[%s,%s]}' % (_go_memory(agent, "one"), _go_memory(agent, "two"))
    resp = raw.post("/api/v1/memories", content=batch, headers=JSON_HEADERS)
    assert resp.status_code == 201, resp.text
    assert [m["memory_type"] for m in resp.json()["memories"]] == ["episodic", "episodic"]
    again = raw.post("/api/v1/memories", content=_go_memory(agent, "hello from go"), headers=JSON_HEADERS)
    assert again.status_code == 409  # the derived dedup key applies


def test_go_sdk_null_context_body_means_defaults(raw: httpx.Client) -> None:
    session = raw.post("/api/v1/sessions", json={"agent_id": unique("go")}).json()["id"]
    resp = raw.post(f"/api/v1/sessions/{session}/context", content=b"null", headers=JSON_HEADERS)
    assert resp.status_code == 200, resp.text
    assert resp.json()["session_id"] == session


@pytest.mark.parametrize(("field", "value"), [("memory_type", "bogus"), ("event_type", "9x"), ("session_id", " "),
                                              ("parent_id", "-x"), ("dedup_key", "a b"), ("agent_id", "")])
def test_real_invalid_values_stay_400(raw: httpx.Client, field: str, value: str) -> None:
    resp = raw.post("/api/v1/memories", json={"agent_id": unique(), "content": unique("c"), field: value})
    assert resp.status_code == 400 and resp.json()["error"].startswith(f"{field} must "), resp.text


# -- 9. random JSON at every JSON route: never a 5xx ---------------------------------------------------

ROUTE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/api/v1/memories"): ("agent_id", "content", "memory_type", "event_type", "session_id", "metadata",
                                   "tags", "dedup_key", "importance", "parent_id"),
    ("POST", "/api/v1/search"): ("agent_id", "session_id", "memory_types", "event_types", "tags", "content_contains",
                                 "since", "until", "min_importance", "limit", "offset", "order"),
    ("POST", "/api/v1/agents"): ("name", "description", "config"),
    ("POST", "/api/v1/sessions"): ("agent_id", "metadata"),
    ("PUT", "/api/v1/sessions/{session}"): ("status", "metadata"),
    ("POST", "/api/v1/sessions/{session}/context"): ("max_tokens", "include_types", "since"),
}
ROUTES = sorted(ROUTE_FIELDS)
TRICKY = ["", " ", "agent_1\n", "episodic", "decision", "general", "error", "active", "closed", "asc", "2h", "-5m",
          "2026-02-07T20:15:00Z", "9999-12-31", "0", "-1", "1e400", "NaN", "a" * 300, "\x00", "é", "%", "'; --",
          "\ud800", "x\udfff"]
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=40) | st.sampled_from(TRICKY))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=24)


@st.composite
def request_bodies(draw: st.DrawFn) -> tuple[str, str, bytes]:
    method, path = draw(st.sampled_from(ROUTES))
    fields = ROUTE_FIELDS[(method, path)]
    known = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))
    shapes = [json_values, known]
    if path == "/api/v1/memories":
        shapes.append(st.fixed_dictionaries({"memories": st.lists(known, max_size=3)}))
    value = draw(st.one_of(shapes))
    return method, path, json.dumps(value, allow_nan=True).encode()


@pytest.fixture(scope="module")
def fuzz(stack: Stack) -> Iterator[tuple[httpx.Client, str]]:
    with stack.client() as client:
        session = client.post("/api/v1/sessions", json={"agent_id": "fuzzer"}).json()["id"]
        yield client, session


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=request_bodies())
def test_random_json_on_json_routes_is_never_5xx(fuzz: tuple[httpx.Client, str],
                                                 request: tuple[str, str, bytes]) -> None:
    client, session = fuzz
    method, path, body = request
    resp = client.request(method, path.format(session=session), content=body, headers=JSON_HEADERS)
    assert resp.status_code < 500, (method, path, body[:300], resp.text)
    if resp.status_code >= 400:
        assert "error" in resp.json()

"""Every validation error in words, pinned: the field, the rule and an example, never a regex; enums list their
values; malformed JSON is one sentence with the byte offset. One table, every field of every request, against
the real server (`api/wording.py` makes them; a new field is worded from its type, see its docstring)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec
import msgspec.inspect as mi
import pytest

from memtrace.api.openapi import OPERATIONS
from memtrace.api.wording import rule

ID = "must start with a letter and contain only letters, digits, '_' or '-' (at most 128), e.g. \"researcher_1\""
EVENT = "must start with a letter and contain only letters, digits or '_' (at most 64), e.g. \"tool_call\""
TAG = "must be 1 to 64 letters, digits, '_', '.' or '-', e.g. \"billing\""
TYPES = 'must be one of "decision", "entity", "episodic" or "session"'
TIME = ("must be a relative duration such as 30m, 2h, 7d or 4w, or an ISO 8601 / RFC 3339 time such as 2026-02-07 "
        "or 2026-02-07T20:15:00Z")
TAGS_CSV = ("must be a comma-separated list of at most 32 tags, each 1 to 64 letters, digits, '_', '.' or '-', "
            'e.g. "billing,urgent"')
OBJECT = 'must be a JSON object, e.g. {"source":"chat"}'
MEMORY = '{"agent_id":"researcher_1","content":"User prefers dark mode"}'
LIMIT = "must be a whole number from 1 to 1000, e.g. 50"
OFFSET = "must be a whole number from 0 to 100000, e.g. 100"
IMPORTANCE = "must be a number from 0 to 1, e.g. 0.8"
ORDER = 'must be "asc" or "desc"'
RANKED_ORDER = 'must be one of "asc", "desc" or "relevance"'
QUERY = 'must be a string of 1 to 1024 characters, e.g. "what did the customer say about the refund?"'
BLANK_QUERY = 'query must contain a word to search for, e.g. "refund request"'
S = "/api/v1/sessions/sess_words"
OK = {"agent_id": "researcher_1", "content": "words"}

# (method, path, JSON body (bytes: sent as is) or None, query parameters, the exact error)
CASES: list[tuple[str, str, Any, dict[str, str], str]] = [
    # POST /api/v1/memories, one memory
    ("POST", "/api/v1/memories", {"agent_id": "1x", "content": "c"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/memories", {"agent_id": 5, "content": "c"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/memories", {"content": "c"}, {}, f"agent_id is required and {ID}"),
    ("POST", "/api/v1/memories", {"agent_id": "a"}, {}, 'content is required and must be a non-empty string, e.g. '
                                                        '"User prefers dark mode"'),
    ("POST", "/api/v1/memories", {**OK, "content": ""}, {}, 'content must be a non-empty string, e.g. '
                                                            '"User prefers dark mode"'),
    ("POST", "/api/v1/memories", {**OK, "memory_type": "fact"}, {}, f"memory_type {TYPES}; got 'fact'"),
    ("POST", "/api/v1/memories", {**OK, "event_type": "9x"}, {}, f"event_type {EVENT}"),
    ("POST", "/api/v1/memories", {**OK, "session_id": "-s"}, {}, f"session_id {ID}"),
    ("POST", "/api/v1/memories", {**OK, "parent_id": "m\n"}, {}, f"parent_id {ID}"),
    ("POST", "/api/v1/memories", {**OK, "metadata": [1]}, {}, f"metadata {OBJECT}"),
    ("POST", "/api/v1/memories", {**OK, "tags": "billing"}, {}, 'tags must be a list of at most 32 items, e.g. '
                                                                '["billing","urgent"]'),
    ("POST", "/api/v1/memories", {**OK, "tags": ["ok", "not ok"]}, {}, f"tags[1] {TAG}"),
    ("POST", "/api/v1/memories", {**OK, "dedup_key": "a b"}, {}, "dedup_key must be 1 to 128 letters, digits, '_', "
                                                                 "'.', ':' or '-', e.g. \"order-42:shipped\""),
    ("POST", "/api/v1/memories", {**OK, "importance": 2}, {}, f"importance {IMPORTANCE}"),
    ("POST", "/api/v1/memories", [OK], {}, f"the request body must be a JSON object, e.g. {MEMORY}"),
    ("POST", "/api/v1/memories", b'{"agent_id": "a", "content": "c",}', {},
     "malformed JSON at byte 33: trailing comma in object"),
    ("POST", "/api/v1/memories", b'{"agent_id": "a"', {}, "malformed JSON at byte 16: the body ends before the JSON"
                                                          " value does"),
    ("POST", "/api/v1/memories", b"{'agent_id': 'a'}", {}, "malformed JSON at byte 1: object keys must be strings"),
    ("POST", "/api/v1/memories", b"", {}, "request body is empty; a JSON object is required"),
    # a batch: the item's index, then the field
    ("POST", "/api/v1/memories", {"memories": [OK, {**OK, "agent_id": "-"}]}, {}, f"memories[1].agent_id {ID}"),
    ("POST", "/api/v1/memories", {"memories": [OK, {"agent_id": "a"}]}, {},
     'memories[1].content is required and must be a non-empty string, e.g. "User prefers dark mode"'),
    ("POST", "/api/v1/memories", {"memories": [{**OK, "tags": [1]}]}, {}, f"memories[0].tags[0] {TAG}"),
    ("POST", "/api/v1/memories", {"memories": [7]}, {}, f"memories[0] must be a JSON object, e.g. {MEMORY}"),
    ("POST", "/api/v1/memories", {"memories": {"a": 1}}, {}, f"memories must be a list, e.g. [{MEMORY}]"),
    ("POST", "/api/v1/memories", {"memories": []}, {}, "memories must be a list of 1 to 1000 memories; got 0"),
    # POST /api/v1/search
    ("POST", "/api/v1/search", {"agent_id": "1"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/search", {"session_id": "s s"}, {}, f"session_id {ID}"),
    ("POST", "/api/v1/search", {"memory_types": ["fact"]}, {}, f"memory_types[0] {TYPES}; got 'fact'"),
    ("POST", "/api/v1/search", {"memory_types": ["episodic"] * 5}, {},
     'memory_types must be a list of at most 4 items, e.g. ["decision"]'),
    ("POST", "/api/v1/search", {"event_types": ["a-b"]}, {}, f"event_types[0] {EVENT}"),
    ("POST", "/api/v1/search", {"event_types": "error"}, {},
     'event_types must be a list of at most 64 items, e.g. ["tool_call"]'),
    ("POST", "/api/v1/search", {"tags": ["x y"]}, {}, f"tags[0] {TAG}"),
    ("POST", "/api/v1/search", {"content_contains": 5}, {},
     'content_contains must be a string of at most 1024 characters, e.g. "dark mode"'),
    ("POST", "/api/v1/search", {"since": "yesterday"}, {}, f"since {TIME}; got 'yesterday'"),
    ("POST", "/api/v1/search", {"until": 5}, {}, f"until {TIME}"),
    ("POST", "/api/v1/search", {"min_importance": -1}, {}, f"min_importance {IMPORTANCE}"),
    ("POST", "/api/v1/search", {"limit": 0}, {}, f"limit {LIMIT}"),
    ("POST", "/api/v1/search", {"offset": 100_001}, {}, f"offset {OFFSET}"),
    ("POST", "/api/v1/search", {"order": "newest"}, {}, f"order {RANKED_ORDER}; got 'newest'"),
    ("POST", "/api/v1/search", {"query": 5}, {}, f"query {QUERY}"),
    ("POST", "/api/v1/search", {"query": ""}, {}, f"query {QUERY}"),
    ("POST", "/api/v1/search", {"query": "x" * 1025}, {}, f"query {QUERY}"),
    ("POST", "/api/v1/search", {"query": "  "}, {}, BLANK_QUERY),
    ("POST", "/api/v1/search", {"order": "relevance"}, {},
     'order "relevance" needs a query, e.g. {"query": "refund", "order": "relevance"}'),
    # POST /api/v1/recall
    ("POST", "/api/v1/recall", {}, {}, f"query is required and {QUERY}"),
    ("POST", "/api/v1/recall", {"query": "\n"}, {}, BLANK_QUERY),
    ("POST", "/api/v1/recall", {"query": "q", "agent_id": "1"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/recall", {"query": "q", "since": "then"}, {}, f"since {TIME}; got 'then'"),
    ("POST", "/api/v1/recall", {"query": "q", "max_tokens": 0}, {},
     "max_tokens must be a whole number from 1 to 100000, e.g. 600"),
    ("POST", "/api/v1/recall", {"query": "q", "neighbors": 6}, {},
     "neighbors must be a whole number from 0 to 5, e.g. 1"),
    # agents
    ("POST", "/api/v1/agents", {"name": "my agent"}, {}, f"name {ID}"),
    ("POST", "/api/v1/agents", {}, {}, f"name is required and {ID}"),
    ("POST", "/api/v1/agents", {"name": "a", "description": "x" * 4097}, {},
     'description must be a string of at most 4096 characters, e.g. "Finds and summarises papers"'),
    ("POST", "/api/v1/agents", {"name": "a", "config": "x"}, {}, f"config {OBJECT}"),
    ("DELETE", "/api/v1/agents/agent_words", None, {"erase": "perhaps"}, "erase must be true or false"),
    # sessions
    ("POST", "/api/v1/sessions", {"agent_id": "_a"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/sessions", {"agent_id": "a", "metadata": 3}, {}, f"metadata {OBJECT}"),
    ("PUT", S, {"status": "done"}, {}, "status must be \"active\" or \"closed\"; got 'done'"),
    ("PUT", S, {"metadata": []}, {}, f"metadata {OBJECT}"),
    ("POST", f"{S}/context", {"max_tokens": 0}, {}, "max_tokens must be a whole number from 1 to 1000000, e.g. 2000"),
    ("POST", f"{S}/context", {"include_types": ["notes"]}, {}, f"include_types[0] {TYPES}; got 'notes'"),
    ("POST", f"{S}/context", {"since": "soon"}, {}, f"since {TIME}; got 'soon'"),
    ("POST", f"{S}/context", [1], {}, "the request body must be a JSON object"),
    # POST /api/v1/forget: unknown fields are refused too
    ("POST", "/api/v1/forget", {"agnet_id": "a"}, {}, "unknown field 'agnet_id'; accepted fields: agent_id, "
                                                      "session_id, memory_types, event_types, tags, since, until, "
                                                      "dry_run"),
    ("POST", "/api/v1/forget", {"agent_id": "1"}, {}, f"agent_id {ID}"),
    ("POST", "/api/v1/forget", {"session_id": "1"}, {}, f"session_id {ID}"),
    ("POST", "/api/v1/forget", {"memory_types": ["x"]}, {}, f"memory_types[0] {TYPES}; got 'x'"),
    ("POST", "/api/v1/forget", {"event_types": ["x y"]}, {}, f"event_types[0] {EVENT}"),
    ("POST", "/api/v1/forget", {"tags": [""]}, {}, f"tags[0] {TAG}"),
    ("POST", "/api/v1/forget", {"since": "x" * 65}, {}, f"since {TIME}"),
    ("POST", "/api/v1/forget", {"until": "later"}, {}, f"until {TIME}; got 'later'"),
    ("POST", "/api/v1/forget", {"agent_id": "a", "dry_run": "yes"}, {}, "dry_run must be true or false"),
    # query parameters of the lists
    ("GET", "/api/v1/memories", None, {"agent_id": "1"}, f"agent_id {ID}"),
    ("GET", "/api/v1/memories", None, {"session_id": "-"}, f"session_id {ID}"),
    ("GET", "/api/v1/memories", None, {"memory_type": "fact"}, f"memory_type {TYPES}; got 'fact'"),
    ("GET", "/api/v1/memories", None, {"event_type": "a.b"}, f"event_type {EVENT}"),
    ("GET", "/api/v1/memories", None, {"tags": "ok,not ok"}, f"tags {TAGS_CSV}; got 'not ok'"),
    ("GET", "/api/v1/memories", None, {"tags": ",".join(f"t{i}" for i in range(33))}, f"tags {TAGS_CSV}; got 33 tags"),
    ("GET", "/api/v1/memories", None, {"since": "1y"}, f"since {TIME}; got '1y'"),
    ("GET", "/api/v1/memories", None, {"until": "tomorrow"}, f"until {TIME}; got 'tomorrow'"),
    ("GET", "/api/v1/memories", None, {"limit": "many"}, f"limit {LIMIT}"),
    ("GET", "/api/v1/memories", None, {"offset": "-1"}, f"offset {OFFSET}"),
    ("GET", "/api/v1/memories", None, {"order": "up"}, f"order {ORDER}; got 'up'"),
    ("GET", "/api/v1/agents/agent_words/memories", None, {"limit": "1001"}, f"limit {LIMIT}"),
    ("GET", f"{S}/memories", None, {"order": "random"}, f"order {ORDER}; got 'random'"),
    ("GET", "/api/v1/agents/agent_words/timeline", None, {"bucket": "1y"},
     "bucket must be a duration from 1m to 1d such as 5m, 1h or 1d; got '1y'"),
    ("GET", f"{S}/timeline", None, {"since": "then"}, f"since {TIME}; got 'then'"),
    ("GET", f"{S}/timeline", None, {"until": "now"}, f"until {TIME}; got 'now'"),
]


@pytest.mark.parametrize(("method", "path", "body", "params", "expected"), CASES,
                         ids=[f"{c[0]} {c[1]} {c[4][:40]}" for c in CASES])
def test_the_exact_words_of_each_fields_error(api: httpx.Client, method: str, path: str, body: Any,
                                              params: dict[str, str], expected: str) -> None:
    content = body if isinstance(body, bytes) else None if body is None else msgspec.json.encode(body)
    resp = api.request(method, path, content=content, params=params, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"error": expected}


def _request_fields() -> list[tuple[str, str, mi.Type]]:
    """(operation, field path, type) of every field of every request body and query Struct of the API."""
    out: list[tuple[str, str, mi.Type]] = []

    def walk(op: str, where: str, t: mi.Type) -> None:
        if isinstance(t, mi.UnionType):
            for option in t.types:
                walk(op, where, option)
        elif isinstance(t, mi.Metadata):
            walk(op, where, t.type)
        elif isinstance(t, mi.StructType):
            for f in t.fields:
                out.append((op, f"{where}{f.encode_name}", f.type))
                walk(op, f"{where}{f.encode_name}.", f.type)
        elif isinstance(t, mi.ListType):
            out.append((op, f"{where[:-1]}[0]", t.item_type))
            walk(op, f"{where[:-1]}[0].", t.item_type)

    for op in OPERATIONS:
        for body in op.body:
            walk(op.operation_id, "", mi.type_info(body))
        if op.query is not None:
            walk(op.operation_id, "", mi.type_info(op.query))
    return out


REGEX = re.compile(r"\(\?|\^\[|\{\d+,\d*\}|\\[ndws]")


@pytest.mark.parametrize(("op", "field", "t"), _request_fields(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_request_field_has_a_rule_in_words(op: str, field: str, t: mi.Type) -> None:
    """A new field (or pattern) without words fails here: add its `Meta(examples=...)`, its `patterns.RULES`
    entry or its `Meta(extra={"rule": ...})` (see `api/wording.py`)."""
    words = rule(t)
    assert words.startswith("must "), (op, field, words)
    assert not REGEX.search(words), (op, field, words)
    assert "e.g. " in words or " or " in words, (op, field, words)  # an example, or the allowed values
    assert "text" not in words.split("e.g. ")[-1], (op, field, words)  # no placeholder example

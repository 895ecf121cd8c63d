"""Shared glue for the cookbooks: Memtrace connection settings, the memory tools every agent gets, and the summary.

The memory side is always real: `MemoryTools` calls a running Memtrace over HTTP through `memtrace.client`.
Only the language model is swapped out in `--offline` mode (see `_offline.py`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from memtrace.client import ConflictError, MemtraceClient, MemtraceError, NewMemory

DEFAULT_URL = "http://localhost:9100"


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--offline", action="store_true",
                        help="use a small scripted model instead of the provider's API (memory calls stay real)")
    return parser.parse_args()


def connect() -> MemtraceClient:
    """A blocking client for MEMTRACE_URL (default http://localhost:9100) with MEMTRACE_API_KEY."""
    key = os.environ.get("MEMTRACE_API_KEY", "")
    if not key:
        raise SystemExit("set MEMTRACE_API_KEY to an mtk_ key (`make run` prints a demo key)")
    return MemtraceClient(os.environ.get("MEMTRACE_URL", DEFAULT_URL), key)


def provider_key(env_name: str, offline: bool) -> str | None:
    """The provider's API key, or None in offline mode; stop with a hint when neither is available."""
    if offline:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise SystemExit(f"set {env_name} to call the real model, or pass --offline to use the scripted one")
    return key


# Tool definitions in a provider-neutral form; each cookbook renders them into its SDK's tool format.
TOOL_SPECS: list[dict[str, Any]] = [
    {"name": "remember", "description": "Store a fact or result worth remembering, shared with the team.",
     "parameters": {"type": "object", "properties": {
         "content": {"type": "string", "description": "What was learned, in one or two sentences."},
         "event_type": {"type": "string", "description": "snake_case label, e.g. finding, user_preference, draft"},
         "importance": {"type": "number", "description": "0 to 1"}},
         "required": ["content"]}},
    {"name": "recall", "description": "List what you yourself remembered and decided recently, newest first.",
     "parameters": {"type": "object", "properties": {
         "since": {"type": "string", "description": "time window such as 30m, 2h, 7d (default 24h)"}}}},
    {"name": "search", "description": "Search the shared session's memories (every agent's) by text; "
                                      "an empty query lists them all.",
     "parameters": {"type": "object", "properties": {
         "query": {"type": "string", "description": "case-insensitive text to look for"}}}},
    {"name": "decide", "description": "Record a decision and why it was made.",
     "parameters": {"type": "object", "properties": {
         "decision": {"type": "string"}, "reasoning": {"type": "string"}},
         "required": ["decision", "reasoning"]}},
]


def _line(memory: Any) -> str:
    why = f" (why: {memory.metadata['reasoning']})" if "reasoning" in memory.metadata else ""
    return f"- {memory.agent_id} {memory.event_type}: {memory.content}{why}"


class MemoryTools:
    """Executes the tool calls of one agent against Memtrace; remembers the ids it wrote for the summary.

    Every write goes into `session_id` with `tags`. Dedup is per session: every write (decisions too) carries a
    dedup key made of the session, agent, event type and content, so re-running a cookbook (a new session) starts
    afresh, while a model repeating itself within a session is told it already remembered that (409).
    """

    def __init__(self, mt: MemtraceClient, agent_id: str, session_id: str, tags: list[str]) -> None:
        self.mt, self.agent_id, self.session_id, self.tags = mt, agent_id, session_id, tags
        self.written: list[str] = []
        self.decisions: list[str] = []
        self._calls: dict[str, Callable[..., str]] = {
            "remember": self.remember, "recall": self.recall, "search": self.search, "decide": self.decide}

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Run one tool call; returns (result text, is_error). Errors go back to the model, as APIs expect."""
        tool = self._calls.get(name)
        if tool is None:
            return f"unknown tool {name!r}", True
        try:
            result = tool(**arguments)
        except (MemtraceError, TypeError) as exc:
            return f"{name} failed: {exc}", True
        print(f"  [{self.agent_id}] {name}({json.dumps(arguments, ensure_ascii=False)}) -> {result.splitlines()[0]}")
        return result, False

    def _dedup_key(self, event_type: str, content: str) -> str:
        digest = hashlib.sha256(f"{event_type}|{content}".encode()).hexdigest()[:24]
        return f"{self.session_id}.{self.agent_id}.{digest}"[-128:]

    def remember(self, content: str, event_type: str = "note", importance: float = 0.5) -> str:
        try:
            memory = self.mt.remember(self.agent_id, content, event_type=event_type, importance=importance,
                                      session_id=self.session_id, tags=self.tags,
                                      dedup_key=self._dedup_key(event_type, content))
        except ConflictError:
            return "already remembered in this session"
        self.written.append(memory.id)
        return f"remembered as {memory.id}"

    def recall(self, since: str = "24h") -> str:
        found = self.mt.recall(self.agent_id, since, limit=20).memories
        return "\n".join(_line(m) for m in found) or "nothing remembered yet"

    def search(self, query: str = "") -> str:
        found = self.mt.search(session_id=self.session_id, content_contains=query or None, limit=20, order="asc")
        return "\n".join(_line(m) for m in found.results) or f"nothing in the session mentions {query!r}"

    def decide(self, decision: str, reasoning: str) -> str:
        try:
            memory = self.mt.add_memory(NewMemory(
                agent_id=self.agent_id, content=decision, memory_type="decision", event_type="decision",
                session_id=self.session_id, metadata={"reasoning": reasoning}, importance=0.8, tags=self.tags,
                dedup_key=self._dedup_key("decision", decision)))
        except ConflictError:
            return "this decision is already recorded in this session"
        self.written.append(memory.id)
        self.decisions.append(memory.id)
        return f"decision recorded as {memory.id}"


def finish(mt: MemtraceClient, session_id: str, tools: list[MemoryTools], *, offline: bool) -> None:
    """Print the session context and a machine-readable summary; fail when the run stored nothing it should have."""
    print("\n" + mt.context(session_id, max_tokens=800))
    summary = {"session_id": session_id, "agents": [t.agent_id for t in tools], "tags": tools[0].tags,
               "memory_ids": [m for t in tools for m in t.written],
               "decision_ids": [m for t in tools for m in t.decisions], "offline": offline}
    print("SUMMARY " + json.dumps(summary))
    missing = [t.agent_id for t in tools if not t.written]
    if offline and (missing or not summary["decision_ids"]):
        raise SystemExit(f"expected every agent to store memories and at least one decision; agents that stored "
                         f"nothing: {missing or 'none'}; decisions stored: {len(summary['decision_ids'])}")


def run_main(main: Callable[[], None]) -> None:
    """Run `main`, turning any failure into a message on stderr and exit status 1."""
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc

"""MemtraceSession: the Agents SDK session protocol over append-only session memories (see the package docstring)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import msgspec
from agents import Agent, RunContextWrapper
from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit

from memtrace.client import AsyncMemtraceClient, Memory, MemoryType, NewMemory, NotFoundError

__all__ = ["CLEAR_EVENT", "ITEM_EVENT", "POP_EVENT", "MemtraceSession"]

ITEM_EVENT: Final = "conversation_item"
POP_EVENT: Final = "item_popped"
CLEAR_EVENT: Final = "session_cleared"
_MARK: Final = "memtrace_session"
_CHUNK_CHARS: Final = 8000  # ≤ 6 bytes per char once JSON-escaped, so a chunk stays well under 64 KiB of metadata
_PAGE: Final = 1000
_BATCH: Final = 1000
_ATTEMPTS: Final = 5
_CONTENT_CHARS: Final = 500
_CONTEXT_TYPES: Final[tuple[MemoryType, ...]] = ("episodic", "decision", "entity")

Instructions = Callable[[RunContextWrapper[Any], Agent[Any]], Awaitable[str]]


@dataclass
class _Entry:
    seq: int
    memory_id: str
    parts: dict[int, str] = field(default_factory=dict)
    total: int = 1
    memory_ids: list[str] = field(default_factory=list)  # every part's memory, for pop_item's deletion

    def item(self) -> TResponseInputItem | None:
        if len(self.parts) != self.total:
            return None  # a part lost a race for its key; the writer stored the whole item again under a new seq
        return cast(TResponseInputItem, msgspec.json.decode("".join(self.parts[i] for i in range(self.total))))


@dataclass
class _State:
    live: list[tuple[_Entry, TResponseInputItem]]
    next_seq: int


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text(part) for part in value)
    if isinstance(value, dict):
        for key in ("text", "output", "refusal", "content"):
            if key in value:
                return _text(value[key])
        return str(value.get("type", ""))
    return "" if value is None else str(value)


def describe(item: Any) -> str:
    """One readable line for an item (what the session-context markdown shows); never empty."""
    if not isinstance(item, dict):
        text = _text(item)
    elif item.get("type") == "function_call":
        text = f"function_call {item.get('name', '?')}({item.get('arguments', '')})"
    elif "role" in item:
        text = f"{item['role']}: {_text(item.get('content'))}"
    elif "output" in item:
        text = f"{item.get('type', 'output')}: {_text(item['output'])}"
    else:
        text = str(item.get("type", "item"))
    text = " ".join(text.split())[:_CONTENT_CHARS]
    return text or "item"


class MemtraceSession:
    """Conversation history for `agents.Runner.run(..., session=...)`, stored as memories of one Memtrace session.

    Several agents (or processes) may share one session id: items are attributed to this object's `agent_id`,
    ordered by a per-session sequence number, and concurrent writers never overwrite each other.
    """

    session_settings: SessionSettings | None

    def __init__(self, client: AsyncMemtraceClient, session_id: str, agent_id: str, *,
                 tags: Sequence[str] = (), session_settings: SessionSettings | None = None) -> None:
        self.client = client
        self.session_id = session_id
        self.agent_id = agent_id
        self.tags = list(tags)
        self.session_settings = session_settings
        self._key = "oas." + hashlib.sha256(session_id.encode()).hexdigest()[:24]
        self._next_seq: int | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def create(cls, client: AsyncMemtraceClient, agent_id: str, *, metadata: dict[str, Any] | None = None,
                     tags: Sequence[str] = (), session_settings: SessionSettings | None = None) -> MemtraceSession:
        """Open a new Memtrace session (``POST /api/v1/sessions``) and return a MemtraceSession on it."""
        session = await client.create_session(agent_id, metadata)
        return cls(client, session.id, agent_id, tags=tags, session_settings=session_settings)

    # --- the Session protocol ---------------------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Live items oldest first; with a limit (or `session_settings.limit`), the latest `limit` of them."""
        state = await self._load()
        items = [item for _, item in state.live]
        effective = resolve_session_limit(limit, self.session_settings)
        if effective is None:
            return items
        return items[-effective:] if effective > 0 else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items in order; a 201 from Memtrace means they are durable and visible to every later read."""
        pending = [msgspec.json.encode(item).decode() for item in items]
        async with self._lock:
            for _ in range(_ATTEMPTS):
                if not pending:
                    return
                if self._next_seq is None:
                    self._next_seq = (await self._load()).next_seq
                pending = await self._store(pending, self._next_seq)
                if pending:
                    self._next_seq = None  # another writer took some of these numbers: re-read, then retry
        raise RuntimeError(f"could not store {len(pending)} item(s) in session {self.session_id}: "
                           f"sequence numbers kept colliding with other writers")

    async def pop_item(self) -> TResponseInputItem | None:
        """Delete the newest live item (every memory of it) and return it; None when empty."""
        async with self._lock:
            for _ in range(_ATTEMPTS):
                state = await self._load()
                if not state.live:
                    return None
                entry, item = state.live[-1]
                try:
                    for memory_id in entry.memory_ids:
                        await self.client.delete_memory(memory_id)
                except NotFoundError:
                    continue  # someone else popped this item first; pop the next one
                return item
        raise RuntimeError(f"could not pop an item from session {self.session_id}: other writers kept popping")

    async def clear_session(self) -> None:
        """Delete every conversation item stored so far in the session (and tombstones of older versions);
        items added later are unaffected."""
        async with self._lock:
            state = await self._load()
            if state.next_seq <= 0:
                return
            await self.client.forget(session_id=self.session_id, memory_types=["session"],
                                     event_types=[ITEM_EVENT, POP_EVENT, CLEAR_EVENT])

    # --- context injection ------------------------------------------------------------------------------

    async def context(self, *, max_tokens: int | None = 1000,
                      include_types: Sequence[MemoryType] = _CONTEXT_TYPES) -> str:
        """The session-context markdown (actions, decisions, errors, entities) cut to `max_tokens`.

        Conversation items are left out by default (`include_types` has no ``session``): the Runner already sends
        them as history.
        """
        return await self.client.context(self.session_id, max_tokens=max_tokens, include_types=list(include_types))

    def instructions(self, base: str = "", *, max_tokens: int | None = 1000,
                     include_types: Sequence[MemoryType] = _CONTEXT_TYPES) -> Instructions:
        """Dynamic instructions for ``Agent(instructions=...)``: `base`, then the session context, fetched per turn."""

        async def build(context: RunContextWrapper[Any], agent: Agent[Any]) -> str:
            markdown = await self.context(max_tokens=max_tokens, include_types=include_types)
            return f"{base}\n\n{markdown}" if base else markdown

        return build

    # --- storage ----------------------------------------------------------------------------------------

    def _memory(self, event_type: str, content: str, extra: dict[str, Any], dedup_key: str,
                parent_id: str | None = None) -> NewMemory:
        return NewMemory(agent_id=self.agent_id, content=content, memory_type="session", event_type=event_type,
                         session_id=self.session_id, metadata={_MARK: 1, **extra}, tags=self.tags or None,
                         dedup_key=dedup_key, parent_id=parent_id)

    async def _store(self, pending: list[str], first_seq: int) -> list[str]:
        """Store items from `first_seq` on; return those not completely stored (their key was taken)."""
        memories: list[NewMemory] = []
        for offset, encoded in enumerate(pending):
            seq = first_seq + offset
            chunks = [encoded[i:i + _CHUNK_CHARS] for i in range(0, len(encoded), _CHUNK_CHARS)] or [""]
            content = describe(msgspec.json.decode(encoded))
            for part, chunk in enumerate(chunks):
                extra: dict[str, Any] = {"seq": seq, "item": chunk}
                if len(chunks) > 1:
                    extra |= {"part": part, "parts": len(chunks)}
                    content_part = f"{content[:400]} (part {part + 1}/{len(chunks)})"
                else:
                    content_part = content
                memories.append(self._memory(ITEM_EVENT, content_part, extra, f"{self._key}.{seq}.{part}"))
        stored: dict[int, int] = {}
        for start in range(0, len(memories), _BATCH):
            batch = memories[start:start + _BATCH]
            result = await self.client.add_memories(batch)
            for memory in result.memories:
                got = memory.metadata.get("seq")
                if isinstance(got, int):
                    stored[got] = stored.get(got, 0) + 1
        self._next_seq = first_seq + len(pending)
        expected = {first_seq + i: -(-max(len(e), 1) // _CHUNK_CHARS) for i, e in enumerate(pending)}
        return [pending[seq - first_seq] for seq in sorted(expected) if stored.get(seq, 0) != expected[seq]]

    async def _load(self) -> _State:
        """Replay the session's ``session`` memories: items, then pops and clears applied on top."""
        memories: list[Memory] = []
        offset = 0
        while True:
            page = await self.client.session_memories(self.session_id, memory_type="session", order="asc",
                                                      limit=_PAGE, offset=offset)
            memories.extend(page.memories)
            offset += len(page.memories)
            if not page.has_more or not page.memories:
                break
        entries: dict[int, _Entry] = {}
        popped: set[int] = set()
        cleared_through = -1
        max_seq = -1
        for memory in memories:
            meta = memory.metadata
            if meta.get(_MARK) != 1:
                continue
            if memory.event_type == ITEM_EVENT and isinstance(meta.get("seq"), int) and isinstance(meta.get("item"),
                                                                                                   str):
                seq = meta["seq"]
                entry = entries.setdefault(seq, _Entry(seq, memory.id, total=int(meta.get("parts", 1))))
                entry.parts[int(meta.get("part", 0))] = meta["item"]
                entry.memory_ids.append(memory.id)
                if meta.get("part", 0) == 0:
                    entry.memory_id = memory.id
                max_seq = max(max_seq, seq)
            elif memory.event_type == POP_EVENT and isinstance(meta.get("seq"), int):
                popped.add(meta["seq"])
            elif memory.event_type == CLEAR_EVENT and isinstance(meta.get("through_seq"), int):
                cleared_through = max(cleared_through, meta["through_seq"])
                max_seq = max(max_seq, cleared_through)
        live: list[tuple[_Entry, TResponseInputItem]] = []
        for seq in sorted(entries):
            if seq <= cleared_through or seq in popped:
                continue
            item = entries[seq].item()
            if item is not None:
                live.append((entries[seq], item))
        self._next_seq = max(self._next_seq or 0, max_seq + 1)
        return _State(live, max_seq + 1)

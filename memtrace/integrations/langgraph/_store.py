"""MemtraceStore: LangGraph's BaseStore (long-term memory across threads) over Memtrace memories."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import msgspec
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import _compare_values, _does_match  # the reference semantics of filters and matches

from memtrace.client import AsyncMemtraceClient, ConflictError, Memory, MemtraceClient, NewMemory, NotFoundError
from memtrace.integrations._recall import connect, recalled, search_fields

__all__ = ["ITEM_EVENT", "MemtraceStore"]

ITEM_EVENT: Final = "store_item"
_MARK: Final = "memtrace_langgraph"
_MAX_DEPTH: Final = 30  # one tag per namespace prefix and one for the item: Memtrace allows 32 tags
_PAGE: Final = 1000
_ATTEMPTS: Final = 5
_CONTENT_CHARS: Final = 8000
_METADATA_BYTES: Final = 60_000  # the server's default metadata cap is 64 KiB encoded


def _digest(*parts: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()


def _prefix_tag(prefix: tuple[str, ...]) -> str:
    return "lg.ns." + _digest(*prefix)[:24]


def _item_tag(namespace: tuple[str, ...], key: str) -> str:
    return "lg.item." + _digest(*namespace, key)[:24]


def _item(memory: Memory, score: float | None = None) -> SearchItem:
    meta = memory.metadata
    created = meta.get("created_at")
    return SearchItem(namespace=tuple(meta["namespace"]), key=meta["key"], value=meta["value"],
                      created_at=datetime.fromisoformat(created) if isinstance(created, str) else memory.time,
                      updated_at=memory.time, score=score)


def _valid(memory: Memory) -> bool:
    meta = memory.metadata
    return meta.get(_MARK) == 1 and isinstance(meta.get("namespace"), list) and isinstance(meta.get("key"), str) \
        and isinstance(meta.get("value"), dict)


class MemtraceStore(BaseStore):
    """Long-term memory for ``graph.compile(store=MemtraceStore(url, api_key))``: items are memories of `agent_id`.

    An item is one ``entity`` memory (event type ``store_item``) tagged with one tag per prefix of its namespace
    (``lg.ns.<hash>``, so a namespace prefix is a tag filter) and one for the item (``lg.item.<hash>``); its
    dedup key is ``lg.<hash of namespace and key>``. Content is ``key: <value as JSON>`` (what search matches);
    metadata keeps the namespace, key, value and first ``created_at``. A put of an existing key forgets the old
    memory and stores the new one (``created_at`` kept, ``updated_at`` the new memory's time); a put of None
    deletes. ``search`` ranks by relevance once Memtrace does (newest first until then) and applies `filter` the
    way LangGraph's InMemoryStore does. The ``index`` argument of put is accepted and ignored (Memtrace matches
    content itself); TTLs are not supported.
    """

    supports_ttl = False

    def __init__(self, url: str | None = None, api_key: str | None = None, *, client: MemtraceClient | None = None,
                 agent_id: str = "langgraph") -> None:
        self.client = connect(url, api_key, client)
        self.agent_id = agent_id
        self._owned = client is None

    def close(self) -> None:
        """Close the client this store opened (a client passed in stays open)."""
        if self._owned:
            self.client.close()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        todo = list(ops)
        return self.client.run(lambda c: self._run(c, todo))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        todo = list(ops)
        return await self.client.arun(lambda c: self._run(c, todo))

    async def _run(self, client: AsyncMemtraceClient, ops: list[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                found = await self._find(client, op.namespace, op.key)
                results.append(_item(found[0]) if found else None)
            elif isinstance(op, PutOp):
                await self._put(client, op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(await self._search(client, op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._namespaces(client, op))
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        return results

    # --- operations -------------------------------------------------------------------------------------

    async def _find(self, client: AsyncMemtraceClient, namespace: tuple[str, ...], key: str) -> list[Memory]:
        """The item's memories, newest first (more than one only while two puts of the same key race)."""
        found = await client.search(agent_id=self.agent_id, event_types=[ITEM_EVENT],
                                    tags=[_item_tag(namespace, key)], limit=10, order="desc")
        return [m for m in found.results if _valid(m) and tuple(m.metadata["namespace"]) == namespace
                and m.metadata["key"] == key]

    async def _forget(self, client: AsyncMemtraceClient, memories: list[Memory]) -> None:
        for memory in memories:
            with contextlib.suppress(NotFoundError):  # another writer replaced or deleted it first
                await client.delete_memory(memory.id)

    def _memory(self, op: PutOp, value: dict[str, Any], created_at: str | None) -> NewMemory:
        namespace = tuple(op.namespace)
        if not namespace or len(namespace) > _MAX_DEPTH:
            raise InvalidNamespaceError(f"a MemtraceStore namespace has 1 to {_MAX_DEPTH} labels, got {namespace}")
        metadata: dict[str, Any] = {_MARK: 1, "namespace": list(namespace), "key": op.key, "value": value}
        if created_at:
            metadata["created_at"] = created_at
        if len(msgspec.json.encode(metadata)) > _METADATA_BYTES:
            raise ValueError(f"the value of {op.key!r} is more than {_METADATA_BYTES} bytes of JSON: it does not fit "
                             f"in one Memtrace memory")
        content = f"{op.key}: {msgspec.json.encode(value).decode()}"[:_CONTENT_CHARS]
        tags = [_prefix_tag(namespace[:i]) for i in range(1, len(namespace) + 1)] + [_item_tag(namespace, op.key)]
        return NewMemory(agent_id=self.agent_id, content=content, memory_type="entity", event_type=ITEM_EVENT,
                         metadata=metadata, tags=tags, dedup_key="lg." + _digest(*namespace, op.key)[:40])

    async def _put(self, client: AsyncMemtraceClient, op: PutOp) -> None:
        if op.ttl is not None:
            raise NotImplementedError("MemtraceStore does not support TTLs (supports_ttl is False)")
        for _ in range(_ATTEMPTS):
            old = await self._find(client, op.namespace, op.key)
            await self._forget(client, old)
            if op.value is None:
                return
            created = (old[-1].metadata.get("created_at") or old[-1].time.isoformat()) if old else None
            try:
                await client.add_memory(self._memory(op, dict(op.value), created))
                return
            except ConflictError:
                continue  # another put of this key stored its value between our delete and our add: replace it
        raise RuntimeError(f"could not put {op.key!r}: other writers kept putting the same key")

    async def _search(self, client: AsyncMemtraceClient, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        wanted = op.offset + op.limit
        fields = search_fields(op.query, limit=_PAGE if op.filter else wanted, agent_id=self.agent_id,
                               event_types=[ITEM_EVENT], tags=[_prefix_tag(prefix)] if prefix else None)
        found = recalled((await client.search(**fields)).results)
        items = [_item(f.memory, f.score) for f in found if _valid(f.memory)]
        items = [i for i in items if i.namespace[:len(prefix)] == prefix and
                 all(_compare_values(i.value.get(k), v) for k, v in (op.filter or {}).items())]
        return items[op.offset:wanted]

    async def _namespaces(self, client: AsyncMemtraceClient, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces: set[tuple[str, ...]] = set()
        offset = 0
        while True:
            page = await client.list_memories(agent_id=self.agent_id, event_type=ITEM_EVENT, limit=_PAGE,
                                              offset=offset)
            namespaces.update(tuple(m.metadata["namespace"]) for m in page.memories if _valid(m))
            offset += len(page.memories)
            if not page.has_more or not page.memories:
                break
        matching = [ns for ns in namespaces if all(_does_match(c, ns) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            matching = list({ns[:op.max_depth] for ns in matching})
        return sorted(matching)[op.offset:op.offset + op.limit]

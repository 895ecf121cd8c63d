"""`/api/v1/memories`, `/api/v1/search` and `/api/v1/recall`."""

from __future__ import annotations

import time

import msgspec
from blacksheep import Request, Response, Router

from memtrace import timeutil
from memtrace.api.deps import Deps
from memtrace.api.http import (
    decode,
    decoded,
    json_response,
    path_param,
    query_params,
    read_body,
)
from memtrace.api.params import body_filter, checked_query, list_filter, search_filter
from memtrace.errors import Invalid, NotFound
from memtrace.memory.build import memory_list, to_memory, to_scored
from memtrace.memory.model import (
    BatchCreated,
    NewMemory,
    RecallRequest,
    RecallResult,
    SearchRequest,
    SearchResults,
    Skipped,
)
from memtrace.patterns import MEMORY_ID_RE
from memtrace.terms import query_terms

_peek = msgspec.json.Decoder(dict[str, msgspec.Raw])
_single = msgspec.json.Decoder(NewMemory)
_items = msgspec.json.Decoder(list[NewMemory])
_search = msgspec.json.Decoder(SearchRequest)
_recall = msgspec.json.Decoder(RecallRequest)


def parse_create(body: bytes, max_items: int) -> tuple[list[NewMemory], bool]:
    """A single memory or `{"memories": [...]}`; returns the items and whether it was a batch.

    A body without the bytes `"memories"` cannot be a batch, so the common single POST is decoded once.
    """
    if b'"memories"' not in body:
        return [decode(_single, body)], False
    top = decode(_peek, body, NewMemory)
    raw_items = top.get("memories")
    if raw_items is None:
        return [decode(_single, body)], False
    items = decoded(_items, raw_items, label="memories")
    if not 1 <= len(items) <= max_items:
        raise Invalid(f"memories must be a list of 1 to {max_items} memories; got {len(items)}")
    return items, True


def register(router: Router, deps: Deps) -> None:
    limits = deps.settings.limits

    async def create(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        items, batch = parse_create(await read_body(request, limits.max_body_bytes), limits.max_batch_items)
        created = await deps.memories.create(principal.org_id, items, batch=batch)
        if not batch:
            return json_response(201, to_memory(created.rows[0]))
        memories = [to_memory(row) for row in created.rows]
        skipped = [Skipped(index=index, memory_id=memory_id) for index, memory_id in created.skipped]
        return json_response(201, BatchCreated(memories=memories, count=len(memories),
                                               duplicates=created.duplicates, skipped=skipped))

    async def list_memories(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        f, page = list_filter(query_params(request), timeutil.now_us())
        rows, has_more = await deps.memories.list_page(principal.org_id, f, page)
        return json_response(200, memory_list(rows, has_more))

    async def get_memory(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        memory_id = path_param(request, "memory_id")
        if not MEMORY_ID_RE.fullmatch(memory_id):
            raise NotFound("memory not found")
        return json_response(200, to_memory(await deps.memories.get(principal.org_id, memory_id)))

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        principal = await deps.principal(request, "read")
        req = decode(_search, await read_body(request, limits.max_body_bytes))
        text = checked_query(req.query)
        f, page = search_filter(req, timeutil.now_us())
        if text is None:
            rows, _ = await deps.memories.list_page(principal.org_id, f, page)
            results = [to_memory(r) for r in rows]
        else:
            time_order = req.order if req.order in ("asc", "desc") else None
            hits = await deps.ranked.search(principal.org_id, f, query_terms(text), page, time_order)
            results = [to_scored(row, score) for row, score in hits]
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        return json_response(200, SearchResults(results=results, count=len(results), query_time_ms=elapsed_ms))

    async def recall(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        req = decode(_recall, await read_body(request, limits.max_body_bytes))
        text = checked_query(req.query) or ""
        f = body_filter(req, timeutil.now_us())
        recalled, scores = await deps.ranked.recall(principal.org_id, f, text, query_terms(text),
                                                    req.max_tokens, req.neighbors)
        memories = [to_scored(row, scores.get(row.id, 0.0)) for row in recalled.rows]
        return json_response(200, RecallResult(query=text, context=recalled.context, memories=memories,
                                               memory_count=len(memories), token_estimate=recalled.token_estimate))

    router.add_post("/api/v1/memories", create)
    router.add_get("/api/v1/memories", list_memories)
    router.add_get("/api/v1/memories/:memory_id", get_memory)
    router.add_post("/api/v1/search", search)
    router.add_post("/api/v1/recall", recall)

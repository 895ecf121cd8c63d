"""Read filters from list query strings and search bodies into one validated MemoryFilter and Page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from msgspec import Meta, Struct

from memtrace.api.http import convert
from memtrace.errors import Invalid
from memtrace.memory.model import (
    MAX_TAGS,
    EventType,
    Id,
    Limit,
    MemoryType,
    Offset,
    Order,
    Page,
    SearchRequest,
    Time,
)
from memtrace.patterns import TAG_RE, TAG_WORDS
from memtrace.rows import MemoryFilter
from memtrace.timeutil import parse_time_param

TAGS_RULE = (f"must be a comma-separated list of at most {MAX_TAGS} tags, each {TAG_WORDS[0].removeprefix('must be ')},"
             ' e.g. "billing,urgent"')


class ListParams(Struct, kw_only=True, forbid_unknown_fields=False):
    """`GET .../memories` query parameters; unknown parameters are ignored."""

    agent_id: Id | None = None
    session_id: Id | None = None
    memory_type: MemoryType | None = None
    event_type: EventType | None = None
    tags: Annotated[str, Meta(extra={"rule": TAGS_RULE})] | None = None
    since: Time | None = None
    until: Time | None = None
    limit: Limit = 100
    offset: Offset = 0
    order: Order = "desc"


def parse_tags(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    if len(tags) > MAX_TAGS:
        raise Invalid(f"tags {TAGS_RULE}; got {len(tags)} tags")
    for tag in tags:
        if not TAG_RE.fullmatch(tag):
            raise Invalid(f"tags {TAGS_RULE}; got {tag[:64]!r}")
    return tags


def _window(since: str | None, until: str | None, now_us: int) -> tuple[int | None, int | None]:
    since_us = parse_time_param(since, now_us, "since") if since else None
    until_us = parse_time_param(until, now_us, "until") if until else None
    return since_us, until_us


def list_filter(
    params: dict[str, str], now_us: int, *, default_since: str | None = None, **fixed: str
) -> tuple[MemoryFilter, Page]:
    """Filter and page from query parameters; `fixed` pins agent_id/session_id from the path."""
    p = convert({**params, **fixed}, ListParams)
    since_us, until_us = _window(p.since or default_since, p.until, now_us)
    f = MemoryFilter(
        agent_id=p.agent_id,
        session_id=p.session_id,
        memory_types=(p.memory_type,) if p.memory_type else (),
        event_types=(p.event_type,) if p.event_type else (),
        tags=parse_tags(p.tags),
        since_us=since_us,
        until_us=until_us,
    )
    return f, Page(limit=p.limit, offset=p.offset, order=p.order)


class FilterBody(Protocol):
    """The filter fields a search body and a forget body share."""

    @property
    def agent_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def memory_types(self) -> Sequence[str] | None: ...
    @property
    def event_types(self) -> Sequence[str] | None: ...
    @property
    def tags(self) -> Sequence[str] | None: ...
    @property
    def since(self) -> str | None: ...
    @property
    def until(self) -> str | None: ...


def body_filter(req: FilterBody, now_us: int, **more: Any) -> MemoryFilter:
    """The MemoryFilter of a search or forget body; `more` adds the fields only one of them has."""
    since_us, until_us = _window(req.since, req.until, now_us)
    return MemoryFilter(
        agent_id=req.agent_id,
        session_id=req.session_id,
        memory_types=tuple(req.memory_types or ()),
        event_types=tuple(req.event_types or ()),
        tags=tuple(req.tags or ()),
        since_us=since_us,
        until_us=until_us,
        **more,
    )


def search_filter(req: SearchRequest, now_us: int) -> tuple[MemoryFilter, Page]:
    """The filter and page of a search body; with a query, `page.order` is the time order asked for (the
    ranking picks the page, `order` only sorts it) and "desc" stands for "relevance"."""
    if req.query is None and req.order == "relevance":
        raise Invalid('order "relevance" needs a query, e.g. {"query": "refund", "order": "relevance"}')
    f = body_filter(req, now_us, content_contains=req.content_contains or None, min_importance=req.min_importance)
    return f, Page(limit=req.limit, offset=req.offset, order="asc" if req.order == "asc" else "desc")


def checked_query(text: str | None) -> str | None:
    """A search or recall query, refused when it is only white space."""
    if text is not None and not text.strip():
        raise Invalid('query must contain a word to search for, e.g. "refund request"')
    return text

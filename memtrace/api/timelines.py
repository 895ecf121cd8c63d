"""`GET /api/v1/agents/{agent}/timeline` and `GET /api/v1/sessions/{session_id}/timeline`: memory counts per
time bucket and memory type, with errors, from Arc's `time_bucket` merged with the journal."""

from __future__ import annotations

from typing import Annotated

from blacksheep import Request, Response, Router
from msgspec import Meta, Struct

from memtrace.api.deps import Deps
from memtrace.api.http import convert, json_response, path_param, query_params
from memtrace.api.resolve import agent_aliases
from memtrace.errors import Invalid, NotFound
from memtrace.memory.model import MemoryFilter, Time
from memtrace.memory.timeline import MAX_BUCKET_US, MAX_BUCKETS, MIN_BUCKET_US, Bucket, bucket_count, timeline
from memtrace.patterns import ID_RE
from memtrace.timeutil import format_us, now_us, parse_duration_us, parse_time_param

BUCKET_RULE = "must be a duration from 1m to 1d such as 5m, 1h or 1d"


class TimelineParams(Struct, kw_only=True, forbid_unknown_fields=False):
    """The window (`since` inclusive, `until` exclusive, default now) and the bucket width, `1m` to `1d`."""

    since: Time = "7d"
    until: Time | None = None
    bucket: Annotated[str, Meta(extra={"rule": BUCKET_RULE})] = "1h"


class TimelineBucket(Struct, kw_only=True):
    start: str  # RFC 3339 UTC; buckets are aligned on the Unix epoch
    count: int
    by_type: dict[str, int]
    errors: int


class AgentTimeline(Struct, kw_only=True):
    agent_id: str
    bucket: str
    since: str
    until: str
    buckets: list[TimelineBucket]


class SessionTimeline(Struct, kw_only=True):
    session_id: str
    bucket: str
    since: str
    until: str
    buckets: list[TimelineBucket]


def parse_bucket(text: str) -> int:
    """A bucket width in µs from the relative duration syntax of `since`, between 1m and 1d."""
    width = parse_duration_us(text) or 0
    if not MIN_BUCKET_US <= width <= MAX_BUCKET_US:
        raise Invalid(f"bucket {BUCKET_RULE}; got {text[:64]!r}")
    return width


def window(params: dict[str, str], now_us: int) -> tuple[TimelineParams, int, int, int]:
    """The parameters, since, until and bucket width, or `Invalid` (too many buckets included)."""
    p = convert(params, TimelineParams)
    bucket_us = parse_bucket(p.bucket)
    since_us = parse_time_param(p.since or "7d", now_us, "since")
    until_us = parse_time_param(p.until, now_us, "until") if p.until else now_us
    if until_us <= since_us:
        raise Invalid("since must be earlier than until")
    if bucket_count(since_us, until_us, bucket_us) > MAX_BUCKETS:
        raise Invalid(f"the window holds more than {MAX_BUCKETS} buckets: use a wider bucket or a shorter window")
    return p, since_us, until_us, bucket_us


def _buckets(found: list[Bucket]) -> list[TimelineBucket]:
    return [TimelineBucket(start=format_us(b.start_us), count=b.count, by_type=b.by_type, errors=b.errors)
            for b in found]


def register(router: Router, deps: Deps) -> None:
    async def agent_timeline(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        org_id = principal.org_id
        agent_ids, agent = await agent_aliases(deps, org_id, path_param(request, "agent"))
        p, since_us, until_us, bucket_us = window(query_params(request), now_us())
        f = MemoryFilter(agent_ids=agent_ids, since_us=since_us, until_us=until_us)
        found = await timeline(deps.memories, org_id, f, bucket_us)
        return json_response(200, AgentTimeline(
            agent_id=agent.id if agent else agent_ids[0], bucket=p.bucket.strip(), since=format_us(since_us),
            until=format_us(until_us), buckets=_buckets(found)))

    async def session_timeline(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        session_id = path_param(request, "session_id")
        if not ID_RE.fullmatch(session_id):
            raise NotFound("session not found")
        p, since_us, until_us, bucket_us = window(query_params(request), now_us())
        f = MemoryFilter(session_id=session_id, since_us=since_us, until_us=until_us)
        found = await timeline(deps.memories, principal.org_id, f, bucket_us)
        return json_response(200, SessionTimeline(
            session_id=session_id, bucket=p.bucket.strip(), since=format_us(since_us), until=format_us(until_us),
            buckets=_buckets(found)))

    router.add_get("/api/v1/agents/:agent/timeline", agent_timeline)
    router.add_get("/api/v1/sessions/:session_id/timeline", session_timeline)




"""`GET /metrics`: Prometheus text format, every worker's samples merged (see memtrace/metrics.py).

Public like `/health`: the families carry no org ids, keys or payload, only route templates and counts.
"""

from __future__ import annotations

import asyncio

from blacksheep import Content, Request, Response, Router

from memtrace import metrics
from memtrace.api.deps import Deps


def register(router: Router, deps: Deps) -> None:
    async def scrape(request: Request) -> Response:
        # The journal is the one source of truth for the backlog; read it at scrape time, from any worker.
        metrics.m().journal_pending.set(await deps.status.pending_rows())
        metrics.m().dead_letters.set(await deps.status.dead_letters())
        metrics.m().journal_full.set(1 if deps.status.journal_full else 0)
        body = await asyncio.to_thread(metrics.exposition)
        return Response(200, None, Content(metrics.CONTENT_TYPE.encode(), body))

    router.add_get("/metrics", scrape)

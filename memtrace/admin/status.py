"""`memtrace admin status`: each org's Arc binding, Arc health and delivery backlog, for an operator.

It is what `GET /ready` shows an admin key, seen from outside the server: every distinct Arc URL is probed
once on its public `/health` (no token needed), and the journal is read (never written) for what waits.
Works with the server up or down.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from memtrace.admin._common import Output, journal_path, table
from memtrace.metadata.db import MetadataDB

PROBE_TIMEOUT_S = 3.0


async def _probe(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(url.rstrip("/") + "/health", allow_redirects=False) as resp:
            return "ok" if 200 <= resp.status < 300 else f"down (HTTP {resp.status})"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"down ({type(exc).__name__})"


async def probe_all(urls: set[str]) -> dict[str, str]:
    """Health of each Arc URL, probed concurrently so a dead Arc costs one timeout, not one per org."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        ordered = sorted(urls)
        results = await asyncio.gather(*(_probe(session, url) for url in ordered))
    return dict(zip(ordered, results, strict=True))


def journal_backlog(path: Path) -> dict[str, tuple[int, float | None, int]]:
    """Per org: (undelivered rows, seconds the oldest has waited, dead letters), read-only."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        now = time.time()
        out: dict[str, tuple[int, float | None, int]] = {}
        for org_id, n in conn.execute("SELECT org_id, n FROM org_pending WHERE n > 0"):
            oldest = conn.execute("SELECT min(accepted_at) FROM journal WHERE org_id = ? AND delivered_at IS NULL",
                                  (org_id,)).fetchone()[0]
            out[org_id] = (int(n), None if oldest is None else max(0.0, now - float(oldest)), 0)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "dead_letter" in tables:
            for org_id, n in conn.execute("SELECT org_id, count(*) FROM dead_letter GROUP BY org_id"):
                pending, age, _ = out.get(org_id, (0, None, 0))
                out[org_id] = (pending, age, int(n))
        return out
    finally:
        conn.close()


async def shared_backlog(db: MetadataDB) -> dict[str, tuple[int, float | None, int]]:
    """`journal_backlog` for a shared PostgreSQL (metadata.url): the journal's tables are in the same database."""
    now = time.time()
    out: dict[str, tuple[int, float | None, int]] = {}
    for org_id, n, oldest in await db.fetchall(
            "SELECT p.org_id, p.n, (SELECT min(j.accepted_at) FROM journal j WHERE j.org_id = p.org_id"
            " AND j.delivered_at IS NULL) FROM org_pending p WHERE p.n > 0"):
        out[org_id] = (int(n), None if oldest is None else max(0.0, now - float(oldest)), 0)
    for org_id, n in await db.fetchall("SELECT org_id, count(*) FROM dead_letter GROUP BY org_id"):
        pending, age, _ = out.get(org_id, (0, None, 0))
        out[org_id] = (pending, age, int(n))
    return out


HEADERS = ("ORG", "NAME", "ARC", "DATABASE", "HEALTH", "PENDING", "OLDEST", "DEAD")


async def status(args: argparse.Namespace, db: MetadataDB) -> tuple[list[tuple[str, ...]], list[dict[str, Any]]]:
    """Table rows (see HEADERS) and the same as JSON-able records, one per org."""
    orgs = await db.orgs.list()
    bindings = {row.org_id: row for row in await db.arc_instances.list_all()}
    health = await probe_all({row.url for row in bindings.values()})
    backlog = await shared_backlog(db) if hasattr(db, "pool") else journal_backlog(journal_path(args, db.path))
    data: list[dict[str, Any]] = []
    for org in orgs:
        row = bindings.get(org.id)
        pending, age, dead = backlog.get(org.id, (0, None, 0))
        data.append({
            "org_id": org.id, "name": org.name,
            "arc_url": row.url if row else None, "database": row.database if row else None,
            "arc": health[row.url] if row else "unbound",
            "pending_rows": pending, "oldest_pending_s": None if age is None else round(age, 1),
            "dead_letters": dead,
        })
    return [_row(d) for d in data], data


def _row(d: dict[str, Any]) -> tuple[str, ...]:
    oldest = "-" if d["oldest_pending_s"] is None else f"{d['oldest_pending_s']:.0f}s"
    return (d["org_id"], d["name"], d["arc_url"] or "-", d["database"] or "-", d["arc"], str(d["pending_rows"]),
            oldest, str(d["dead_letters"]))


async def _command(args: argparse.Namespace, db: MetadataDB) -> Output:
    rows, data = await status(args, db)
    return table(HEADERS, rows), data


def add_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    p = groups.add_parser("status", parents=[common],
                          help="each org's Arc health and delivery backlog (what /ready shows an admin key)")
    p.add_argument("--journal", default=argparse.SUPPRESS, help="journal DB file (default: from settings)")
    p.set_defaults(handler=_command)

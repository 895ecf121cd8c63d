"""Sessions, per org: bounded work contexts with an active/closed lifecycle.

A session keeps the agent_id it was created with (id or name, as the client gave it), so listing by
agent takes every alias of the agent (see `api/resolve.agent_aliases`).
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from memtrace.errors import Invalid, NotFound
from memtrace.jsonlimits import stored_object
from memtrace.metadata._util import check_id, encode_object, missing_pairs, new_id
from memtrace.metadata.models import SESSION_STATUSES, Session
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

_SELECT = (
    "SELECT id, org_id, agent_id, status, metadata_json, created_at, updated_at, closed_at FROM sessions"
)
_COUNTS = "SELECT COUNT(*), COALESCE(SUM(status = 'active'), 0) FROM sessions"
_BY_ID = _SELECT + " WHERE org_id = ? AND id = ?"
_MISSING = (
    "WITH v (org_id, id) AS ({values}) SELECT v.org_id, v.id FROM v WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.org_id = v.org_id AND s.id = v.id)"
)


def _session(row: sqlite3.Row) -> Session:
    return Session(
        id=row["id"],
        org_id=row["org_id"],
        agent_id=row["agent_id"],
        status=row["status"],
        metadata=stored_object(row["metadata_json"], "metadata of session", row["id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
    )


def _agent_filter(agent_ids: Sequence[str] | None) -> tuple[str, builtins.list[str]]:
    if agent_ids is None:
        return "", []
    ids = list(dict.fromkeys(agent_ids))
    if not ids:
        return " AND 0", []
    return f" AND agent_id IN ({', '.join('?' * len(ids))})", ids


class Sessions:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def create(
        self, org_id: str, agent_id: str, metadata: dict[str, Any] | msgspec.Raw | None = None
    ) -> Session:
        """A new active session. The agent is not checked here: the API registers it (`Agents.ensure`)."""
        check_id(agent_id, "agent_id")
        metadata_json = encode_object(metadata, "metadata")
        now = format_us(now_us())
        session = Session(
            id=new_id("sess"),
            org_id=org_id,
            agent_id=agent_id,
            status="active",
            metadata=metadata_json,
            created_at=now,
            updated_at=now,
            closed_at=None,
        )
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO sessions (id, org_id, agent_id, status, metadata_json, created_at, updated_at, "
                "closed_at, last_active_at) VALUES (?, ?, ?, 'active', ?, ?, ?, NULL, ?)",
                (session.id, org_id, agent_id, bytes(metadata_json).decode(), now, now, now),
            )
        return session

    async def find(self, org_id: str, session_id: str) -> Session | None:
        row = await self._db.fetchone(_BY_ID, (org_id, session_id))
        return _session(row) if row else None

    async def get(self, org_id: str, session_id: str) -> Session:
        session = await self.find(org_id, session_id)
        if session is None:
            raise NotFound("session not found")
        return session

    async def list(self, org_id: str, agent_ids: Sequence[str] | None = None) -> builtins.list[Session]:
        """Newest first; `agent_ids` (any alias of one agent) narrows to that agent's sessions."""
        where, params = _agent_filter(agent_ids)
        rows = await self._db.fetchall(
            _SELECT + f" WHERE org_id = ?{where} ORDER BY created_at DESC, rowid DESC",
            (org_id, *params),
        )
        return [_session(r) for r in rows]

    async def update(
        self, org_id: str, session_id: str, status: str | None = None,
        metadata: dict[str, Any] | msgspec.Raw | None = None,
    ) -> Session:
        """Change status and/or replace metadata. Closing sets closed_at (kept if already closed);
        reopening (`active`) clears it. Unknown status → Invalid; unknown session → NotFound."""
        if status is not None and status not in SESSION_STATUSES:
            raise Invalid(f"status must be 'active' or 'closed', got {status!r}")
        new_metadata = None if metadata is None else encode_object(metadata, "metadata")
        now = format_us(now_us())
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_BY_ID, (org_id, session_id))
            if row is None:
                raise NotFound("session not found")
            session = _session(row)
            if status == "closed" and session.status != "closed":
                session.closed_at = now
            elif status == "active":
                session.closed_at = None
            if status is not None:
                session.status = status
            if new_metadata is not None:
                session.metadata = new_metadata
            session.updated_at = now
            await tx.execute(
                "UPDATE sessions SET status = ?, metadata_json = ?, updated_at = ?, closed_at = ? "
                "WHERE org_id = ? AND id = ?",
                (session.status, bytes(session.metadata).decode(), now, session.closed_at, org_id, session_id),
            )
        return session

    async def counts(self, org_id: str, agent_ids: Sequence[str] | None = None) -> tuple[int, int]:
        """(total, active) sessions of the org, or of one agent given all its aliases."""
        where, params = _agent_filter(agent_ids)
        row = await self._db.fetchone(
            _COUNTS + f" WHERE org_id = ?{where}",  # `where` holds only "?" placeholders
            (org_id, *params),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def missing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (org_id, session id) pairs name no session of that org."""
        return await missing_pairs(self._db, _MISSING, keys)

    async def register_named(self, named: Sequence[tuple[str, str, str, int, int]]) -> None:
        """Register the sessions that (org_id, session id, agent_id, first_us, last_us) name unless they exist, in
        one transaction: active, with the id and agent the memories gave, created at the first memory's time."""
        if not named:
            return
        rows = [(sid, org_id, agent_id, format_us(first), format_us(last))
                for org_id, sid, agent_id, first, last in named]
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO sessions (id, org_id, agent_id, status, metadata_json, created_at, updated_at, closed_at, "
                "last_active_at) VALUES (?1, ?2, ?3, 'active', '{}', ?4, ?4, NULL, ?5) ON CONFLICT DO NOTHING",
                rows,
            )

    async def touch_many(self, last_active: Mapping[tuple[str, str], int]) -> None:
        """Move last_active_at forward (never back) for (org_id, session id) pairs of many orgs, in one transaction."""
        if not last_active:
            return
        rows = [(format_us(us), org_id, sid) for (org_id, sid), us in last_active.items()]
        async with self._db.transaction() as tx:
            await tx.executemany(
                "UPDATE sessions SET last_active_at = ?1 WHERE org_id = ?2 AND id = ?3 "
                "AND (last_active_at IS NULL OR last_active_at < ?1)",
                rows,
            )

    async def delete_for_agent(self, org_id: str, agent_ids: Sequence[str]) -> int:
        """Delete every session of one agent (given all its aliases), for agent erasure."""
        where, params = _agent_filter(agent_ids)
        async with self._db.transaction() as tx:
            sql = "DELETE FROM sessions WHERE org_id = ?"
            return await tx.execute(sql + where, (org_id, *params))

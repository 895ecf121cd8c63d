"""Registered agents, per org. Memories and sessions may name agents nobody registered; `ensure` covers that.

Agents are addressed by id (`agent_<hex>`) or by name; when a name happens to equal another agent's
id, the id wins, so an id always means the same agent.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from memtrace.errors import Conflict, NotFound
from memtrace.jsonlimits import stored_object
from memtrace.metadata._util import check_id, encode_object, missing_pairs, new_id, unique_violation
from memtrace.metadata.models import Agent
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

_SELECT = "SELECT id, org_id, name, description, config_json, created_at, last_active_at FROM agents"
_INSERT = (
    "INSERT INTO agents (id, org_id, name, description, config_json, created_at, last_active_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_BY_ID_OR_NAME = _SELECT + " WHERE org_id = ? AND (id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1"
# An agent named by a memory: registered unless some agent already has that id or name (racing inserts of one
# name: the loser's is a no-op on the (org_id, name) key).
_REGISTER_NAMED = (
    "INSERT INTO agents (id, org_id, name, description, config_json, created_at, last_active_at) "
    "SELECT ?1, ?2, ?3, '', '{}', ?4, ?5 WHERE NOT EXISTS "
    "(SELECT 1 FROM agents WHERE org_id = ?2 AND (id = ?3 OR name = ?3)) ON CONFLICT (org_id, name) DO NOTHING"
)
_MISSING = (
    "WITH v (org_id, name) AS ({values}) SELECT v.org_id, v.name FROM v WHERE NOT EXISTS "
    "(SELECT 1 FROM agents a WHERE a.org_id = v.org_id AND (a.id = v.name OR a.name = v.name))"
)


def _agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        description=row["description"],
        config=stored_object(row["config_json"], "config of agent", row["id"]),
        created_at=row["created_at"],
        last_active_at=row["last_active_at"] or row["created_at"],
    )


class Agents:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def create(
        self, org_id: str, name: str, description: str = "", config: dict[str, Any] | msgspec.Raw | None = None
    ) -> Agent:
        """Register an agent; the same name twice in one org → Conflict; `config` too deep → Invalid."""
        check_id(name, "name")
        config_json = encode_object(config, "config")
        created = format_us(now_us())
        agent = Agent(
            id=new_id("agent"),
            org_id=org_id,
            name=name,
            description=description or "",
            config=config_json,
            created_at=created,
            last_active_at=created,
        )
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    _INSERT,
                    (agent.id, org_id, name, agent.description, bytes(config_json).decode(), agent.created_at,
                     agent.created_at),
                )
        except sqlite3.IntegrityError as exc:
            if unique_violation(exc) == "agents.org_id, agents.name":
                raise Conflict(f"an agent named {name!r} already exists") from None
            raise
        return agent

    async def list(self, org_id: str) -> builtins.list[Agent]:
        """Newest first."""
        rows = await self._db.fetchall(
            _SELECT + " WHERE org_id = ? ORDER BY created_at DESC, rowid DESC", (org_id,)
        )
        return [_agent(r) for r in rows]

    async def find(self, org_id: str, id_or_name: str) -> Agent | None:
        row = await self._db.fetchone(_BY_ID_OR_NAME, (org_id, id_or_name, id_or_name, id_or_name))
        return _agent(row) if row else None

    async def get(self, org_id: str, id_or_name: str) -> Agent:
        agent = await self.find(org_id, id_or_name)
        if agent is None:
            raise NotFound("agent not found")
        return agent

    async def delete(self, org_id: str, id_or_name: str) -> bool:
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_BY_ID_OR_NAME, (org_id, id_or_name, id_or_name, id_or_name))
            if row is None:
                return False
            await tx.execute("DELETE FROM agents WHERE id = ? AND org_id = ?", (row["id"], org_id))
            return True

    async def ensure(self, org_id: str, name: str) -> Agent:
        """The agent that `name` names (by id or name), registering it under that name if absent.

        Race-safe across tasks and processes: the INSERT is a no-op when someone else won.
        """
        check_id(name, "agent_id")
        now = format_us(now_us())
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_BY_ID_OR_NAME, (org_id, name, name, name))
            if row is None:
                await tx.execute(
                    _INSERT + " ON CONFLICT (org_id, name) DO NOTHING",
                    (new_id("agent"), org_id, name, "", "{}", now, now),
                )
                row = await tx.fetchone(_SELECT + " WHERE org_id = ? AND name = ?", (org_id, name))
        assert row is not None
        return _agent(row)

    async def missing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (org_id, id or name) pairs name no agent."""
        return await missing_pairs(self._db, _MISSING, keys)

    async def register_named(self, named: Sequence[tuple[str, str, int, int]]) -> None:
        """Register the agents that (org_id, name, first_us, last_us) name unless they exist, in one transaction:
        name = the id the memories gave, created at the first memory's time."""
        if not named:
            return
        rows = [(new_id("agent"), org_id, name, format_us(first), format_us(last))
                for org_id, name, first, last in named]
        async with self._db.transaction() as tx:
            await tx.executemany(_REGISTER_NAMED, rows)

    async def touch_many(self, last_active: Mapping[tuple[str, str], int]) -> None:
        """Move last_active_at forward (never back) for (org_id, id or name) pairs of many orgs, in one transaction."""
        if not last_active:
            return
        rows = [(format_us(us), org_id, key, key) for (org_id, key), us in last_active.items()]
        async with self._db.transaction() as tx:
            # Fixed-width timestamps compare correctly as strings, so `<` is chronological.
            await tx.executemany(
                "UPDATE agents SET last_active_at = ?1 WHERE org_id = ?2 AND (id = ?3 OR name = ?4) "
                "AND (last_active_at IS NULL OR last_active_at < ?1)",
                rows,
            )

"""Revocations at once on every host: LISTEN for the triggers' `pg_notify` on a connection of our own.

Each worker keeps one extra connection LISTENing on `memtrace_changes`; every notification, and every
(re)connect (notifications sent while we were away are lost), clears the auth cache and reloads the Arc
bindings. The 1 s change-counter poll stays as the fallback (pooled endpoints that drop LISTEN, engines
without it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import psycopg

from memtrace.metadata.pg import CHANNEL

log = logging.getLogger("memtrace.metadata")

RECONNECT_S: Final = 1.0


async def listen_for_changes(url: str, on_change: Callable[[], Awaitable[None]]) -> None:
    """Run until cancelled."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=3) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                await on_change()
                async for _ in conn.notifies():
                    await on_change()
        except psycopg.Error as exc:
            log.warning("metadata change feed lost (%s); reconnecting, the poll covers meanwhile", exc)
        await asyncio.sleep(RECONNECT_S)

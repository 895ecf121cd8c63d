"""Named leases in the journal: which process of the host delivers to Arc.

A holder is `host:pid:start`; a holder whose process is gone from this host loses its lease at once,
otherwise a lease lapses `ttl_s` after its last renewal.
"""

from __future__ import annotations

import os
import socket
import time

from memtrace.journal._sqlite import ThreadedConnection


def holder_id() -> str:
    """`host:pid:start` names this process as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def holder_alive(holder: str) -> bool:
    """False only when the holder is a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases:
    def __init__(self, db: ThreadedConnection) -> None:
        self._db = db

    async def try_take(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the named lease; True when `holder` holds it now."""

        def _w() -> bool:
            now = time.time()
            with self._db.write() as conn:
                found = conn.execute("SELECT holder, expires_at FROM lease WHERE name = ?", (name,)).fetchone()
                if found is None or found[0] == holder or found[1] < now or not holder_alive(found[0]):
                    conn.execute(
                        "INSERT OR REPLACE INTO lease(name, holder, expires_at) VALUES (?, ?, ?)",
                        (name, holder, now + ttl_s),
                    )
                    return True
                return False

        return await self._db.run(_w)

    async def release(self, name: str, holder: str) -> None:
        def _w() -> None:
            with self._db.write() as conn:
                conn.execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

        await self._db.run(_w)

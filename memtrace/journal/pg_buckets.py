"""Delivery buckets on the shared database: which host delivers which Arc targets.

Arc targets hash into `delivery.buckets` lease rows (`arc/delivery.py`). Each host heartbeats in
`delivery_hosts` and holds at most its share (⌈buckets / live hosts⌉), renewed every second with a TTL on the
database clock, so a dead host's buckets move to the others within the TTL and a new host gets its share as
the others give back what is above theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memtrace.pgsql import JOURNAL_LOCK

if TYPE_CHECKING:
    from memtrace.journal.pg import PgConnection


def claim_buckets(conn: PgConnection, holder: str, buckets: int, ttl_s: float) -> frozenset[int]:
    """One transaction on the database clock: heartbeat, renew ours, give back above our share of the live
    hosts, take free or expired buckets up to it."""
    db = conn.raw()
    ttl = f"{ttl_s} seconds"
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (JOURNAL_LOCK + 1,))
        db.execute("INSERT INTO delivery_lease(bucket) SELECT generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
                   (buckets,))
        db.execute("INSERT INTO delivery_hosts(holder, seen_at) VALUES (%s, now()) ON CONFLICT (holder)"
                   " DO UPDATE SET seen_at = now()", (holder,))
        db.execute("DELETE FROM delivery_hosts WHERE seen_at < now() - %s::interval", (ttl,))
        found = db.execute("SELECT count(*) FROM delivery_hosts").fetchone()
        live = max(1, int(found[0]) if found else 1)
        share = -(-buckets // live)
        cur = db.execute("UPDATE delivery_lease SET expires_at = now() + %s::interval WHERE holder = %s"
                         " AND bucket < %s RETURNING bucket", (ttl, holder, buckets))
        mine = sorted(int(b) for (b,) in cur.fetchall())
        if len(mine) > share:
            db.execute("UPDATE delivery_lease SET holder = NULL, expires_at = NULL WHERE bucket = ANY(%s)",
                       (mine[share:],))
            mine = mine[:share]
        elif len(mine) < share:
            cur = db.execute(
                "UPDATE delivery_lease SET holder = %s, expires_at = now() + %s::interval WHERE bucket IN"
                " (SELECT bucket FROM delivery_lease WHERE bucket < %s AND (holder IS NULL OR expires_at < now())"
                " ORDER BY bucket LIMIT %s) RETURNING bucket", (holder, ttl, buckets, share - len(mine)))
            mine += [int(b) for (b,) in cur.fetchall()]
    return frozenset(mine)


def release_buckets(conn: PgConnection, holder: str) -> None:
    db = conn.raw()
    with db.transaction():
        db.execute("UPDATE delivery_lease SET holder = NULL, expires_at = NULL WHERE holder = %s", (holder,))
        db.execute("DELETE FROM delivery_hosts WHERE holder = %s", (holder,))

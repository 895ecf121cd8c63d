"""`admin delivery ...`: list, retry or drop the memories Arc refused (dead letters), on the journal DB."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memtrace.admin._common import AdminError, Output, Parser, table
from memtrace.errors import NotFound
from memtrace.journal import deadletter
from memtrace.journal._sqlite import ThreadedConnection
from memtrace.journal.deadletter import DeadLetters

DeliveryHandler = Callable[[argparse.Namespace, DeadLetters], Awaitable[Output]]


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _dead_letters(args: argparse.Namespace, dead: DeadLetters) -> Output:
    found = await dead.list(args.org, limit=args.limit)
    data = [{**dataclasses.asdict(d), "first_attempt_at": _stamp(d.first_attempt_at),
             "last_attempt_at": _stamp(d.last_attempt_at)} for d in found]
    rows = [(str(d.entry), d.org_id, d.memory_id, str(d.size), str(d.arc_status), str(d.attempts),
             _stamp(d.first_attempt_at), _stamp(d.last_attempt_at), _arc_said(d.arc_error))
            for d in found]
    text = table(("ENTRY", "ORG", "MEMORY", "BYTES", "STATUS", "ATTEMPTS", "FIRST", "LAST", "ARC SAID"), rows)
    return text, data


def _arc_said(error: str) -> str:
    """Arc's own words, without our "arc for org … rejected the request (HTTP n): " prefix."""
    return " ".join((error.partition("): ")[2] or error).split())[:80]


def _found(args: argparse.Namespace, n: int) -> int:
    if n == 0 and args.entry is not None:
        raise NotFound(f"no dead letter {args.entry}" + (f" of org {args.org}" if args.org else ""))
    return n


def _selection(args: argparse.Namespace) -> list[int] | None:
    if args.all == (args.entry is not None):
        raise AdminError("give one dead-letter ENTRY or --all (see: delivery dead-letters)")
    return None if args.all else [args.entry]


async def _dead_retry(args: argparse.Namespace, dead: DeadLetters) -> Output:
    moved = _found(args, await dead.retry(args.org, _selection(args)))
    return f"{moved} dead letter(s) back to pending; the deliverer sends them within a flush interval", \
        {"retried": moved}


async def _dead_drop(args: argparse.Namespace, dead: DeadLetters) -> Output:
    dropped = _found(args, await dead.drop(args.org, _selection(args)))
    return f"dropped {dropped} dead letter(s): those memories are gone for good", {"dropped": dropped}


def add_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    delivery = groups.add_parser("delivery", help="memories Arc refused (dead letters)").add_subparsers(
        dest="command", required=True)
    journal = Parser(add_help=False)
    journal.add_argument("--journal", default=argparse.SUPPRESS, help="journal DB file (default: from settings)")
    journal.add_argument("--org", help="only this org")
    p = delivery.add_parser("dead-letters", parents=[common, journal], help="list memories Arc refused")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    p.set_defaults(delivery_handler=_dead_letters)
    for name, handler, what in (("retry", _dead_retry, "put back to pending"),
                                ("drop", _dead_drop, "forget for good")):
        p = delivery.add_parser(name, parents=[common, journal], help=f"dead letters: {what}")
        p.add_argument("entry", type=int, nargs="?", help="the ENTRY shown by dead-letters")
        p.add_argument("--all", action="store_true", help="every dead letter (of --org, if given)")
        p.set_defaults(delivery_handler=handler)


async def run(args: argparse.Namespace, path: Path | str) -> Output:
    """The delivery command on the journal: a SQLite file, or the shared PostgreSQL (a URL)."""
    if isinstance(path, str):
        from memtrace.journal.pg import PgThreadedConnection

        db: ThreadedConnection = PgThreadedConnection(path, "admin-journal")
    else:
        db = await ThreadedConnection.open(path, "NORMAL", "admin-journal")
        await db.run(db.create_schema, deadletter.SCHEMA)  # a journal written before dead letters existed
    try:
        handler: DeliveryHandler = args.delivery_handler
        return await handler(args, DeadLetters(db))
    finally:
        await db.close()



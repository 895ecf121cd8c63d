"""`memtrace admin` (or `python -m memtrace.admin`): provision orgs, Arc bindings and API keys, server up or
down; and inspect, retry or drop the memories Arc refused (`delivery`, which works on the journal DB).

It writes the metadata DB directly; running servers notice through the DB's change counter within
about a second (new orgs, rebinds, revocations), so nothing needs a restart.

The master key (`MEMTRACE_MASTER_KEY`) is needed only to store an Arc API key (`org add-arc --api-key`)
and, optionally, to show its last four characters (`org show-arc`); everything else works without it,
so routine key management does not spread the master key to more shells than necessary.

Exit status: 0 on success, 1 with one `error: ...` line on stderr for anything wrong (unknown org,
duplicate name, bad URL, missing master key), 2 for command-line usage errors.

Orgs are named by id or by name wherever a command takes one. `org delete` asks for confirmation on a
terminal and refuses without `--yes` when stdin is not one (scripts must say so explicitly).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from memtrace import admin_status, crypto, forget_admin, migrate_pg
from memtrace.config import ConfigError, load_settings
from memtrace.dbcheck import DamagedDatabase, check_metadata
from memtrace.errors import MemtraceError, NotFound
from memtrace.journal import deadletter
from memtrace.journal._sqlite import ThreadedConnection
from memtrace.journal.deadletter import DeadLetters
from memtrace.keys import DEFAULT_PERMISSIONS, format_permissions, parse_permissions
from memtrace.metadata._util import now_us, parse_ts
from memtrace.metadata.arc_instances import DEFAULT_MEASUREMENT, decrypt_binding
from memtrace.metadata.db import MetadataDB, SchemaError, open_metadata
from memtrace.metadata.forgetting import describe
from memtrace.metadata.models import ApiKeyInfo, Org

PROG = "memtrace admin"
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# (human text, JSON-able value)
Output = tuple[str, Any]
Handler = Callable[[argparse.Namespace, MetadataDB], Awaitable[Output]]


class AdminError(Exception):
    """A one-line, user-facing failure of the CLI itself (bad flag value, missing DB file)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_duration_s(text: str) -> int:
    """`30m`, `12h`, `30d`, `4w` → seconds."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not match or int(match[1]) <= 0:
        raise AdminError(f"--expires-in must look like 30m, 12h, 30d or 4w, got {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def mask_secret(secret: str) -> str:
    """Enough to tell keys apart, never enough to use one."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


def _key_status(key: ApiKeyInfo, now: int) -> str:
    if key.revoked_at:
        return "revoked"
    if key.expires_at and parse_ts(key.expires_at) <= now:
        return "expired"
    return "active"


async def _org(db: MetadataDB, ref: str) -> Org:
    """An org by id, else by name (names are unique)."""
    org = await db.orgs.find(ref) or await db.orgs.find_by_name(ref)
    if org is None:
        raise NotFound(f"unknown org {ref!r} (give its id or name; see: {PROG} org list)")
    return org


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise AdminError("refusing to delete without confirmation: stdin is not a terminal; pass --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise AdminError("not deleted")


# --- commands -------------------------------------------------------------------------------------


async def _org_create(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await db.orgs.create(args.name, id=args.id)
    return f"created org {org.id} ({org.name})", msgspec.to_builtins(org)


async def _org_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    orgs = await db.orgs.list()
    arcs = {row.org_id: row.url for row in await db.arc_instances.list_all()}
    policies = await forget_admin.retention_by_org(db)
    data = [{**msgspec.to_builtins(o), "arc_url": arcs.get(o.id),
             "retention": msgspec.to_builtins(policies.get(o.id, []))} for o in orgs]
    rows = [(o.id, o.name, o.created_at, arcs.get(o.id, "-"), describe(policies.get(o.id, [])) or "-")
            for o in orgs]
    return _table(("ID", "NAME", "CREATED", "ARC", "RETENTION"), rows), data


async def _org_delete(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await _org(db, args.org_id)
    if not args.yes:
        what = "its Arc rows, journal rows, " if args.purge else ""
        _confirm(f"delete org {org.id} ({org.name}) with {what}its Arc binding, API keys, agents and sessions?")
    args.org_id = org.id  # addressed by name or id; everything below works on the id
    purged = await forget_admin.purge(args, db) if args.purge else None
    if not await db.orgs.delete(org.id):
        raise NotFound(f"unknown org {org.id!r}")
    if purged is None:
        text = f"deleted org {org.id} with its Arc binding, API keys, agents and sessions (Arc data is kept)"
        return text, {"deleted": org.id}
    arc_rows, journal_rows = purged
    text = (f"deleted org {org.id} with its Arc binding, API keys, agents and sessions; purged {arc_rows} "
            f"rows from its Arc database and {journal_rows} from the journal")
    return text, {"deleted": org.id, "arc_rows": arc_rows, "journal_rows": journal_rows}


async def _org_add_arc(args: argparse.Namespace, db: MetadataDB) -> Output:
    master = crypto.load_master_key() if args.api_key is not None else None
    org = await _org(db, args.org_id)
    arc = await db.arc_instances.upsert(
        org.id, args.url, args.database, args.measurement, args.api_key, master,
        clear_api_key=args.clear_api_key,
    )
    key_state = "set" if arc.has_api_key else "none"
    text = (
        f"bound org {arc.org_id} to {arc.url} (database {arc.database}, measurement {arc.measurement}, "
        f"API key {key_state})"
    )
    return text, msgspec.to_builtins(arc)


async def _org_show_arc(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await _org(db, args.org_id)
    row = await db.arc_instances.get_row(org.id)
    arc = await db.arc_instances.get(org.id)
    if row is None or arc is None:
        raise NotFound(f"org {args.org_id!r} has no Arc binding (add one with: {PROG} org add-arc)")
    masked: str | None = None
    if arc.has_api_key:
        if crypto.MASTER_KEY_ENV in os.environ:
            binding = decrypt_binding(row, crypto.load_master_key())  # also proves the ciphertext is intact
            masked = mask_secret(binding.api_key or "")
        else:
            masked = f"(set; export {crypto.MASTER_KEY_ENV} to check it)"
    data = {**msgspec.to_builtins(arc), "api_key": masked}
    pairs = [
        ("org", arc.org_id), ("url", arc.url), ("database", arc.database), ("measurement", arc.measurement),
        ("api key", masked or "(none)"), ("created", arc.created_at), ("updated", arc.updated_at),
    ]
    return "\n".join(f"{k + ':':<13}{v}" for k, v in pairs), data


async def _org_remove_arc(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await _org(db, args.org_id)
    if not await db.arc_instances.delete(org.id):
        raise NotFound(f"org {args.org_id!r} has no Arc binding")
    return f"removed the Arc binding of org {org.id}", {"removed": org.id}


async def _key_create(args: argparse.Namespace, db: MetadataDB) -> Output:
    perms = parse_permissions(args.permissions) if args.permissions else DEFAULT_PERMISSIONS
    expires = None if args.expires_in is None else now_us() + parse_duration_s(args.expires_in) * 1_000_000
    org = await _org(db, args.org)
    info, key = await db.api_keys.create(org.id, args.name, perms, expires)
    text = (
        f"created API key {info.id} ({info.name}) for org {info.org_id}: permissions "
        f"{format_permissions(perms)}, expires {info.expires_at or 'never'}\n{key}\n"
        "store it now: it cannot be shown again"
    )
    return text, {**msgspec.to_builtins(info), "key": key}


async def _key_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await _org(db, args.org)
    keys = await db.api_keys.list(org.id)
    now = now_us()
    rows = [
        (k.id, k.name, ",".join(k.permissions), k.created_at, k.expires_at or "never", _key_status(k, now))
        for k in keys
    ]
    data = [{**msgspec.to_builtins(k), "status": _key_status(k, now)} for k in keys]
    return _table(("ID", "NAME", "PERMISSIONS", "CREATED", "EXPIRES", "STATUS"), rows), data


async def _key_revoke(args: argparse.Namespace, db: MetadataDB) -> Output:
    if not await db.api_keys.revoke(args.key_id):
        raise NotFound(f"unknown API key {args.key_id!r}")
    info = await db.api_keys.get(args.key_id)
    assert info is not None
    return f"revoked API key {info.id} ({info.name}) of org {info.org_id}", msgspec.to_builtins(info)


# --- delivery (the journal's dead letters) ---------------------------------------------------------

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
    text = _table(("ENTRY", "ORG", "MEMORY", "BYTES", "STATUS", "ATTEMPTS", "FIRST", "LAST", "ARC SAID"), rows)
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


async def _status(args: argparse.Namespace, db: MetadataDB) -> Output:
    rows, data = await admin_status.status(args, db)
    return _table(admin_status.HEADERS, rows), data


def _add_delivery_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    delivery = groups.add_parser("delivery", help="memories Arc refused (dead letters)").add_subparsers(
        dest="command", required=True)
    journal = _Parser(add_help=False)
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


def _journal_path(args: argparse.Namespace) -> Path:
    journal = getattr(args, "journal", None)
    if journal:
        return Path(journal).expanduser()
    return load_settings(getattr(args, "config", None)).journal_path


async def _run_delivery(args: argparse.Namespace, path: Path) -> Output:
    db = await ThreadedConnection.open(path, "NORMAL", "admin-journal")
    try:
        await db.run(db.create_schema, deadletter.SCHEMA)  # a journal written before dead letters existed
        handler: DeliveryHandler = args.delivery_handler
        return await handler(args, DeadLetters(db))
    finally:
        await db.close()


# --- parsing and running --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # Global flags are accepted before or after the command; SUPPRESS keeps a later default from
    # overwriting an earlier value.
    common = _Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="metadata DB file (default: from settings)")
    common.add_argument("--config", default=argparse.SUPPRESS, help="memtrace.toml to read settings from")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

    parser = _Parser(prog=PROG, description="Provision Memtrace orgs, Arc bindings and API keys.",
                     parents=[common])
    groups = parser.add_subparsers(dest="group", required=True,
                                   metavar="{keygen,org,key,delivery,retention,audit,status}")

    keygen = groups.add_parser("keygen", help="generate secrets").add_subparsers(dest="what", required=True)
    keygen.add_parser("master", parents=[common], help=f"print a new {crypto.MASTER_KEY_ENV} value")

    org = groups.add_parser("org", help="organizations and their Arc bindings").add_subparsers(
        dest="command", required=True
    )
    p = org.add_parser("create", parents=[common], help="create an org")
    p.add_argument("name")
    p.add_argument("--id", help="org id (default: org_<random hex>)")
    p.set_defaults(handler=_org_create, creates_db=True)
    org.add_parser("list", parents=[common], help="list orgs").set_defaults(handler=_org_list)
    p = org.add_parser("delete", parents=[common], help="delete an org and all its metadata (asks first)")
    p.add_argument("org_id", metavar="org", help="org id or name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--purge", action="store_true",
                   help="also delete the org's rows from its Arc database and the journal (needs Arc deletes)")
    p.add_argument("--journal", help="journal file (default: journal.db next to the metadata DB)")
    p.set_defaults(handler=_org_delete)
    p = org.add_parser("add-arc", parents=[common], help="bind an org to an Arc (or update its binding)")
    p.add_argument("org_id", metavar="org", help="org id or name")
    p.add_argument("--url", required=True, help="Arc base URL, http(s)://host[:port]")
    p.add_argument("--database", required=True, help="Arc database for this org's memories")
    p.add_argument("--measurement", default=DEFAULT_MEASUREMENT, help="measurement name (default: events)")
    key_opts = p.add_mutually_exclusive_group()
    key_opts.add_argument("--api-key", help=f"Arc token, stored encrypted (needs {crypto.MASTER_KEY_ENV})")
    key_opts.add_argument("--clear-api-key", action="store_true", help="remove the stored Arc token")
    p.set_defaults(handler=_org_add_arc)
    p = org.add_parser("show-arc", parents=[common], help="show an org's Arc binding (API key masked)")
    p.add_argument("org_id", metavar="org", help="org id or name")
    p.set_defaults(handler=_org_show_arc)
    p = org.add_parser("remove-arc", parents=[common], help="remove an org's Arc binding")
    p.add_argument("org_id", metavar="org", help="org id or name")
    p.set_defaults(handler=_org_remove_arc)

    forget_admin.add_commands(groups, org, common)

    key = groups.add_parser("key", help="Memtrace API keys").add_subparsers(dest="command", required=True)
    p = key.add_parser("create", parents=[common], help="create an API key (printed once)")
    p.add_argument("--org", required=True, help="org id or name")
    p.add_argument("--name", required=True, help="a name unique within the org")
    p.add_argument("--permissions", help="comma list of read, write, admin (default: read,write)")
    p.add_argument("--expires-in", help="lifetime such as 30d, 12h, 4w (default: never)")
    p.set_defaults(handler=_key_create)
    p = key.add_parser("list", parents=[common], help="list an org's API keys")
    p.add_argument("--org", required=True, help="org id or name")
    p.set_defaults(handler=_key_list)
    p = key.add_parser("revoke", parents=[common], help="revoke an API key")
    p.add_argument("key_id")
    p.set_defaults(handler=_key_revoke)
    _add_delivery_commands(groups, common)
    p = groups.add_parser("status", parents=[common],
                          help="each org's Arc health and delivery backlog (what /ready shows an admin key)")
    p.add_argument("--journal", default=argparse.SUPPRESS, help="journal DB file (default: from settings)")
    p.set_defaults(handler=_status)
    migrate_pg.add_command(groups, common)
    return parser


def _db_path(args: argparse.Namespace) -> Path:
    db = getattr(args, "db", None)
    if db:
        return Path(db).expanduser()
    return load_settings(getattr(args, "config", None)).metadata_path


def _metadata_url(args: argparse.Namespace) -> str:
    """`--db postgresql://…`, else `metadata.url` from the settings (unless --db names a file)."""
    db = str(getattr(args, "db", "") or "")
    if db.startswith(("postgresql://", "postgres://")):
        return db
    return "" if db else load_settings(getattr(args, "config", None)).metadata.url


async def _run_url(args: argparse.Namespace, url: str) -> Output:
    from memtrace.metadata.pg import open_pg_metadata

    db = await open_pg_metadata(url)
    try:
        handler: Handler = args.handler
        return await handler(args, db)
    finally:
        await db.close()


async def _run(args: argparse.Namespace, path: Path) -> Output:
    db = await open_metadata(path)
    try:
        handler: Handler = args.handler
        return await handler(args, db)
    finally:
        await db.close()


def _emit(output: Output, as_json: bool) -> None:
    text, data = output
    if as_json:
        sys.stdout.write(msgspec.json.encode(data).decode("utf-8") + "\n")
    else:
        sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        if args.group == "keygen":
            key = crypto.generate_master_key()
            _emit((key, {"master_key": key, "env": crypto.MASTER_KEY_ENV}), as_json)
            if not as_json:
                print(f"export it as {crypto.MASTER_KEY_ENV}; losing it makes stored Arc keys unreadable",
                      file=sys.stderr)
            return 0
        if args.group == "migrate":
            _emit(migrate_pg.run(args), as_json)
            return 0
        if args.group == "delivery":
            journal = _journal_path(args)
            if not journal.exists():
                raise AdminError(f"no journal at {journal}: pass --journal or --config")
            _emit(asyncio.run(_run_delivery(args, journal)), as_json)
            return 0
        url = _metadata_url(args)
        if url:  # a shared PostgreSQL (metadata.url, or --db postgresql://…): the same commands
            _emit(asyncio.run(_run_url(args, url)), as_json)
            return 0
        path = _db_path(args)
        if not path.exists() and not getattr(args, "creates_db", False):
            raise AdminError(f"no metadata DB at {path}: create an org first (org create) or pass --db")
        check_metadata(path)
        _emit(asyncio.run(_run(args, path)), as_json)
        return 0
    except MemtraceError as exc:
        return _fail(exc.message)
    except (AdminError, ConfigError, SchemaError, DamagedDatabase, crypto.MasterKeyError,
            crypto.DecryptionError, migrate_pg.MigrateError) as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(f"{'journal' if args.group == 'delivery' else 'metadata DB'}: {exc}")
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int = 1) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

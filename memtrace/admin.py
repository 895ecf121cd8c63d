"""`python -m memtrace.admin`: provision orgs, Arc bindings and API keys, with the server up or down.

It writes the metadata DB directly; running servers notice through the DB's change counter within
about a second (new orgs, rebinds, revocations), so nothing needs a restart.

The master key (`MEMTRACE_MASTER_KEY`) is needed only to store an Arc API key (`org add-arc --api-key`)
and, optionally, to show its last four characters (`org show-arc`); everything else works without it,
so routine key management does not spread the master key to more shells than necessary.

Exit status: 0 on success, 1 with one `error: ...` line on stderr for anything wrong (unknown org,
duplicate name, bad URL, missing master key), 2 for command-line usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from memtrace import crypto, forget_admin
from memtrace.config import ConfigError, load_settings
from memtrace.errors import MemtraceError, NotFound
from memtrace.keys import DEFAULT_PERMISSIONS, format_permissions, parse_permissions
from memtrace.metadata._util import now_us, parse_ts
from memtrace.metadata.arc_instances import DEFAULT_MEASUREMENT, decrypt_binding
from memtrace.metadata.db import MetadataDB, SchemaError, open_metadata
from memtrace.metadata.forgetting import describe
from memtrace.metadata.models import ApiKeyInfo

PROG = "python -m memtrace.admin"
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
    await db.orgs.get(args.org_id)
    purged = await forget_admin.purge(args, db) if args.purge else None
    if not await db.orgs.delete(args.org_id):
        raise NotFound(f"unknown org {args.org_id!r}")
    if purged is None:
        text = f"deleted org {args.org_id} with its Arc binding, API keys, agents and sessions (Arc data is kept)"
        return text, {"deleted": args.org_id}
    arc_rows, journal_rows = purged
    text = (f"deleted org {args.org_id} with its Arc binding, API keys, agents and sessions; purged {arc_rows} "
            f"rows from its Arc database and {journal_rows} from the journal")
    return text, {"deleted": args.org_id, "arc_rows": arc_rows, "journal_rows": journal_rows}


async def _org_add_arc(args: argparse.Namespace, db: MetadataDB) -> Output:
    master = crypto.load_master_key() if args.api_key is not None else None
    await db.orgs.get(args.org_id)
    arc = await db.arc_instances.upsert(
        args.org_id, args.url, args.database, args.measurement, args.api_key, master,
        clear_api_key=args.clear_api_key,
    )
    key_state = "set" if arc.has_api_key else "none"
    text = (
        f"bound org {arc.org_id} to {arc.url} (database {arc.database}, measurement {arc.measurement}, "
        f"API key {key_state})"
    )
    return text, msgspec.to_builtins(arc)


async def _org_show_arc(args: argparse.Namespace, db: MetadataDB) -> Output:
    await db.orgs.get(args.org_id)
    row = await db.arc_instances.get_row(args.org_id)
    arc = await db.arc_instances.get(args.org_id)
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
    await db.orgs.get(args.org_id)
    if not await db.arc_instances.delete(args.org_id):
        raise NotFound(f"org {args.org_id!r} has no Arc binding")
    return f"removed the Arc binding of org {args.org_id}", {"removed": args.org_id}


async def _key_create(args: argparse.Namespace, db: MetadataDB) -> Output:
    perms = parse_permissions(args.permissions) if args.permissions else DEFAULT_PERMISSIONS
    expires = None if args.expires_in is None else now_us() + parse_duration_s(args.expires_in) * 1_000_000
    await db.orgs.get(args.org)
    info, key = await db.api_keys.create(args.org, args.name, perms, expires)
    text = (
        f"created API key {info.id} ({info.name}) for org {info.org_id}: permissions "
        f"{format_permissions(perms)}, expires {info.expires_at or 'never'}\n{key}\n"
        "store it now: it cannot be shown again"
    )
    return text, {**msgspec.to_builtins(info), "key": key}


async def _key_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    await db.orgs.get(args.org)
    keys = await db.api_keys.list(args.org)
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
    groups = parser.add_subparsers(dest="group", required=True, metavar="{keygen,org,key,retention,audit}")

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
    p = org.add_parser("delete", parents=[common], help="delete an org and all its metadata")
    p.add_argument("org_id")
    p.add_argument("--purge", action="store_true",
                   help="also delete the org's rows from its Arc database and the journal (needs Arc deletes)")
    p.add_argument("--journal", help="journal file (default: journal.db next to the metadata DB)")
    p.set_defaults(handler=_org_delete)
    p = org.add_parser("add-arc", parents=[common], help="bind an org to an Arc (or update its binding)")
    p.add_argument("org_id")
    p.add_argument("--url", required=True, help="Arc base URL, http(s)://host[:port]")
    p.add_argument("--database", required=True, help="Arc database for this org's memories")
    p.add_argument("--measurement", default=DEFAULT_MEASUREMENT, help="measurement name (default: events)")
    key_opts = p.add_mutually_exclusive_group()
    key_opts.add_argument("--api-key", help=f"Arc token, stored encrypted (needs {crypto.MASTER_KEY_ENV})")
    key_opts.add_argument("--clear-api-key", action="store_true", help="remove the stored Arc token")
    p.set_defaults(handler=_org_add_arc)
    p = org.add_parser("show-arc", parents=[common], help="show an org's Arc binding (API key masked)")
    p.add_argument("org_id")
    p.set_defaults(handler=_org_show_arc)
    p = org.add_parser("remove-arc", parents=[common], help="remove an org's Arc binding")
    p.add_argument("org_id")
    p.set_defaults(handler=_org_remove_arc)

    forget_admin.add_commands(groups, org, common)

    key = groups.add_parser("key", help="Memtrace API keys").add_subparsers(dest="command", required=True)
    p = key.add_parser("create", parents=[common], help="create an API key (printed once)")
    p.add_argument("--org", required=True, help="org id")
    p.add_argument("--name", required=True, help="a name unique within the org")
    p.add_argument("--permissions", help="comma list of read, write, admin (default: read,write)")
    p.add_argument("--expires-in", help="lifetime such as 30d, 12h, 4w (default: never)")
    p.set_defaults(handler=_key_create)
    p = key.add_parser("list", parents=[common], help="list an org's API keys")
    p.add_argument("--org", required=True, help="org id")
    p.set_defaults(handler=_key_list)
    p = key.add_parser("revoke", parents=[common], help="revoke an API key")
    p.add_argument("key_id")
    p.set_defaults(handler=_key_revoke)
    return parser


def _db_path(args: argparse.Namespace) -> Path:
    db = getattr(args, "db", None)
    if db:
        return Path(db).expanduser()
    return load_settings(getattr(args, "config", None)).metadata_path


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
        path = _db_path(args)
        if not path.exists() and not getattr(args, "creates_db", False):
            raise AdminError(f"no metadata DB at {path}: create an org first (org create) or pass --db")
        _emit(asyncio.run(_run(args, path)), as_json)
        return 0
    except MemtraceError as exc:
        return _fail(exc.message)
    except (AdminError, ConfigError, SchemaError, crypto.MasterKeyError, crypto.DecryptionError) as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(f"metadata DB: {exc}")
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int = 1) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

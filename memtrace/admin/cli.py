"""The `memtrace admin` command line: the parser (each group's commands come from its module) and `main`,
which maps every expected failure to one `error: ...` line and an exit status (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path

import msgspec

from memtrace import crypto
from memtrace.admin import delivery, forgetting, keys, migrate, orgs, status
from memtrace.admin._common import PROG, AdminError, Handler, Output, Parser, db_path, journal_path, settings
from memtrace.config import ConfigError
from memtrace.errors import MemtraceError
from memtrace.metadata.db import MetadataDB, SchemaError, open_metadata
from memtrace.server.dbcheck import DamagedDatabase, check_metadata


def build_parser() -> argparse.ArgumentParser:
    # Global flags are accepted before or after the command; SUPPRESS keeps a later default from
    # overwriting an earlier value.
    common = Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="metadata DB file (default: from settings)")
    common.add_argument("--config", default=argparse.SUPPRESS, help="memtrace.toml to read settings from")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

    parser = Parser(prog=PROG, description="Provision Memtrace orgs, Arc bindings and API keys.",
                     parents=[common])
    groups = parser.add_subparsers(dest="group", required=True,
                                   metavar="{keygen,org,key,delivery,retention,audit,status,migrate}")

    keygen = groups.add_parser("keygen", help="generate secrets").add_subparsers(dest="what", required=True)
    keygen.add_parser("master", parents=[common], help=f"print a new {crypto.MASTER_KEY_ENV} value")

    org = orgs.add_commands(groups, common)
    forgetting.add_commands(groups, org, common)
    keys.add_commands(groups, common)
    delivery.add_commands(groups, common)
    status.add_commands(groups, common)
    migrate.add_command(groups, common)
    return parser


def _metadata_url(args: argparse.Namespace) -> str:
    """`--db postgresql://…`, else `metadata.url` from the settings (unless --db names a file)."""
    db = str(getattr(args, "db", "") or "")
    if db.startswith(("postgresql://", "postgres://")):
        return db
    return "" if db else settings(args).metadata.url


async def _run(args: argparse.Namespace, path: Path | str) -> Output:
    """The command's handler on the metadata DB: a SQLite file, or a shared PostgreSQL URL."""
    db: MetadataDB
    if isinstance(path, str):
        from memtrace.metadata.pg import open_pg_metadata

        db = await open_pg_metadata(path)
    else:
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
        url = _metadata_url(args)
        if args.group == "delivery" and url:  # the shared PostgreSQL holds the journal too
            _emit(asyncio.run(delivery.run(args, url)), as_json)
            return 0
        if args.group == "delivery":
            journal = journal_path(args)
            if not journal.exists():
                raise AdminError(f"no journal at {journal}: pass --journal or --config")
            _emit(asyncio.run(delivery.run(args, journal)), as_json)
            return 0
        if args.group == "migrate":
            _emit(migrate.run(args), as_json)
            return 0
        if url:  # a shared PostgreSQL (metadata.url, or --db postgresql://…): the same commands
            _emit(asyncio.run(_run(args, url)), as_json)
            return 0
        path = db_path(args)
        if not path.exists() and not getattr(args, "creates_db", False):
            raise AdminError(f"no metadata DB at {path}: create an org first (org create) or pass --db")
        check_metadata(path)
        _emit(asyncio.run(_run(args, path)), as_json)
        return 0
    except MemtraceError as exc:
        return _fail(exc.message)
    except (AdminError, ConfigError, SchemaError, DamagedDatabase, crypto.MasterKeyError,
            crypto.DecryptionError, migrate.MigrateError) as exc:
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


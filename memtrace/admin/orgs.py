"""`admin org ...`: create, list and delete orgs; bind each to its Arc (add-arc, show-arc, remove-arc)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import msgspec

from memtrace import crypto
from memtrace.admin import forgetting
from memtrace.admin._common import PROG, Output, confirm, find_org, mask_secret, table
from memtrace.arc.binding import decrypt_binding
from memtrace.errors import NotFound
from memtrace.metadata.arc_instances import DEFAULT_MEASUREMENT
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.forgetting import describe


def add_commands(groups: Any, common: argparse.ArgumentParser) -> Any:
    """The `org` group; returns its subparsers (the forgetting commands add theirs)."""
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

    return org


async def _org_create(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await db.orgs.create(args.name, id=args.id)
    return f"created org {org.id} ({org.name})", msgspec.to_builtins(org)


async def _org_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    orgs = await db.orgs.list()
    arcs = {row.org_id: row.url for row in await db.arc_instances.list_all()}
    policies = await forgetting.retention_by_org(db)
    data = [{**msgspec.to_builtins(o), "arc_url": arcs.get(o.id),
             "retention": msgspec.to_builtins(policies.get(o.id, []))} for o in orgs]
    rows = [(o.id, o.name, o.created_at, arcs.get(o.id, "-"), describe(policies.get(o.id, [])) or "-")
            for o in orgs]
    return table(("ID", "NAME", "CREATED", "ARC", "RETENTION"), rows), data


async def _org_delete(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await find_org(db, args.org_id)
    if not args.yes:
        what = "its Arc rows, journal rows, " if args.purge else ""
        confirm(f"delete org {org.id} ({org.name}) with {what}its Arc binding, API keys, agents and sessions?")
    args.org_id = org.id  # addressed by name or id; everything below works on the id
    purged = await forgetting.purge(args, db) if args.purge else None
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
    org = await find_org(db, args.org_id)
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
    org = await find_org(db, args.org_id)
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
    org = await find_org(db, args.org_id)
    if not await db.arc_instances.delete(org.id):
        raise NotFound(f"org {args.org_id!r} has no Arc binding")
    return f"removed the Arc binding of org {org.id}", {"removed": org.id}



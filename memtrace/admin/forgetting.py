"""Admin CLI commands for forgetting: retention policies, applying them now, org purge, the audit trail.

    org retention ORG_ID --days N [--type decision=365 ...] | --clear
    org show ORG_ID
    retention run [--org ORG_ID]
    audit list [--org ORG_ID] [--limit N]

Commands that delete talk to each org's Arc directly with its decrypted binding, and record their
deletions in the same journal as the server (`standalone.py`), so reads hide them at once.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import msgspec

from memtrace.admin._common import Output, journal_path, settings, table
from memtrace.errors import Invalid
from memtrace.memory.model import MEMORY_TYPES
from memtrace.memory.retention import apply_policies
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.forgetting import RetentionPolicy, describe

PURGE_KEY_ID = "admin-cli"


async def retention_by_org(db: MetadataDB) -> dict[str, list[RetentionPolicy]]:
    out: dict[str, list[RetentionPolicy]] = {}
    for policy in await db.retention.list():
        out.setdefault(policy.org_id, []).append(policy)
    return out


async def purge(args: argparse.Namespace, db: MetadataDB) -> tuple[int, int]:
    """Delete the org's rows from its Arc and the journal (before its metadata goes), audited."""
    from memtrace.admin.standalone import standalone_forgetter  # the server stack, only for commands that need it

    async with standalone_forgetter(settings(args), db, journal_path(args, db.path)) as forgetter:
        arc_rows, journal_rows = await forgetter.purge(args.org_id)
    await db.audit.record(args.org_id, PURGE_KEY_ID, "purge", {"org_id": args.org_id}, arc_rows + journal_rows,
                           "applied")
    return arc_rows, journal_rows


def _type_days(text: str) -> tuple[str, int]:
    name, sep, days = text.partition("=")
    if not sep or name not in MEMORY_TYPES or not days.isdigit():
        raise Invalid(f"--type must look like decision=365 (types: {', '.join(MEMORY_TYPES)}), got {text!r}")
    return name, int(days)


async def _org_retention(args: argparse.Namespace, db: MetadataDB) -> Output:
    await db.orgs.get(args.org_id)
    retention = db.retention
    if args.clear:
        await retention.clear(args.org_id)
        return f"cleared the retention policies of org {args.org_id}", {"org_id": args.org_id, "retention": []}
    per_type = dict(_type_days(t) for t in args.type or [])
    if args.days is None and not per_type:
        raise Invalid("give --days N and/or --type TYPE=DAYS, or --clear")
    await retention.set(args.org_id, args.days, per_type)
    policies = await retention.list(args.org_id)
    return (f"org {args.org_id} keeps memories for: {describe(policies)}",
            {"org_id": args.org_id, "retention": msgspec.to_builtins(policies)})


async def _org_show(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await db.orgs.get(args.org_id)
    arc = await db.arc_instances.get(args.org_id)
    policies = await db.retention.list(args.org_id)
    pairs = [("org", org.id), ("name", org.name), ("created", org.created_at),
             ("arc", f"{arc.url} (database {arc.database}, measurement {arc.measurement})" if arc else "(none)"),
             ("retention", describe(policies) or "(keep forever)")]
    data = {**msgspec.to_builtins(org), "arc": msgspec.to_builtins(arc) if arc else None,
            "retention": msgspec.to_builtins(policies)}
    return "\n".join(f"{k + ':':<11}{v}" for k, v in pairs), data


async def _retention_run(args: argparse.Namespace, db: MetadataDB) -> Output:
    from memtrace.admin.standalone import standalone_forgetter

    if args.org is not None:
        await db.orgs.get(args.org)
    policies = await db.retention.list(args.org)
    async with standalone_forgetter(settings(args), db, journal_path(args, db.path)) as forgetter:
        removed = await apply_policies(forgetter, db.audit, policies)
    lines = [f"org {r.org_id}: {r.rows} {'/'.join(r.memory_types)} memories older than {r.older_than_days}d "
             f"{'failed: ' + r.error if r.error else ('removed (Arc pending)' if r.pending else 'removed')}"
             for r in removed]
    return "\n".join(lines) or "nothing to remove", [dataclasses.asdict(r) for r in removed]


async def _audit_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    entries = await db.audit.list(args.org, args.limit)
    rows = [(e.at, e.org_id, e.kind, e.key_id, str(e.rows), e.state, msgspec.json.encode(e.filter).decode())
            for e in entries]
    return table(("AT", "ORG", "KIND", "KEY", "ROWS", "STATE", "FILTER"), rows), msgspec.to_builtins(entries)


def add_commands(groups: Any, org: Any, common: argparse.ArgumentParser) -> None:
    p = org.add_parser("retention", parents=[common], help="set or clear an org's retention policy")
    p.add_argument("org_id")
    p.add_argument("--days", type=int, help="keep memories of every type this many days")
    p.add_argument("--type", action="append", metavar="TYPE=DAYS", help="per memory type, e.g. decision=365")
    p.add_argument("--clear", action="store_true", help="remove the org's policies (keep forever)")
    p.set_defaults(handler=_org_retention)
    p = org.add_parser("show", parents=[common], help="show an org: binding and retention")
    p.add_argument("org_id")
    p.set_defaults(handler=_org_show)

    retention = groups.add_parser("retention", help="apply retention policies").add_subparsers(
        dest="command", required=True)
    p = retention.add_parser("run", parents=[common], help="apply the retention policies now")
    p.add_argument("--org", help="only this org")
    p.add_argument("--journal", help="journal file (default: journal.db next to the metadata DB)")
    p.set_defaults(handler=_retention_run)

    audit = groups.add_parser("audit", help="the deletion audit trail").add_subparsers(dest="command", required=True)
    p = audit.add_parser("list", parents=[common], help="list deletions, newest first")
    p.add_argument("--org", help="only this org")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(handler=_audit_list)

"""`admin key ...`: create, list and revoke Memtrace API keys (a key is printed once, at creation)."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from memtrace.admin._common import Output, find_org, parse_duration_s, table
from memtrace.errors import NotFound
from memtrace.keys import DEFAULT_PERMISSIONS, format_permissions, parse_permissions
from memtrace.metadata._util import parse_ts
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.models import ApiKeyInfo
from memtrace.timeutil import now_us


def add_commands(groups: Any, common: argparse.ArgumentParser) -> None:
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


def _key_status(key: ApiKeyInfo, now: int) -> str:
    if key.revoked_at:
        return "revoked"
    if key.expires_at and parse_ts(key.expires_at) <= now:
        return "expired"
    return "active"


async def _key_create(args: argparse.Namespace, db: MetadataDB) -> Output:
    perms = parse_permissions(args.permissions) if args.permissions else DEFAULT_PERMISSIONS
    expires = None if args.expires_in is None else now_us() + parse_duration_s(args.expires_in) * 1_000_000
    org = await find_org(db, args.org)
    info, key = await db.api_keys.create(org.id, args.name, perms, expires)
    text = (
        f"created API key {info.id} ({info.name}) for org {info.org_id}: permissions "
        f"{format_permissions(perms)}, expires {info.expires_at or 'never'}\n{key}\n"
        "store it now: it cannot be shown again"
    )
    return text, {**msgspec.to_builtins(info), "key": key}


async def _key_list(args: argparse.Namespace, db: MetadataDB) -> Output:
    org = await find_org(db, args.org)
    keys = await db.api_keys.list(org.id)
    now = now_us()
    rows = [
        (k.id, k.name, ",".join(k.permissions), k.created_at, k.expires_at or "never", _key_status(k, now))
        for k in keys
    ]
    data = [{**msgspec.to_builtins(k), "status": _key_status(k, now)} for k in keys]
    return table(("ID", "NAME", "PERMISSIONS", "CREATED", "EXPIRES", "STATUS"), rows), data


async def _key_revoke(args: argparse.Namespace, db: MetadataDB) -> Output:
    if not await db.api_keys.revoke(args.key_id):
        raise NotFound(f"unknown API key {args.key_id!r}")
    info = await db.api_keys.get(args.key_id)
    assert info is not None
    return f"revoked API key {info.id} ({info.name}) of org {info.org_id}", msgspec.to_builtins(info)



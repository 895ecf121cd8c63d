"""Memtrace API keys: format, lookup id, argon2id hashing and permissions.

A key is `mtk_` followed by 32 random bytes in URL-safe base64 without padding (43 chars). Its first
12 chars after the prefix are the *lookup id*: stored in clear and indexed, so verifying a key reads
exactly one row and runs one argon2 verify instead of trying every hash. Publishing those 72 bits
still leaves 184 secret bits, far beyond brute force.

Hash cost: argon2id with t=1, m=8 MiB, p=1. Password hashing needs a high cost because passwords are
guessable; these keys are 256-bit random, so the hash only has to make a leaked DB useless, which
any cost does. The modest cost keeps the first verify of a key (later ones hit the auth LRU) at a few
milliseconds. Parameters are stored in each hash, so raising them later keeps old hashes verifiable.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from memtrace.errors import Invalid

KEY_PREFIX = "mtk_"
KEY_RANDOM_BYTES = 32
LOOKUP_ID_LEN = 12
_KEY_RE = re.compile(r"^mtk_[A-Za-z0-9_-]{43}$")

READ = "read"
WRITE = "write"
ADMIN = "admin"
PERMISSIONS: tuple[str, ...] = (READ, WRITE, ADMIN)
DEFAULT_PERMISSIONS: frozenset[str] = frozenset({READ, WRITE})

_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, hash_len=32, salt_len=16)


def generate_api_key() -> str:
    """A fresh `mtk_...` key (56 chars); shown to the operator once, stored only as a hash."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(KEY_RANDOM_BYTES)).rstrip(b"=").decode("ascii")
    return KEY_PREFIX + raw


def is_well_formed(key: str) -> bool:
    return bool(_KEY_RE.fullmatch(key))


def lookup_id(key: str) -> str | None:
    """The non-secret index of a key, or None when the text cannot be a Memtrace key (skip the DB)."""
    if not is_well_formed(key):
        return None
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + LOOKUP_ID_LEN]


def hash_key(key: str) -> str:
    """argon2id PHC string of the key (salted; parameters embedded)."""
    return _hasher.hash(key)


def verify_key(key_hash: str, key: str) -> bool:
    """True iff `key` matches `key_hash`; a mismatch or a corrupt hash is False, never an exception."""
    try:
        return _hasher.verify(key_hash, key)
    except (VerificationError, InvalidHashError):
        return False


def parse_permissions(text: str | Iterable[str]) -> frozenset[str]:
    """Parse "read,write" (or an iterable of names); unknown or empty → Invalid naming the problem."""
    items = text.split(",") if isinstance(text, str) else list(text)
    perms = {p.strip().lower() for p in items if p.strip()}
    if not perms:
        raise Invalid(f"permissions must name at least one of {', '.join(PERMISSIONS)}")
    unknown = sorted(perms - set(PERMISSIONS))
    if unknown:
        raise Invalid(f"unknown permission {unknown[0]!r}: choose from {', '.join(PERMISSIONS)}")
    return frozenset(perms)


def format_permissions(perms: Iterable[str]) -> str:
    """Canonical, ordered text form ("read,write") as stored in the DB and shown by the CLI."""
    given = set(perms)
    return ",".join(p for p in PERMISSIONS if p in given)


def has_permission(granted: Iterable[str], needed: str) -> bool:
    """`admin` implies every permission; otherwise the permission must be granted explicitly."""
    perms = granted if isinstance(granted, (set, frozenset)) else set(granted)
    return needed in perms or ADMIN in perms

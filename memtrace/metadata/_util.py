"""Small helpers shared by the repositories: stored timestamps, ids, JSON columns, constraint errors.

Timestamps are stored as fixed-width RFC 3339 UTC strings with microseconds and `Z`, so that SQL
string comparison (ORDER BY, `<`, max) is chronological and the API can return them unchanged.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from memtrace.errors import Invalid
from memtrace.jsonlimits import json_depth_exceeds, too_deep
from memtrace.patterns import ID_RE, ID_WORDS, in_words

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_json_encoder = msgspec.json.Encoder()


def parse_ts(text: str) -> int:
    """Inverse of `timeutil.format_us` (only the stored format; the API parses user input elsewhere)."""
    dt = datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_US


def parse_ts_opt(text: str | None) -> int | None:
    return None if text is None else parse_ts(text)


def new_id(prefix: str, nbytes: int = 12) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def check_id(value: str, field: str) -> str:
    """Ids end up in Arc SQL and URLs; one strict pattern keeps them harmless everywhere."""
    if not ID_RE.fullmatch(value):
        raise Invalid(f"{field} {in_words(ID_WORDS)}; got {value[:64]!r}")
    return value


def check_text(value: str, field: str, max_len: int) -> str:
    text = value.strip()
    if not text:
        raise Invalid(f"{field} must not be empty")
    if len(text) > max_len:
        raise Invalid(f"{field} is longer than {max_len} characters")
    if any(ord(c) < 32 for c in text):
        raise Invalid(f"{field} must not contain control characters")
    return text


def encode_object(value: dict[str, Any] | msgspec.Raw | None, field: str) -> msgspec.Raw:
    """A JSON object for a TEXT column; one nested deeper than MAX_JSON_DEPTH is refused (Invalid)."""
    encoded = bytes(value) if isinstance(value, msgspec.Raw) else _json_encoder.encode(value or {})
    if json_depth_exceeds(encoded):
        raise Invalid(too_deep(field))
    return msgspec.Raw(encoded)


def unique_violation(exc: sqlite3.IntegrityError) -> str | None:
    """The `table.column[, column]` of a UNIQUE/PRIMARY KEY violation, or None for other integrity errors."""
    text = str(exc)
    marker = "UNIQUE constraint failed: "
    if marker in text:
        return text.split(marker, 1)[1].strip()
    return None


PAIRS_PER_READ = 400
_PAIR = "(CAST(? AS TEXT), CAST(? AS TEXT))"  # typed, so PostgreSQL need not guess the VALUES' types


async def missing_pairs(db: MetadataDB, sql: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (org_id, name) pairs of `keys` that `sql` returns: a NOT EXISTS over `WITH v (org_id, name) AS
    ({values})`, filled with a VALUES list of at most PAIRS_PER_READ pairs per read."""
    pairs = list(dict.fromkeys(keys))
    found: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), PAIRS_PER_READ):
        chunk = pairs[start:start + PAIRS_PER_READ]
        values = "VALUES " + ", ".join([_PAIR] * len(chunk))
        rows = await db.fetchall(sql.format(values=values), [part for pair in chunk for part in pair])
        found.update((row[0], row[1]) for row in rows)
    return found

"""Turning a write request body into validated columnar batches.

Everything here is pure Python and independent of DuckDB so that a bad payload is refused (400/413)
before the database is touched, and so that a batch reaching storage is already known to be rectangular,
well-named and time-normalised.
"""

from __future__ import annotations

import io
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
import ormsgpack
import zstandard

MAX_BODY = 100 * 1024 * 1024
"""Cap on the request body and, separately, on its decompressed size (Arc applies one limit to both)."""

DATABASE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MEASUREMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")

TIMESTAMP = "TIMESTAMP"


class PayloadError(Exception):
    """The client sent something we refuse; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Batch:
    """One measurement's rows in column form; `time` is always present, in epoch microseconds."""

    measurement: str
    columns: dict[str, list[Any]]
    types: dict[str, str]
    """SQL type inferred per column from its first non-null value; all-null columns are absent."""
    rows: int


def decompress(body: bytes, limit: int = MAX_BODY) -> bytes:
    """Undo gzip/zstd chosen by magic bytes, as Arc does, never inflating past `limit` (bomb guard)."""
    if body[:2] == b"\x1f\x8b":
        return _gunzip(body, limit)
    if body[:4] == b"\x28\xb5\x2f\xfd":
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as r:
                out = r.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise PayloadError(f"Invalid zstd compression: {exc}") from exc
        if len(out) > limit:
            raise PayloadError("Decompressed payload too large", 413)
        return out
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = d.decompress(rest, limit + 1 - size)
            size += len(chunk)
            parts.append(chunk)
            if size > limit or d.unconsumed_tail:
                raise PayloadError("Decompressed payload too large", 413)
            if not d.eof:
                raise PayloadError("Invalid gzip compression: truncated stream")
            rest = d.unused_data
    except zlib.error as exc:
        raise PayloadError(f"Invalid gzip compression: {exc}") from exc
    return b"".join(parts)


def decode(payload: bytes) -> list[Batch]:
    """Accept every top-level shape Arc accepts: a map, a list of maps, or {"batch": [...]}."""
    if not payload:
        raise PayloadError("Empty payload")
    try:
        doc = ormsgpack.unpackb(payload)
    except (ormsgpack.MsgpackDecodeError, ValueError, TypeError) as exc:
        raise PayloadError(f"Invalid MessagePack payload: {exc}") from exc
    if isinstance(doc, dict) and "batch" in doc and "m" not in doc:
        doc = doc["batch"]
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise PayloadError("Empty payload")
    batches: list[Batch] = []
    rows_by_m: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("Invalid MessagePack payload: expected a map")
        if "columns" in item:
            batches.append(_columnar(item))
        elif "fields" in item:
            m = _measurement(item.get("m"))
            rows_by_m.setdefault(m, []).append(item)
        else:
            raise PayloadError("Invalid MessagePack payload: record needs 'columns' or 'fields'")
    batches.extend(_rows_to_batch(m, recs) for m, recs in rows_by_m.items())
    return batches


def _measurement(m: Any) -> str:
    if not isinstance(m, str) or not MEASUREMENT_RE.match(m):
        raise PayloadError(
            f"invalid measurement name {m!r}: must start with a letter and contain only alphanumeric "
            "characters, underscores, or hyphens (max 128 characters)"
        )
    return m


def _columnar(item: dict[str, Any]) -> Batch:
    m = _measurement(item.get("m"))
    cols = item["columns"]
    if not isinstance(cols, dict) or not cols:
        raise PayloadError(f"measurement {m}: 'columns' must be a non-empty map")
    lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in cols.items()}
    if any(n < 0 for n in lengths.values()):
        raise PayloadError(f"measurement {m}: every column must be an array")
    if len(set(lengths.values())) != 1:
        raise PayloadError(f"measurement {m}: column length mismatch {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise PayloadError(f"measurement {m}: empty columns")
    return _finish(m, dict(cols), n)


def _rows_to_batch(m: str, recs: list[dict[str, Any]]) -> Batch:
    """Row form (`{"m","t","fields","tags"}`) is pivoted to columns; keys missing in a row become null."""
    names: dict[str, None] = {"time": None}
    for r in recs:
        for part in ("tags", "fields"):
            sub = r.get(part) or {}
            if not isinstance(sub, dict):
                raise PayloadError(f"measurement {m}: '{part}' must be a map")
            names.update(dict.fromkeys(sub))
    cols: dict[str, list[Any]] = {k: [] for k in names}
    for r in recs:
        merged = {**(r.get("tags") or {}), **(r.get("fields") or {})}
        merged["time"] = r.get("t", r.get("time"))
        for k, col in cols.items():
            col.append(merged.get(k))
    return _finish(m, cols, len(recs))


def _finish(m: str, cols: dict[str, list[Any]], n: int) -> Batch:
    seen: set[str] = set()
    for k in cols:
        if not isinstance(k, str) or not COLUMN_RE.match(k):
            raise PayloadError(f"measurement {m}: invalid column name {k!r}")
        if k.lower() in seen or (k.lower() == "time" and k != "time"):
            raise PayloadError(f"measurement {m}: duplicate column {k!r} (names are case-insensitive)")
        seen.add(k.lower())
    cols["time"] = _micros(m, cols.get("time"), n)
    types: dict[str, str] = {"time": TIMESTAMP}
    for k, col in cols.items():
        if k == "time":
            continue
        t = _infer(col)
        if t is None:
            continue
        types[k] = t
        if t == "VARCHAR" and any(type(v) is not str and v is not None for v in col):
            cols[k] = [v if v is None or type(v) is str else _text(v) for v in col]
    return Batch(m, cols, types, n)


def _infer(col: list[Any]) -> str | None:
    for v in col:
        if v is None:
            continue
        if isinstance(v, bool):
            return "BOOLEAN"
        if isinstance(v, int):
            return "BIGINT"
        if isinstance(v, float):
            return "DOUBLE"
        return "VARCHAR"
    return None


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list | dict):
        return orjson.dumps(v, default=str).decode()
    return str(v)


def _micros(m: str, col: Any, n: int) -> list[int]:
    """Normalise `time` to epoch µs, inferring the unit from the first value exactly as Arc does."""
    if col is None:
        now = time.time_ns() // 1000
        return [now] * n
    if not col or any(isinstance(v, bool) or not isinstance(v, int | float) for v in col):
        raise PayloadError(f"measurement {m}: 'time' must hold only numbers (epoch s/ms/µs/ns)")
    first = abs(col[0])
    try:
        if first < 1e10:
            return [int(v * 1_000_000) for v in col]
        if first < 1e13:
            return [int(v * 1_000) for v in col]
        if first < 1e16:
            return col if all(type(v) is int for v in col) else [int(v) for v in col]
        return [int(v) // 1000 for v in col]
    except (OverflowError, ValueError) as exc:
        raise PayloadError(f"measurement {m}: bad 'time' value: {exc}") from exc

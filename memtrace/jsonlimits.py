"""Bounds on the JSON objects clients store (metadata, config): nesting depth and encoded size.

Why: a value nested ~1,000 levels deep decodes once, is stored, and then breaks every later decode
(Python's recursion limit) — one poisoned row would turn an org's listings into 500s. So depth is
checked on the encoded bytes at write time, and values already stored are passed through as raw
JSON (never decoded on the read path); one that is over the bound anyway is shown as `{}`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from memtrace.errors import Invalid, TooLarge

log = logging.getLogger("memtrace.api")

MAX_JSON_DEPTH = 32
"""Objects and arrays nested inside each other, counting the outermost object as level 1."""

# Brackets only, arrays written as objects: nesting is the same, and one `{}` pattern finds every innermost pair.
_AS_BRACES = bytes.maketrans(b"[]", b"{}")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_EMPTY_OBJECT = msgspec.Raw(b"{}")
_encoder = msgspec.json.Encoder()


def json_depth_exceeds(encoded: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether valid JSON `encoded` nests objects/arrays deeper than `limit`, without decoding it.

    Only C-level passes, no Python step per character: strings are cut out, everything but brackets is
    dropped, then each round deletes the innermost pairs (`{}`), i.e. one level. Anything left after
    `limit` rounds is deeper than `limit`.
    """
    if len(encoded) <= 2 * limit or encoded.count(b"{") + encoded.count(b"[") <= limit:
        return False  # the common case: too short, or too few brackets, to be that deep
    if b"\\" in encoded:  # drop escaped backslashes, then escaped quotes: every `"` left delimits a string
        encoded = encoded.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(encoded.split(b'"')[::2])
    skeleton = outside_strings.translate(_AS_BRACES, _NOT_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"{}", b"")
    return bool(skeleton)


def too_deep(field: str) -> str:
    """The refusal of a client JSON object nested deeper than MAX_JSON_DEPTH, in words."""
    return f"{field} must be a JSON object nested at most {MAX_JSON_DEPTH} levels deep (the object itself is level 1)"


def check_object(encoded: bytes, field: str, max_bytes: int) -> None:
    """Refuse a client JSON object over the size cap (413) or the depth bound (400), naming `field`."""
    if len(encoded) > max_bytes:
        raise TooLarge(f"{field} is {len(encoded)} bytes encoded; the limit is {max_bytes}")
    if json_depth_exceeds(encoded):
        raise Invalid(too_deep(field))


def stored_object(text: str | bytes | None, what: str, owner: str) -> msgspec.Raw:
    """A stored JSON object as raw bytes for a response; `{}` for an empty or over-deep one (logged as
    `<what> of <owner>`, formatted only then: this runs for every row read)."""
    if not text:
        return _EMPTY_OBJECT
    encoded = text.encode() if isinstance(text, str) else text
    if json_depth_exceeds(encoded):
        log.warning("%s %s is nested deeper than %d levels; answered as {}", what, owner, MAX_JSON_DEPTH)
        return _EMPTY_OBJECT
    return msgspec.Raw(encoded)


def client_object(value: dict[str, Any] | None, field: str, max_bytes: int) -> msgspec.Raw | None:
    """A client's JSON object encoded once and checked (`check_object`); None stays None."""
    if value is None:
        return None
    encoded = _encoder.encode(value)
    check_object(encoded, field, max_bytes)
    return msgspec.Raw(encoded)

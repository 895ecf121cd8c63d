"""The default dedup key of a memory: same agent, same event type, same opening of the content."""

from __future__ import annotations

import hashlib

CONTENT_PREFIX_BYTES = 200


def content_prefix(content: str) -> bytes:
    """`content` as UTF-8, cut to at most 200 bytes without splitting a character.

    If byte 200 falls inside a multi-byte character, that whole character is left out, so the prefix
    is always valid UTF-8 and never longer than 200 bytes. Lone surrogates (which JSON can smuggle in)
    are encoded with `surrogatepass` rather than refused: the key must exist for every accepted content.
    """
    raw = content.encode("utf-8", "surrogatepass")
    if len(raw) <= CONTENT_PREFIX_BYTES:
        return raw
    cut = CONTENT_PREFIX_BYTES
    # Back up over continuation bytes (10xxxxxx) to the lead byte of the character straddling the cut; an
    # encoded text starts with a lead byte, so this stops within 3 steps.
    while (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut]


def dedup_key(agent_id: str, event_type: str, content: str) -> str:
    """First 32 hex chars of SHA-256 of `agent_id + "|" + event_type + "|" + content_prefix`.

    api.md: "SHA-256 of agent_id|event_type|content truncated to 200 bytes (UTF-8 safe)". We read the
    truncation as applying to the content alone (the ids are short and validated), at a character
    boundary at or before byte 200 (see `content_prefix`). Two memories whose contents agree on that
    prefix are duplicates by default; clients that need finer identity send their own `dedup_key`.
    """
    head = f"{agent_id}|{event_type}|".encode("utf-8", "surrogatepass")
    return hashlib.sha256(head + content_prefix(content)).hexdigest()[:32]

"""The one definition of every identifier pattern of the API, with whole-value semantics everywhere.

Python's `$` also matches just before a final newline, and msgspec's `Meta(pattern=...)` uses `re.search`,
so `^agent_1$` would accept `"agent_1\\n"`. Each pattern therefore ends in `(?!\\n)$`: a whole-value match
in Python `re` and in ECMA-262 (the regex dialect of JSON Schema / OpenAPI) alike. Python code matches
with `fullmatch` as well. pydantic's default (Rust) engine has no look-around but its `$` is already the
end of the text, so it takes `plain(...)`.
"""

from __future__ import annotations

import re

ID = r"[A-Za-z][A-Za-z0-9_-]{0,127}"
EVENT_TYPE = r"[A-Za-z][A-Za-z0-9_]{0,63}"
TAG = r"[A-Za-z0-9_.-]{1,64}"
MEMORY_ID = r"mem_[0-9A-HJKMNP-TV-Z]{26}"
DEDUP_KEY = r"[A-Za-z0-9_.:-]{1,128}"
DATABASE = r"[A-Za-z][A-Za-z0-9_-]{0,63}"  # an Arc database name
MEASUREMENT = ID  # an Arc measurement name follows the id rule


def whole(body: str) -> str:
    """`body` anchored to the whole value, for Python `re` (msgspec) and ECMA-262 (JSON Schema)."""
    return f"^{body}(?!\\n)$"


def plain(body: str) -> str:
    """`body` anchored for engines whose `$` is the end of the text only (Rust regex, used by pydantic)."""
    return f"^{body}$"


ID_PATTERN = whole(ID)
EVENT_TYPE_PATTERN = whole(EVENT_TYPE)
TAG_PATTERN = whole(TAG)
MEMORY_ID_PATTERN = whole(MEMORY_ID)
DEDUP_KEY_PATTERN = whole(DEDUP_KEY)

# Compiled once; always use `.fullmatch`.
ID_RE = re.compile(ID_PATTERN)
EVENT_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
TAG_RE = re.compile(TAG_PATTERN)
MEMORY_ID_RE = re.compile(MEMORY_ID_PATTERN)
DEDUP_KEY_RE = re.compile(DEDUP_KEY_PATTERN)
# Shown in error messages, so spelt with plain anchors.
DATABASE_RE = re.compile(f"^{DATABASE}$")
MEASUREMENT_RE = re.compile(f"^{MEASUREMENT}$")

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


def or_empty(body: str) -> str:
    """`body`, or nothing: what the original Go SDK sends for an unset optional string."""
    return whole(f"(?:{body})?")


ID_PATTERN = whole(ID)
EVENT_TYPE_PATTERN = whole(EVENT_TYPE)
TAG_PATTERN = whole(TAG)
MEMORY_ID_PATTERN = whole(MEMORY_ID)
DEDUP_KEY_PATTERN = whole(DEDUP_KEY)
OR_EMPTY_ID_PATTERN = or_empty(ID)
OR_EMPTY_EVENT_TYPE_PATTERN = or_empty(EVENT_TYPE)
OR_EMPTY_DEDUP_KEY_PATTERN = or_empty(DEDUP_KEY)

# Each pattern in words, with an example, for error messages (`api/wording.py`): never the regex itself. A new
# pattern of a request field needs its entry here (tests/test_error_messages.py walks every request field).
ID_WORDS = ("must start with a letter and contain only letters, digits, '_' or '-' (at most 128)", "researcher_1")
EVENT_TYPE_WORDS = ("must start with a letter and contain only letters, digits or '_' (at most 64)", "tool_call")
TAG_WORDS = ("must be 1 to 64 letters, digits, '_', '.' or '-'", "billing")
DEDUP_KEY_WORDS = ("must be 1 to 128 letters, digits, '_', '.', ':' or '-'", "order-42:shipped")
MEMORY_ID_WORDS = ("must be 'mem_' and 26 letters and digits (a ULID)", "mem_01JZ8Q6V3WX5G7K2M4N6P8R0ST")
RULES: dict[str, tuple[str, str]] = {
    ID_PATTERN: ID_WORDS, OR_EMPTY_ID_PATTERN: ID_WORDS,
    EVENT_TYPE_PATTERN: EVENT_TYPE_WORDS, OR_EMPTY_EVENT_TYPE_PATTERN: EVENT_TYPE_WORDS,
    TAG_PATTERN: TAG_WORDS,
    DEDUP_KEY_PATTERN: DEDUP_KEY_WORDS, OR_EMPTY_DEDUP_KEY_PATTERN: DEDUP_KEY_WORDS,
    MEMORY_ID_PATTERN: MEMORY_ID_WORDS,
}


def in_words(words: tuple[str, str]) -> str:
    """`must start with a letter ... (at most 128), e.g. "researcher_1"`."""
    rule, example = words
    return f'{rule}, e.g. "{example}"'

# Compiled once; always use `.fullmatch`.
ID_RE = re.compile(ID_PATTERN)
EVENT_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
TAG_RE = re.compile(TAG_PATTERN)
MEMORY_ID_RE = re.compile(MEMORY_ID_PATTERN)
DEDUP_KEY_RE = re.compile(DEDUP_KEY_PATTERN)
# Shown in error messages, so spelt with plain anchors.
DATABASE_RE = re.compile(f"^{DATABASE}$")
MEASUREMENT_RE = re.compile(f"^{MEASUREMENT}$")

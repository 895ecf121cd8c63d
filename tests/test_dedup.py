"""The default dedup key: SHA-256 over agent, event type and at most 200 bytes of content."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace.memory.dedup import content_prefix, dedup_key


def reference(agent_id: str, event_type: str, prefix: bytes) -> str:
    data = agent_id.encode() + b"|" + event_type.encode() + b"|" + prefix
    return hashlib.sha256(data).hexdigest()[:32]


def test_known_value() -> None:
    # sha256(b"agent_1|general|hello").hexdigest()[:32], computed once outside this code
    assert dedup_key("agent_1", "general", "hello") == "5e16270a1c8ce4ca1987950c683382d7"
    assert len(dedup_key("a", "b", "c")) == 32


def test_truncation_is_at_200_bytes_and_never_splits_a_character() -> None:
    assert content_prefix("x" * 250) == b"x" * 200
    assert content_prefix("x" * 199 + "é" + "tail") == b"x" * 199  # é would straddle byte 200
    assert content_prefix("x" * 198 + "é" + "tail") == b"x" * 198 + "é".encode()
    assert content_prefix("x" * 197 + "💥") == b"x" * 197  # 4-byte character cut at 200
    assert content_prefix("x" * 196 + "💥" + "y") == b"x" * 196 + "💥".encode()
    same_start = "x" * 200
    assert dedup_key("a", "e", same_start + "one") == dedup_key("a", "e", same_start + "two")
    assert dedup_key("a", "e", "one") != dedup_key("a", "e", "two")
    assert dedup_key("a", "e", "x") != dedup_key("a", "f", "x") != dedup_key("b", "e", "x")


def test_short_texts_of_wide_characters_are_cut_too() -> None:
    """Fewer than 200 characters can still pass 200 bytes (the fast path must only take what cannot), and a
    text of exactly 200 bytes or fewer, in more than 50 characters, is kept whole."""
    assert content_prefix("𝄞" * 60) == ("𝄞" * 50).encode()  # 60 characters, 240 bytes
    assert content_prefix("é" * 150) == ("é" * 100).encode()  # 150 characters, 300 bytes
    assert content_prefix("€" * 70) == ("€" * 66).encode()  # 70 characters, 210 bytes; 66 whole ones fit
    assert content_prefix("x" * 200) == b"x" * 200  # exactly 200 bytes
    assert content_prefix("x" * 120) == b"x" * 120
    assert content_prefix("𝄞" * 50) == ("𝄞" * 50).encode()  # 50 characters, exactly 200 bytes


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=120))
def test_prefix_is_the_longest_whole_character_prefix_within_200_bytes(content: str) -> None:
    prefix = content_prefix(content)
    full = content.encode()
    assert len(prefix) <= 200 and full.startswith(prefix)
    decoded = prefix.decode()  # valid UTF-8: nothing split
    assert content.startswith(decoded)
    rest = content[len(decoded) :]
    assert not rest or len(prefix) + len(rest[0].encode()) > 200  # maximal
    assert dedup_key("ag", "ev", content) == reference("ag", "ev", prefix)


def test_lone_surrogates_still_get_a_key() -> None:
    assert len(dedup_key("a", "e", "bad \ud800 text")) == 32

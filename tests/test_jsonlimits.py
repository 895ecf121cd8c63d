"""The depth check on encoded JSON agrees with the decoded value's real depth, whatever the strings hold."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace.jsonlimits import MAX_JSON_DEPTH, json_depth_exceeds, stored_object

TRICKY_TEXT = st.sampled_from(['"', "\\", '\\"', "\\\\", "[", "]", "{", "}", '"]}', "\\\\\"{[", "é", ""])
texts = st.lists(TRICKY_TEXT | st.text(max_size=5), max_size=4).map("".join)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def chain(levels: int, leaf: Any) -> Any:
    for i in range(levels):
        leaf = [leaf, "]]"] if i % 2 else {"k{": leaf, "s": '"}'}
    return leaf


values = st.builds(chain, st.integers(0, 40), st.recursive(
    st.none() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=12))


@settings(max_examples=300, deadline=None)
@given(value=values, limit=st.sampled_from([1, 3, MAX_JSON_DEPTH]), ascii_only=st.booleans())
def test_depth_check_matches_the_decoded_depth(value: Any, limit: int, ascii_only: bool) -> None:
    encoded = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth_exceeds(encoded, limit) == (depth(value) > limit)


@pytest.mark.parametrize("levels", [1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 5000])
def test_stored_objects_pass_through_unless_too_deep(levels: int) -> None:
    encoded = b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)
    raw = stored_object(encoded.decode(), "metadata of test", "t1")
    assert bytes(raw) == (encoded if levels <= MAX_JSON_DEPTH else b"{}")
    assert msgspec.json.decode(msgspec.json.encode({"m": raw}))["m"] is not None

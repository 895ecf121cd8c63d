"""API key format, lookup id, argon2id hashing and permission parsing."""

from __future__ import annotations

import re

import pytest

from memtrace import keys
from memtrace.errors import Invalid


def test_generated_keys_are_well_formed_and_distinct() -> None:
    generated = [keys.generate_api_key() for _ in range(200)]
    assert len(set(generated)) == 200
    for key in generated:
        assert re.fullmatch(r"mtk_[A-Za-z0-9_-]{43}", key)
        assert keys.is_well_formed(key)
    assert len({keys.lookup_id(k) for k in generated}) == 200


def test_lookup_id_is_a_fixed_prefix_of_the_secret_part() -> None:
    key = keys.generate_api_key()
    assert keys.lookup_id(key) == key[4:16]
    assert len(key[4:16]) == keys.LOOKUP_ID_LEN


@pytest.mark.parametrize(
    "text",
    ["", "mtk_", "mtk_short", "abc_" + "A" * 43, "mtk_" + "A" * 42, "mtk_" + "A" * 44, "mtk_" + "A" * 42 + "=",
     "mtk_" + "A" * 42 + "/", " mtk_" + "A" * 43, "mtk_" + "A" * 43 + "\n", "MTK_" + "A" * 43],
)
def test_lookup_id_rejects_malformed_keys(text: str) -> None:
    assert keys.lookup_id(text) is None
    assert not keys.is_well_formed(text)


def test_hash_and_verify() -> None:
    key = keys.generate_api_key()
    hashed = keys.hash_key(key)
    assert hashed.startswith("$argon2id$")
    assert key not in hashed
    assert keys.verify_key(hashed, key)
    assert keys.hash_key(key) != hashed  # salted
    assert not keys.verify_key(hashed, keys.generate_api_key())
    assert not keys.verify_key(hashed, key[:-1])
    assert not keys.verify_key(hashed, "")


def test_hash_cost_is_the_documented_one() -> None:
    """argon2id, t=1, m=8 MiB, p=1, a 16-byte salt and a 32-byte hash (the module docstring's reasoning)."""
    hashed = keys.hash_key(keys.generate_api_key())
    variant, version, params, salt, digest = hashed.split("$")[1:]
    assert (variant, version, params) == ("argon2id", "v=19", "m=8192,t=1,p=1")
    assert (len(salt), len(digest)) == (22, 43)  # 16 and 32 bytes, base64 without padding


@pytest.mark.parametrize("bad_hash", ["", "garbage", "$argon2id$v=19$m=8192,t=1,p=1$AAAA$BBBB", "$2b$12$abc"])
def test_verify_never_raises_on_a_bad_hash(bad_hash: str) -> None:
    assert keys.verify_key(bad_hash, keys.generate_api_key()) is False


def test_parse_permissions() -> None:
    assert keys.parse_permissions("read,write") == frozenset({"read", "write"})
    assert keys.parse_permissions(" Read , ADMIN ,") == frozenset({"read", "admin"})
    assert keys.parse_permissions(["write"]) == frozenset({"write"})
    assert keys.parse_permissions("read,read") == frozenset({"read"})


@pytest.mark.parametrize(("text", "match"), [("", "at least one"), (" , ", "at least one"),
                                             ("read,delete", "'delete'"), ("superuser", "'superuser'")])
def test_parse_permissions_rejects(text: str, match: str) -> None:
    with pytest.raises(Invalid, match=match):
        keys.parse_permissions(text)


def test_the_first_unknown_permission_in_sorted_order_is_named() -> None:
    with pytest.raises(Invalid, match="unknown permission 'alpha'"):
        keys.parse_permissions("zeta,read,alpha")


def test_format_and_check_permissions() -> None:
    assert keys.format_permissions({"write", "read"}) == "read,write"
    assert keys.format_permissions(["admin", "read"]) == "read,admin"
    assert keys.format_permissions(keys.DEFAULT_PERMISSIONS) == "read,write"
    assert keys.has_permission(frozenset({"admin"}), "write")
    assert keys.has_permission(frozenset({"admin"}), "read")
    assert keys.has_permission({"read"}, "read")
    assert not keys.has_permission({"read"}, "write")
    assert not keys.has_permission(["write"], "read")

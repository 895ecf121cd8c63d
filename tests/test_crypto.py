"""The AES-256-GCM envelope for stored Arc keys, and the master key's loading rules."""

from __future__ import annotations

import base64

import pytest

from memtrace import crypto
from memtrace.crypto import DecryptionError, MasterKeyError


@pytest.fixture
def master() -> bytes:
    return crypto.load_master_key({"MEMTRACE_MASTER_KEY": crypto.generate_master_key()})


def test_round_trip(master: bytes) -> None:
    cipher, nonce = crypto.encrypt(master, "org_a", "arc-token-ÿ-123")
    assert len(nonce) == 12
    assert b"arc-token" not in cipher
    assert crypto.decrypt(master, "org_a", cipher, nonce) == "arc-token-ÿ-123"


def test_every_encryption_uses_a_fresh_nonce(master: bytes) -> None:
    results = [crypto.encrypt(master, "org_a", "same") for _ in range(50)]
    assert len({nonce for _, nonce in results}) == 50
    assert len({cipher for cipher, _ in results}) == 50


def test_ciphertext_of_another_org_fails_naming_the_org(master: bytes) -> None:
    cipher, nonce = crypto.encrypt(master, "org_a", "secret")
    with pytest.raises(DecryptionError) as info:
        crypto.decrypt(master, "org_b", cipher, nonce)
    assert str(info.value) == (
        "stored Arc API key for org org_b failed authentication: tampered or wrong master key"
    )
    assert info.value.org_id == "org_b"
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("index", [0, 5, -1])
def test_any_flipped_byte_fails(master: bytes, index: int) -> None:
    cipher, nonce = crypto.encrypt(master, "org_a", "secret")
    tampered = bytearray(cipher)
    tampered[index] ^= 0x01
    with pytest.raises(DecryptionError, match="org org_a"):
        crypto.decrypt(master, "org_a", bytes(tampered), nonce)


def test_wrong_master_key_or_nonce_fails(master: bytes) -> None:
    cipher, nonce = crypto.encrypt(master, "org_a", "secret")
    other = base64.b64decode(crypto.generate_master_key())
    with pytest.raises(DecryptionError):
        crypto.decrypt(other, "org_a", cipher, nonce)
    with pytest.raises(DecryptionError):
        crypto.decrypt(master, "org_a", cipher, nonce[:-1] + bytes([nonce[-1] ^ 1]))
    with pytest.raises(DecryptionError):
        crypto.decrypt(master, "org_a", cipher, b"short")
    with pytest.raises(DecryptionError):
        crypto.decrypt(master, "org_a", b"", nonce)


def test_generated_master_key_loads_as_32_bytes() -> None:
    text = crypto.generate_master_key()
    assert crypto.load_master_key({"MEMTRACE_MASTER_KEY": text}) == base64.b64decode(text)
    assert len(crypto.load_master_key({"MEMTRACE_MASTER_KEY": f"  {text}\n"})) == 32
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    assert "-" in urlsafe or "_" in urlsafe
    assert crypto.load_master_key({"MEMTRACE_MASTER_KEY": urlsafe}) == raw
    assert crypto.generate_master_key() != text


def _one_line_naming_the_fix(exc: MasterKeyError) -> None:
    message = str(exc)
    assert "\n" not in message
    assert "MEMTRACE_MASTER_KEY" in message
    assert "memtrace admin keygen master" in message


def test_missing_master_key() -> None:
    with pytest.raises(MasterKeyError, match="not set") as info:
        crypto.load_master_key({})
    _one_line_naming_the_fix(info.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), "decodes to 16"),
        (base64.b64encode(b"x" * 33).decode(), "decodes to 33"),
        ("c2VjcmV0", "decodes to 6"),
    ],
)
def test_malformed_master_key(value: str, reason: str) -> None:
    with pytest.raises(MasterKeyError, match=reason) as info:
        crypto.load_master_key({"MEMTRACE_MASTER_KEY": value})
    _one_line_naming_the_fix(info.value)
    if value:
        assert value not in str(info.value)


def test_load_master_key_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    key = crypto.generate_master_key()
    monkeypatch.setenv("MEMTRACE_MASTER_KEY", key)
    assert crypto.load_master_key() == base64.b64decode(key)
    monkeypatch.delenv("MEMTRACE_MASTER_KEY")
    with pytest.raises(MasterKeyError):
        crypto.load_master_key()

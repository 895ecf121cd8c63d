"""AES-256-GCM envelope for the Arc API keys stored in the metadata DB.

The master key lives only in `MEMTRACE_MASTER_KEY` (base64 of 32 bytes) and is never written to disk
by Memtrace. Each ciphertext gets a fresh random 96-bit nonce, and its associated data names the org
and the column it belongs to, so a ciphertext copied into another org's row (or another column)
fails authentication instead of silently handing org B the credentials of org A.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_ENV = "MEMTRACE_MASTER_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"memtrace/arc_instances/api_key/"
_HOW_TO = f"generate one with `memtrace admin keygen master` and export it as {MASTER_KEY_ENV}"


class MasterKeyError(Exception):
    """The master key is missing or malformed; the message is one line that says how to fix it."""


class DecryptionError(Exception):
    """A stored ciphertext failed authentication: tampered, copied from another org, or wrong master key."""

    def __init__(self, org_id: str) -> None:
        super().__init__(
            f"stored Arc API key for org {org_id} failed authentication: tampered or wrong master key"
        )
        self.org_id = org_id


def generate_master_key() -> str:
    """A fresh master key in the form `load_master_key` accepts (standard base64, 44 chars)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_master_key(text: str) -> bytes:
    """Decode a base64 master key (standard or URL-safe alphabet), insisting on exactly 32 bytes."""
    value = text.strip()
    if not value:
        raise MasterKeyError(f"{MASTER_KEY_ENV} is empty: {_HOW_TO}")
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{MASTER_KEY_ENV} is not valid base64: {_HOW_TO}") from None
    if len(raw) != KEY_BYTES:
        raise MasterKeyError(
            f"{MASTER_KEY_ENV} must be base64 of exactly {KEY_BYTES} bytes "
            f"(it decodes to {len(raw)}): {_HOW_TO}"
        )
    return raw


def load_master_key(environ: Mapping[str, str] = os.environ) -> bytes:
    """The 32-byte master key from the environment only; never from a file or a flag (no shell history)."""
    text = environ.get(MASTER_KEY_ENV)
    if text is None:
        raise MasterKeyError(f"{MASTER_KEY_ENV} is not set: {_HOW_TO}")
    return parse_master_key(text)


def _aad(org_id: str) -> bytes:
    return _AAD_PREFIX + org_id.encode("utf-8")


def _cipher(master: bytes) -> AESGCM:
    if len(master) != KEY_BYTES:
        raise MasterKeyError(f"master key must be {KEY_BYTES} bytes, got {len(master)}: {_HOW_TO}")
    return AESGCM(master)


def encrypt(master: bytes, org_id: str, plaintext: str) -> tuple[bytes, bytes]:
    """Encrypt an org's Arc API key; returns (ciphertext with tag, nonce)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return _cipher(master).encrypt(nonce, plaintext.encode("utf-8"), _aad(org_id)), nonce


def decrypt(master: bytes, org_id: str, ciphertext: bytes, nonce: bytes) -> str:
    """Decrypt an org's Arc API key, failing loudly (naming the org) on any mismatch or corruption."""
    cipher = _cipher(master)
    try:
        plain = cipher.decrypt(bytes(nonce), bytes(ciphertext), _aad(org_id))
        return plain.decode("utf-8")
    except (InvalidTag, ValueError, TypeError):
        # ValueError covers a nonce of the wrong length and undecodable plaintext.
        raise DecryptionError(org_id) from None

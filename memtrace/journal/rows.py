"""A memory as the journal stores it: the compact array-like msgpack of its MemoryRow."""

from __future__ import annotations

import msgspec

from memtrace.rows import MemoryRow

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MemoryRow)


def encode_row(row: MemoryRow) -> bytes:
    return _encoder.encode(row)


def decode_row(blob: bytes) -> MemoryRow:
    return _decoder.decode(blob)


def decode_rows(blobs: list[bytes]) -> list[MemoryRow]:
    decode = _decoder.decode
    return [decode(blob) for blob in blobs]

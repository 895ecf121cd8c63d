"""Memory ids: `mem_` + a ULID (48-bit millisecond time, 80 random bits, Crockford base32).

Time-sortable and unique without coordination between worker processes or hosts. Hand-rolled because
it sits on the write path for every memory and is ~4x cheaper than building a `ulid.ULID` object.
"""

from __future__ import annotations

import random

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # two base32 digits (10 bits) per lookup


def memory_id(time_us: int) -> str:
    # Ids need uniqueness, not secrecy; `random` is reseeded in each forked worker.
    value = ((time_us // 1000) << 80) | random.getrandbits(80)
    out = [_ALPHABET[value >> 125]]  # 26 digits carry 130 bits: the first holds the top 3
    out.extend(_PAIRS[(value >> shift) & 0x3FF] for shift in range(115, 0, -10))
    out.append(_ALPHABET[value & 0x1F])
    return "mem_" + "".join(out)

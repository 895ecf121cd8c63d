"""Bounded bookkeeping for failed API-key checks: a short negative cache and failure token buckets.

Both live in each worker's memory and are bounded, so a flood of distinct keys or client addresses costs
at most their configured size; the oldest entries go first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class NegativeCache:
    """SHA-256 digests of keys that just failed, for a few seconds: a repeated wrong key costs a dict lookup."""

    def __init__(self, size: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock

    def __contains__(self, digest: bytes) -> bool:
        expires = self._entries.get(digest)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._entries[digest]
            return False
        return True

    def add(self, digest: bytes) -> None:
        self._entries[digest] = self._clock() + self._ttl_s
        self._entries.move_to_end(digest)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class FailureBuckets:
    """One token bucket per name (a lookup id, a client address): each failure takes a token.

    A bucket holds `burst` tokens and regains `per_s` per second; a name with no bucket is full. Only names
    with recent failures are stored, at most `max_entries` of them.
    """

    def __init__(self, burst: int, per_s: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, at)
        self._burst = float(burst)
        self._per_s = per_s
        self._max_entries = max_entries
        self._clock = clock

    def _level(self, name: str, now: float) -> float:
        entry = self._buckets.get(name)
        if entry is None:
            return self._burst
        tokens, at = entry
        level = min(self._burst, tokens + (now - at) * self._per_s)
        if level >= self._burst:
            del self._buckets[name]
        return level

    def exhausted(self, name: str) -> bool:
        """No failure left in the budget: further attempts are refused until a token comes back."""
        return self._level(name, self._clock()) < 1.0

    def clean(self, name: str) -> bool:
        """No failure recorded lately (the bucket is full)."""
        return self._level(name, self._clock()) >= self._burst

    def charge(self, name: str) -> None:
        now = self._clock()
        self._buckets[name] = (max(0.0, self._level(name, now) - 1.0), now)
        self._buckets.move_to_end(name)
        while len(self._buckets) > self._max_entries:
            self._buckets.popitem(last=False)

    def retry_after(self, name: str) -> int:
        """Whole seconds until the next token."""
        missing = 1.0 - self._level(name, self._clock())
        return max(1, math.ceil(missing / self._per_s))

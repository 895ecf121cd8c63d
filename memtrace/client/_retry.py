"""When and how long to wait before sending a request again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `attempts` counts the first try; waits grow from `backoff` and never exceed `max_delay`.

    A server's Retry-After wins over the computed backoff (still capped), because it knows when its buffer drains.
    """

    attempts: int = 3
    backoff: float = 0.25
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(self.max_delay, retry_after))
        base: float = self.backoff * 2.0 ** (attempt - 1)
        return min(self.max_delay, base + random.uniform(0, self.backoff))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from Retry-After (delta-seconds, fractions accepted, or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

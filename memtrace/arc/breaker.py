"""Per-org circuit breaker and health record for that org's Arc.

Why: without it, every flush and read for an org whose Arc is down waits a full connect timeout,
holding that org's connections and the caller's time. Once `failures` consecutive calls have
failed, calls fail fast with ArcUnavailable (carrying Retry-After) and only one probe per
`probe_interval_s` is let through; the first success — a real call, or a background /health
check — closes the circuit again.

    closed --N consecutive failures--> open --probe interval elapsed--> half-open (one call)
      ^                                  ^                                   |
      +------------- success ------------+----------- failure --------------+

A probe whose outcome is never recorded (its task was cancelled) does not wedge the breaker:
the next probe is allowed one interval later regardless.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from memtrace.errors import ArcUnavailable
from memtrace.metrics import m

CircuitState = Literal["closed", "open", "half_open"]
HealthStatus = Literal["ok", "down", "unknown"]


class Breaker:
    """Not thread-safe by design: one per org, used from the event loop that owns the ArcPool."""

    def __init__(
        self,
        org_id: str,
        failures: int,
        probe_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.org_id = org_id
        self._threshold = max(1, failures)
        self._interval = probe_interval_s
        self._clock = clock
        self._consecutive = 0
        self._open = False
        self._next_probe_at = 0.0
        self._last_error = ""
        self._last_ok_at: float | None = None  # wall clock, for humans reading /ready

    @property
    def state(self) -> CircuitState:
        if not self._open:
            return "closed"
        return "half_open" if self._clock() >= self._next_probe_at else "open"

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def retry_after(self) -> int:
        """Whole seconds until the next probe may go out (at least 1), for Retry-After."""
        return max(1, math.ceil(self._next_probe_at - self._clock()))

    def before_call(self) -> None:
        """Let the call through, or raise ArcUnavailable without touching the network.

        While open, exactly one caller per probe interval is let through as the probe.
        """
        if not self._open:
            return
        now = self._clock()
        if now >= self._next_probe_at:
            self._next_probe_at = now + self._interval
            return
        m().arc_errors.labels("circuit_open").inc()
        raise ArcUnavailable(
            f"arc for org {self.org_id} is unavailable (circuit open after {self._consecutive} "
            f"consecutive failures; last error: {self._last_error})",
            retry_after=self.retry_after(),
        )

    def discard(self) -> None:
        """The org left this Arc (unbound or moved): an open circuit no longer counts as open."""
        if self._open:
            self._open = False
            m().circuits_open.dec()

    def record_success(self) -> None:
        if self._open:
            m().circuits_open.dec()
            m().circuit_transitions.labels("closed").inc()
        self._consecutive = 0
        self._open = False
        self._last_error = ""
        self._last_ok_at = time.time()

    def record_rejected(self, error: str) -> None:
        """Arc answered (so it is up) but refused the request: close the circuit, keep the reason."""
        self.record_success()
        self._last_error = error

    def record_failure(self, error: str) -> None:
        self._consecutive += 1
        self._last_error = error
        if self._open:
            # A failed probe: the next one waits a full interval from now.
            self._next_probe_at = self._clock() + self._interval
        elif self._consecutive >= self._threshold:
            self._open = True
            m().circuits_open.inc()
            m().circuit_transitions.labels("open").inc()
            self._next_probe_at = self._clock() + self._interval

    def snapshot(self) -> dict[str, Any]:
        """Health record for /ready; error texts are built without secrets by the Arc client."""
        status: HealthStatus
        if self._open:
            status = "down"
        elif self._last_ok_at is not None:
            status = "ok"
        else:
            status = "unknown"
        last_ok = None
        if self._last_ok_at is not None:
            stamp = datetime.fromtimestamp(self._last_ok_at, UTC).isoformat(timespec="milliseconds")
            last_ok = stamp.replace("+00:00", "Z")
        return {
            "status": status,
            "circuit": self.state,
            "consecutive_failures": self._consecutive,
            "last_error": self._last_error,
            "last_ok_at": last_ok,
        }

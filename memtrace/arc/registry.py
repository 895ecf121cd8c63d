"""Org → Arc binding, and every call to an org's Arc routed through that org's circuit breaker.

The map is rebuilt wholesale by `refresh()` (the caller triggers it at start-up and whenever the
metadata change counter moves), so a new binding or a moved Arc is picked up without a restart.
Breakers survive a refresh while the org stays on the same URL; moving an org to another Arc
starts it with a fresh breaker, since the old one described a different server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from memtrace.arc.binding import ArcBinding
from memtrace.arc.breaker import Breaker
from memtrace.arc.client import ArcPool, ArcResult, DeleteConfig, DeleteResult
from memtrace.config import ArcSettings
from memtrace.errors import ArcRejected, ArcUnavailable, NoArcInstance
from memtrace.supervise import backoff_s

logger = logging.getLogger("memtrace.arc")

NO_ARC_MESSAGE = "no arc instance configured for this org"

T = TypeVar("T")
BindingLoader = Callable[[], Awaitable[list[ArcBinding]]]


class ArcRegistry:
    def __init__(
        self,
        loader: BindingLoader,
        pool: ArcPool,
        settings: ArcSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._bindings: dict[str, ArcBinding] = {}
        self._breakers: dict[str, Breaker] = {}
        self._refresh_lock = asyncio.Lock()

    @property
    def pool(self) -> ArcPool:
        return self._pool

    def org_ids(self) -> list[str]:
        return list(self._bindings)

    async def refresh(self) -> None:
        """Reload every binding; if the loader fails, the old map stays in force and the error propagates."""
        async with self._refresh_lock:
            loaded = await self._loader()
            bindings = {b.org_id: b for b in loaded}
            breakers: dict[str, Breaker] = {}
            for org_id, binding in bindings.items():
                old_binding = self._bindings.get(org_id)
                old_breaker = self._breakers.get(org_id)
                if old_breaker is not None and old_binding is not None and old_binding.url == binding.url:
                    breakers[org_id] = old_breaker
                else:
                    breakers[org_id] = self._new_breaker(org_id)
            # Swap both maps together so no caller sees a binding without its breaker.
            old = self._breakers
            self._bindings, self._breakers = bindings, breakers
            for org_id, breaker in old.items():
                if breakers.get(org_id) is not breaker:
                    breaker.discard()

    def _new_breaker(self, org_id: str) -> Breaker:
        arc = self._settings
        return Breaker(org_id, arc.breaker_failures, arc.breaker_probe_interval_s, clock=self._clock)

    def get(self, org_id: str) -> ArcBinding:
        binding = self._bindings.get(org_id)
        if binding is None:
            raise NoArcInstance(NO_ARC_MESSAGE)
        return binding

    def breaker(self, org_id: str) -> Breaker:
        breaker = self._breakers.get(org_id)
        if breaker is None:
            raise NoArcInstance(NO_ARC_MESSAGE)
        return breaker

    def _route(self, org_id: str) -> tuple[ArcBinding, Breaker]:
        # Read both from the same pair of maps: refresh() swaps them together.
        bindings, breakers = self._bindings, self._breakers
        binding = bindings.get(org_id)
        if binding is None:
            raise NoArcInstance(NO_ARC_MESSAGE)
        return binding, breakers[org_id]

    def _failed(self, breaker: Breaker, error: str) -> None:
        was_open = breaker.state != "closed"
        breaker.record_failure(error)
        if not was_open and breaker.state != "closed":
            logger.warning("arc circuit for org %s opened: %s", breaker.org_id, error)

    def _succeeded(self, breaker: Breaker) -> None:
        if breaker.state != "closed":
            logger.info("arc circuit for org %s closed", breaker.org_id)
        breaker.record_success()

    async def _call(self, org_id: str, call: Callable[[ArcBinding], Awaitable[T]], sharing: Sequence[str] = ()
                    ) -> T:
        """One request to the org's Arc through its breaker: fail fast while open, record the outcome — on
        the breaker of every org in `sharing` too (orgs whose rows ride in the same request)."""
        binding, breaker = self._route(org_id)
        breaker.before_call()
        breakers = [breaker, *(b for other in sharing if other != org_id
                               if (b := self._breakers.get(other)) is not None)]
        try:
            result = await call(binding)
        except ArcUnavailable as exc:
            for each in breakers:
                self._failed(each, exc.message)
            raise
        except ArcRejected as exc:
            for each in breakers:
                each.record_rejected(exc.message)
            raise
        for each in breakers:
            self._succeeded(each)
        return result

    async def write(self, org_id: str, body: bytes, sharing: Sequence[str] = ()) -> None:
        """Deliver an encoded columnar payload to the org's Arc; `sharing` names the other orgs (same Arc
        target) whose rows it also carries, so each of their breakers sees the outcome."""
        await self._call(org_id, lambda binding: self._pool.write_msgpack(binding, body), sharing)

    async def query(self, org_id: str, sql: str) -> ArcResult:
        """Run an (already org-scoped) SELECT on the org's Arc."""
        return await self._call(org_id, lambda binding: self._pool.query(binding, sql))

    async def query_as(self, org_id: str, sql: str, decode: Callable[[bytes], T]) -> T:
        """`query`, with Arc's JSON body read by `decode` (`ArcPool.query_as`)."""
        return await self._call(org_id, lambda binding: self._pool.query_as(binding, sql, decode))

    async def delete(self, org_id: str, where: str, *, dry_run: bool, confirm: bool) -> DeleteResult:
        """Delete (or count, with `dry_run`) the org's rows matching `where`, which must hold `org_id = '<org>'`
        (`memory/query.delete_condition` builds it)."""
        if "org_id = " not in where:
            raise ValueError("a delete condition must be scoped by org_id")
        return await self._call(
            org_id, lambda binding: self._pool.delete(binding, where, dry_run=dry_run, confirm=confirm))

    async def delete_config(self, org_id: str) -> DeleteConfig:
        return await self._pool.delete_config(self.get(org_id))

    def health_snapshot(self) -> dict[str, dict[str, Any]]:
        """Per-org Arc health for /ready, keyed by org id; contains hosts and states, never tokens."""
        out: dict[str, dict[str, Any]] = {}
        for org_id, binding in self._bindings.items():
            snap = self._breakers[org_id].snapshot()
            snap["arc"] = binding.host
            out[org_id] = snap
        return out

    async def check_health(self) -> None:
        """Probe each distinct Arc URL once, concurrently, and feed the result to every org bound to it.

        Concurrent, so a dead Arc costs one probe timeout per round, not one per Arc in sequence.
        """
        by_url: dict[str, list[str]] = {}
        for org_id, binding in self._bindings.items():
            by_url.setdefault(binding.url, []).append(org_id)
        if not by_url:
            return
        urls = list(by_url)
        results = await asyncio.gather(*(self._pool.health(url) for url in urls))
        breakers = self._breakers
        for url, healthy in zip(urls, results, strict=True):
            for org_id in by_url[url]:
                breaker = breakers.get(org_id)
                if breaker is None:
                    continue  # unbound while the probe was in flight
                if healthy:
                    self._succeeded(breaker)
                else:
                    host = self._bindings[org_id].host if org_id in self._bindings else url
                    self._failed(breaker, f"arc at {host} failed its health check")

    async def run_health_checks(self, interval: float) -> None:
        """Background task: `check_health()` every `interval` seconds until cancelled; a failing round is
        logged and the next waits longer (backoff), so a persistent bug neither ends health reporting nor
        floods the log."""
        failures = 0
        while True:
            try:
                await self.check_health()
                failures = 0
            except Exception:
                failures += 1
                logger.exception("arc health check round failed (%d in a row)", failures)
            await asyncio.sleep(backoff_s(failures, interval) if failures else interval)

"""The composition root's shutdown: every resource is closed even when one close fails, the first error wins."""

from __future__ import annotations

import pytest

from memtrace.runtime import close_all


async def test_close_all_runs_every_closer_and_raises_the_first_error() -> None:
    closed: list[str] = []

    def closer(name: str, error: Exception | None = None):  # type: ignore[no-untyped-def]
        async def close() -> None:
            closed.append(name)
            if error is not None:
                raise error
        return name, close

    with pytest.raises(OSError, match="journal"):
        await close_all([closer("deliverer"), closer("journal", OSError("journal")),
                         closer("pool", RuntimeError("pool")), closer("metadata")])
    assert closed == ["deliverer", "journal", "pool", "metadata"]


async def test_close_all_with_no_failure_returns() -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("one")

    await close_all([("one", close)])
    assert closed == ["one"]

"""MemtraceClient: the async client driven from blocking code.

One private event loop runs in a daemon thread per client, so the sync client works the same inside scripts,
threads and programs that already run their own event loop (where `asyncio.run` would fail). Every method
forwards to the AsyncMemtraceClient method of the same name and blocks for its result.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from memtrace.client._async import DEFAULT_URL, AsyncMemtraceClient
from memtrace.client._retry import RetryPolicy

__all__ = ["MemtraceClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _blocking(method: Callable[Concatenate[AsyncMemtraceClient, P], Coroutine[Any, Any, T]],
              ) -> Callable[Concatenate[MemtraceClient, P], T]:
    @functools.wraps(method)
    def call(self: MemtraceClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._client, *args, **kwargs))

    return call


class MemtraceClient:
    """Blocking Memtrace client: ``with MemtraceClient(url, key) as mt: mt.remember("agent_1", "...")``."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str = "", *, timeout: float = 30.0,
                 connect_timeout: float = 5.0, max_connections: int = 32,
                 retry: RetryPolicy | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="memtrace-client", daemon=True)
        self._thread.start()
        self._client = AsyncMemtraceClient(base_url, api_key, timeout=timeout, connect_timeout=connect_timeout,
                                           max_connections=max_connections, retry=retry)
        self._closed = False

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("MemtraceClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def run(self, call: Callable[[AsyncMemtraceClient], Coroutine[Any, Any, T]]) -> T:
        """Block for ``call(async_client)`` run on the private loop: several requests as one blocking step."""
        return self._run(call(self._client))

    async def arun(self, call: Callable[[AsyncMemtraceClient], Coroutine[Any, Any, T]]) -> T:
        """Await ``call(async_client)`` from any event loop: it runs on this client's private loop, so one client
        (one connection pool) serves the blocking and the async methods of an integration, whichever loop calls."""
        if self._closed:
            raise RuntimeError("MemtraceClient is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(self._client), self._loop))

    def close(self) -> None:
        """Close connections and stop the private loop; idempotent."""
        if self._closed:
            return
        self._run(self._client.close())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    add_memory = _blocking(AsyncMemtraceClient.add_memory)
    add_memories = _blocking(AsyncMemtraceClient.add_memories)
    list_memories = _blocking(AsyncMemtraceClient.list_memories)
    get_memory = _blocking(AsyncMemtraceClient.get_memory)
    search = _blocking(AsyncMemtraceClient.search)
    recall_context = _blocking(AsyncMemtraceClient.recall_context)
    register_agent = _blocking(AsyncMemtraceClient.register_agent)
    list_agents = _blocking(AsyncMemtraceClient.list_agents)
    get_agent = _blocking(AsyncMemtraceClient.get_agent)
    delete_agent = _blocking(AsyncMemtraceClient.delete_agent)
    erase_agent = _blocking(AsyncMemtraceClient.erase_agent)
    delete_memory = _blocking(AsyncMemtraceClient.delete_memory)
    forget = _blocking(AsyncMemtraceClient.forget)
    agent_memories = _blocking(AsyncMemtraceClient.agent_memories)
    agent_stats = _blocking(AsyncMemtraceClient.agent_stats)
    agent_timeline = _blocking(AsyncMemtraceClient.agent_timeline)
    create_session = _blocking(AsyncMemtraceClient.create_session)
    list_sessions = _blocking(AsyncMemtraceClient.list_sessions)
    get_session = _blocking(AsyncMemtraceClient.get_session)
    update_session = _blocking(AsyncMemtraceClient.update_session)
    close_session = _blocking(AsyncMemtraceClient.close_session)
    session_memories = _blocking(AsyncMemtraceClient.session_memories)
    session_context = _blocking(AsyncMemtraceClient.session_context)
    session_timeline = _blocking(AsyncMemtraceClient.session_timeline)
    health = _blocking(AsyncMemtraceClient.health)
    ready = _blocking(AsyncMemtraceClient.ready)
    remember = _blocking(AsyncMemtraceClient.remember)
    recall = _blocking(AsyncMemtraceClient.recall)
    decide = _blocking(AsyncMemtraceClient.decide)
    context = _blocking(AsyncMemtraceClient.context)

"""Synchronous code driving the async clients: one private event loop per client, and its lifetime.

dlt resources, the CLI and the sync engine are synchronous; the clients are async so one client can
fan out requests. `SyncFacade` gives a client's surface to synchronous callers by running it on a
private loop (`LoopThread`). A facade is closed by `with` or `close()`, and otherwise when it is garbage
collected: the resources of one source share it and dlt runs them interleaved, so no one resource may
close it. `run_sync` runs one coroutine from synchronous code, inside a running loop or not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from dlt.common.runtime import signals

T = TypeVar("T")
R = TypeVar("R")


class LoopThread:
    """A private event loop on a daemon thread, so sync code can drive async clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="switchboard-io", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[R], *, interruptible: bool = True) -> R:
        """Run `coro` on the loop and wait for it. A Ctrl-C or SIGTERM that dlt intercepted during a load
        (`dlt.common.runtime.signals`) cancels it at once, not after a whole fan-out of requests."""
        if interruptible:
            signals.raise_if_signalled()
        future = asyncio.run_coroutine_threadsafe(_as_coro(coro), self.loop)
        while interruptible:
            try:
                return future.result(timeout=0.05)
            except concurrent.futures.CancelledError:
                signals.raise_if_signalled()  # cancelled because of the signal: say so
                raise
            except concurrent.futures.TimeoutError:
                if signals.was_signal_received():
                    # every task on the loop: resources run in parallel share this client and its loop
                    self.loop.call_soon_threadsafe(_cancel_all, self.loop)
                    future.cancel()
                    signals.raise_if_signalled()
        return future.result()

    def iterate(self, agen: AsyncIterator[R]) -> Iterator[R]:
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self.loop.is_running():
                self.run(aclose(), interruptible=False)

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


async def _as_coro(aw: Awaitable[R]) -> R:
    return await aw


def _shutdown(aclient: Any, loop_thread: LoopThread) -> None:
    """Close the connections, then stop the loop, without waiting: the garbage collector may call this
    on any thread, the loop's own included, where blocking on the loop would deadlock."""
    loop = loop_thread.loop
    if loop.is_closed() or not loop.is_running():
        return

    async def close() -> None:
        try:
            await aclient.aclose()
        finally:
            loop.stop()

    try:
        loop.call_soon_threadsafe(lambda: loop.create_task(close()))
    except RuntimeError:  # the loop closed meanwhile
        pass


class SyncFacade:
    """The same surface as an async client: coroutine methods return values, async generators iterate.
    `run(coro)` runs any coroutine on the client's loop; `aclient` is the async client itself."""

    def __init__(self, async_client: Any):
        self._async = async_client
        self._loop = LoopThread()
        weakref.finalize(self, _shutdown, async_client, self._loop)

    @property
    def aclient(self) -> Any:
        return self._async

    def run(self, coro: Awaitable[R]) -> R:
        """Run any coroutine on the client's loop (for fan-out helpers such as `gather_limited`)."""
        return self._loop.run(coro)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._async, name)
        if inspect.isasyncgenfunction(attr):
            def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                return self._loop.iterate(attr(*args, **kwargs))

            return gen_wrapper
        if inspect.iscoroutinefunction(attr):
            def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
                return self._loop.run(attr(*args, **kwargs))

            return coro_wrapper
        return attr

    def close(self) -> None:
        try:
            self._loop.run(self._async.aclose())
        finally:
            self._loop.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_sync(coro: Awaitable[R]) -> R:
    """Run `coro` to its end from synchronous code; from inside a running event loop (a notebook, an async
    scheduler) on a private loop thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coro(coro))
    loop = LoopThread()
    try:
        return loop.run(coro)
    finally:
        loop.close()


async def gather_limited(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], concurrency: int
) -> AsyncIterator[tuple[T, R | BaseException]]:
    """Run `fn` over `items` with at most `concurrency` in flight; yield (item, result or exception)
    in completion order. Exceptions are yielded, not raised, so one bad item never loses the rest."""
    queue: asyncio.Queue[tuple[T, R | BaseException]] = asyncio.Queue()
    sem = asyncio.Semaphore(max(1, concurrency))
    pending = 0

    async def one(item: T) -> None:
        async with sem:
            try:
                result: R | BaseException = await fn(item)
            except Exception as exc:  # reported to the caller, never swallowed
                result = exc
        await queue.put((item, result))

    tasks = []
    for item in items:
        tasks.append(asyncio.ensure_future(one(item)))
        pending += 1
    try:
        while pending:
            yield await queue.get()
            pending -= 1
    finally:
        for t in tasks:
            t.cancel()

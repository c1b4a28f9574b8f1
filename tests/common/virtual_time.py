"""An asyncio event loop whose clock moves only when every task is waiting: sleeps end at once, in order.

Requests through `httpx.ASGITransport` never touch a socket, so a whole run (client, limiter, the sandbox's
latency and its rate budget) plays out on this clock: a minute-long rate-limit window costs no real time,
and every figure is the same from run to run. Point the sandbox at it with `state.clock = loop.time`;
start the clock near zero (windows align to multiples of their length from any origin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0):
        super().__init__()
        self._virtual_now = start
        # timers due within this much of "now" run; finer than a float's step at epoch magnitudes is lost
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        # nothing ready to run: jump to the next timer instead of sleeping until it
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not ready:
            due = min((handle.when() for handle in scheduled if not handle.cancelled()), default=None)
            if due is not None:
                self._virtual_now = max(self._virtual_now, due)
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro: Coroutine[Any, Any, T], start: float) -> T:
    """Run `coro` on a fresh VirtualTimeLoop whose clock starts at `start` (epoch seconds)."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()

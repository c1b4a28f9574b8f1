"""What the clients count: requests, retries, 429s, and the wall time spent waiting for a rate limit.

A progress display and a load report read these for a whole run without the sources handing their
clients out (`api_usage`, `usage_delta`, `waiting_for_rate_limit`).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


# --------------------------------------------------------------------------- waiting, in wall time


class WaitTally:
    """Wall time during which at least one request waited (for the limiter, or for a rate-limit window
    after a 429). Concurrent waits count once, so the figure never exceeds the run's own duration."""

    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._ends: dict[int, float] = {}
        self._next = 0
        self._since = 0.0
        self._total = 0.0

    def begin(self, seconds: float) -> int:
        with self._lock:
            now = self._clock()
            if not self._ends:
                self._since = now
            self._next += 1
            self._ends[self._next] = now + max(0.0, seconds)
            return self._next

    def end(self, token: int) -> None:
        with self._lock:
            if self._ends.pop(token, None) is not None and not self._ends:
                self._total += self._clock() - self._since

    @property
    def seconds(self) -> float:
        with self._lock:
            return self._total + (self._clock() - self._since if self._ends else 0.0)

    def remaining(self) -> float | None:
        """Seconds until the last current wait is expected to end; None when nothing waits."""
        with self._lock:
            if not self._ends:
                return None
            return max(0.0, max(self._ends.values()) - self._clock())


async def tallied_sleep(seconds: float, tallies: Iterable[WaitTally], sleep: Sleep = asyncio.sleep) -> None:
    """Sleep, counting the time in each tally (a client's and its API's)."""
    tokens = [(tally, tally.begin(seconds)) for tally in tallies]
    try:
        await sleep(seconds)
    finally:
        for tally, token in tokens:
            tally.end(token)


_API_TALLIES: dict[str, WaitTally] = {}
_API_TALLIES_LOCK = threading.Lock()


def api_wait_tally(api: str) -> WaitTally:
    """The process-wide tally of one API's waits (every client and account of it together)."""
    with _API_TALLIES_LOCK:
        return _API_TALLIES.setdefault(api, WaitTally())


# --------------------------------------------------------------------------- counters


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    # wall time spent waiting for a limiter or a rate-limit window; concurrent waits count once
    rate_limit_wait_seconds: float = 0.0
    by_endpoint: collections.Counter[str] = field(default_factory=collections.Counter)
    waits: WaitTally | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.waits is not None:
            self.rate_limit_wait_seconds = self.waits.seconds

    def refresh(self) -> ClientStats:
        if self.waits is not None:
            self.rate_limit_wait_seconds = self.waits.seconds
        return self


# Every client's counters, so a progress display can report requests and rate-limit waits for a whole
# run without the sources having to hand their clients out. ClientStats objects are tiny; keeping them
# after their client is closed lets a summary printed at the end still count them.
_ALL_STATS: list[tuple[str, ClientStats]] = []


def track(api: str, stats: ClientStats) -> None:
    """Count a new client's figures in `api_usage`."""
    _ALL_STATS.append((api, stats))


def api_usage() -> dict[str, ClientStats]:
    """Requests, retries, 429s and rate-limit waits summed per API over every client this process made.

    Take one snapshot before a run and one after and subtract (`usage_delta`) to report a single run.
    """
    totals: dict[str, ClientStats] = {}
    for api, stats in list(_ALL_STATS):
        total = totals.setdefault(api, ClientStats())
        total.requests += stats.requests
        total.retries += stats.retries
        total.rate_limited += stats.rate_limited
    for api, total in totals.items():
        # one wall-clock tally per API: clients (accounts) waiting at the same time count once
        total.rate_limit_wait_seconds = api_wait_tally(api).seconds
    return totals


def waiting_for_rate_limit(api: str) -> float | None:
    """Seconds until `api`'s current rate-limit wait is expected to end; None when nothing waits."""
    return api_wait_tally(api).remaining()


def usage_delta(before: dict[str, ClientStats], after: dict[str, ClientStats]) -> dict[str, ClientStats]:
    """What happened between two `api_usage()` snapshots, per API (APIs with no requests left out)."""
    delta: dict[str, ClientStats] = {}
    for api, now in after.items():
        then = before.get(api, ClientStats())
        diff = ClientStats(
            requests=now.requests - then.requests,
            retries=now.retries - then.retries,
            rate_limited=now.rate_limited - then.rate_limited,
            rate_limit_wait_seconds=now.rate_limit_wait_seconds - then.rate_limit_wait_seconds,
        )
        if diff.requests or diff.retries or diff.rate_limited:
            delta[api] = diff
    return delta

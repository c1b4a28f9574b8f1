"""Client-side rate limiting: a sliding window for documented budgets, a limiter that learns a fixed-window
server budget, and one limiter per server origin (the wall time spent waiting is tallied in `usage.py`).

- `RateLimiter`: at most N requests in any sliding period (Sendblue's documented 100 per 10 s).
- `WindowBudgetLimiter`: for servers that count requests in fixed windows aligned to epoch time and
  answer 429 without Retry-After (Chatwoot's rack-attack: a text/plain `Retry later`). Pinned, it keeps
  under a budget it is given; on "auto" it starts at a conservative budget, lets more through while no
  429 comes back (at most `probe_in_flight` requests past what a window has already let through, so
  finding the limit costs that many 429s), and on a 429 waits for the next window and settles just under
  what that window allowed. Either way it never sends more than it settled on in any sliding window.
- `shared_window_limiter`: one limiter per origin in a process (accounts on one Chatwoot server share
  its per-IP budget), remembering learned budgets per origin between runs in a small JSON file in
  dlt's data directory.

Every limiter is shared by concurrent requests, possibly from several event loops (one per client
thread), so state sits behind a threading lock and waits are plain `asyncio.sleep`s on the caller's loop.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from sources.common.usage import Clock, Sleep, WaitTally, tallied_sleep

log = logging.getLogger("switchboard.ratelimit")

# The client stamps a request when it leaves, the server counts it when it arrives, so network jitter can
# bunch requests that left a full window apart into one server window: keep 5% under a budget, over a
# window up to 0.5 s longer.
MARGIN = 0.05


def with_margin(budget: int) -> int:
    return max(1, budget - math.ceil(budget * MARGIN))


def padded(window: float) -> float:
    return window + min(0.5, window * MARGIN)


# --------------------------------------------------------------------------- sliding window


class RateLimiter:
    """At most `max_calls` acquisitions in any sliding `period` seconds, shared by every concurrent task."""

    def __init__(self, max_calls: int, period: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if max_calls <= 0 or period <= 0:
            raise ValueError("rate limit needs positive max_calls and period")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._stamps: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    @classmethod
    def with_margin(cls, limit: int, window: float, **kwargs: Any) -> RateLimiter:
        """A limiter that stays under a server's budget of `limit` per `window` with room to spare."""
        return cls(with_margin(limit), padded(window), **kwargs)

    def _delay(self) -> float:
        """0 and a slot taken, or the seconds until one frees up."""
        now = self._clock()
        while self._stamps and now - self._stamps[0] >= self.period:
            self._stamps.popleft()
        if len(self._stamps) < self.max_calls:
            self._stamps.append(now)
            return 0.0
        return self.period - (now - self._stamps[0]) + 0.005

    async def acquire(self, tallies: Iterable[WaitTally] = ()) -> None:
        while True:
            with self._lock:
                delay = self._delay()
                if not delay:
                    return None
            await tallied_sleep(delay, tallies, self._sleep)

    def settle(self, permit: object, status: int | None) -> None:
        """Told how a request ended; a sliding window learns nothing from it."""

    def retry_delay(self) -> float | None:
        return None


# --------------------------------------------------------------------------- fixed-window server budgets


@dataclass(frozen=True)
class Permit:
    window: int  # index of the server window (epoch seconds // window length) the request left in
    probe: bool  # sent past what a window has been seen to allow


class WindowBudgetLimiter:
    """Requests to a server that counts them in fixed windows aligned to epoch time.

    `budget`: the server's requests per window, when known (pinned, or learned by an earlier run); the
    limiter then sends at most `with_margin(budget)` in any sliding padded window. `budget=None` learns
    it: a window may carry `start` requests, or as many as any window has already let through without a
    429, at full concurrency; past that, at most `probe_in_flight` requests at a time. The first 429
    closes the window (every request waits for the next boundary plus jitter) and the budget becomes what
    that window let through. `pinned=True` keeps the given budget whatever happens (a 429 only waits).
    """

    def __init__(
        self,
        budget: int | None = None,
        *,
        window: float = 60.0,
        start: int = 120,
        probe_in_flight: int = 3,
        pinned: bool = False,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        on_learned: Callable[[int], None] | None = None,
    ):
        if window <= 0 or start <= 0 or probe_in_flight <= 0 or (budget is not None and budget <= 0):
            raise ValueError("a window limiter needs a positive window, start, probe_in_flight and budget")
        self.window = window
        self.budget = budget
        self.pinned = pinned and budget is not None
        self.probe_in_flight = probe_in_flight
        self._clock = clock
        self._sleep = sleep
        self._on_learned = on_learned
        self._lock = threading.Lock()
        self._stamps: collections.deque[float] = collections.deque()  # send times, for the settled limit
        self._proven = start  # requests one window can carry: the start, then the most a clean window took
        self._index = -1  # the current window and its tallies
        self._sent = 0
        self._admitted: dict[int, int] = {}  # 2xx per window (the current one and the one before)
        self._refused: set[int] = set()  # windows that answered a 429
        self._probes = 0
        self._blocked_until = 0.0
        self._first_index: int | None = None
        self._learned_in: int | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def settled(self) -> int | None:
        """Requests the limiter lets through in any sliding padded window, once the budget is known."""
        return None if self.budget is None else with_margin(self.budget)

    def _roll(self, now: float) -> None:
        index = int(now // self.window)
        if index != self._index:
            self._index = index
            self._sent = 0
            for old in [k for k in self._admitted if k < index - 1]:
                del self._admitted[old]
            self._refused = {k for k in self._refused if k >= index - 1}

    def _take(self) -> tuple[Permit | None, float]:
        """A permit, or the seconds to wait before asking again (0.0 with None: wait for a probe to end)."""
        now = self._clock()
        if now < self._blocked_until:
            return None, self._blocked_until - now
        self._roll(now)
        if self._first_index is None:
            self._first_index = self._index
        period = padded(self.window)
        while self._stamps and now - self._stamps[0] >= period:
            self._stamps.popleft()
        settled = self.settled
        if settled is not None and len(self._stamps) >= settled:
            return None, period - (now - self._stamps[0]) + 0.005
        # a window this limiter saw only part of may already hold others' requests (an earlier run's):
        # past `start`, even a known budget is approached a probe at a time there
        careful = settled is None or (not self.pinned and self._index == self._first_index)
        if not careful or self._sent < self._proven:
            probe = False
        elif self._probes < self.probe_in_flight:
            probe = True
            self._probes += 1
        else:
            return None, 0.0
        self._stamps.append(now)
        self._sent += 1
        return Permit(self._index, probe), 0.0

    async def acquire(self, tallies: Iterable[WaitTally] = ()) -> Permit:
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[None] | None = None
            with self._lock:
                permit, delay = self._take()
                if permit is None and not delay:  # probes in flight: the next answer wakes us
                    waiter = loop.create_future()
                    self._waiters.append((loop, waiter))
            if permit is not None:
                return permit
            if waiter is not None:
                try:
                    await asyncio.wait_for(waiter, 1.0)
                except TimeoutError:
                    pass
            else:
                await tallied_sleep(delay, tallies, self._sleep)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop has closed
                pass

    def settle(self, permit: object, status: int | None) -> None:
        """How the request sent under `permit` ended (`status` None: no answer)."""
        if not isinstance(permit, Permit):
            return
        learned: int | None = None
        with self._lock:
            if permit.probe:
                self._probes -= 1
                self._wake()
            if status == 429:
                now = self._clock()
                boundary = (math.floor(now / self.window) + 1) * self.window
                jitter = random.uniform(0.05, 0.05 + min(1.0, self.window * 0.02))
                self._blocked_until = max(self._blocked_until, boundary + jitter)
                self._refused.add(permit.window)
                # what a window let through is the budget; in a window this limiter saw only part of,
                # others may have spent some of it, so it only seeds an unknown budget (a lower bound)
                trusted = permit.window != self._first_index or self.budget is None
                if not self.pinned and trusted:
                    allowed = max(1, self._admitted.get(permit.window, 0))
                    if self.budget is None or allowed < self.budget:
                        self.budget = allowed
                        self._learned_in = permit.window
                        learned = allowed
            elif status is not None and 200 <= status < 400:
                count = self._admitted.get(permit.window, 0) + 1
                self._admitted[permit.window] = count
                if permit.window in self._refused:
                    # answers still in flight when the 429 came: the window let these through too
                    if permit.window == self._learned_in and self.budget is not None and count > self.budget:
                        self.budget = count
                        learned = count
                elif count > self._proven:
                    self._proven = count
        if learned is not None:
            log.info("server budget: %d requests per %.0f s window", learned, self.window)
            if self._on_learned is not None:
                self._on_learned(learned)

    def retry_delay(self) -> float:
        """Seconds until the window after a 429 opens, with jitter to spread the retries."""
        with self._lock:
            until = self._blocked_until
        return max(0.0, until - self._clock()) + random.uniform(0.0, min(0.25, self.window * 0.01))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --------------------------------------------------------------------------- one limiter per origin


def origin_of(url: str) -> str:
    """scheme://host:port, the unit a per-IP server budget applies to."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class BudgetCache:
    """Learned budgets per (origin, window length) in a JSON file, so the next run starts from them.
    Entries older than `max_age` are relearned (a server's limit can change)."""

    def __init__(self, path: str | os.PathLike[str], max_age: float = 7 * 24 * 3600, keep: int = 200):
        self.path = Path(path)
        self.max_age = max_age
        self.keep = keep
        self._lock = threading.Lock()

    @staticmethod
    def _key(origin: str, window: float) -> str:
        return f"{origin} {window:g}s"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, origin: str, window: float) -> int | None:
        with self._lock:
            entry = self._read().get(self._key(origin, window))
        if not isinstance(entry, dict):
            return None
        budget, learned_at = entry.get("budget"), entry.get("learned_at")
        if not isinstance(budget, int) or budget <= 0 or not isinstance(learned_at, (int, float)):
            return None
        return budget if time.time() - learned_at < self.max_age else None

    def put(self, origin: str, window: float, budget: int) -> None:
        with self._lock:
            data = self._read()
            data[self._key(origin, window)] = {"budget": int(budget), "learned_at": round(time.time())}
            newest = sorted(data.items(), key=lambda kv: kv[1].get("learned_at", 0) if isinstance(kv[1], dict) else 0)
            data = dict(newest[-self.keep :])
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                os.replace(tmp, self.path)
            except OSError as exc:  # a cache is optional: the next run learns again
                log.warning("could not remember the learned rate budget: %s", exc)


def default_budget_cache() -> BudgetCache:
    """`<dlt data dir>/switchboard/rate_budgets.json` (DLT_DATA_DIR moves it, as for dlt's own files)."""
    import dlt

    return BudgetCache(Path(dlt.current.run_context().data_dir) / "switchboard" / "rate_budgets.json")


_SHARED: weakref.WeakValueDictionary[tuple[str, str, float], WindowBudgetLimiter] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_window_limiter(
    base_url: str,
    per_window: int | Literal["auto"],
    window: float = 60.0,
    *,
    start: int = 120,
    cache: BudgetCache | None = None,
    clock: Clock = time.time,
) -> WindowBudgetLimiter:
    """The one limiter for this origin and setting in this process: every client (account) of a server
    shares it while any of them is alive. "auto" starts from the budget `cache` remembers for the origin
    and writes back what it learns."""
    origin = origin_of(base_url)
    key = (origin, str(per_window), float(window))
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            if per_window == "auto":
                store = cache if cache is not None else default_budget_cache()
                limiter = WindowBudgetLimiter(
                    store.get(origin, window),
                    window=window,
                    start=start,
                    clock=clock,
                    on_learned=lambda budget: store.put(origin, window, budget),
                )
            else:
                limiter = WindowBudgetLimiter(int(per_window), window=window, pinned=True, clock=clock)
            _SHARED[key] = limiter
        return limiter

"""The Chatwoot limiter on "auto" against the sandbox's fixed-window budget, on a virtual clock.

The real `AsyncChatwootClient` reads contact labels from the Chatwoot sandbox through
`httpx.ASGITransport` with 40 ms (+-10 ms) of simulated latency and 8 requests in flight. The loop's
clock only moves when every task waits (see virtual_time.py), and the sandbox's budget and request log
read the same clock, so minute-long windows cost no real time and every figure comes from the sandbox's
own log: requests and 429s per server window, never a duration.

"3000/min" is 50 requests a second. With 40 ms of latency what decides the 429s a probe costs is that
rate, so it is simulated as 300 requests per 6-second window (the same rate, a tenth of the requests to
send); "300/min" runs on the real minute.
"""

from __future__ import annotations

import collections
import gc
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.chatwoot import API_TOKEN, create_app
from sources.chatwoot.client import AsyncChatwootClient
from sources.chatwoot.settings import ChatwootSettings
from sources.common.ratelimit import BudgetCache, WindowBudgetLimiter, shared_window_limiter, with_margin
from sources.common.runtime import gather_limited
from sources.common.usage import WaitTally, tallied_sleep
from tests.common.virtual_time import VirtualTimeLoop

BASE_URL = "http://127.0.0.1:3999"
START_OFFSET = 17.0  # the run starts 17 s into a window, as a real run starts anywhere in one


def chatwoot(budget: int, window: float) -> Any:
    app = create_app("small", seed=3, rate_limit_per_minute=budget, rate_limit_window_seconds=window,
                     latency_ms=40, jitter_ms=10)
    return app


def read_labels(app: Any, loop: VirtualTimeLoop, limiter: Any, requests: int) -> int:
    """GET /contacts/{id}/labels `requests` times, 8 at a time, through `limiter`; returns the failures."""
    state = app.state.sandbox
    state.clock = loop.time
    ids = [contact["id"] for contact in state.visible_contacts()]
    settings = ChatwootSettings(base_url=BASE_URL, account_id=1, api_access_token=API_TOKEN, concurrency=8)

    async def run() -> int:
        client = AsyncChatwootClient(settings, transport=httpx.ASGITransport(app), limiter=limiter)
        failures = 0
        work = [ids[i % len(ids)] for i in range(requests)]
        async for _, result in gather_limited(work, client.get_contact_labels, 8):
            failures += isinstance(result, BaseException)
        await client.aclose()
        return failures

    return loop.run_until_complete(run())


def per_window(app: Any, window: float) -> dict[int, list[int]]:
    """Statuses of the requests the sandbox received, per server window, in arrival order."""
    windows: dict[int, list[int]] = collections.defaultdict(list)
    for entry in app.state.sandbox.log.entries:
        windows[int(entry.ts // window)].append(entry.status)
    return dict(sorted(windows.items()))


@pytest.mark.parametrize(
    ("budget", "window", "start"),
    [(300, 6.0, 12), (300, 60.0, 120), (30, 6.0, 12)],
    ids=["3000/min (a minute scaled to 6 s)", "300/min", "300/min (a minute scaled to 6 s)"],
)
def test_auto_learns_the_window_budget_within_a_few_windows(budget: int, window: float, start: int) -> None:
    app = chatwoot(budget, window)
    loop = VirtualTimeLoop(START_OFFSET * window / 60)
    limiter = WindowBudgetLimiter(None, window=window, start=start, clock=loop.time)
    requests = budget * 5 + budget // 2
    try:
        assert read_labels(app, loop, limiter, requests) == 0
    finally:
        loop.close()

    windows = per_window(app, window)
    statuses = [status for seen in windows.values() for status in seen]
    assert statuses.count(200) == requests
    assert statuses.count(429) <= 5
    # the sandbox keeps a true fixed window: a 429 only once the window has counted `budget` requests
    for seen in windows.values():
        assert seen.count(200) <= budget
        if 429 in seen:
            assert seen.index(429) == budget
    # learned just under the budget, and from the fourth window of the run on, never over it
    assert limiter.budget is not None and 0.9 * budget <= limiter.budget <= budget
    first, last = min(windows), max(windows)
    assert all(len(windows.get(index, [])) <= budget for index in range(first + 3, last))
    # it learns within a few windows: the run takes at most two more than the settled rate needs
    assert last - first + 1 <= math.ceil(requests / with_margin(budget)) + 2


def test_a_learned_budget_is_remembered_per_server_and_shared_by_its_clients(tmp_path: Path) -> None:
    budget, window = 30, 6.0
    app = chatwoot(budget, window)
    cache = BudgetCache(tmp_path / "rate_budgets.json")
    loop = VirtualTimeLoop(START_OFFSET * window / 60)
    first = shared_window_limiter(BASE_URL, "auto", window, start=3, cache=cache, clock=loop.time)
    # accounts on one server share its budget; another server has its own
    assert shared_window_limiter(BASE_URL + "/api/v1", "auto", window, cache=cache) is first
    assert shared_window_limiter("http://127.0.0.1:4000", "auto", window, cache=cache) is not first
    try:
        assert read_labels(app, loop, first, budget * 4) == 0
    finally:
        loop.close()
    learned = first.budget
    assert learned is not None and cache.get("http://127.0.0.1:3999", window) == learned
    del first
    gc.collect()

    # the next run (another process, later) starts from the learned budget: no 429 at all
    app.state.sandbox.log.clear()
    loop = VirtualTimeLoop(1000 * window + START_OFFSET * window / 60)
    second = shared_window_limiter(BASE_URL, "auto", window, start=3, cache=cache, clock=loop.time)
    assert second.budget == learned
    try:
        assert read_labels(app, loop, second, budget * 4) == 0
    finally:
        loop.close()
    windows = per_window(app, window)
    assert sum(seen.count(429) for seen in windows.values()) == 0
    assert all(len(seen) <= budget for seen in windows.values())


def test_a_pinned_budget_never_draws_a_429() -> None:
    budget, window = 30, 6.0
    app = chatwoot(budget, window)
    loop = VirtualTimeLoop(START_OFFSET * window / 60)
    limiter = WindowBudgetLimiter(budget, window=window, pinned=True, clock=loop.time)
    try:
        assert read_labels(app, loop, limiter, budget * 4) == 0
    finally:
        loop.close()
    windows = per_window(app, window)
    assert all(429 not in seen and len(seen) <= budget for seen in windows.values())


def test_concurrent_waits_count_once_in_the_waited_figure() -> None:
    loop = VirtualTimeLoop(0.0)
    tally = WaitTally(clock=loop.time)

    async def waits() -> None:
        import asyncio

        # eight requests wait for the same window together, then one waits alone
        await asyncio.gather(*(tallied_sleep(40.0, [tally]) for _ in range(8)))
        await tallied_sleep(2.0, [tally])

    try:
        loop.run_until_complete(waits())
    finally:
        loop.close()
    assert tally.seconds == pytest.approx(42.0)
    assert tally.remaining() is None

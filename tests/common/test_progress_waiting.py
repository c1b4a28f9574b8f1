"""The progress line while Chatwoot's rate-limit window is closed, and when the terminal is narrow.

A client on "auto" meets the sandbox's budget (2 requests per minute window); the third request draws a
429 and waits for the next window, on the virtual clock of virtual_time.py. A task running beside it
reads the status line during that wait.
"""

from __future__ import annotations

import asyncio
import io
import re

import httpx

from pipelines.progress import LoadProgress
from sandbox.chatwoot import API_TOKEN, create_app
from sources.chatwoot.client import AsyncChatwootClient
from sources.chatwoot.settings import ChatwootSettings
from sources.common.ratelimit import WindowBudgetLimiter
from tests.common.virtual_time import VirtualTimeLoop


def test_the_status_line_says_it_waits_for_the_window_and_keeps_the_figures_when_narrow() -> None:
    app = create_app("small", seed=4, rate_limit_per_minute=2, latency_ms=40)
    loop = VirtualTimeLoop(10.0)
    app.state.sandbox.clock = loop.time
    limiter = WindowBudgetLimiter(None, window=60.0, start=2, clock=loop.time)
    settings = ChatwootSettings(base_url="http://127.0.0.1:3998", account_id=1, api_access_token=API_TOKEN)
    progress = LoadProgress("chatwoot", io.StringIO(), interactive=False)
    progress.step = "Extract"
    progress.update("contacts", 15)
    progress.update("contact_labels_with_a_long_table_name", 500)
    seen: list[str] = []

    async def run() -> None:
        client = AsyncChatwootClient(settings, transport=httpx.ASGITransport(app), limiter=limiter)

        async def watch() -> None:
            await asyncio.sleep(5.0)  # the third request has had its 429 and waits for the minute
            seen.append(progress.status_line())
            seen.append(progress.status_line(width=70))

        await asyncio.gather(*(client.list_labels() for _ in range(3)), watch())
        await client.aclose()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert [entry.status for entry in app.state.sandbox.log.entries] == [200, 200, 429, 200]
    waiting, narrow = seen
    figures = r"Chatwoot 3 requests, 1 retries, 1 x 429, waited [\d.]+s, waiting \d+ s for Chatwoot's rate-limit window"
    assert re.search(figures, waiting), waiting
    assert "contacts 1p/15r" in waiting
    # narrowed, the per-table detail goes first: the request and 429 figures stay
    assert len(narrow) <= 70 and "contacts" not in narrow and "Chatwoot 3 requests, 1 retries, 1 x 429" in narrow
    # after the wait: no "waiting", and the figure counts the one wall-clock wait
    final = progress.status_line()
    assert "waiting" not in final.split("waited")[-1] and "Chatwoot 4 requests, 1 retries, 1 x 429" in final

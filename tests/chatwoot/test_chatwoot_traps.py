"""Each sandbox trap the real API sets, with a test that fails if the client stops handling it.

Client-level tests drive the sandbox in-process through httpx.ASGITransport (the async client and the
sync facade both); load-level ones go over HTTP.
"""

from __future__ import annotations

import asyncio
import math

import httpx

from sandbox.chatwoot import create_app
from sandbox.common import sandbox_of
from sources.chatwoot.client import AsyncChatwootClient, ChatwootClient, WalkReport

ASGI_URL = "http://127.0.0.1"  # loopback: the ASGI transport never opens a socket


def asgi(app) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


def test_contacts_walk_sorts_and_returns_each_listed_contact_once(settings_for):
    """Without `sort` the server has no ORDER BY: offset pages overlap and miss rows. `current_page`
    comes back as the string the query held, and `last_activity_at` is left out when null."""
    app = create_app("small", seed=21)
    state = sandbox_of(app)

    async def walk() -> tuple[list[dict], WalkReport]:
        client = AsyncChatwootClient(settings_for(ASGI_URL), transport=asgi(app))
        report = WalkReport()
        try:
            rows = [c async for page in client.iter_contacts(walk=report) for c in page]
        finally:
            await client.aclose()
        return rows, report

    rows, report = asyncio.run(walk())
    visible = {c["id"] for c in state.visible_contacts()}
    created = [c["created_at"] for c in rows]
    assert created == sorted(created)
    assert len(rows) == len({c["id"] for c in rows}) == len(visible)
    assert {c["id"] for c in rows} == visible
    assert any("last_activity_at" not in c for c in rows)
    assert report.complete and report.pages == math.ceil(len(visible) / 15)
    requests = state.log.matching(route="/contacts")
    assert [r.param("sort") for r in requests] == ["created_at"] * report.pages
    assert [r.param("page") for r in requests] == [str(p) for p in range(1, report.pages + 1)]

    # the trap is there: the raw meta echoes page as a string
    async def raw_meta() -> dict:
        async with httpx.AsyncClient(transport=asgi(app), base_url=ASGI_URL) as http:
            response = await http.get(
                "/api/v1/accounts/1/contacts",
                params={"page": "2", "sort": "created_at"},
                headers={"api_access_token": "sandbox-chatwoot-token"},
            )
            return response.json()["meta"]

    assert asyncio.run(raw_meta())["current_page"] == "2"


def test_conversations_page_size_other_than_25(settings_for):
    """CONVERSATION_RESULTS_PER_PAGE changes the page size; the walk ends on a short page, whatever it is."""
    app = create_app("small", seed=22, page_size=7)
    state = sandbox_of(app)
    with ChatwootClient(settings_for(ASGI_URL), transport=asgi(app)) as client:
        report = WalkReport()
        ids = [c["id"] for page in client.iter_conversations(walk=report) for c in page]
    assert sorted(ids) == sorted(state.conversations) and len(ids) == len(set(ids))
    assert report.complete
    requests = state.log.matching(route="/conversations")
    assert len(requests) == len(state.conversations) // 7 + 1
    assert all(r.param("status") == "all" and r.param("sort_by") == "created_at_asc" for r in requests)


def test_messages_follow_the_after_cursor_past_100(settings_for):
    app = create_app("small", seed=23)
    state = sandbox_of(app)
    with state.lock:
        longest = max(state.messages_by_conversation, key=lambda d: len(state.messages_by_conversation[d]))
        expected = [m.id for m in state.messages_by_conversation[longest]]
        for _ in range(230 - len(expected)):  # make sure it needs three pages
            expected.append(state.add_message(longest, 1, "more", state.clock()).id)
    with ChatwootClient(settings_for(ASGI_URL), transport=asgi(app)) as client:
        got = [m["id"] for page in client.iter_messages(longest) for m in page]
        after_first = [m["id"] for page in client.iter_messages(longest, after=expected[99]) for m in page]
    assert got == expected
    assert after_first == expected[100:]
    afters = [r.param("after") for r in state.log.matching(route="/conversations/{id}/messages")]
    assert afters[:3] == ["0", str(expected[99]), str(expected[199])]


def test_429_without_retry_after_waits_for_the_next_window(settings_for):
    """rack-attack answers 429 "Retry later" with no Retry-After in fixed epoch-aligned windows. Quick
    exponential retries (10 ms backoff, 2 retries) would all land in the same window and fail: only
    waiting for the window boundary gets through."""
    app = create_app("small", seed=24, rate_limit_per_minute=6, rate_limit_window_seconds=1)
    state = sandbox_of(app)
    settings = settings_for(ASGI_URL, rate_limit_window_seconds=1, max_retries=2, retry_backoff_seconds=0.01)
    with ChatwootClient(settings, transport=asgi(app)) as client:
        ids = [c["id"] for page in client.iter_contacts() for c in page]
        stats = client.aclient.stats
    assert sorted(ids) == sorted(c["id"] for c in state.visible_contacts())
    throttled = state.log.matching(status=429)
    assert throttled and stats.rate_limited == len(throttled)


def test_client_limiter_keeps_concurrent_fanout_under_the_server_budget(settings_for):
    """One limiter shared by every concurrent request: 8 label reads at a time, yet no 429."""
    app = create_app("small", seed=25, rate_limit_per_minute=20, rate_limit_window_seconds=1)
    state = sandbox_of(app)
    settings = settings_for(ASGI_URL, rate_limit_per_minute=17, rate_limit_window_seconds=1, concurrency=8)
    ids = [c["id"] for c in state.visible_contacts()][:40]
    with ChatwootClient(settings, transport=asgi(app)) as client:
        results = dict(client.labels_of_contacts(ids))
    assert set(results) == set(ids)
    assert all(results[cid] == state.labels_of(cid) for cid in ids)
    assert not state.log.matching(status=429)
    assert len(state.log.entries) == len(ids)


def test_rate_limit_zero_turns_the_client_side_limit_off_as_on_sendblue(settings_for):
    """`rate_limit_per_minute = 0` means "no client-side limit" on both APIs (it was refused here): the
    requests go out unpaced, the server's 429s alone hold them back, and the walk still completes."""
    app = create_app("small", seed=26, rate_limit_per_minute=6, rate_limit_window_seconds=1)
    state = sandbox_of(app)
    settings = settings_for(ASGI_URL, rate_limit_per_minute=0, rate_limit_window_seconds=1, max_retries=2)
    with ChatwootClient(settings, transport=asgi(app)) as client:
        ids = [c["id"] for page in client.iter_contacts() for c in page]
    assert sorted(ids) == sorted(c["id"] for c in state.visible_contacts())
    assert state.log.matching(status=429)  # nothing on our side held the requests back


def test_load_survives_5xx_bursts_truncated_bodies_and_stalls(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=26)
    state = server.state
    state.knobs.stall_seconds = 1.5
    state.schedule("500", "/contacts", count=3)
    state.schedule("502", "/messages", count=3)
    state.schedule("truncate", "/conversations", count=2)
    state.schedule("stall", "/labels", count=1)
    settings = settings_for(server.url, timeout=0.5)

    warehouse.load(settings)

    faults = [e.fault for e in state.log.entries if e.fault]
    assert sorted(faults) == sorted(["500"] * 3 + ["502"] * 3 + ["truncate"] * 2 + ["stall"])
    assert warehouse.ids("contacts") == {c["id"] for c in state.visible_contacts()}
    assert (
        set(warehouse.rows("SELECT contact_id, label FROM chatwoot.contact_labels")) == state.contact_labels()
    )
    assert warehouse.ids("conversations") == set(state.conversations)
    assert warehouse.ids("messages") == {m.id for m in state.messages()}

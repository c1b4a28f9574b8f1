"""The shared client machinery (retries, typed errors, limiter, URL safety) against the sandbox fault layer.

The API here is a two-route app built with the sandbox's own `build_app`, served over real loopback HTTP so that
timeouts and stalls behave as they do against a real server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.common import RateBudget, SandboxState, build_app
from sandbox.server import RunningServer, serve_in_thread
from sources.common.errors import AuthError, ServerError, TransportError, UnsafeUrlError, ValidationError
from sources.common.http import AsyncApiClient, RetryPolicy, validate_base_url
from sources.common.ratelimit import RateLimiter
from sources.common.runtime import SyncFacade, gather_limited


class Secrets(AsyncApiClient):
    api_name = "TestAPI"


class RetryAfterState(SandboxState):
    def rate_limited(self, budget: RateBudget) -> Response:
        return Response("slow down", status_code=429, headers={"Retry-After": "1"})


def _app() -> tuple[SandboxState, object]:
    state = RetryAfterState(seed=1)

    async def items(request: Request) -> Response:
        if request.headers.get("x-token") != "good":
            return JSONResponse({"error": "Invalid Access Token"}, status_code=401)
        return JSONResponse({"payload": list(range(50))})

    async def bad(request: Request) -> Response:
        return JSONResponse({"message": "Email has already been taken", "attributes": ["email"]}, status_code=422)

    async def moved(request: Request) -> Response:
        return RedirectResponse("http://127.0.0.2:9/steal", status_code=302)

    routes = [Route("/items", items), Route("/bad", bad, methods=["POST"]), Route("/moved", moved)]
    return state, build_app(state, routes)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    _, app = _app()
    srv = serve_in_thread(app)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _reset(server: RunningServer) -> None:
    state = server.state
    state.log.clear()
    state.scheduled.clear()
    state.budgets.clear()


def client(server: RunningServer, token: str = "good", **kw: object) -> SyncFacade:
    policy = RetryPolicy(max_retries=int(kw.pop("max_retries", 4)), backoff_base=0.01, backoff_cap=0.05)
    timeout = float(kw.pop("timeout", 5.0))  # type: ignore[arg-type]
    return SyncFacade(Secrets(server.url, headers={"x-token": token}, retry=policy, timeout=timeout))


@pytest.mark.parametrize("kind", ["500", "502", "truncate"])
def test_transient_faults_are_retried_until_the_answer_arrives(server: RunningServer, kind: str) -> None:
    server.state.schedule(kind, "/items", count=3)
    with client(server) as c:
        body = c.request("GET", "/items")
        assert body == {"payload": list(range(50))}
        assert c.stats.retries == 3
    statuses = [e.status for e in server.state.log.matching(route="/items")]
    assert statuses[-1] == 200 and len(statuses) == 4
    assert [e.fault for e in server.state.log.entries[:3]] == [kind] * 3


def test_a_stall_longer_than_the_timeout_is_retried(server: RunningServer) -> None:
    server.state.knobs.stall_seconds = 1.5
    server.state.schedule("stall", "/items", count=1)
    with client(server, timeout=0.3) as c:
        assert c.request("GET", "/items")["payload"][0] == 0
        assert c.stats.retries == 1
    deadline = time.monotonic() + 5  # let the stalled answer finish so it is not logged in the next test
    while len(server.state.log.entries) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.fault for e in server.state.log.entries] == [None, "stall"]


def test_persistent_5xx_ends_in_a_typed_error_with_the_status(server: RunningServer) -> None:
    server.state.schedule("502", "/items", count=10)
    with client(server, max_retries=2) as c, pytest.raises(ServerError) as info:
        c.request("GET", "/items")
    assert info.value.status == 502
    assert "HTML error page" in str(info.value)
    assert len(server.state.log.matching(route="/items")) == 3


def test_401_is_not_retried_and_carries_the_api_message(server: RunningServer) -> None:
    with client(server, token="wrong") as c, pytest.raises(AuthError) as info:
        c.request("GET", "/items")
    assert info.value.status == 401
    assert "Invalid Access Token" in str(info.value)
    assert "wrong" not in str(info.value)
    assert len(server.state.log.entries) == 1


def test_422_message_comes_from_the_body(server: RunningServer) -> None:
    with client(server) as c, pytest.raises(ValidationError) as info:
        c.request("POST", "/bad", json_body={"email": "a@b.c"})
    assert "Email has already been taken" in str(info.value)
    assert server.state.log.entries[0].body == {"email": "a@b.c"}


def test_redirects_are_refused_not_followed(server: RunningServer) -> None:
    with client(server) as c, pytest.raises(UnsafeUrlError):
        c.request("GET", "/moved")
    assert [e.path for e in server.state.log.entries] == ["/moved"]


def test_429_with_retry_after_is_waited_out(server: RunningServer) -> None:
    state = server.state
    # 2 per sliding second; the tiny test backoff alone could never outlast the window
    state.budgets.append(RateBudget("tiny", 2, 1.0, path_contains="/items", aligned=False))
    with client(server, max_retries=2) as c:
        for _ in range(4):
            assert c.request("GET", "/items")["payload"]
    assert state.log.status_counts().get(429, 0) >= 1
    assert state.log.status_counts()[200] == 4


def test_unreachable_host_is_a_transport_error_naming_the_host() -> None:
    with SyncFacade(
        Secrets("http://127.0.0.1:9", headers={}, retry=RetryPolicy(max_retries=1, backoff_base=0.01))
    ) as c, pytest.raises(TransportError) as info:
        c.request("GET", "/x")
    assert "unreachable" in str(info.value) and "127.0.0.1:9" in str(info.value)


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://app.chatwoot.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:3000/", True),
        ("http://[::1]:3000", True),
        ("http://app.chatwoot.com", False),
        ("http://10.0.0.5", False),
        ("ftp://example.com", False),
        ("", False),
    ],
)
def test_plain_http_is_refused_except_on_loopback(url: str, ok: bool) -> None:
    if ok:
        assert validate_base_url(url, api="X").startswith("http")
    else:
        with pytest.raises(UnsafeUrlError):
            validate_base_url(url, api="X")


def test_rate_limiter_holds_a_sliding_window_across_concurrent_tasks() -> None:
    async def main() -> list[float]:
        limiter = RateLimiter(5, 0.5)
        stamps: list[float] = []

        async def one(_: int) -> None:
            await limiter.acquire()
            stamps.append(time.monotonic())

        await asyncio.gather(*(one(i) for i in range(15)))
        return sorted(stamps)

    stamps = asyncio.run(main())
    # any 6 consecutive acquisitions span at least one window
    assert all(stamps[i + 5] - stamps[i] >= 0.5 - 1e-3 for i in range(len(stamps) - 5))


def test_gather_limited_bounds_concurrency_and_reports_errors() -> None:
    async def main() -> tuple[int, dict[int, object]]:
        running = 0
        peak = 0

        async def work(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            if i == 3:
                raise ValueError("row 3 is bad")
            return i * 2

        results = {i: r async for i, r in gather_limited(range(10), work, concurrency=3)}
        return peak, results

    peak, results = asyncio.run(main())
    assert peak == 3
    assert isinstance(results[3], ValueError)
    assert {i: r for i, r in results.items() if i != 3} == {i: i * 2 for i in range(10) if i != 3}


def test_sync_facade_offers_the_async_surface() -> None:
    class Pager(AsyncApiClient):
        api_name = "Pager"

        async def pages(self, n: int):  # type: ignore[no-untyped-def]
            for i in range(n):
                yield [i]

        async def total(self, n: int) -> int:
            return sum([p[0] async for p in self.pages(n)])

    with SyncFacade(Pager("http://127.0.0.1:1", headers={})) as facade:
        assert list(facade.pages(3)) == [[0], [1], [2]]
        assert facade.total(4) == 6


def test_asgi_transport_reaches_the_same_app() -> None:
    state, app = _app()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    with SyncFacade(Secrets("http://sandbox.local", headers={"x-token": "good"}, transport=transport,
                            allow_insecure=True)) as c:
        assert len(c.request("GET", "/items")["payload"]) == 50
    assert state.log.counts() == {"GET /items": 1}

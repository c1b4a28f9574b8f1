"""Fixtures for the sandbox tests: each API's simulator served on loopback with a client that talks to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import RunningServer, serve_in_thread

# ---------------------------------------------------------------------------- chatwoot

CHATWOOT_DATA_END = 1_767_225_600  # generated Chatwoot data ends before 2026-01-01T00:00Z in these tests


class ChatwootHttp:
    """Plain HTTP against a served Chatwoot sandbox: `get("/contacts")` means the account's contacts."""

    def __init__(self, server: RunningServer):
        from sandbox.chatwoot import ACCOUNT_ID, API_TOKEN

        self.server = server
        self.state: Any = server.state
        self.account = f"/api/v1/accounts/{ACCOUNT_ID}"
        self.http = httpx.Client(base_url=server.url, headers={"api_access_token": API_TOKEN}, timeout=10)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.account + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(self.account + path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, self.account + path, **kw)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def chatwoot_factory() -> Iterator[Callable[..., ChatwootHttp]]:
    """`chatwoot_factory(size="small", seed=0, **overrides)` serves a fresh simulator; all stop at teardown."""
    from sandbox.chatwoot import create_app

    started: list[ChatwootHttp] = []

    def start(size: str = "small", seed: int = 0, **overrides: Any) -> ChatwootHttp:
        overrides.setdefault("now", CHATWOOT_DATA_END)
        started.append(ChatwootHttp(serve_in_thread(create_app(size, seed, **overrides))))
        return started[-1]

    yield start
    for client in started:
        client.close()


@pytest.fixture
def chatwoot(chatwoot_factory: Callable[..., ChatwootHttp]) -> ChatwootHttp:
    """A fresh small Chatwoot simulator (seed 0) and a client for it: for tests that write."""
    return chatwoot_factory()


@pytest.fixture(scope="module")
def chatwoot_read() -> Iterator[ChatwootHttp]:
    """One small Chatwoot simulator shared by a module's read-only tests (they must not change it)."""
    from sandbox.chatwoot import create_app

    client = ChatwootHttp(serve_in_thread(create_app("small", 0, now=CHATWOOT_DATA_END)))
    yield client
    client.close()


# ---------------------------------------------------------------------------- sendblue


class SendblueHttp:
    """Plain HTTP against a served Sendblue sandbox, with both auth headers set."""

    def __init__(self, server: RunningServer):
        from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY

        self.server = server
        self.url = server.url
        self.state: Any = server.state
        headers = {"sb-api-key-id": API_KEY_ID, "sb-api-secret-key": API_SECRET_KEY}
        self.http = httpx.Client(base_url=server.url, headers=headers, timeout=10)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.put(path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def sendblue_factory() -> Iterator[Callable[..., SendblueHttp]]:
    """`sendblue_factory(size="small", seed=0, **overrides)` serves a fresh simulator; all stop at teardown."""
    from sandbox.sendblue import create_app

    started: list[SendblueHttp] = []

    def start(size: str = "small", seed: int = 0, **overrides: Any) -> SendblueHttp:
        started.append(SendblueHttp(serve_in_thread(create_app(size, seed, **overrides))))
        return started[-1]

    yield start
    for client in started:
        client.close()


@pytest.fixture
def sendblue(sendblue_factory: Callable[..., SendblueHttp]) -> SendblueHttp:
    """A fresh small Sendblue simulator (seed 0) and a client for it: for tests that write."""
    return sendblue_factory()


@pytest.fixture(scope="module")
def sendblue_read() -> Iterator[SendblueHttp]:
    """One small Sendblue simulator shared by a module's read-only tests (they must not change it).

    Its 100-per-10-seconds budget on /api/v2/messages is off so that many tests can walk the messages;
    the rate-limit tests use a fresh simulator with the default budget.
    """
    from sandbox.sendblue import create_app

    client = SendblueHttp(serve_in_thread(create_app("small", 0, messages_rate_limit=0)))
    yield client
    client.close()

"""The HTTP machinery both API clients share: URL safety, retries, rate limiting, typed errors.

One `AsyncApiClient` subclass per API holds the endpoints; `SyncFacade` gives the same surface to
synchronous callers (dlt resources, the CLI) by running the async client on a private event loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import ipaddress
import json
import logging
import random
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from dlt.common.runtime import signals

from sources.common.ratelimit import (
    RateLimiter,
    WaitTally,
    WindowBudgetLimiter,
    api_wait_tally,
    tallied_sleep,
)

log = logging.getLogger("switchboard.http")

Limiter = RateLimiter | WindowBudgetLimiter

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An API call that failed for good. Carries the HTTP status and the API's own message."""

    api = "API"

    def __init__(self, message: str, *, status: int | None = None, body: Any = None, api: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body
        if api:
            self.api = api

    @property
    def retryable_next_run(self) -> bool:
        """Row-level failures (4xx other than auth) are worth retrying on the next run."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (401, 403)


class AuthError(ApiError):
    """401/403: bad credentials, unknown account membership, or a forbidden action."""


class NotFoundError(ApiError):
    """404: unknown account, contact, conversation."""


class ValidationError(ApiError):
    """400/422: the API refused the payload."""


class ConflictError(ApiError):
    """409: already exists."""


class RateLimitedError(ApiError):
    """429 that outlasted every retry."""


class ServerError(ApiError):
    """5xx that outlasted every retry."""


class TransportError(ApiError):
    """Connection refused, DNS failure, timeout or a truncated body, after every retry."""


class UnsafeUrlError(ApiError):
    """A base URL that would send credentials in clear text, or a redirect we refuse to follow."""


def error_kind(status: int) -> type[ApiError]:
    """The generic error class for an HTTP status; each API maps these to its own subclasses."""
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status in (400, 422):
        return ValidationError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return ApiError


def api_message(body: Any, text: str) -> str:
    """The API's own words from an error body: `error`, `message` or `error_message` (both APIs use them)."""
    if isinstance(body, dict):
        for key in ("error", "message", "error_message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    snippet = " ".join(text.split())[:200]
    if snippet.lower().startswith("<!doctype") or snippet.lower().startswith("<html"):
        return "an HTML error page"
    return snippet or "no message"


def tls_failure(exc: BaseException) -> str | None:
    """The TLS reason ("CERTIFICATE_VERIFY_FAILED", ...) behind a transport error, if TLS is what failed,
    so "unreachable" and "bad certificate" read differently to whoever has to fix it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return str(getattr(current, "reason", None) or type(current).__name__)
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return " ".join(text.split())[:120]
    return None


# --------------------------------------------------------------------------- URL safety


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(url: str, *, api: str) -> str:
    """Refuse plain http:// except on loopback, so a token never crosses a network in clear text."""
    if not url:
        raise UnsafeUrlError(f"{api} base_url is not configured", api=api)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrlError(f"{api} base_url must be an http(s) URL, got {url!r}", api=api)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UnsafeUrlError(
            f"{api} base_url must use https:// (plain http is allowed only for loopback hosts): {url}", api=api
        )
    return url.strip().rstrip("/")


def check_header_values(headers: dict[str, str], *, api: str) -> dict[str, str]:
    """Refuse a header value HTTP cannot carry (a line break, control or non-ASCII character inside a
    pasted credential) before any request, naming the header, never its value."""
    for name, value in headers.items():
        if any(not (" " <= ch <= "~" or ch == "\t") for ch in value):
            raise ApiError(
                f"{api}: the {name} header value is malformed (a line break, control or non-ASCII character "
                "inside it): check the credential it is made of",
                api=api,
            )
    return headers


# --------------------------------------------------------------------------- retries


@dataclass
class RetryPolicy:
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


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


class _Retry(Exception):
    def __init__(self, delay: float, reason: str, error: ApiError):
        self.delay = delay
        self.reason = reason
        self.error = error


class AsyncApiClient:
    """Base for one API's async client. Subclasses set `api_name`, the auth headers and `limiter_for`."""

    api_name = "API"

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_insecure: bool = False,
    ):
        self.base_url = base_url.rstrip("/") if allow_insecure else validate_base_url(base_url, api=self.api_name)
        self._headers = check_header_values(headers, api=self.api_name)
        self._timeout = timeout
        self._transport = transport
        self.retry = retry or RetryPolicy()
        own_waits = WaitTally()
        self.stats = ClientStats(waits=own_waits)
        _ALL_STATS.append((self.api_name, self.stats))
        self._tallies = (own_waits, api_wait_tally(self.api_name))
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout, connect=min(10.0, self._timeout)),
                follow_redirects=False,  # credentials never follow a redirect
                transport=self._transport,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- hooks for subclasses

    def limiter_for(self, method: str, path: str) -> Sequence[Limiter]:
        """The limiters a request must pass before it is sent (each is told how the request ended)."""
        return []

    def endpoint_name(self, method: str, path: str) -> str:
        return f"{method} {path}"

    def delay_after_429(self, response: httpx.Response, attempt: int) -> float:
        retry_after = response.headers.get("retry-after")
        if retry_after:
            try:
                return max(0.0, float(retry_after)) + random.uniform(0, 0.25)
            except ValueError:
                pass
        return self.retry.backoff(attempt)

    # generic error class -> this API's subclass of it (see `error_kind`)
    error_family: dict[type[ApiError], type[ApiError]] = {}

    def error_class(self, status: int) -> type[ApiError]:
        kind = error_kind(status)
        return self.error_family.get(kind, self.error_family.get(ApiError, kind))

    def make_error(self, status: int, message: str, body: Any) -> ApiError:
        return self.error_class(status)(
            f"{self.api_name} answered {status}: {message}", status=status, body=body, api=self.api_name
        )

    # -- the request loop

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        ok: Iterable[int] = (200, 201),
        retry_on_timeout: bool = True,
    ) -> Any:
        """Send one request with retries; return the decoded JSON body (None for an empty body).

        5xx, 429, connection errors, timeouts and truncated bodies are retried with backoff. Other
        statuses raise the typed error at once. `retry_on_timeout=False` is for non-idempotent writes,
        where a timeout after the request left must be reconciled by the caller, not blindly resent.
        """
        ok_set = set(ok)
        endpoint = self.endpoint_name(method, path)
        attempt = 0
        while True:
            try:
                return await self._attempt(
                    method, path, params, json_body, ok_set, endpoint, retry_on_timeout, attempt
                )
            except _Retry as r:
                if attempt >= self.retry.max_retries:
                    raise r.error from None
                attempt += 1
                self.stats.retries += 1
                log.info("%s %s: %s; retry %d in %.1fs", self.api_name, endpoint, r.reason, attempt, r.delay)
                if r.reason.startswith("429"):
                    await tallied_sleep(r.delay, self._tallies)
                    self.stats.refresh()
                else:
                    await asyncio.sleep(r.delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Any,
        json_body: Any,
        ok: set[int],
        endpoint: str,
        retry_on_timeout: bool,
        attempt_no: int,
    ) -> Any:
        limiters = self.limiter_for(method, path)
        permits: list[object] = []
        answered: int | None = None
        try:
            for limiter in limiters:
                permits.append(await limiter.acquire(self._tallies))
            self.stats.refresh()
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] += 1
            response = await self._client().request(method, path, params=params, json=json_body)
            answered = response.status_code
        except httpx.TimeoutException as exc:
            err = TransportError(
                f"{self.api_name} did not answer in time ({type(exc).__name__})", api=self.api_name
            )
            if not retry_on_timeout:
                raise err from None
            raise _Retry(self.retry.backoff(attempt_no), "timeout", err) from None
        except httpx.TransportError as exc:
            tls = tls_failure(exc)
            if tls:
                what = f"{self.api_name} at {self.base_url} failed the TLS handshake ({tls})"
            else:
                what = f"{self.api_name} is unreachable at {self.base_url} ({type(exc).__name__})"
            err = TransportError(what, api=self.api_name)
            raise _Retry(self.retry.backoff(attempt_no), "transport error", err) from None
        finally:
            for limiter, permit in zip(limiters, permits, strict=False):  # those acquired
                limiter.settle(permit, answered)

        status = response.status_code
        if 300 <= status < 400:
            raise UnsafeUrlError(
                f"{self.api_name} answered a redirect ({status}); switchboard does not follow redirects "
                "with credentials. Check base_url.",
                status=status,
                api=self.api_name,
            )
        text = response.text
        body: Any = None
        decode_failed = False
        if text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                decode_failed = True
        if status in ok:
            if decode_failed:
                err = TransportError(f"{self.api_name} sent a truncated or invalid JSON body", api=self.api_name)
                raise _Retry(self.retry.backoff(attempt_no), "bad JSON body", err)
            return body
        error = self.make_error(status, api_message(body, text), body)
        if status == 429:
            self.stats.rate_limited += 1
            delay = self.delay_after_429(response, attempt_no)
            raise _Retry(delay, "429 rate limited", error)
        if status >= 500:
            raise _Retry(self.retry.backoff(attempt_no), f"{status} server error", error)
        raise error


# --------------------------------------------------------------------------- sync facade


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
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                if signals.was_signal_received():
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


async def _as_coro(aw: Awaitable[R]) -> R:
    return await aw


class SyncFacade:
    """The same surface as an async client: coroutine methods return values, async generators iterate.

    Usage: `ChatwootClient = SyncFacade.wrap(AsyncChatwootClient(...))`.
    """

    def __init__(self, async_client: Any):
        self._async = async_client
        self._loop = LoopThread()

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

    def __enter__(self) -> SyncFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

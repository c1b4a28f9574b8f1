"""The HTTP machinery both API clients share: URL safety, the request loop with its retries, typed errors
(`sources.common.errors`), rate limiters on the way out and usage counters.

One `AsyncApiClient` subclass per API holds the endpoints; `sources.common.runtime.SyncFacade` gives the
same surface to synchronous callers (dlt resources, the CLI).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from dlt.common.runtime import signals

from sources.common.errors import (
    ApiError,
    TransportError,
    UnsafeUrlError,
    api_message,
    error_kind,
    tls_failure,
)
from sources.common.ratelimit import RateLimiter, WindowBudgetLimiter
from sources.common.usage import ClientStats, WaitTally, api_wait_tally, tallied_sleep, track

log = logging.getLogger("switchboard.http")

Limiter = RateLimiter | WindowBudgetLimiter

T = TypeVar("T")


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


def retry_after(headers: httpx.Headers) -> float | None:
    """The seconds a 429 asks to wait: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date;
    None when it does not say."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


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
        track(self.api_name, self.stats)
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
        """What the server asks (`retry_after`), with jitter; `wait_without_retry_after` when it does not say."""
        asked = retry_after(response.headers)
        if asked is None:
            return self.wait_without_retry_after(attempt)
        return asked + random.uniform(0, 0.25)

    def wait_without_retry_after(self, attempt: int) -> float:
        return self.retry.backoff(attempt)

    def make_error(self, status: int, message: str, body: Any, path: str) -> ApiError:
        return error_kind(status)(
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
            # a Ctrl-C or SIGTERM that dlt intercepted during a load: start no new request (the ones in
            # flight are cancelled by the runtime); outside a load the flag is never set
            if signals.was_signal_received():
                raise asyncio.CancelledError  # dlt's exception is a BaseException that would stop the loop
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
        error = self.make_error(status, api_message(body, text), body, path)
        if status == 429:
            self.stats.rate_limited += 1
            delay = self.delay_after_429(response, attempt_no)
            raise _Retry(delay, "429 rate limited", error)
        if status >= 500:
            raise _Retry(self.retry.backoff(attempt_no), f"{status} server error", error)
        raise error

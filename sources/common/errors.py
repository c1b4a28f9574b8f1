"""The one error hierarchy of both APIs: each error names its API in `api` ("Chatwoot", "Sendblue").

What an error means for a sync (the end of the run, or one row's result) is decided in one place,
`failure` in `destinations/targets/base.py`; a load ends on any of them.
"""

from __future__ import annotations

import ssl
from typing import Any


class ApiError(Exception):
    """An API call that failed for good. Carries the API's name, the HTTP status and the API's answer."""

    def __init__(self, message: str, *, api: str = "API", status: int | None = None, body: Any = None):
        super().__init__(message)
        self.api = api
        self.status = status
        self.body = body


class AuthError(ApiError):
    """401/403: bad credentials, not a member of the account, a suspended account, or a forbidden action."""


class NotFoundError(ApiError):
    """404: unknown account, contact or conversation."""


class ValidationError(ApiError):
    """400/422: the API refused the payload; `attributes` names the offending fields when the API says."""

    @property
    def attributes(self) -> list[str]:
        attrs = self.body.get("attributes") if isinstance(self.body, dict) else None
        return [str(a) for a in attrs] if isinstance(attrs, list) else []


class ConflictError(ApiError):
    """409: already exists."""


class RateLimitedError(ApiError):
    """429 that outlasted every retry."""


class ServerError(ApiError):
    """5xx that outlasted every retry, or a body no server of this API sends."""


class TransportError(ApiError):
    """Unreachable host, TLS failure, timeout or a truncated body, after every retry."""


class UnsafeUrlError(ApiError):
    """A base URL that would send credentials in clear text, or a redirect (never followed with them)."""


class ConfigError(ValueError):
    """A missing or invalid `[sources.<api>]` setting, caught before any request, in the one line a user
    should read (it never echoes a secret)."""

    def __init__(self, message: str, *, api: str = "API"):
        super().__init__(message)
        self.api = api


def error_kind(status: int) -> type[ApiError]:
    """The error class for an HTTP status."""
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


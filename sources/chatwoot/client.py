"""Typed Chatwoot client: one async client and its synchronous facade.

`AsyncChatwootClient` holds the endpoints and the pagination styles Chatwoot has (page + `meta.count`,
page until a short page, the message-id `after=` cursor, unpaginated lists); `ChatwootClient` offers the
same surface synchronously. Both return plain dicts as the API sends them (see `models.py` for rows).
Retries, the HTTPS rule and redirects are `sources.common.http`'s; what is Chatwoot's lives here: the
fixed-window 429 handling, one rate limiter shared by every request of a run, and error phrasing.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from sources.common.errors import ApiError, ServerError, error_kind
from sources.common.http import AsyncApiClient, Limiter, RetryPolicy
from sources.common.paging import Endpoint, Page, WalkReport
from sources.common.paging import walk as walk_pages
from sources.common.ratelimit import shared_window_limiter
from sources.common.runtime import SyncFacade, gather_limited

from . import settings as cs
from .endpoints import ACCOUNT_PATH, ENDPOINTS
from .models import PageMeta
from .settings import ChatwootSettings

log = logging.getLogger("switchboard.chatwoot")


_NUMERIC_SEGMENT = re.compile(r"/\d+")


def _dig(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def _items(body: Any, path: tuple[str, ...]) -> list[Any]:
    value = _dig(body, path)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ServerError(f"Chatwoot sent an unexpected body: {'.'.join(path)} is not a list", api=cs.API_NAME)
    return value


def _keyed(items: list[Any], endpoint: Endpoint) -> list[dict[str, Any]]:
    """The rows of a paged listing, each an object with an integer id (the walks dedupe and move their
    cursor by it); anything else is a body no Chatwoot sends, reported as a server error."""
    for item in items:
        key = item.get(endpoint.key) if isinstance(item, dict) and endpoint.key else None
        if not isinstance(key, int) or isinstance(key, bool):
            raise ServerError(
                f"Chatwoot sent an unexpected body: a row of {endpoint.path} without an id", api=cs.API_NAME
            )
    return items


# ------------------------------------------------------------------------------------------ async client


class AsyncChatwootClient(AsyncApiClient):
    api_name = cs.API_NAME

    def __init__(
        self,
        settings: ChatwootSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: Limiter | None = None,
    ):
        super().__init__(
            settings.base_url,
            headers={
                "api_access_token": settings.api_access_token.get_secret_value(),
                "Accept": "application/json",
                "User-Agent": "switchboard-etl",
            },
            timeout=settings.timeout,
            retry=RetryPolicy(
                max_retries=settings.max_retries, backoff_base=settings.retry_backoff_seconds
            ),
            transport=transport,
        )
        self.settings = settings
        self.account_prefix = ACCOUNT_PATH.format(account_id=settings.account_id)
        # one limiter for every request to this server, whatever the concurrency or the account:
        # rack-attack counts per client IP in fixed one-minute windows aligned to epoch time
        # (config/initializers/rack_attack.rb)
        # (none when rate_limit_per_minute is 0: the server's 429s alone pace the run)
        self.limiter: Limiter | None = limiter
        if limiter is None and settings.rate_limit_per_minute != 0:
            self.limiter = shared_window_limiter(
                settings.base_url,
                settings.rate_limit_per_minute,
                settings.rate_limit_window_seconds,
                start=cs.AUTO_RATE_LIMIT_START,
            )

    # -- hooks

    def limiter_for(self, method: str, path: str) -> list[Limiter]:
        return [self.limiter] if self.limiter else []

    def endpoint_name(self, method: str, path: str) -> str:
        relative = path[len(self.account_prefix) :] if path.startswith(self.account_prefix) else path
        return method + " " + _NUMERIC_SEGMENT.sub("/{id}", relative)

    def wait_without_retry_after(self, attempt: int) -> float:
        """rack-attack's 429 has no Retry-After and its buckets are fixed windows aligned to epoch time,
        so the budget comes back at the next window boundary; jitter spreads the concurrent retries."""
        known = self.limiter.retry_delay() if self.limiter else None
        if known is not None:
            return known
        window = self.settings.rate_limit_window_seconds
        until_boundary = window - (time.time() % window)
        return until_boundary + random.uniform(0.05, 0.05 + min(1.0, window * 0.1))

    def make_error(self, status: int, message: str, body: Any, path: str) -> ApiError:
        return error_kind(status)(self._phrase(status, message, body, path), status=status, body=body, api=self.api_name)

    def _phrase(self, status: int, message: str, body: Any, path: str) -> str:
        account = self.settings.account_id
        detail = f"{status} {message}"
        if status in (401, 403):
            if "access token" in message.lower() or message == "no message":
                return f"Chatwoot rejected the API token ({detail})"
            return f"Chatwoot refused access to account {account} ({detail})"
        if status == 404:
            base_path = urlsplit(self.settings.base_url).path
            hint = f"; base_url has a path ({base_path}): Chatwoot's API is at the host's root" if base_path else ""
            return f"Chatwoot {self._missing_thing(path)} was not found ({detail}){hint}"
        if status in (400, 422):
            attrs = body.get("attributes") if isinstance(body, dict) else None
            fields = f"; fields: {', '.join(map(str, attrs))}" if isinstance(attrs, list) and attrs else ""
            return f"Chatwoot refused the request ({detail}{fields})"
        if status == 429:
            return (
                f"Chatwoot kept rate-limiting the requests ({detail}) after {self.retry.max_retries} retries; "
                'lower rate_limit_per_minute (or set it to "auto")'
            )
        if status >= 500:
            return f"Chatwoot had a server error ({detail})"
        return f"Chatwoot answered {detail}"

    def _missing_thing(self, path: str) -> str:
        relative = path[len(self.account_prefix) :] if path.startswith(self.account_prefix) else path
        found = re.match(r"^/(contacts|conversations)/(\d+)", relative)
        if found:
            return f"{found.group(1)[:-1]} {found.group(2)}"
        # collection endpoints only answer 404 when the account itself is unknown
        return f"account {self.settings.account_id}"

    # -- plumbing

    def _path(self, endpoint: Endpoint, **ids: Any) -> str:
        return self.account_prefix + endpoint.path.format(**ids)

    async def pages(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        json_body: Any = None,
        walk: WalkReport | None = None,
        start: Any = None,
        page_cap: int | None = None,
        **ids: Any,
    ) -> AsyncIterator[list[Any]]:
        """Pages of rows of the endpoint `name` of the table, walked as its paging kind says."""
        endpoint = ENDPOINTS[name]
        path = self._path(endpoint, **ids)

        async def fetch(extra: dict[str, Any]) -> Page:
            body = await self.request(
                endpoint.method, path, params={**endpoint.params, **(params or {}), **extra}, json_body=json_body
            )
            rows = _items(body, endpoint.data_path)
            if endpoint.paging == "single":
                return Page(rows)
            meta = PageMeta.model_validate(body.get("meta") or {}) if isinstance(body, dict) else PageMeta()
            return Page(_keyed(rows, endpoint), has_more=meta.has_more, total=meta.count)

        async for page in walk_pages(endpoint, fetch, page_cap=page_cap or self.settings.page_cap, report=walk, start=start):
            yield page

    async def rows(self, name: str, params: dict[str, Any] | None = None, **ids: Any) -> list[Any]:
        """Every row of the endpoint `name`, in one list."""
        return [row async for page in self.pages(name, params, **ids) for row in page]

    # -- reads

    async def iter_contacts(
        self, labels: list[str] | None = None, walk: WalkReport | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of listed contacts in created_at order, each contact once. `labels`: contacts with ANY of
        them. Only contacts with an email, phone number or identifier are listed by Chatwoot."""
        async for page in self.pages("contacts", {"labels[]": list(labels)} if labels else None, walk=walk):
            yield page

    async def filter_contacts(
        self, conditions: list[dict[str, Any]], walk: WalkReport | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of contacts matching `POST /contacts/filter` conditions, in created_at order."""
        async for page in self.pages("contacts_filter", json_body={"payload": conditions}, walk=walk):
            yield page

    async def search_contacts(self, q: str, max_pages: int = 20) -> list[dict[str, Any]]:
        """Contacts matching `q` (name, email, phone, identifier): lookups, not extraction."""
        return [row async for page in self.pages("contacts_search", {"q": q}, page_cap=max_pages) for row in page]

    async def get_contact(self, contact_id: int) -> dict[str, Any]:
        body = await self.request("GET", self._path(ENDPOINTS["contact"], id=contact_id))
        payload = body.get("payload") if isinstance(body, dict) else None
        return payload if isinstance(payload, dict) else body

    async def get_contact_labels(self, contact_id: int) -> list[str]:
        return [str(label) for label in await self.rows("contact_labels", id=contact_id)]

    async def list_labels(self) -> list[dict[str, Any]]:
        return await self.rows("labels")

    async def iter_conversations(
        self, walk: WalkReport | None = None, **filters: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of conversations of every status, oldest first (`filters` add e.g. inbox_id)."""
        async for page in self.pages("conversations", filters or None, walk=walk):
            yield page

    async def conversations_updated_within(self, seconds: int) -> list[dict[str, Any]]:
        """Every conversation (any status) whose updated_at is within the last `seconds`, in one
        unpaginated response: the server drops pagination when updated_within is given."""
        return await self.rows("conversations_updated_within", {"updated_within": int(seconds)})

    async def iter_messages(self, conversation_id: int, after: int = 0) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a conversation's messages with id > `after`, ascending (`after id` paging)."""
        async for page in self.pages("messages", start=after, id=conversation_id):
            yield page

    # -- fan-out (concurrent within settings.concurrency, all through the one limiter)

    async def labels_of_contacts(
        self, contact_ids: Iterable[int]
    ) -> AsyncIterator[tuple[int, list[str] | BaseException]]:
        """(contact id, its labels or the error) for each id, in completion order."""
        async for contact_id, result in gather_limited(
            contact_ids, self.get_contact_labels, self.settings.concurrency
        ):
            yield contact_id, result

    async def contacts_by_id(
        self, contact_ids: Iterable[int]
    ) -> AsyncIterator[tuple[int, dict[str, Any] | BaseException]]:
        async for contact_id, result in gather_limited(
            contact_ids, self.get_contact, self.settings.concurrency
        ):
            yield contact_id, result

    async def contacts_per_label(
        self, labels: Iterable[str]
    ) -> AsyncIterator[tuple[str, tuple[list[int], WalkReport] | BaseException]]:
        """(label, (ids of the contacts listed under it, walk report) or the error), labels concurrently."""

        async def ids_for(label: str) -> tuple[list[int], WalkReport]:
            walk = WalkReport()
            ids = [c["id"] async for page in self.iter_contacts(labels=[label], walk=walk) for c in page]
            return ids, walk

        async for label, result in gather_limited(labels, ids_for, self.settings.concurrency):
            yield label, result

    async def messages_of_conversations(
        self, cursors: dict[int, int]
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]] | BaseException]]:
        """(conversation id, its messages after the cursor or the error) for each conversation id."""

        async def fetch(conversation_id: int) -> list[dict[str, Any]]:
            return [
                m
                async for page in self.iter_messages(conversation_id, cursors[conversation_id])
                for m in page
            ]

        async for conversation_id, result in gather_limited(list(cursors), fetch, self.settings.concurrency):
            yield conversation_id, result

    # -- writes

    async def create_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        """POST /contacts; returns the contact. Not retried after a timeout: the create may have landed,
        and only the caller can look it up before trying again."""
        body = await self.request(
            "POST", self.account_prefix + "/contacts", json_body=fields, retry_on_timeout=False
        )
        payload = body.get("payload") if isinstance(body, dict) else None
        # {payload: {contact, contact_inbox}}: the OpenAPI spec's `payload` array is not what the server sends
        if isinstance(payload, dict) and isinstance(payload.get("contact"), dict):
            return payload["contact"]
        return payload if isinstance(payload, dict) else body

    async def update_contact(self, contact_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """PATCH /contacts/{id}; custom and additional attributes are shallow-merged server-side.
        Answers {payload: contact} with 200 (the spec's 204 is wrong)."""
        body = await self.request(
            "PATCH", self._path(ENDPOINTS["contact"], id=contact_id), json_body=fields
        )
        payload = body.get("payload") if isinstance(body, dict) else None
        return payload if isinstance(payload, dict) else body

    async def set_contact_labels(self, contact_id: int, labels: list[str]) -> list[str]:
        """POST /contacts/{id}/labels replaces the whole set (an empty list clears it)."""
        body = await self.request(
            "POST",
            self._path(ENDPOINTS["contact_labels"], id=contact_id),
            json_body={"labels": list(labels)},
        )
        return [str(label) for label in _items(body, ("payload",))]


# ------------------------------------------------------------------------------------------ sync facade


class ChatwootClient(SyncFacade):
    """The synchronous twin of `AsyncChatwootClient`: coroutines return values, async generators become
    iterators. `run(coro)` runs any coroutine on the client's private loop."""

    def __init__(
        self,
        settings: ChatwootSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: Limiter | None = None,
    ):
        super().__init__(AsyncChatwootClient(settings, transport=transport, limiter=limiter))

    @property
    def aclient(self) -> AsyncChatwootClient:
        return self._async  # type: ignore[no-any-return]


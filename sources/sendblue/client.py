"""The Sendblue API client: async (`AsyncSendblueClient`) and sync (`SendblueClient`) with the same surface.

Reads page through keyset windows (see `paging.py`) and return normalised snake_case dicts; writes return
the contact the API answered with, normalised the same way (`writes.py`). The HTTP machinery (retries with backoff and
jitter, 429 handling, typed errors, no redirects with credentials, HTTPS except loopback) is the shared
`AsyncApiClient`; this module adds Sendblue's auth headers, limiters, endpoints and error phrasing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx

from sources.common.errors import ApiError, NotFoundError, ServerError, ValidationError, error_kind
from sources.common.http import RetryPolicy
from sources.common.keyset import keyset_walk
from sources.common.paging import Page, WalkReport, endpoint_of, is_last_page
from sources.common.ratelimit import RateLimiter
from sources.common.runtime import SyncFacade
from sources.sendblue.endpoints import (
    CONTACTS_OFFSET_CAP,
    CONTACTS_PAGE_MAX,
    ENDPOINTS,
    KEY_ID_HEADER,
    SECRET_KEY_HEADER,
)
from sources.sendblue.models import (
    MessagesPage,
    normalise_contact,
    normalise_contacts,
    normalise_messages,
    parse_timestamp,
    to_api_timestamp,
)
from sources.sendblue.settings import API_NAME, SendblueSettings
from sources.sendblue.writes import ContactWrites, phone_path

# --------------------------------------------------------------------------- the async client


class AsyncSendblueClient(ContactWrites):
    api_name = API_NAME

    def __init__(self, settings: SendblueSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        super().__init__(
            settings.base_url,
            headers={
                KEY_ID_HEADER: settings.api_key_id.get_secret_value(),
                SECRET_KEY_HEADER: settings.api_secret_key.get_secret_value(),
                "accept": "application/json",
            },
            timeout=settings.timeout,
            retry=RetryPolicy(max_retries=settings.max_retries, backoff_base=settings.retry_backoff_seconds),
            transport=transport,
        )
        # limiters by the rate-limit bucket of the endpoint table
        self.limiters: dict[str, RateLimiter] = {
            "messages": RateLimiter.with_margin(settings.messages_rate_limit, settings.messages_rate_window_seconds)
        }
        if settings.rate_limit_per_minute > 0:
            self.limiters["default"] = RateLimiter(settings.rate_limit_per_minute, 60.0)
        self.last_contacts_walk = WalkReport()
        self.last_messages_walk = WalkReport()

    # -- hooks of the shared client

    def limiter_for(self, method: str, path: str) -> list[RateLimiter]:
        endpoint = endpoint_of(ENDPOINTS, method, path)
        limiter = self.limiters.get(endpoint.bucket if endpoint else "default")
        return [limiter] if limiter else []

    def endpoint_name(self, method: str, path: str) -> str:
        # stats per endpoint, not per phone number
        endpoint = endpoint_of(ENDPOINTS, method, path)
        return f"{method} {endpoint.path if endpoint else path}"

    def make_error(self, status: int, message: str, body: Any, path: str) -> ApiError:
        if status in (401, 403):
            text = (
                f"Sendblue rejected the API credentials ({status}: {message}); check "
                "sources.sendblue.api_key_id and sources.sendblue.api_secret_key"
            )
        else:
            text = f"Sendblue answered {status}: {message}"
        return error_kind(status)(_one_line(text), status=status, body=body, api=API_NAME)

    # -- reads: contacts

    async def list_contacts(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "created_at",
        order_direction: str = "asc",
        created_at_gte: datetime | str | None = None,
        phone_number: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of GET /api/v2/contacts (a bare JSON array), normalised."""
        params: dict[str, Any] = {
            "limit": limit or self.settings.contacts_page_size,
            "offset": offset,
            "order_by": order_by,
            "order_direction": order_direction,
        }
        if created_at_gte is not None:
            params["created_at_gte"] = to_api_timestamp(created_at_gte)
        if phone_number:
            params["phone_number"] = phone_number  # params= percent-encodes + as %2B
        body = await self.request("GET", ENDPOINTS["list_contacts"].path, params=params)
        return normalise_contacts(_as_list(body, "contacts"))

    async def iter_contacts(
        self, *, created_at_gte: datetime | str | None = None, page_size: int | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every contact (from `created_at_gte` on), oldest first, in pages; each contact once.

        The list stops at offset 10000, so the walk orders by created_at ascending and restarts a
        `created_at_gte` window at the last timestamp of each page (see paging.py).
        """
        limit = page_size or self.settings.contacts_page_size

        async def fetch(window: str | None, offset: int, size: int) -> Page:
            rows = await self.list_contacts(limit=size, offset=offset, created_at_gte=window)
            return Page(rows=rows, offset=offset)

        self.last_contacts_walk = report = WalkReport()
        async for page in keyset_walk(
            fetch,
            bound=to_api_timestamp,
            order_field=str(ENDPOINTS["list_contacts"].cursor),
            key_field=str(ENDPOINTS["list_contacts"].key),
            limit=limit,
            max_limit=CONTACTS_PAGE_MAX,
            start=parse_timestamp(created_at_gte),
            offset_cap=CONTACTS_OFFSET_CAP,
            read_tie_group=self._contacts_created_at,
            what="contacts",
            report=report,
        ):
            yield page

    async def iter_contacts_without_created_at(
        self, *, skip: set[str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Contacts with no created_at (the spec makes every field optional), which no created_at_gte
        window can return: PostgreSQL sorts NULLs first when descending, so they open the descending
        listing; paged until the first dated contact (or the offset cap)."""
        skip = skip or set()
        offset = 0
        while offset <= CONTACTS_OFFSET_CAP:
            rows = await self.list_contacts(
                limit=CONTACTS_PAGE_MAX, offset=offset, order_by="created_at", order_direction="desc"
            )
            undated = [r for r in rows if r.get("created_at") is None]
            fresh = [r for r in undated if r.get("phone") not in skip]
            if fresh:
                yield fresh
            if len(undated) < len(rows) or len(rows) < CONTACTS_PAGE_MAX:
                return
            offset += len(rows)

    async def _contacts_created_at(
        self, stamp: datetime, already: set[Any]
    ) -> tuple[list[dict[str, Any]], bool] | None:
        """Every contact created at exactly `stamp` but those in `already`, for a tie group bigger than a page.

        Ties on created_at may come back in a different order for each limit and offset (PostgreSQL's top-N
        sort does that), so offsets inside a tie group can skip rows. Phone is unique, so a listing ordered
        by phone from a `created_at_gte` window at the stamp pages stably; ascending and then descending it
        reaches twice the offset cap. Complete when either pass ends or the two passes meet.
        """
        found: dict[str, dict[str, Any]] = {}
        ascending_phones: set[str] = set()
        for direction in ("asc", "desc"):
            offset = 0
            while offset <= CONTACTS_OFFSET_CAP:
                try:
                    rows = await self.list_contacts(
                        limit=CONTACTS_PAGE_MAX,
                        offset=offset,
                        order_by="phone",
                        order_direction=direction,
                        created_at_gte=stamp,
                    )
                except ValidationError:
                    return None  # no phone ordering on this server: the walk pages the group by offset
                met = False
                for row in rows:
                    phone = str(row.get("phone") or "")
                    if direction == "asc":
                        ascending_phones.add(phone)
                    elif phone in ascending_phones:
                        met = True
                    if row.get("created_at") == stamp and phone not in already:
                        found[phone] = row
                if len(rows) < CONTACTS_PAGE_MAX or met:
                    return list(found.values()), True
                offset += len(rows)
        return list(found.values()), False

    async def count_contacts(self) -> int:
        body = await self.request("GET", ENDPOINTS["count_contacts"].path)
        count = body.get("count") if isinstance(body, dict) else None
        if isinstance(count, int | float | str) and not isinstance(count, bool):
            try:
                return int(count)
            except (ValueError, OverflowError):  # "", "12a", NaN, inf
                pass
        raise ServerError(
            f"Sendblue answered the contact count with an unexpected body: {_shape(body)}", api=API_NAME
        )

    async def get_contact(self, phone: str) -> dict[str, Any] | None:
        """The contact with this E.164 number, or None when Sendblue has no such contact."""
        try:
            body = await self.request("GET", phone_path(ENDPOINTS["get_contact"].path, phone))
        except NotFoundError:
            return None
        contact = body.get("contact") if isinstance(body, dict) else None
        if not contact:
            return None
        return normalise_contact(contact)

    # -- reads: messages

    async def list_messages(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "updatedAt",
        order_direction: str = "asc",
        updated_at_gte: datetime | str | None = None,
        updated_at_lte: datetime | str | None = None,
        **filters: Any,
    ) -> Page:
        """One page of GET /api/v2/messages with its pagination, rows normalised.

        `filters` are the list's other query parameters (number, sendblue_number, group_id, is_outbound,
        created_at_gte, ...), passed through `params=` so a `+` in a phone number is sent as %2B.
        """
        params: dict[str, Any] = {
            "limit": limit or self.settings.messages_page_size,
            "offset": offset,
            "order_by": order_by,
            "order_direction": order_direction,
        }
        if updated_at_gte is not None:
            params["updated_at_gte"] = to_api_timestamp(updated_at_gte)
        if updated_at_lte is not None:
            params["updated_at_lte"] = to_api_timestamp(updated_at_lte)
        for key, value in filters.items():
            if value is None:
                continue
            params[key] = ("true" if value else "false") if isinstance(value, bool) else value
        body = await self.request("GET", ENDPOINTS["list_messages"].path, params=params)
        if not isinstance(body, dict):
            raise ServerError(
                f"Sendblue answered the messages list with an unexpected body: {_shape(body)}", api=API_NAME
            )
        envelope = MessagesPage.model_validate(body)
        p = envelope.pagination
        return Page(
            rows=normalise_messages(envelope.data),
            has_more=p.has_more,
            total=p.total,
            offset=p.offset if p.offset is not None else offset,
        )

    async def iter_messages(
        self,
        *,
        updated_at_gte: datetime | str | None = None,
        updated_at_lte: datetime | str | None = None,
        page_size: int | None = None,
        **filters: Any,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Messages ordered by date_updated ascending, from `updated_at_gte` on, in pages; each once.

        Ends on `pagination.hasMore == false` (a short page when hasMore is absent). Each page restarts an
        `updated_at_gte` window at the last date_updated seen instead of going to deeper offsets, because a
        status change moves a message to the end of this ordering and shifts every later offset.
        """
        limit = page_size or self.settings.messages_page_size

        async def fetch(window: str | None, offset: int, size: int) -> Page:
            return await self.list_messages(
                limit=size, offset=offset, updated_at_gte=window, updated_at_lte=updated_at_lte, **filters
            )

        report = WalkReport()
        if not filters:
            self.last_messages_walk = report
        async for page in keyset_walk(
            fetch,
            bound=to_api_timestamp,
            order_field=str(ENDPOINTS["list_messages"].cursor),
            key_field=str(ENDPOINTS["list_messages"].key),
            limit=limit,
            start=parse_timestamp(updated_at_gte),
            what="messages",
            report=report,
        ):
            yield page

    async def iter_thread_messages(
        self, *, page_size: int | None = None, **filters: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every message matching `filters` (a thread: `number=` and `sendblue_number=`, or `group_id=`),
        oldest created first, in pages. Creation order never changes and new messages land at its end, so
        plain offsets are stable here; the order also settles which of two messages sent in the same
        millisecond came last."""
        limit = page_size or self.settings.messages_page_size
        offset = 0
        while True:
            page = await self.list_messages(
                limit=limit, offset=offset, order_by="createdAt", order_direction="asc", **filters
            )
            if page.rows:
                yield page.rows
            if is_last_page(page, limit):
                return
            offset += len(page.rows)


class SendblueClient(SyncFacade):
    """The synchronous face of `AsyncSendblueClient`: same methods, values instead of coroutines and
    iterators instead of async generators."""

    def __init__(self, settings: SendblueSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(AsyncSendblueClient(settings, transport=transport))

    @property
    def aclient(self) -> AsyncSendblueClient:
        return self._async  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- small helpers


def _as_list(body: Any, what: str) -> list[Any]:
    if isinstance(body, list):
        return body
    # tolerate an envelope around the list ({"data": [...]} / {"contacts": [...]}) should one appear
    if isinstance(body, dict):
        for key in ("data", what):
            if isinstance(body.get(key), list):
                return list(body[key])
    if body is None:
        return []
    raise ServerError(f"Sendblue answered the {what} list with an unexpected body: {_shape(body)}", api=API_NAME)


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        return "an object with keys " + ", ".join(sorted(map(str, body))[:8])
    return type(body).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())

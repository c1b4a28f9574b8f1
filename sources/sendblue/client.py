"""The Sendblue API client: async (`AsyncSendblueClient`) and sync (`SendblueClient`) with the same surface.

Reads page through keyset windows (see `paging.py`) and return normalised snake_case dicts; writes return
the contact the API answered with, normalised the same way. The HTTP machinery (retries with backoff and
jitter, 429 handling, typed errors, no redirects with credentials, HTTPS except loopback) is the shared
`AsyncApiClient`; this module adds Sendblue's auth headers, limiters, endpoints and error phrasing.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from sources.common.http import (
    ApiError,
    AsyncApiClient,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
    ServerError,
    SyncFacade,
    ValidationError,
)
from sources.common.keyset import keyset_walk
from sources.common.paging import Page, WalkReport, endpoint_of, is_last_page
from sources.sendblue.endpoints import (
    BULK_CREATE_BATCH_MAX,
    CONTACTS_OFFSET_CAP,
    CONTACTS_PAGE_MAX,
    ENDPOINTS,
    KEY_ID_HEADER,
    SECRET_KEY_HEADER,
)
from sources.sendblue.models import (
    BULK_FIELDS,
    CREATE_FIELDS,
    UPDATE_FIELDS,
    MessagesPage,
    normalise_contact,
    normalise_contacts,
    normalise_messages,
    parse_timestamp,
    phone_of,
    to_api_timestamp,
    write_fields,
)
from sources.sendblue.settings import API_NAME, SendblueSettings

# --------------------------------------------------------------------------- errors


class SendblueConfigError(ValueError):
    """Missing or unusable configuration, phrased as the one line a user should read."""


class SendblueError(ApiError):
    """Any Sendblue API failure; the message carries Sendblue's own `message`/`error` text."""

    api = API_NAME


class SendblueAuthError(SendblueError, AuthError):
    pass


class SendblueNotFoundError(SendblueError, NotFoundError):
    pass


class SendblueValidationError(SendblueError, ValidationError):
    pass


class SendblueConflictError(SendblueError, ConflictError):
    pass


class SendblueRateLimitedError(SendblueError, RateLimitedError):
    pass


class SendblueServerError(SendblueError, ServerError):
    pass


def _phone_path(template: str, phone: str) -> str:
    # the docs: "URL-encode + as %2B" in path segments; a literal + may be read as a space by the server
    return template.replace("{phone}", quote(phone.strip(), safe=""))


# --------------------------------------------------------------------------- the async client


class AsyncSendblueClient(AsyncApiClient):
    api_name = API_NAME
    error_family: dict[type[ApiError], type[ApiError]] = {
        ApiError: SendblueError,
        AuthError: SendblueAuthError,
        NotFoundError: SendblueNotFoundError,
        ValidationError: SendblueValidationError,
        ConflictError: SendblueConflictError,
        RateLimitedError: SendblueRateLimitedError,
        ServerError: SendblueServerError,
    }

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

    def delay_after_429(self, response: httpx.Response, attempt: int) -> float:
        """Retry-After (seconds or an HTTP date) or retry-after-ms when sent; capped backoff otherwise."""
        headers = response.headers
        if "retry-after-ms" in headers:
            try:
                return max(0.0, float(headers["retry-after-ms"]) / 1000.0) + random.uniform(0, 0.1)
            except ValueError:
                pass
        value = headers.get("retry-after")
        if value:
            try:
                return max(0.0, float(value)) + random.uniform(0, 0.25)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(value) if value else None
                if parsed is not None:
                    return max(0.0, parsed.timestamp() - time.time()) + random.uniform(0, 0.25)
        return self.retry.backoff(attempt)

    def make_error(self, status: int, message: str, body: Any) -> ApiError:
        if status in (401, 403):
            text = (
                f"Sendblue rejected the API credentials ({status}: {message}); check "
                "sources.sendblue.api_key_id and sources.sendblue.api_secret_key"
            )
        else:
            text = f"Sendblue answered {status}: {message}"
        return self.error_class(status)(_one_line(text), status=status, body=body, api=API_NAME)

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
        raise SendblueError(f"Sendblue answered the contact count with an unexpected body: {_shape(body)}")

    async def get_contact(self, phone: str) -> dict[str, Any] | None:
        """The contact with this E.164 number, or None when Sendblue has no such contact."""
        try:
            body = await self.request("GET", _phone_path(ENDPOINTS["get_contact"].path, phone))
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
            raise SendblueError(
                f"Sendblue answered the messages list with an unexpected body: {_shape(body)}"
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

    # -- writes (reverse ETL)

    async def create_contact(self, fields: dict[str, Any], update_if_exists: bool = False) -> dict[str, Any]:
        """POST /api/v2/contacts; with `update_if_exists` an upsert. Returns the contact as stored.

        company_name and opt_out are not in the create schema, so when given they are applied by a PUT
        right after the create. Not retried on a timeout (the create may have happened): the caller
        reconciles with `get_contact`.
        """
        phone = phone_of(fields)
        values = write_fields(fields)
        _refuse_unknown(values, CREATE_FIELDS | {"company_name", "opt_out"}, "create_contact")
        body: dict[str, Any] = {"number": phone, **{k: v for k, v in values.items() if k in CREATE_FIELDS}}
        if update_if_exists:
            body["update_if_exists"] = True
        answer = await self.request(
            "POST",
            ENDPOINTS["create_contact"].path,
            json_body=body,
            # a plain create is not idempotent: after a timeout the caller reconciles with get_contact
            retry_on_timeout=update_if_exists,
        )
        contact = _contact_from(answer, phone)
        follow_up = {k: v for k, v in values.items() if k in ("company_name", "opt_out")}
        if follow_up:
            contact = await self.update_contact(phone, follow_up)
        return contact

    async def bulk_create_contacts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /api/v2/contacts/bulk in batches of at most 500; returns the contacts Sendblue answered with.

        Bulk items take phone, first_name, last_name, company_name, tags and custom_variables only; other
        fields are refused here (set them with `update_contact` / `opt_out`). Not retried on a timeout:
        bulk create is not known to be idempotent, so the caller reconciles by phone.
        """
        items = []
        for row in rows:
            values = write_fields(row)
            _refuse_unknown(values, BULK_FIELDS, "bulk_create_contacts")
            items.append({"phone": phone_of(row), **values})
        created: list[dict[str, Any]] = []
        for start in range(0, len(items), BULK_CREATE_BATCH_MAX):
            batch = items[start : start + BULK_CREATE_BATCH_MAX]
            answer = await self.request(
                "POST",
                ENDPOINTS["bulk_create_contacts"].path,
                json_body={"contacts": batch},
                retry_on_timeout=False,
            )
            contacts = answer.get("contacts") if isinstance(answer, dict) else None
            created.extend(normalise_contacts(contacts or []))
        return created

    async def update_contact(self, phone: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PUT /api/v2/contacts/{phone}, partial: only the given fields change (custom_variables merge)."""
        values = write_fields(fields)
        _refuse_unknown(values, UPDATE_FIELDS, "update_contact")
        answer = await self.request(
            "PUT", _phone_path(ENDPOINTS["update_contact"].path, phone), json_body=values
        )
        return _contact_from(answer, phone)

    async def opt_out(self, phone: str, opted_out: bool = True) -> dict[str, Any]:
        """POST /api/v2/contacts/opt-out: opt a number out (or back in with opted_out=False)."""
        answer = await self.request(
            "POST",
            ENDPOINTS["opt_out"].path,
            json_body={"number": phone.strip(), "opted_out": bool(opted_out)},
        )
        answer = answer if isinstance(answer, dict) else {}
        return {
            "number": answer.get("number", phone.strip()),
            "opted_out": bool(answer.get("opted_out", answer.get("optedOut", opted_out))),
            "status": answer.get("status"),
        }

    async def delete_contact(self, phone: str) -> dict[str, Any]:
        """DELETE /api/v2/contacts/{phone}; a contact that is already gone counts as deleted."""
        try:
            answer = await self.request("DELETE", _phone_path(ENDPOINTS["delete_contact"].path, phone))
        except NotFoundError:
            return {"phone": phone.strip(), "deleted": True, "status": "NOT_FOUND"}
        status = answer.get("status") if isinstance(answer, dict) else None
        return {"phone": phone.strip(), "deleted": True, "status": status}


class SendblueClient(SyncFacade):
    """The synchronous face of `AsyncSendblueClient`: same methods, values instead of coroutines and
    iterators instead of async generators."""

    def __init__(self, settings: SendblueSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(AsyncSendblueClient(settings, transport=transport))

    def __enter__(self) -> SendblueClient:
        return self


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
    raise SendblueError(f"Sendblue answered the {what} list with an unexpected body: {_shape(body)}")


def _contact_from(answer: Any, phone: str) -> dict[str, Any]:
    contact = answer.get("contact") if isinstance(answer, dict) else None
    if isinstance(contact, dict):
        return normalise_contact(contact)
    return normalise_contact({"phone": phone})


def _refuse_unknown(values: dict[str, Any], allowed: frozenset[str], method: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{method} cannot set {', '.join(unknown)}; it accepts {', '.join(sorted(allowed))}")


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        return "an object with keys " + ", ".join(sorted(map(str, body))[:8])
    return type(body).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())

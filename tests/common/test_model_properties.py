"""Arbitrary API pages (any JSON: missing fields, wrong types, odd envelopes, huge or non-finite numbers)
fed to both sources' page readers and pydantic models: the only exceptions that come out are pydantic's
ValidationError and our typed API errors, never a KeyError, TypeError or OverflowError from the middle of
a load. The clients run against a fake server (an httpx transport answering the generated body)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sources.chatwoot import models as cw
from sources.chatwoot.client import AsyncChatwootClient
from sources.chatwoot.settings import ChatwootSettings
from sources.common.errors import ApiError
from sources.sendblue import models as sb
from sources.sendblue.client import AsyncSendblueClient
from sources.sendblue.settings import SendblueSettings

TYPED = (pydantic.ValidationError, ApiError)
PROPERTY = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±inf included: Python's json module reads them from a body
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "1e400", "-1", "2024-02-30T00:00:00Z", "2025-01-01T10:00:00.123Z", "nan"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def rows_like(*models: type[pydantic.BaseModel], extra: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Dicts using the models' field names (and camelCase twins) with any JSON value, or any JSON at all."""
    keys = {name for model in models for name in model.model_fields} | set(extra)
    keys |= {pydantic.alias_generators.to_camel(k) for k in keys}
    row = st.fixed_dictionaries({}, optional={k: json_values for k in sorted(keys)})
    return row | json_values


def page_of(row: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(row, max_size=5) | json_values


def only_typed_errors(call: Callable[[], Any]) -> None:
    try:
        call()
    except TYPED:
        pass


# ------------------------------------------------------------------------------------ the models


@PROPERTY
@given(
    page=page_of(rows_like(cw.Contact, extra=("meta",))),
    labels=page_of(rows_like(cw.Label)),
    inboxes=page_of(rows_like(cw.Inbox)),
    conversations=page_of(
        rows_like(cw.Conversation, cw.ConversationMeta, extra=("sender", "assignee", "team"))
    ),
    messages=page_of(rows_like(cw.Message)),
    meta=rows_like(cw.PageMeta),
)
def test_chatwoot_models_raise_only_validation_errors(
    page, labels, inboxes, conversations, messages, meta
) -> None:
    only_typed_errors(lambda: cw.contact_rows(page))
    only_typed_errors(lambda: cw.model_rows(cw.Label, labels))
    only_typed_errors(lambda: cw.model_rows(cw.Inbox, inboxes))
    only_typed_errors(lambda: cw.conversation_rows(conversations))
    only_typed_errors(lambda: cw.message_rows(messages, 1))
    only_typed_errors(lambda: cw.PageMeta.model_validate(meta))


@PROPERTY
@given(
    contacts=page_of(rows_like(sb.Contact, extra=("cid",))),
    messages=page_of(rows_like(sb.Message)),
    envelope=st.fixed_dictionaries(
        {}, optional={"data": page_of(rows_like(sb.Message)), "pagination": rows_like(sb.Pagination)}
    )
    | json_values,
)
def test_sendblue_models_raise_only_validation_errors(contacts, messages, envelope) -> None:
    only_typed_errors(lambda: sb.normalise_contacts(contacts))
    only_typed_errors(lambda: sb.normalise_contact(contacts))
    only_typed_errors(lambda: sb.normalise_messages(messages))
    only_typed_errors(lambda: sb.normalise_message(messages))
    only_typed_errors(lambda: sb.normalise_messages(sb.MessagesPage.model_validate(envelope).data))


# ------------------------------------------------------------------------------------ the page readers


def serving(body: Any) -> httpx.MockTransport:
    """A server that answers every request with `body` (200, JSON as Python's json module writes it)."""
    text = json.dumps(body)
    return httpx.MockTransport(
        lambda request: httpx.Response(200, text=text, headers={"content-type": "application/json"})
    )


def run_reads(reads: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(reads())
    except TYPED:
        pass


async def drain(pages: Any, parse: Callable[[list[Any]], Any]) -> None:
    async for page in pages:
        parse(page)


CHATWOOT = ChatwootSettings(
    base_url="http://127.0.0.1:9", account_id=1, api_access_token="t", max_retries=0, page_cap=3,
    rate_limit_per_minute=1_000_000,
)  # fmt: skip
SENDBLUE = SendblueSettings(
    base_url="http://127.0.0.1:9", api_key_id="k", api_secret_key="s", max_retries=0, rate_limit_per_minute=0,
    messages_rate_limit=1_000_000,
)  # fmt: skip

chatwoot_body = (
    st.fixed_dictionaries(
        {},
        optional={
            "payload": page_of(rows_like(cw.Contact, cw.Message, cw.Label)),
            "data": st.fixed_dictionaries({}, optional={"payload": page_of(rows_like(cw.Conversation))})
            | json_values,
            "meta": rows_like(cw.PageMeta),
        },
    )
    | json_values
)


@PROPERTY
@given(body=chatwoot_body)
def test_chatwoot_page_readers_raise_only_typed_errors(body) -> None:
    async def reads() -> None:
        client = AsyncChatwootClient(CHATWOOT, transport=serving(body))
        try:
            for call in (
                lambda: drain(client.iter_contacts(), cw.contact_rows),
                lambda: drain(client.iter_conversations(), cw.conversation_rows),
                lambda: drain(client.iter_messages(7), lambda page: cw.message_rows(page, 7)),
                lambda: client.search_contacts("x", max_pages=2),
                lambda: client.get_contact_labels(3),
                lambda: client.list_labels(),
            ):
                try:
                    await call()
                except TYPED:
                    pass
        finally:
            await client.aclose()

    run_reads(reads)


@PROPERTY
@given(
    body=page_of(rows_like(sb.Contact))
    | st.fixed_dictionaries(
        {},
        optional={
            "data": page_of(rows_like(sb.Message)),
            "contacts": page_of(rows_like(sb.Contact)),
            "contact": rows_like(sb.Contact),
            "pagination": rows_like(sb.Pagination),
            "count": json_values,
        },
    )
)
def test_sendblue_page_readers_raise_only_typed_errors(body) -> None:
    async def reads() -> None:
        client = AsyncSendblueClient(SENDBLUE, transport=serving(body))
        try:
            for call in (
                lambda: client.list_contacts(),
                lambda: client.list_messages(),
                lambda: client.count_contacts(),
                lambda: client.get_contact("+15551234567"),
            ):
                try:
                    await call()
                except TYPED:
                    pass
        finally:
            await client.aclose()

    run_reads(reads)

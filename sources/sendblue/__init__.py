"""Sendblue dlt source: contacts, contact_tags, messages and conversations (dataset `sendblue`).

Configuration comes from `sources.sendblue.*` (`.dlt/config.toml`, `.dlt/secrets.toml`, env vars such as
SOURCES__SENDBLUE__API_KEY_ID); tests and callers may pass `settings=` and `transport=` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.common.typing import TDataItems, TSecretStrValue
from dlt.sources import DltResource

from sources.sendblue.client import AsyncSendblueClient, SendblueClient
from sources.sendblue.conversations import ConversationBuilder, conversation_id_of
from sources.sendblue.endpoints import STREAMS
from sources.sendblue.helpers import (
    SharedMessageWalk,
    build_settings,
    check_connection,
    chunks,
    contact_pages,
    discover,
    selected_resources,
    settings_from_config,
)
from sources.sendblue.settings import SendblueSettings
from sources.sendblue.warehouse import (
    WarehouseThreads,
    creation_order_from,
    rebuild_touched,
    walk_start_over_warehouse,
)

__all__ = [
    "AsyncSendblueClient",
    "SendblueClient",
    "SendblueSettings",
    "check_connection",
    "discover",
    "sendblue_source",
    "settings_from_config",
]

log = logging.getLogger("switchboard.sendblue")


@dlt.source(name="sendblue", section="sendblue", max_table_nesting=0)
def sendblue_source(
    base_url: str | None = None,
    api_key_id: TSecretStrValue | None = None,
    api_secret_key: TSecretStrValue | None = None,
    messages_rate_limit: int | None = None,
    messages_rate_window_seconds: float | None = None,
    rate_limit_per_minute: int | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry_backoff_seconds: float | None = None,
    contacts_page_size: int | None = None,
    messages_page_size: int | None = None,
    messages_lag_seconds: float | None = None,
    messages_start_date: str | None = None,
    settings: Any = None,
    transport: Any = None,
) -> Sequence[DltResource]:
    """Sendblue contacts, their tags, messages (incremental) and conversations derived from messages.

    Every argument left as None takes its value from `sources.sendblue.<name>` or the documented default
    (see `.dlt/config.toml`). `settings` (a SendblueSettings) replaces them all; `transport` (an httpx async
    transport, e.g. ASGITransport over the sandbox) is for tests.
    """
    if settings is None:
        values = {k: v for k, v in locals().items() if k not in ("settings", "transport")}
        settings = build_settings(values)
    # one client, hence one set of rate limiters, for every resource of the run; closed when the source is
    # garbage collected (dlt runs the resources interleaved: none of them may close it)
    client = SendblueClient(settings, transport=transport)
    shared_walk = SharedMessageWalk()
    start_date = settings.messages_start_date
    cursor_path = STREAMS["messages"].cursor
    assert cursor_path is not None  # the messages stream declares its cursor
    cursor = dlt.sources.incremental(cursor_path, initial_value=start_date, lag=settings.messages_lag_seconds or None)

    # each table: its reader, with the hints of its STREAMS entry (as Chatwoot's source and dlt's hubspot do)
    def contacts() -> Iterator[TDataItems]:
        """Every contact, oldest first, each once (a full walk: contacts have no updated_at); contacts
        deleted since the last run are removed."""
        yield from contact_pages(client, dlt.current.resource_state())

    def messages(updated: dlt.sources.incremental[datetime] = cursor) -> Iterator[TDataItems]:
        yield from message_pages(client, shared_walk, updated)

    def conversations() -> Iterator[TDataItems]:
        yield from conversation_pages(client, shared_walk, start_date)

    resources: dict[str, Any] = {
        read.__name__: dlt.resource(read, **STREAMS[read.__name__].hints())
        for read in (contacts, messages, conversations)
    }
    tags = dlt.transformer(contact_tags, **STREAMS["contact_tags"].hints())
    resources["contact_tags"] = resources["contacts"] | tags
    return [resources[table] for table in STREAMS]


def contact_tags(page: list[dict[str, Any]]) -> Iterator[TDataItems]:
    """One row per (phone, tag), unnested from each contacts page (Sendblue has no tags endpoint)."""
    rows = []
    for contact in page:
        seen: set[str] = set()
        for tag in contact.get("tags") or ():
            if isinstance(tag, str) and tag and tag not in seen:
                seen.add(tag)
                rows.append({"phone": contact["phone"], "tag": tag})
    # an empty page still marks the table as present, so `replace` empties it when no contact has tags
    yield rows if rows else dlt.mark.materialize_table_schema()


def message_pages(
    client: SendblueClient, shared_walk: SharedMessageWalk, updated: dlt.sources.incremental[datetime]
) -> Iterator[TDataItems]:
    """Messages changed since the last run (all of them on the first), ordered by date_updated ascending."""
    complete = False
    try:
        shared_walk.begin(
            walk_start=updated.start_value,
            bounded_above=updated.end_value is not None,
            conversations_state=dlt.current.source_state().get("resources", {}).get("conversations", {}),
            baseline=client.aclient.settings.messages_start_date,
            conversations_selected="conversations" in selected_resources(),
        )
        for page in client.iter_messages(
            updated_at_gte=updated.start_value, updated_at_lte=updated.end_value
        ):
            for row in page:
                row["conversation_id"] = conversation_id_of(row)
            shared_walk.observe(page)
            yield page
        complete = True
    finally:
        shared_walk.end(complete)


def conversation_pages(
    client: SendblueClient, shared_walk: SharedMessageWalk, start_date: datetime | None
) -> Iterator[TDataItems]:
    """One row per thread, rebuilt for every thread the new and edited messages touch.

    When `messages` runs in the same extraction, its walk feeds the builder (one pass over the list for
    both tables); the generator hands control back to dlt (yield None) until that walk ends. Otherwise,
    or when that walk cannot cover what this table has not seen yet, it walks the messages itself. An
    incremental walk's threads are rebuilt from the warehouse's `messages` table (see warehouse.py), or
    re-read from the API where the warehouse cannot stand in.
    """
    state = dlt.current.resource_state()
    builder: ConversationBuilder | None = None
    store: WarehouseThreads | None = None
    if "messages" in selected_resources():
        while not shared_walk.done_in_this_extraction():
            yield None  # let the messages resource advance its walk
        if shared_walk.complete:
            builder = shared_walk.builder
            if builder is not None and not builder.full and start_date is None:
                store = WarehouseThreads.of_current_pipeline()
    if builder is None:
        previous = ConversationBuilder.from_state(state, full=False)
        walk_from = previous.cursor or start_date
        if previous.cursor is not None and start_date is None:
            # with a start date the messages table lacks older history: threads are re-read instead
            messages_state = dlt.current.source_state().get("resources", {}).get("messages", {})
            store, walk_from = walk_start_over_warehouse(
                previous.cursor, messages_state, client.aclient.settings.messages_lag_seconds
            )
        builder = ConversationBuilder.from_state(state, full=walk_from is None)
        for page in client.iter_messages(updated_at_gte=walk_from):
            builder.observe(page)
    if store is not None and not builder.full:
        rows = rebuild_touched(builder, store, creation_order_from(client))
    else:
        rows = client.run(builder.rows(client.aclient, client.aclient.settings.concurrency))
    yield from chunks(rows, 1000)
    state.update(builder.state())
    log.info(
        "Sendblue conversations: %d messages observed, %d threads rebuilt from the warehouse (%d tie "
        "requests), %d threads re-read, %d rows",
        builder.messages_seen,
        builder.threads_rebuilt,
        builder.tie_requests,
        builder.threads_reread,
        len(rows),
    )


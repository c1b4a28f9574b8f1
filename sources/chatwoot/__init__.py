"""The Chatwoot dlt source: contacts, contact_labels, labels, inboxes, conversations and messages.

Configuration resolves from `[sources.chatwoot]` (config.toml, secrets.toml or SOURCES__CHATWOOT__* env
vars); pass `settings=` to bypass dlt's config, and `transport=` (an httpx async transport such as
`httpx.ASGITransport`) to talk to an in-process app. Deleted contacts are removed from `contacts` (a
tombstone with `_deleted` true and dlt's hard_delete hint); `contact_labels` is rebuilt every run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from . import settings as cs
from .client import ChatwootClient, ChatwootSettings
from .helpers import (
    build_settings,
    check_connection,
    contact_label_pages,
    contact_pages,
    conversation_pages,
    discover,
    inbox_pages,
    label_pages,
    message_pages,
    open_client,
    settings_from_config,
)

__all__ = [
    "ChatwootSettings",
    "chatwoot_source",
    "check_connection",
    "discover",
    "settings_from_config",
]


def _hints(table: str) -> dict[str, Any]:
    stream = cs.STREAMS[table]
    return {
        "name": stream.table,
        "primary_key": list(stream.primary_key),
        "write_disposition": stream.write_disposition,
        "columns": stream.column_hints(),
    }


@dlt.source(name="chatwoot", section="chatwoot", max_table_nesting=0)
def chatwoot_source(
    base_url: str | None = dlt.config.value,
    account_id: int | None = dlt.config.value,
    api_access_token: str | None = dlt.secrets.value,
    rate_limit_per_minute: int | str = cs.DEFAULT_RATE_LIMIT_PER_MINUTE,
    rate_limit_window_seconds: float = cs.DEFAULT_RATE_LIMIT_WINDOW_SECONDS,
    concurrency: int = cs.DEFAULT_CONCURRENCY,
    timeout: float = cs.DEFAULT_TIMEOUT_SECONDS,
    max_retries: int = cs.DEFAULT_MAX_RETRIES,
    retry_backoff_seconds: float = cs.DEFAULT_RETRY_BACKOFF_SECONDS,
    page_cap: int = cs.DEFAULT_PAGE_CAP,
    contact_labels_mode: str = cs.DEFAULT_CONTACT_LABELS_MODE,
    conversations_safety_margin_seconds: int = cs.DEFAULT_CONVERSATIONS_SAFETY_MARGIN_SECONDS,
    conversations_max_updated_within_seconds: int = cs.DEFAULT_CONVERSATIONS_MAX_UPDATED_WITHIN_SECONDS,
    settings: ChatwootSettings | None = None,
    transport: Any = None,
) -> Sequence[DltResource]:
    """All six Chatwoot tables. Every argument is a `[sources.chatwoot]` key (documented in
    .dlt/config.toml); an explicit `settings` replaces them all."""
    if settings is None:
        settings = build_settings(
            {
                "base_url": base_url,
                "account_id": account_id,
                "api_access_token": api_access_token,
                "rate_limit_per_minute": rate_limit_per_minute,
                "rate_limit_window_seconds": rate_limit_window_seconds,
                "concurrency": concurrency,
                "timeout": timeout,
                "max_retries": max_retries,
                "retry_backoff_seconds": retry_backoff_seconds,
                "page_cap": page_cap,
                "contact_labels_mode": contact_labels_mode,
                "conversations_safety_margin_seconds": conversations_safety_margin_seconds,
                "conversations_max_updated_within_seconds": conversations_max_updated_within_seconds,
            }
        )
    # one client, hence one rate limiter and one connection pool, for every resource of the run
    client = open_client(settings, transport)
    conversations_resource = conversations(client, settings)
    return (
        contacts(client),
        contact_labels(client, settings),
        labels(client),
        inboxes(client),
        conversations_resource,
        conversations_resource | messages(client),
    )


@dlt.resource(**_hints("contacts"))
def contacts(client: ChatwootClient) -> Iterator[list[dict[str, Any]]]:
    """Every listed contact each run (merge on id); contacts deleted upstream are deleted here."""
    yield from contact_pages(client, dlt.current.resource_state())


@dlt.resource(**_hints("contact_labels"))
def contact_labels(client: ChatwootClient, settings: ChatwootSettings) -> Iterator[list[dict[str, Any]]]:
    """(contact_id, label) pairs, rebuilt every run by `contact_labels_mode` (exact or fast)."""
    yield from contact_label_pages(client, settings.contact_labels_mode)


@dlt.resource(**_hints("labels"))
def labels(client: ChatwootClient) -> Iterator[list[dict[str, Any]]]:
    """Account labels."""
    yield from label_pages(client)


@dlt.resource(**_hints("inboxes"))
def inboxes(client: ChatwootClient) -> Iterator[list[dict[str, Any]]]:
    """Inboxes, without channel configuration (it can hold provider secrets)."""
    yield from inbox_pages(client)


@dlt.resource(**_hints("conversations"))
def conversations(client: ChatwootClient, settings: ChatwootSettings) -> Iterator[list[dict[str, Any]]]:
    """Conversations of every status: a full walk first, then `updated_within` windows (merge on id)."""
    # the listing also feeds `messages`; when only one of the two is loaded, only its cursor moves
    try:
        selected = set(dlt.current.source().selected_resources)
    except Exception:  # the resource evaluated on its own, outside a source
        selected = {"conversations"}
    consumers = [name for name in ("conversations", "messages") if name in selected]
    yield from conversation_pages(client, settings, dlt.current.resource_state(), consumers)


@dlt.transformer(**_hints("messages"))
def messages(
    conversation_page: list[dict[str, Any]], client: ChatwootClient
) -> Iterator[list[dict[str, Any]]]:
    """Messages of the new or changed conversations in each conversations page (merge on id)."""
    yield from message_pages(client, dlt.current.resource_state(), conversation_page)

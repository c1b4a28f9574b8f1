"""The Chatwoot dlt source: contacts, contact_labels, labels, inboxes, conversations and messages.

Configuration resolves from `[sources.chatwoot]` (config.toml, secrets.toml or SOURCES__CHATWOOT__* env
vars); pass `settings=` to bypass dlt's config, and `transport=` (an httpx async transport such as
`httpx.ASGITransport`) to talk to an in-process app. Deleted contacts are removed from `contacts` (a
tombstone with `_deleted` true and dlt's hard_delete hint); `contact_labels` is rebuilt every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import dlt
from dlt.sources import DltResource

from .client import ChatwootClient
from .endpoints import SIMPLE_LISTS, STREAMS
from .readers import (
    build_settings,
    check_connection,
    contact_label_pages,
    contact_pages,
    conversation_pages,
    discover,
    list_pages,
    message_pages,
    settings_from_config,
)
from .settings import ChatwootSettings

__all__ = [
    "ChatwootSettings",
    "chatwoot_source",
    "check_connection",
    "discover",
    "settings_from_config",
]


@dlt.source(name="chatwoot", section="chatwoot", max_table_nesting=0)
def chatwoot_source(
    base_url: str | None = dlt.config.value,
    account_id: int | None = dlt.config.value,
    api_access_token: str | None = dlt.secrets.value,
    rate_limit_per_minute: str | int | None = None,  # "auto" or a number: dlt must not coerce it to int
    rate_limit_window_seconds: float | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry_backoff_seconds: float | None = None,
    page_cap: int | None = None,
    contact_labels_mode: str | None = None,
    conversations_safety_margin_seconds: int | None = None,
    conversations_max_updated_within_seconds: int | None = None,
    settings: ChatwootSettings | None = None,
    transport: Any = None,
) -> Sequence[DltResource]:
    """Every Chatwoot table of `endpoints.STREAMS`. Every argument is a `[sources.chatwoot]` key; one left
    unset takes the default of `ChatwootSettings`. An explicit `settings` replaces them all."""
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
    # one client, hence one rate limiter and one connection pool, for every resource of the run; closed
    # when the source is garbage collected (dlt runs the resources interleaved: none of them may close it)
    client = ChatwootClient(settings, transport=transport)
    # each table: its reader, with the hints of its STREAMS entry (as dlt's verified hubspot source does)
    readers: dict[str, Callable[[], Iterator[list[dict[str, Any]]]]] = {
        "contacts": lambda: contact_pages(client, dlt.current.resource_state()),
        "contact_labels": lambda: contact_label_pages(client, settings.contact_labels_mode),
        "conversations": lambda: conversations_read(client, settings),
        **{table: partial(list_pages, client, table) for table in SIMPLE_LISTS},
    }
    # parallelized: the contacts walk, the label reads and the conversations walk each wait on the network,
    # so they overlap (all through the one client and its limiter) instead of taking turns
    resources: dict[str, Any] = {
        table: dlt.resource(_generator(read), parallelized=True, **STREAMS[table].hints())
        for table, read in readers.items()
    }

    def messages(page: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Messages of the new or changed conversations in each conversations page (merge on id)."""
        yield from message_pages(client, dlt.current.resource_state(), page)

    resources["messages"] = resources["conversations"] | dlt.transformer(messages, **STREAMS["messages"].hints())
    return [resources[table] for table in STREAMS]


def _generator(read: Callable[[], Iterator[Any]]) -> Callable[[], Iterator[Any]]:
    """A generator function around `read`, so dlt evaluates it (and its resource state) at extraction."""

    def pages() -> Iterator[Any]:
        yield from read()

    return pages


def conversations_read(client: ChatwootClient, settings: ChatwootSettings) -> Iterator[list[dict[str, Any]]]:
    """Conversations of every status: a full walk first, then `updated_within` windows (merge on id)."""
    # the listing also feeds `messages`; when only one of the two is loaded, only its cursor moves
    try:
        selected = set(dlt.current.source().selected_resources)
    except Exception:  # the resource evaluated on its own, outside a source
        selected = {"conversations"}
    consumers = [name for name in ("conversations", "messages") if name in selected]
    yield from conversation_pages(client, settings, dlt.current.resource_state(), consumers)

"""What the Chatwoot resources do, as plain generators over a client and a state dict.

`__init__.py` wraps these in dlt resources; the state dicts are dlt resource state there. Each generator
yields pages (lists of rows), never single rows. Also here: the settings resolution from dlt config, and
`check_connection` / `discover` for the CLI.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import httpx

from sources.common import settings as common_settings
from sources.common.errors import ConfigError, NotFoundError
from sources.common.paging import WalkReport
from sources.common.streams import DELETED_COLUMN

from .client import ChatwootClient
from .endpoints import LABELLED_CONTACTS_FILTER, STREAMS
from .models import contact_rows, conversation_rows, message_rows, model_rows
from .settings import API_NAME, ChatwootSettings

log = logging.getLogger("switchboard.chatwoot")

ROWS_PER_PAGE = 500  # pages of derived rows (label pairs) handed to dlt

# Every ChatwootSettings field is a `[sources.chatwoot]` key; the token is the one secret.
SECRET_KEYS = ("api_access_token",)


# ------------------------------------------------------------------------------------------ settings


def build_settings(values: Mapping[str, Any]) -> ChatwootSettings:
    """ChatwootSettings from config values (None or "" = not set, use the default), or a one-line config
    error naming the key and its environment variable. Never echoes the token."""
    return common_settings.build_settings(
        ChatwootSettings,
        "chatwoot",
        values,
        required=("account_id", "api_access_token"),
        secret_keys=SECRET_KEYS,
        error=partial(ConfigError, api=API_NAME),
    )


def settings_from_config(**overrides: Any) -> ChatwootSettings:
    """Resolve `[sources.chatwoot]` from dlt's providers (config.toml, secrets.toml, env vars)."""
    return build_settings(common_settings.config_values(ChatwootSettings, "chatwoot", SECRET_KEYS, **overrides))


# ------------------------------------------------------------------------------------------ contacts


def is_listed(contact: Mapping[str, Any]) -> bool:
    """`Contact.resolved_contacts`: list, filter and search only return contacts with one of these."""
    return bool(contact.get("email") or contact.get("phone_number") or contact.get("identifier"))


def contact_pages(client: ChatwootClient, state: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every listed contact (full walk, the API has no change feed for contacts), then deletions.

    Contacts loaded before and missing from a complete walk are looked up by id. A 404 (deleted), or a
    contact that lost its email, phone number and identifier (Chatwoot stops listing those), yields a
    tombstone: `_deleted` true, which dlt's hard_delete hint turns into a DELETE, so the table always
    holds what a fresh full load would. A contact that is still listable was only skipped because a
    concurrent delete shifted the offset pages, and is loaded from that lookup instead.
    `state["contact_ids"]` holds the ids loaded so far.
    """
    known = set(state.get("contact_ids") or [])
    seen: set[int] = set()
    walk = WalkReport()
    for page in client.iter_contacts(walk=walk):
        rows = contact_rows(page)
        seen.update(row["id"] for row in rows)
        yield rows
    if not walk.complete:
        # a truncated walk cannot tell a deleted contact from an unread one
        state["contact_ids"] = sorted(known | seen)
        return
    if walk.reported_count is not None and len(seen) < walk.reported_count:
        log.warning(
            "Chatwoot listed %d distinct contacts of %d counted (offset paging shifted during the walk)",
            len(seen),
            walk.reported_count,
        )
    vanished = sorted(known - seen)
    tombstones: list[dict[str, Any]] = []
    still_there: list[dict[str, Any]] = []
    for contact_id, result in client.contacts_by_id(vanished):
        if isinstance(result, BaseException) and not isinstance(result, NotFoundError):
            raise result
        if isinstance(result, dict) and is_listed(result):
            still_there.append(result)
            seen.add(contact_id)
        else:
            tombstones.append({"id": contact_id, DELETED_COLUMN: True})
    if still_there:
        yield contact_rows(still_there)
    if tombstones:
        yield tombstones
    state["contact_ids"] = sorted(seen)
    state["deleted_last_run"] = len(tombstones)


# ------------------------------------------------------------------------------------------ contact labels


def _labelled_contact_ids(client: ChatwootClient) -> list[int]:
    """Contacts carrying any label at all, account label or not (`labels is_present`)."""
    return [contact["id"] for page in client.filter_contacts(LABELLED_CONTACTS_FILTER) for contact in page]


def _read_labels(client: ChatwootClient, contact_ids: Iterable[int], pairs: set[tuple[int, str]]) -> set[str]:
    """GET /contacts/{id}/labels for each id (concurrently); add the pairs, return the label names seen."""
    names: set[str] = set()
    for contact_id, result in client.labels_of_contacts(list(contact_ids)):
        if isinstance(result, NotFoundError):
            continue  # deleted since it was listed
        if isinstance(result, BaseException):
            raise result
        for label in result:
            pairs.add((contact_id, label))
            names.add(label)
    return names


def _list_by_labels(client: ChatwootClient, labels: Iterable[str], pairs: set[tuple[int, str]]) -> set[int]:
    """Page `GET /contacts?labels[]=<label>` for each label (concurrently); add the pairs, return the ids."""
    covered: set[int] = set()
    for label, result in client.contacts_per_label(list(labels)):
        if isinstance(result, BaseException):
            raise result
        ids, _walk = result
        for contact_id in ids:
            pairs.add((contact_id, label))
            covered.add(contact_id)
    return covered


def contact_label_pairs(client: ChatwootClient, mode: str) -> set[tuple[int, str]]:
    """Every (contact id, label) pair, by `mode`:

    exact: the labelled contacts (filter `labels is_present`), then their labels one GET each. Right
    whatever labels contacts carry; costs ceil(N_labelled/15) + N_labelled requests.

    fast: list contacts per account label; read labels one by one only for labelled contacts no listing
    covered (they carry only labels that are not account labels: POST /contacts/{id}/labels does not
    validate names), then list by the extra names those reads reveal. Blind spot: a contact carrying an
    account label plus a non-account label that no uncovered contact carries loses that second label.
    """
    pairs: set[tuple[int, str]] = set()
    labelled = _labelled_contact_ids(client)
    if mode == "exact":
        _read_labels(client, labelled, pairs)
        return pairs
    if mode != "fast":
        raise ConfigError(f"sources.chatwoot.contact_labels_mode must be exact or fast, not {mode!r}", api=API_NAME)
    account_labels = {label["title"] for label in client.list_labels()}
    covered = _list_by_labels(client, sorted(account_labels), pairs)
    uncovered = [contact_id for contact_id in labelled if contact_id not in covered]
    extra = _read_labels(client, uncovered, pairs) - account_labels
    _list_by_labels(client, sorted(extra), pairs)
    return pairs


def contact_label_pages(client: ChatwootClient, mode: str) -> Iterator[list[dict[str, Any]]]:
    rows = [
        {"contact_id": contact_id, "label": label}
        for contact_id, label in sorted(contact_label_pairs(client, mode))
    ]
    for start in range(0, len(rows), ROWS_PER_PAGE):
        yield rows[start : start + ROWS_PER_PAGE]


# ------------------------------------------------------------------------------------------ plain lists


def list_pages(client: ChatwootClient, table: str) -> Iterator[list[dict[str, Any]]]:
    """A table read from one unpaginated list endpoint of the same name, as its model's fields."""
    yield model_rows(STREAMS[table].model, client.rows(table))


# ------------------------------------------------------------------------------------------ conversations


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else round(value.timestamp(), 6)


def conversation_pages(
    client: ChatwootClient,
    settings: ChatwootSettings,
    state: dict[str, Any],
    consumers: Iterable[str] = ("conversations",),
    clock: Callable[[], float] = time.time,
) -> Iterator[list[dict[str, Any]]]:
    """Conversations of every status. The first run walks them all; later runs ask `updated_within` for
    the seconds since the previous listing started plus a safety margin (both measured on our clock, so
    server clock skew does not matter), and fall back to the full walk when that window exceeds
    `conversations_max_updated_within_seconds`. Rows are merged on id, so the overlap is harmless.

    `consumers` are the tables this listing feeds in this run (`conversations`, `messages`, or both when
    one of them is loaded alone): each keeps its own start time, so loading one never makes the other
    skip changes. State: `listing_started_at` {consumer: our clock when its last complete listing
    started}, `updated_at_cursor` (the highest updated_at loaded), `last_listing` ("full" or
    "window:<seconds>").
    """
    consumers = sorted(set(consumers)) or ["conversations"]
    started = clock()
    starts: dict[str, float] = state.setdefault("listing_started_at", {})
    window: int | None = None
    if all(name in starts for name in consumers):
        since = min(float(starts[name]) for name in consumers)
        window = math.ceil(started - since) + settings.conversations_safety_margin_seconds
        if window > settings.conversations_max_updated_within_seconds:
            log.info("Chatwoot conversations: %ss since the last run, walking them all", window)
            window = None
    cursor = state.get("updated_at_cursor")
    complete = True
    if window is None:
        walk = WalkReport()
        for page in client.iter_conversations(walk=walk):
            rows = conversation_rows(page)
            cursor = _max_cursor(cursor, rows)
            yield rows
        complete = walk.complete
    else:
        items = {item["id"]: item for item in client.conversations_updated_within(window)}
        batch = list(items.values())
        for start in range(0, len(batch), 100):
            rows = conversation_rows(batch[start : start + 100])
            cursor = _max_cursor(cursor, rows)
            yield rows
    if complete:
        for name in consumers:
            starts[name] = started
        state["updated_at_cursor"] = cursor
        state["last_listing"] = "full" if window is None else f"window:{window}"


def _max_cursor(cursor: float | None, rows: list[dict[str, Any]]) -> float | None:
    for row in rows:
        value = _epoch(row.get("updated_at"))
        if value is not None and (cursor is None or value > cursor):
            cursor = value
    return cursor


# ------------------------------------------------------------------------------------------ messages


def message_pages(
    client: ChatwootClient, state: dict[str, Any], conversations: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """Messages of the conversations in `conversations` that are new or changed since they were last
    read (every new message bumps the conversation's updated_at), each from
    `after=<highest message id already loaded>`; conversations fetched concurrently.

    State: `conversations[str(id)] = [updated_at read, highest message id loaded]`.
    """
    synced: dict[str, list[float]] = state.setdefault("conversations", {})
    cursors: dict[int, int] = {}
    updated: dict[int, float | None] = {}
    for row in conversations:
        entry = synced.get(str(row["id"]))
        stamp = _epoch(row.get("updated_at"))
        if entry is None or stamp is None or stamp > entry[0]:
            cursors[row["id"]] = int(entry[1]) if entry else 0
            updated[row["id"]] = stamp
    if not cursors:
        return
    for conversation_id, result in client.messages_of_conversations(cursors):
        if isinstance(result, NotFoundError):
            synced.pop(str(conversation_id), None)  # deleted since it was listed
            continue
        if isinstance(result, BaseException):
            raise result
        rows = message_rows(result, conversation_id)
        highest = max([cursors[conversation_id], *(row["id"] for row in rows)])
        synced[str(conversation_id)] = [updated[conversation_id] or 0.0, highest]
        if rows:
            yield rows


# ------------------------------------------------------------------------------------------ CLI helpers


def check_connection(settings: ChatwootSettings, transport: httpx.AsyncBaseTransport | None = None) -> str:
    """The cheapest authenticated, account-scoped call (GET /labels). Returns "ok" or raises a
    ApiError whose message is one human line: bad token, unknown account, unreachable host, TLS."""
    probe = settings.model_copy(update={"max_retries": min(settings.max_retries, 1)})
    client = ChatwootClient(probe, transport=transport)
    try:
        client.list_labels()
    finally:
        client.close()
    return "ok"


def discover() -> list[dict[str, Any]]:
    """The streams: table, primary key, write disposition, cursor and typed columns."""
    return [stream.describe() for stream in STREAMS.values()]

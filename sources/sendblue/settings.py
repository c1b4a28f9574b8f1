"""Sendblue constants and the endpoint table the client and the dlt source are built from.

Every number here is a fact from the API notes (`sendblue.md`, `sendblue_endpoints.md`), named once so a reader
finds each quirk's reason next to the value it forces.
"""

from __future__ import annotations

from dataclasses import dataclass

# the SDKs' default; https://api.sendblue.com serves the same API
DEFAULT_BASE_URL = "https://api.sendblue.co"

# Two headers on every request (header names are case-insensitive on the server).
KEY_ID_HEADER = "sb-api-key-id"
SECRET_KEY_HEADER = "sb-api-secret-key"

# GET /api/v2/contacts: "limit defaults to 100, capped at 1000"; "offset capped at 10000". One ordering can
# therefore reach about 11,000 rows, so the walk moves a `created_at_gte` window instead of deep offsets.
CONTACTS_PAGE_MAX = 1000
CONTACTS_OFFSET_CAP = 10_000

# GET /api/v2/messages: the generated reference says limit <= 1000, the hand-written docs "1-100"; 100 is
# the value both agree on. The endpoint is "rate limited to 100 requests per 10 seconds per account".
MESSAGES_PAGE_MAX = 1000
MESSAGES_PAGE_DEFAULT = 100
MESSAGES_RATE_LIMIT = 100
MESSAGES_RATE_WINDOW_SECONDS = 10.0

# No limit is documented for the other endpoints; this default keeps reverse-ETL writes polite.
OTHER_RATE_LIMIT_PER_MINUTE = 600

# Bulk create has no documented maximum batch size; the notes advise batches of 100 to 500.
BULK_CREATE_BATCH_MAX = 500


@dataclass(frozen=True)
class Endpoint:
    """One Sendblue endpoint: where it lives, how its answer is wrapped and how it pages."""

    method: str
    path: str
    data_path: str | None  # key holding the payload; None when the body itself is the payload
    pagination: str  # "none", "offset" (bare list, short page ends), "offset_has_more" (pagination.hasMore)
    rate_limited_as: str  # which client-side limiter the request passes: "messages" or "other"


ENDPOINTS: dict[str, Endpoint] = {
    # a bare JSON array, no total and no hasMore: a short page is the only end marker
    "list_contacts": Endpoint("GET", "/api/v2/contacts", None, "offset", "other"),
    "count_contacts": Endpoint("GET", "/api/v2/contacts/count", "count", "none", "other"),
    "get_contact": Endpoint("GET", "/api/v2/contacts/{phone}", "contact", "none", "other"),
    "create_contact": Endpoint("POST", "/api/v2/contacts", "contact", "none", "other"),
    "update_contact": Endpoint("PUT", "/api/v2/contacts/{phone}", "contact", "none", "other"),
    "delete_contact": Endpoint("DELETE", "/api/v2/contacts/{phone}", None, "none", "other"),
    "bulk_create_contacts": Endpoint("POST", "/api/v2/contacts/bulk", "contacts", "none", "other"),
    "opt_out": Endpoint("POST", "/api/v2/contacts/opt-out", None, "none", "other"),
    # {"status","data","pagination":{"hasMore","limit","offset","total"}}; the docs' example omits hasMore
    "list_messages": Endpoint("GET", "/api/v2/messages", "data", "offset_has_more", "messages"),
    "get_message": Endpoint("GET", "/api/v2/messages/{message_handle}", "data", "none", "other"),
}

MESSAGES_PATH = ENDPOINTS["list_messages"].path


@dataclass(frozen=True)
class Stream:
    """One loaded table, as `discover()` reports it and the dlt resources declare it."""

    table: str
    primary_key: tuple[str, ...]
    write_disposition: str
    cursor: str | None
    model: str  # the pydantic model in models.py that lists its columns
    description: str


STREAMS: tuple[Stream, ...] = (
    Stream(
        "contacts",
        ("phone",),
        "merge",
        None,
        "Contact",
        "Every contact, full walk each run (Sendblue has no updated_at on contacts); both key casings "
        "normalised to snake_case; custom_variables kept as one JSON column.",
    ),
    Stream(
        "contact_tags",
        ("phone", "tag"),
        "replace",
        None,
        "ContactTag",
        "One row per tag on a contact, unnested from the contacts' tags (there is no tags endpoint).",
    ),
    Stream(
        "messages",
        ("message_handle",),
        "merge",
        "date_updated",
        "Message",
        "Messages, incremental on date_updated (updated_at_gte, order_by=updatedAt asc); status changes "
        "after sending bump date_updated, so edited messages are merged again.",
    ),
    Stream(
        "conversations",
        ("conversation_id",),
        "merge",
        None,
        "Conversation",
        "One row per thread derived from messages: a 1:1 thread is (sendblue_number, number), a group "
        "thread is group_id; counts, first and last message times, last message preview.",
    ),
)

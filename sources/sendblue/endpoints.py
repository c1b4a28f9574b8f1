"""Sendblue's API facts and the endpoint and stream tables the client and the dlt source are built from.

Every number here is a fact from the API notes (`sendblue.md`, `sendblue_endpoints.md`), named once so a reader
finds each quirk's reason next to the value it forces.
"""

from __future__ import annotations

from sources.common.paging import Endpoint
from sources.common.streams import Stream
from sources.sendblue import models as m

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


# Every endpoint the client calls. The two lists are walked by timestamp windows (`keyset window`, see
# sources/common/keyset.py): contacts by created_at (offsets stop at 10,000), messages by date_updated (a
# status change moves a message to the end of that order). Only the messages list has a documented limit.
ENDPOINTS: dict[str, Endpoint] = {
    # a bare JSON array, no total and no hasMore: a short page is the only end marker
    "list_contacts": Endpoint("/api/v2/contacts", "keyset window", key="phone", cursor="created_at"),
    "count_contacts": Endpoint("/api/v2/contacts/count", key=None),
    "get_contact": Endpoint("/api/v2/contacts/{phone}", key="phone"),
    "create_contact": Endpoint("/api/v2/contacts", method="POST", key="phone"),
    "update_contact": Endpoint("/api/v2/contacts/{phone}", method="PUT", key="phone"),
    "delete_contact": Endpoint("/api/v2/contacts/{phone}", method="DELETE", key="phone"),
    "bulk_create_contacts": Endpoint("/api/v2/contacts/bulk", method="POST", key="phone"),
    "opt_out": Endpoint("/api/v2/contacts/opt-out", method="POST", key="number"),
    # {"status","data","pagination":{"hasMore","limit","offset","total"}}; the docs' example omits hasMore
    "list_messages": Endpoint(
        "/api/v2/messages", "keyset window", ("data",), bucket="messages", key="message_handle", cursor="date_updated"
    ),
    "get_message": Endpoint("/api/v2/messages/{message_handle}", key="message_handle"),
}

STREAMS: dict[str, Stream] = {
    s.table: s
    for s in (
        Stream(
            "contacts",
            ("phone",),
            "merge",
            m.Contact,
            "Every contact, full walk each run (Sendblue has no updated_at on contacts); both key casings "
            "normalised to snake_case; custom_variables kept as one JSON column.",
            deletes=True,
        ),
        Stream(
            "contact_tags",
            ("phone", "tag"),
            "replace",
            m.ContactTag,
            "One row per tag on a contact, unnested from the contacts' tags (there is no tags endpoint).",
        ),
        Stream(
            "messages",
            ("message_handle",),
            "merge",
            m.Message,
            "Messages, incremental on date_updated (updated_at_gte, order_by=updatedAt asc); status changes "
            "after sending bump date_updated, so edited messages are merged again.",
            cursor="date_updated",
            derived=(("conversation_id", "text", False),),
        ),
        Stream(
            "conversations",
            ("conversation_id",),
            "merge",
            m.Conversation,
            "One row per thread derived from messages: a 1:1 thread is (sendblue_number, number), a group "
            "thread is group_id; counts, first and last message times, last message preview.",
        ),
    )
}

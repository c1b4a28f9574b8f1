"""Chatwoot constants and the endpoint/stream table the client and the dlt resources are built from.

Every quirk handled here names the server behaviour that forces it (see ../shared/api/chatwoot.md in the
project notes: "the notes", sections in brackets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

API_NAME = "Chatwoot"
DEFAULT_BASE_URL = "https://app.chatwoot.com"
ACCOUNT_PATH = "/api/v1/accounts/{account_id}"

# Defaults of the tunable settings (ChatwootSettings, `.dlt/config.toml` [sources.chatwoot]).
# rack-attack throttles per client IP in fixed one-minute buckets aligned to epoch time [§10]. The code
# default is 3000/min, `.env.example` suggests 300 and Chatwoot Cloud's real setting is unpublished, so by
# default the client learns it ("auto"): it starts at 120/min (2 requests a second, under any of them),
# lets more through while no 429 comes back, and settles just under what a window allowed.
DEFAULT_RATE_LIMIT_PER_MINUTE: Literal["auto"] = "auto"
AUTO_RATE_LIMIT_START = 120
DEFAULT_RATE_LIMIT_WINDOW_SECONDS = 60.0
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RETRIES = 6
DEFAULT_RETRY_BACKOFF_SECONDS = 0.5
# Safety valve against a server that never ends a walk: pages per listing (contacts, conversations,
# one label) and per conversation's message history.
DEFAULT_PAGE_CAP = 100_000
DEFAULT_CONTACT_LABELS_MODE = "exact"
# `updated_within` is relative to the server's clock and the window is measured on ours: the margin
# absorbs request latency and a run that started while an earlier one was still writing.
DEFAULT_CONVERSATIONS_SAFETY_MARGIN_SECONDS = 300
# `updated_within` answers in one unpaginated response [§7]; past three days the full walk is safer.
DEFAULT_CONVERSATIONS_MAX_UPDATED_WITHIN_SECONDS = 3 * 24 * 3600

# Fixed server-side page sizes; there is no per_page parameter anywhere [§2].
CONTACTS_PAGE_SIZE = 15  # RESULTS_PER_PAGE in contacts_controller
MESSAGES_AFTER_PAGE_SIZE = 100  # MessageFinder: `after=ID` returns up to 100 messages
# Conversations: 25 by default but CONVERSATION_RESULTS_PER_PAGE changes it on self-hosted instances, so
# the walk learns the size from the first page instead of using a constant [§6].

# The `is_present` condition on `labels` that finds every contact carrying any label, account label or not.
LABELLED_CONTACTS_FILTER: list[dict[str, Any]] = [
    {"attribute_key": "labels", "filter_operator": "is_present", "values": [], "query_operator": None}
]


@dataclass(frozen=True)
class Endpoint:
    """One read endpoint: where it lives, how it pages, where its rows are and the params it always needs."""

    path: str  # under ACCOUNT_PATH
    paging: str  # "count" (page + meta.count), "short_page" (page until a short page), "after_id", "none"
    data_path: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)
    method: str = "GET"


ENDPOINTS: dict[str, Endpoint] = {
    # No default ORDER BY without `sort`, so offset paging would be nondeterministic; created_at is immutable
    # (ties have no tie-break: dedupe on id). contact_inboxes are not needed and cost a join [§2, §6].
    "contacts": Endpoint(
        "/contacts", "count", ("payload",), {"sort": "created_at", "include_contact_inboxes": "false"}
    ),
    "contacts_filter": Endpoint(
        "/contacts/filter",
        "count",
        ("payload",),
        {"sort": "created_at", "include_contact_inboxes": "false"},
        method="POST",
    ),
    "contacts_search": Endpoint(
        "/contacts/search", "has_more", ("payload",), {"include_contact_inboxes": "false"}
    ),
    "contact": Endpoint("/contacts/{id}", "none", ("payload",)),
    "contact_labels": Endpoint("/contacts/{id}/labels", "none", ("payload",)),
    "labels": Endpoint("/labels", "none", ("payload",)),
    "inboxes": Endpoint("/inboxes", "none", ("payload",)),
    # status defaults to "open" server-side; "all" disables the filter. The default sort
    # (last_activity_at_desc) reshuffles while paging; created_at_asc appends new rows at the tail [§2, §6].
    "conversations": Endpoint(
        "/conversations", "short_page", ("data", "payload"), {"status": "all", "sort_by": "created_at_asc"}
    ),
    # With updated_within the server skips pagination and returns every match in one response [§7].
    "conversations_updated_within": Endpoint(
        "/conversations", "none", ("data", "payload"), {"status": "all", "sort_by": "created_at_asc"}
    ),
    # Cursors are message ids: after=ID gives up to 100 messages with id > ID, ascending [§6].
    "messages": Endpoint("/conversations/{id}/messages", "after_id", ("payload",)),
}


# ------------------------------------------------------------------------------------------ streams
# The loaded tables (SPEC §5). Column types are dlt data types; they are both the resources' column hints
# and what `discover()` reports.

TIMESTAMP = "timestamp"

CONTACT_COLUMNS: dict[str, str] = {
    "id": "bigint",
    "name": "text",
    "email": "text",
    "phone_number": "text",
    "identifier": "text",
    "blocked": "bool",
    "thumbnail": "text",
    "availability_status": "text",
    "company_id": "bigint",
    "additional_attributes": "json",
    "custom_attributes": "json",
    "created_at": TIMESTAMP,
    "last_activity_at": TIMESTAMP,
}

CONTACT_LABEL_COLUMNS: dict[str, str] = {"contact_id": "bigint", "label": "text"}

LABEL_COLUMNS: dict[str, str] = {
    "id": "bigint",
    "title": "text",
    "description": "text",
    "color": "text",
    "show_on_sidebar": "bool",
}

INBOX_COLUMNS: dict[str, str] = {
    "id": "bigint",
    "name": "text",
    "channel_type": "text",
    "channel_id": "bigint",
    "avatar_url": "text",
    "website_url": "text",
    "phone_number": "text",
    "enable_auto_assignment": "bool",
    "greeting_enabled": "bool",
    "working_hours_enabled": "bool",
    "enable_email_collect": "bool",
    "csat_survey_enabled": "bool",
    "allow_messages_after_resolved": "bool",
    "timezone": "text",
}

CONVERSATION_COLUMNS: dict[str, str] = {
    "id": "bigint",
    "uuid": "text",
    "account_id": "bigint",
    "inbox_id": "bigint",
    "contact_id": "bigint",
    "status": "text",
    "priority": "text",
    "channel": "text",
    "assignee_id": "bigint",
    "assignee_type": "text",
    "team_id": "bigint",
    "labels": "json",
    "additional_attributes": "json",
    "custom_attributes": "json",
    "can_reply": "bool",
    "muted": "bool",
    "unread_count": "bigint",
    "sla_policy_id": "bigint",
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
    "last_activity_at": TIMESTAMP,
    "agent_last_seen_at": TIMESTAMP,
    "assignee_last_seen_at": TIMESTAMP,
    "contact_last_seen_at": TIMESTAMP,
    "first_reply_created_at": TIMESTAMP,
    "waiting_since": TIMESTAMP,
    "snoozed_until": TIMESTAMP,
}

MESSAGE_COLUMNS: dict[str, str] = {
    "id": "bigint",
    "conversation_id": "bigint",
    "inbox_id": "bigint",
    "content": "text",
    "message_type": "bigint",
    "message_type_name": "text",
    "content_type": "text",
    "status": "text",
    "private": "bool",
    "source_id": "text",
    "sender_id": "bigint",
    "sender_type": "text",
    "content_attributes": "json",
    "attachments": "json",
    "created_at": TIMESTAMP,
}

# message_type is an integer enum in REST responses [§5].
MESSAGE_TYPE_NAMES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}

# Contacts that vanished upstream are deleted from the table: dlt deletes rows whose hard_delete column is true.
DELETED_COLUMN = "_deleted"


@dataclass(frozen=True)
class Stream:
    table: str
    primary_key: tuple[str, ...]
    write_disposition: str
    columns: dict[str, str]
    incremental_cursor: str | None = None
    description: str = ""

    def column_hints(self) -> dict[str, dict[str, Any]]:
        hints: dict[str, dict[str, Any]] = {
            name: {"data_type": data_type, "nullable": name not in self.primary_key}
            for name, data_type in self.columns.items()
        }
        if self.table == "contacts":
            hints[DELETED_COLUMN] = {"data_type": "bool", "nullable": True, "hard_delete": True}
        return hints


STREAMS: dict[str, Stream] = {
    "contacts": Stream(
        "contacts",
        ("id",),
        "merge",
        CONTACT_COLUMNS,
        description="Every listed contact, full walk each run; contacts deleted upstream are removed.",
    ),
    "contact_labels": Stream(
        "contact_labels",
        ("contact_id", "label"),
        "replace",
        CONTACT_LABEL_COLUMNS,
        description="One row per label on a contact, rebuilt each run (contact_labels_mode exact or fast).",
    ),
    "labels": Stream("labels", ("id",), "replace", LABEL_COLUMNS, description="Account labels."),
    "inboxes": Stream(
        "inboxes", ("id",), "replace", INBOX_COLUMNS, description="Inboxes (no channel secrets)."
    ),
    "conversations": Stream(
        "conversations",
        ("id",),
        "merge",
        CONVERSATION_COLUMNS,
        incremental_cursor="updated_at",
        description="Conversations of every status; later runs ask updated_within since the last run.",
    ),
    "messages": Stream(
        "messages",
        ("id",),
        "merge",
        MESSAGE_COLUMNS,
        incremental_cursor="id (per conversation)",
        description="Messages of new or changed conversations, from after=<highest id loaded> per conversation.",
    ),
}

"""Chatwoot's endpoint table and stream table: the single description the client and the resources use.

Each quirk handled here names the server behaviour that forces it (Chatwoot 4.x, app/controllers and
app/finders of the Rails code).
"""

from __future__ import annotations

from typing import Any

from sources.common.paging import Endpoint
from sources.common.streams import Stream

from . import models as m

ACCOUNT_PATH = "/api/v1/accounts/{account_id}"
# Fixed server-side page size of `after=ID` (MessageFinder returns up to 100); contacts pages hold 15
# (RESULTS_PER_PAGE) and conversations 25 unless CONVERSATION_RESULTS_PER_PAGE changes it, so the numbered
# walks learn the page size from the first page instead.
MESSAGES_AFTER_PAGE_SIZE = 100

# Paths are under ACCOUNT_PATH. Every request passes one limiter: rack-attack counts per client IP.
_CONTACT_LIST = {"sort": "created_at", "include_contact_inboxes": "false"}
ENDPOINTS: dict[str, Endpoint] = {
    # Without `sort` the contacts query has no ORDER BY, so offset pages would be nondeterministic;
    # created_at is immutable (ties have no tie-break: the walk dedupes on id). contact_inboxes cost a join.
    "contacts": Endpoint("/contacts", "page+count", ("payload",), _CONTACT_LIST),
    "contacts_filter": Endpoint("/contacts/filter", "page+count", ("payload",), _CONTACT_LIST, method="POST"),
    # Search (throttled to 100/min per account: lookups only) says has_more since v4.11; older servers put
    # the total in count and end on a short page of 15.
    "contacts_search": Endpoint(
        "/contacts/search", "short page", ("payload",), {"include_contact_inboxes": "false"}, page_size=15
    ),
    "contact": Endpoint("/contacts/{id}", data_path=("payload",)),
    "contact_labels": Endpoint("/contacts/{id}/labels", data_path=("payload",), key=None),
    "labels": Endpoint("/labels", data_path=("payload",)),
    "inboxes": Endpoint("/inboxes", data_path=("payload",)),
    # agents and teams answer a bare JSON array (agents/index and teams/index render `json.array!`)
    "agents": Endpoint("/agents"),
    "teams": Endpoint("/teams"),
    # status defaults to "open" server-side; "all" disables the filter. The default sort
    # (last_activity_at_desc) reshuffles while paging; created_at_asc appends new rows at the tail.
    "conversations": Endpoint(
        "/conversations", "short page", ("data", "payload"), {"status": "all", "sort_by": "created_at_asc"}
    ),
    # With updated_within the conversation finder skips pagination and returns every match at once.
    "conversations_updated_within": Endpoint(
        "/conversations", "single", ("data", "payload"), {"status": "all", "sort_by": "created_at_asc"}
    ),
    # Message cursors are ids: after=ID gives up to 100 messages with id > ID, ascending.
    "messages": Endpoint(
        "/conversations/{id}/messages", "after id", ("payload",), cursor="id", page_size=MESSAGES_AFTER_PAGE_SIZE
    ),
}

STREAMS: dict[str, Stream] = {
    s.table: s
    for s in (
        Stream(
            "contacts",
            ("id",),
            "merge",
            m.Contact,
            "Every listed contact, full walk each run; contacts deleted upstream are removed.",
            deletes=True,
        ),
        Stream(
            "contact_labels",
            ("contact_id", "label"),
            "replace",
            m.ContactLabel,
            "One row per label on a contact, rebuilt each run (contact_labels_mode exact or fast).",
        ),
        Stream("labels", ("id",), "replace", m.Label, "Account labels."),
        Stream("inboxes", ("id",), "replace", m.Inbox, "Inboxes (no channel secrets)."),
        Stream("agents", ("id",), "replace", m.Agent, "Agents (users) of the account."),
        Stream("teams", ("id",), "replace", m.Team, "Teams of the account."),
        Stream(
            "conversations",
            ("id",),
            "merge",
            m.Conversation,
            "Conversations of every status; later runs ask updated_within since the last run.",
            cursor="updated_at",
            dropped=("meta",),
            derived=(
                ("contact_id", "bigint", True),
                ("assignee_id", "bigint", True),
                ("assignee_type", "text", True),
                ("team_id", "bigint", True),
                ("channel", "text", True),
            ),
        ),
        Stream(
            "messages",
            ("id",),
            "merge",
            m.Message,
            "Messages of new or changed conversations, from after=<highest id loaded> per conversation.",
            cursor="id (per conversation)",
            dropped=("sender",),
            derived=(("message_type_name", "text", True), ("sender_id", "bigint", True)),
        ),
    )
}

# Tables read with one unpaginated request and loaded as the model's fields: adding one is an
# ENDPOINTS entry of the same name, a STREAMS entry and its model.
SIMPLE_LISTS = ("labels", "inboxes", "agents", "teams")

# The `is_present` condition on `labels` that finds every contact carrying any label, account label or not.
LABELLED_CONTACTS_FILTER: list[dict[str, Any]] = [
    {"attribute_key": "labels", "filter_operator": "is_present", "values": [], "query_operator": None}
]

"""A faithful local simulator of the Sendblue REST API (shared/api/sendblue.md, sendblue_endpoints.md).

    app = create_app(size="small", seed=0, key_casing="snake", **overrides)
    state = app.state.sandbox          # a SendblueSandbox

Credentials: headers `sb-api-key-id: sandbox-key-id` and `sb-api-secret-key: sandbox-secret-key`
(`API_KEY_ID`, `API_SECRET_KEY`).

Endpoints: `GET|POST|DELETE /api/v2/contacts`, `GET /api/v2/contacts/count`,
`GET|PUT|DELETE /api/v2/contacts/{phone}` (phone as `%2B1...` or `+1...`), `POST /api/v2/contacts/bulk`,
`POST /api/v2/contacts/opt-out`, `GET /api/v2/messages`, `GET /api/v2/messages/{message_handle}`,
`GET /api/v2/groups/{group_id}`; the admin routes of `sandbox.common` under `/_sandbox/`.

Sizes: small (300 contacts, 2 lines, 6 groups, 2,000 messages), medium (12,000 contacts: more than the
~11,000 one ordering can reach; 3 lines, 60 groups, 50,000 messages), large (50,000 contacts, 5 lines,
200 groups, 250,000 messages).

Overrides (keywords of `create_app`):
    contacts, messages, lines, groups   counts instead of the size's
    tie_fraction=0.35                   share of contacts created in bursts sharing one created_at
    max_burst                           largest such burst (small 30, else 150)
    anchor="2026-06-30T18:00:00.000Z"   where the generated history ends
    key_casing="snake" | "camel"        contact keys served (camel: firstName, lastName, companyName,
                                        sendblueNumber, assignedToEmail, customVariables, optOut)
    messages_rate_limit=100, messages_rate_window_seconds=10
                                        sliding window on /api/v2/messages (budget "messages")
    contacts_rate_limit=0, contacts_rate_window_seconds=10
                                        sliding window on /api/v2/contacts (budget "contacts"; 0 = off)
    retry_after_header=False            send Retry-After with 429 (unknown whether Sendblue does)
    unstable_ties=False                 rows tied on the contacts sort key come back in an order that
                                        depends on limit+offset, as PostgreSQL's top-N sort does
    bulk_max=1000                       largest bulk-create batch
    any `sandbox.common.Knobs` field    latency_ms, jitter_ms, error_500_rate, error_502_rate, ...

Ground truth on the state (hold `state.lock` while reading; treat it as read-only):
    contacts: dict[phone, dict]         snake_case contact objects exactly as served in snake casing
                                        (optional keys may be missing or None)
    contact_tags() -> set[(phone, tag)]
    contact_custom_variables() -> set[(phone, label, value)]
    opted_out_numbers: set[phone]       the recipient opt-out records (contacts or not)
    messages: dict[message_handle, dict] message objects exactly as served
    message_created: dict[handle, iso]  creation time (orders `order_by=createdAt`, filters
                                        created_at_*); not a field of the served object
    conversations() -> dict             one entry per thread: key (sendblue_number, number) for 1:1,
                                        group_id for groups; kind, sendblue_number, number, group_id,
                                        group_display_name, participants, messages, inbound, outbound,
                                        first_message_at, last_message_at (by date_sent),
                                        last_message_handle, last_message_preview
    groups: dict[group_id, dict]        group_name, created_at, participants, sendblue_number
    lines: list[phone]; seats; account_email
    truth_summary()                     counts (also at GET /_sandbox/truth)
    mutate(new_contacts=, edited_contacts=, deleted_contacts=, new_messages=, edited_messages=,
           seed=) -> {new_contacts, edited_contacts, deleted_contacts: [phones], new_messages,
           edited_messages: [handles], new_threads: [[line, number]], new_groups: [group_id]}
                                        no counts: 5/5/2 contacts, 40 new and 20 edited messages

Behaviour chosen where the notes leave it open:
- 401 `{"status":"ERROR","message":"Invalid API credentials"}` for missing or wrong keys; the Bearer
  token alternative is not simulated.
- Contacts list: `limit` above 1000 is clamped, below 1 is a 400; `offset` above 10000 is a 400
  `{"status":"ERROR","message":...}`; unknown `order_by`/`order_direction` are 400s. Ties on the sort key
  keep insertion order ascending and the reverse descending (a B-tree scan), NULL names sort last
  ascending and first descending (PostgreSQL). Empty query values count as absent. `phone_number` is an
  exact match, so an unencoded `+` (read as a space) matches nothing.
- Phones in bodies must be E.164 with a leading `+` (spaces, dashes, dots and brackets are tolerated and
  normalised); anything else is 400 "Invalid phone number". Path phones match exactly.
- Create: `company_name` is accepted although the schema omits it; `opt_out` is ignored (not in the
  create schema); a new contact takes its opt-out state from the recipient record. `update_if_exists`
  applies the PUT semantics. Answers 200.
- PUT: `custom_variables` merged; a null value removes that label, "" stores an empty string; `tags`
  replace the list; unknown keys are ignored.
- Bulk create: at most 1000 per request (400 above); rows with a missing or invalid phone, wrong field
  types, a phone that already exists or one repeated in the batch are skipped and not returned; the
  pre-2025-12 keys firstName/lastName/company are accepted; every contact of one request shares one
  created_at.
- Bulk delete counts only phones that existed. Opt-out works for any valid number (the record is the
  recipient's), answering the normalised number.
- Messages: `limit` above 100 is clamped, below 1 is a 400; `order_by` accepts only createdAt, updatedAt
  and sentAt (400 otherwise, including the events docs' `updated_at`); `number` matches from_number or
  to_number; unknown enum values in filters simply match nothing. An outbound group message has
  `to_number` and `number` "" (no single counterpart); 1:1 messages carry `group_id` and
  `group_display_name` as "" or null.
- 429 `{"status":"ERROR","message":"Too Many Requests"}`, Retry-After only with retry_after_header;
  5xx `{"status":"ERROR","message":"Internal server error"}`; 404 "Contact not found" with status
  "error" (lower case, as documented), "Message not found" / "Group not found" with "ERROR".
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from sandbox.common import build_app
from sandbox.sendblue.app import API_KEY_ID, API_SECRET_KEY, routes
from sandbox.sendblue.state import SendblueSandbox

__all__ = ["API_KEY_ID", "API_SECRET_KEY", "SendblueSandbox", "create_app"]


def create_app(size: str = "small", seed: int = 0, key_casing: str = "snake", **overrides: Any) -> ASGIApp:
    """A Sendblue simulator with freshly generated data; `app.state.sandbox` is its `SendblueSandbox`."""
    from sandbox.sendblue import webhooks

    state = SendblueSandbox(size, seed, key_casing, **overrides)
    return build_app(state, [*routes(), *webhooks.routes(state)])

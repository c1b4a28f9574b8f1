"""Chatwoot API simulator: one account under `/api/v1/accounts/1/...`, faithful to shared/api/chatwoot.md.

    app = create_app(size="small", seed=0, page_size=25, rate_limit_per_minute=3000)
    state = app.state.sandbox          # a ChatwootSandbox

Credentials: header `api_access_token: sandbox-chatwoot-token` (`API_TOKEN`), account `ACCOUNT_ID = 1`.
Account 2 exists but the token's user is not a member (401); any other account id is unknown (404).

Quirks it keeps (each has a test in tests/sandbox/test_chatwoot_sandbox.py):
contacts 15 per page with `meta.current_page` echoed as given (a string from a query string); no order
at all without `sort` (each page is a fresh arbitrary draw); `sort=created_at` ties come back in physical
row order, not by id; `last_activity_at` omitted when null; contacts without email, phone_number and
identifier hidden from list/filter/search; `labels[]` matches ANY label; contact label POST replaces the
set and accepts labels the account doesn't have; conversations default to `status=open`, page size
configurable, `updated_within` unpaginated, float `updated_at`, ISO `snoozed_until`; messages paged by
message-id cursors; 429 `text/plain` "Retry later" without Retry-After; faults render Rails' HTML page.

Ground truth on the state (hold `state.lock` while iterating the live dicts from another thread):
- `contacts` -> {id: contact dict} (all, invisible ones too); `visible_contacts()` -> list of those the
  list endpoints return; `invisible_contact_ids()` -> set.
- `contact_labels(visible_only=True)` -> {(contact_id, label)}; `labels_of(contact_id)` -> [label].
- `account_labels()` -> [label dict]; `account_label_titles()` -> {title}.
- `inboxes` -> {id: inbox}; `agents` -> {id: agent}.
- `conversations` -> {display_id: conversation dict} (`contact_id`, `status`, `labels`, `updated_at` float, ...).
- `messages_by_conversation` -> {display_id: [MessageRow]} ascending id; `messages()` iterates all,
  `message_count()`.
- `truth_summary()` -> counts (also at GET /_sandbox/truth).
- `data_changed()`: call it after editing those dicts directly (it drops cached orderings and results).
- `mutate(new_contacts=3, edited_contacts=5, deleted_contacts=2, new_conversations=2,
  edited_conversations=4, new_messages=10, seed=None)` -> {"new_contacts": [ids], "edited_contacts": [...],
  "deleted_contacts": [...], "new_conversations": [...], "edited_conversations": [...],
  "new_messages": [message ids], "touched_conversations": [display ids], "now": epoch}.
- `page_size` (conversations per page) and the rate budgets `per_minute`, `contact_search` and
  `conversations_meta` (`state.budget(name)`) can be changed while it runs (also via /_sandbox/knobs).

create_app overrides: data size `contacts`, `invisible_contacts`, `labelled_contacts`, `conversations`,
`messages`, `online_contacts`; `now` (epoch the generated data ends before; default the start of today,
UTC); `page_size`; `rate_limit_per_minute`, `rate_limit_window_seconds`, `search_rate_limit_per_minute`,
`meta_rate_limit_per_minute`; and any `Knobs` field (`latency_ms`, `error_500_rate`, `stall_seconds`, ...).
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from starlette.types import ASGIApp

from sandbox.chatwoot.app import api_routes
from sandbox.chatwoot.data import (
    ACCOUNT_ID,
    API_TOKEN,
    OTHER_ACCOUNT_ID,
    SIZE_SPECS,
    default_anchor,
    generate,
    spec_for,
)
from sandbox.chatwoot.state import ChatwootSandbox
from sandbox.common import Knobs, RateBudget, build_app

DATA_OVERRIDES = {
    "contacts",
    "invisible_contacts",
    "labelled_contacts",
    "conversations",
    "messages",
    "online_contacts",
}
APP_OVERRIDES = {
    "now",
    "page_size",
    "rate_limit_per_minute",
    "rate_limit_window_seconds",
    "search_rate_limit_per_minute",
    "meta_rate_limit_per_minute",
}


def create_sandbox(size: str = "small", seed: int = 0, **overrides: Any) -> ChatwootSandbox:
    knob_names = {f.name for f in fields(Knobs)}
    unknown = set(overrides) - DATA_OVERRIDES - APP_OVERRIDES - knob_names
    if unknown:
        raise TypeError(f"unknown Chatwoot sandbox overrides: {sorted(unknown)}")
    anchor = int(overrides["now"]) if overrides.get("now") is not None else default_anchor(time.time())
    data = generate(spec_for(size, overrides), seed, anchor)
    state = ChatwootSandbox(data, seed=seed, page_size=int(overrides.get("page_size", 25)))
    window = float(overrides.get("rate_limit_window_seconds", 60))
    state.budgets = [
        # rack-attack's req/ip throttle: fixed buckets aligned to epoch time, over every API path
        RateBudget(
            "per_minute", int(overrides.get("rate_limit_per_minute", 3000)), window, "/api/", aligned=True
        ),
        RateBudget(
            "contact_search",
            int(overrides.get("search_rate_limit_per_minute", 100)),
            window,
            "/contacts/search",
        ),
        RateBudget(
            "conversations_meta",
            int(overrides.get("meta_rate_limit_per_minute", 30)),
            window,
            "/conversations/meta",
        ),
    ]
    state.knobs.update({k: v for k, v in overrides.items() if k in knob_names})
    return state


def create_app(size: str = "small", seed: int = 0, **overrides: Any) -> ASGIApp:
    """The Chatwoot simulator as an ASGI app; `app.state.sandbox` is its `ChatwootSandbox`."""
    state = create_sandbox(size, seed, **overrides)
    from sandbox.chatwoot import webhooks

    return build_app(state, [*api_routes(state), *webhooks.routes(state)])


__all__ = [
    "ACCOUNT_ID",
    "API_TOKEN",
    "OTHER_ACCOUNT_ID",
    "SIZE_SPECS",
    "ChatwootSandbox",
    "create_app",
    "create_sandbox",
]

"""The Chatwoot source loaded into DuckDB against the sandbox over HTTP: full load equals the ground truth,
the second run only asks what the incremental design needs, the third brings exactly the mutation."""

from __future__ import annotations

import math
import time
from typing import Any

CONTACTS = "/contacts"
FILTER = "/contacts/filter"
CONTACT = "/contacts/{id}"
CONTACT_LABELS = "/contacts/{id}/labels"
CONVERSATIONS = "/conversations"
MESSAGES = "/conversations/{id}/messages"


def counts(state: Any) -> dict[str, int]:
    """Requests per 'METHOD /route' with the account prefix stripped."""
    prefix = "/api/v1/accounts/{account_id}"
    return {key.replace(prefix, ""): n for key, n in state.log.counts().items()}


ALL_TABLES = ("contacts", "contact_labels", "labels", "inboxes", "conversations", "messages")


def assert_tables_equal_truth(wh: Any, state: Any, tables: tuple[str, ...] = ALL_TABLES) -> None:
    with state.lock:
        visible = {c["id"]: c for c in state.visible_contacts()}
        label_pairs = state.contact_labels()
        conversations = {cid: dict(c) for cid, c in state.conversations.items()}
        messages = {(m.id, m.conversation_id) for m in state.messages()}
        account_labels = state.account_label_titles()
        inbox_ids = set(state.inboxes)

    if "contacts" in tables:
        assert_contacts_equal_truth(wh, visible)
    if "contact_labels" in tables:
        assert set(wh.rows("SELECT contact_id, label FROM chatwoot.contact_labels")) == label_pairs
    if "labels" in tables:
        assert {row[0] for row in wh.rows("SELECT title FROM chatwoot.labels")} == account_labels
    if "inboxes" in tables:
        assert wh.ids("inboxes") == inbox_ids
    if "conversations" in tables:
        assert_conversations_equal_truth(wh, conversations)
    if "messages" in tables:
        assert set(wh.rows("SELECT id, conversation_id FROM chatwoot.messages")) == messages
        assert wh.count("messages") == len(messages)


def assert_contacts_equal_truth(wh: Any, visible: dict[int, dict[str, Any]]) -> None:
    # every visible contact once, with its current attributes
    loaded = {
        row[0]: row[1:]
        for row in wh.rows(
            "SELECT id, name, email, phone_number, identifier, epoch(created_at), epoch(last_activity_at), "
            "custom_attributes FROM chatwoot.contacts"
        )
    }
    assert wh.count("contacts") == len(loaded)
    assert set(loaded) == set(visible)
    for cid, contact in visible.items():
        name, email, phone, identifier, created, last_activity, _custom = loaded[cid]
        assert (name, email, phone, identifier) == (
            contact["name"],
            contact["email"],
            contact["phone_number"],
            contact["identifier"],
        )
        assert created == contact["created_at"]
        # last_activity_at is omitted from the JSON when null: it must load as NULL, not fail or default
        assert last_activity == contact["last_activity_at"]


def assert_conversations_equal_truth(wh: Any, conversations: dict[int, dict[str, Any]]) -> None:
    # every conversation of every status, its contact from meta.sender and the float updated_at
    loaded_convs = {
        row[0]: row[1:]
        for row in wh.rows("SELECT id, status, contact_id, epoch(updated_at) FROM chatwoot.conversations")
    }
    assert set(loaded_convs) == set(conversations)
    for cid, conv in conversations.items():
        status, contact_id, updated = loaded_convs[cid]
        assert (status, contact_id) == (conv["status"], conv["contact_id"])
        assert abs(updated - conv["updated_at"]) < 1e-5


def test_full_load_equals_ground_truth(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=3)
    state = server.state
    with state.lock:
        assert any(c["last_activity_at"] is None for c in state.visible_contacts())  # the trap is present
        statuses = {c["status"] for c in state.conversations.values()}
    assert statuses == {"open", "resolved", "pending", "snoozed"}

    warehouse.load(settings_for(server.url))

    assert_tables_equal_truth(warehouse, state)
    # without sort the server has no ORDER BY and offset pages overlap and miss rows
    contact_requests = state.log.matching(route=CONTACTS, method="GET")
    assert contact_requests and all(r.param("sort") == "created_at" for r in contact_requests)
    # status defaults to open server-side
    assert all(r.param("status") == "all" for r in state.log.matching(route=CONVERSATIONS))
    # timestamps are UTC timestamps, JSON attributes stay JSON
    types = dict(
        warehouse.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'chatwoot' AND table_name = 'conversations'"
        )
    )
    assert types["updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["custom_attributes"] == "JSON" and types["labels"] == "JSON"


def test_second_run_adds_nothing_and_asks_only_for_changes(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=4)
    state = server.state
    settings = settings_for(server.url)
    warehouse.load(settings)
    before = {t: warehouse.count(t) for t in ("contacts", "contact_labels", "conversations", "messages")}
    with state.lock:
        visible = len(state.visible_contacts())
        labelled = len({cid for cid, _ in state.contact_labels()})
    state.log.clear()

    warehouse.load(settings)

    after = {t: warehouse.count(t) for t in before}
    assert after == before
    assert_tables_equal_truth(warehouse, state)
    got = counts(state)
    assert got == {
        # contacts have no change feed: a full walk, then the labelled ones' labels
        f"GET {CONTACTS}": math.ceil(visible / 15),
        f"POST {FILTER}": math.ceil(labelled / 15),
        f"GET {CONTACT_LABELS}": labelled,
        "GET /labels": 1,
        "GET /inboxes": 1,
        "GET /agents": 1,  # the two small tables issue 10 added, one request each
        "GET /teams": 1,
        # one updated_within request, and no message request since no conversation changed
        f"GET {CONVERSATIONS}": 1,
    }
    [listing] = state.log.matching(route=CONVERSATIONS)
    assert listing.param("updated_within") is not None and listing.param("page") is None
    assert not state.log.matching(route=MESSAGES)


def test_third_run_after_mutation_brings_exactly_the_changes(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=5)
    state = server.state
    settings = settings_for(server.url)
    warehouse.load(settings)
    highest_before = dict(warehouse.rows("SELECT conversation_id, max(id) FROM chatwoot.messages GROUP BY 1"))

    summary = state.mutate(
        new_contacts=4,
        edited_contacts=6,
        deleted_contacts=3,
        new_conversations=2,
        edited_conversations=4,
        new_messages=12,
        seed=11,
    )
    state.log.clear()
    warehouse.load(settings)

    assert_tables_equal_truth(warehouse, state)
    deleted = set(summary["deleted_contacts"])
    assert deleted and not deleted & warehouse.ids("contacts")
    assert set(summary["new_contacts"]) <= warehouse.ids("contacts")
    # deletions are confirmed one by one, and only for contacts missing from the walk
    assert {int(r.path.rsplit("/", 1)[1]) for r in state.log.matching(route=CONTACT)} == deleted
    # one updated_within listing; messages only for the touched conversations, from the highest id loaded
    assert len(state.log.matching(route=CONVERSATIONS)) == 1
    message_requests = state.log.matching(route=MESSAGES)
    asked = {int(r.path.split("/")[-2]): int(r.param("after") or -1) for r in message_requests}
    assert set(asked) == set(summary["touched_conversations"])
    assert len(message_requests) == len(asked)
    for conversation_id, after in asked.items():
        assert after == highest_before.get(conversation_id, 0)
    # state remembers the highest message id per conversation
    synced = warehouse.state("messages")["conversations"]
    loaded_max = dict(warehouse.rows("SELECT conversation_id, max(id) FROM chatwoot.messages GROUP BY 1"))
    assert {int(k): int(v[1]) for k, v in synced.items() if int(k) in loaded_max} == loaded_max


def test_window_too_large_falls_back_to_the_full_walk(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=6, page_size=10)
    state = server.state
    settings = settings_for(
        server.url, conversations_safety_margin_seconds=120, conversations_max_updated_within_seconds=60
    )
    warehouse.load(settings, resources=("conversations",))
    state.mutate(
        new_conversations=1,
        edited_conversations=2,
        new_messages=0,
        new_contacts=0,
        edited_contacts=0,
        deleted_contacts=0,
        seed=1,
    )
    state.log.clear()

    warehouse.load(settings, resources=("conversations",))

    listings = state.log.matching(route=CONVERSATIONS)
    assert all(r.param("updated_within") is None for r in listings)
    assert len(listings) == len(state.conversations) // 10 + 1
    assert warehouse.ids("conversations") == set(state.conversations)
    assert warehouse.state("conversations")["last_listing"] == "full"


def test_loading_messages_alone_does_not_make_conversations_skip_changes(
    chatwoot_server, warehouse, settings_for
):
    """The conversations listing feeds both tables; each keeps its own window start, so a run that loads
    only `messages` leaves the conversations window where the last conversations load put it."""
    server = chatwoot_server("small", seed=7)
    state = server.state
    settings = settings_for(server.url, conversations_safety_margin_seconds=0)
    warehouse.load(settings)
    summary = state.mutate(
        new_contacts=0,
        edited_contacts=0,
        deleted_contacts=0,
        new_conversations=1,
        edited_conversations=5,
        new_messages=6,
        seed=3,
    )
    # the edits must lie more than a second (the window's rounding) before the messages-only run, so
    # a window measured from that run would miss them
    time.sleep(1.2)

    warehouse.load(settings, resources=("messages",))
    assert warehouse.ids("messages") == {m.id for m in state.messages()}
    stale = dict(warehouse.rows("SELECT id, epoch(updated_at) FROM chatwoot.conversations"))
    assert any(
        stale.get(cid) != state.conversations[cid]["updated_at"] for cid in summary["touched_conversations"]
    )

    state.log.clear()
    warehouse.load(settings, resources=("conversations",))
    [listing] = state.log.matching(route=CONVERSATIONS)
    assert listing.param("updated_within") is not None
    assert_tables_equal_truth(warehouse, state, tables=("conversations", "messages"))


def test_agents_and_teams_load_from_their_table_entries(chatwoot_server, warehouse, settings_for):
    """The two tables added as one endpoint entry + one stream entry each: GET /agents and GET /teams answer
    bare arrays; one request each, the rows as the API lists them, unknown fields dropped."""
    server = chatwoot_server("small", seed=6)
    server.state.log.clear()
    warehouse.load(settings_for(server.url), resources=("agents", "teams"))
    with server.state.lock:
        truth = {a["id"]: (a["email"], a["role"]) for a in server.state.data.agents.values()}
    got = {row[0]: (row[1], row[2]) for row in warehouse.rows("SELECT id, email, role FROM chatwoot.agents")}
    assert got == truth and len(got) == 4
    teams = warehouse.rows("SELECT id, name, is_member, account_id FROM chatwoot.teams ORDER BY id")
    assert teams == [(1, "support", True, 1), (2, "success", False, 1)]
    assert counts(server.state) == {"GET /agents": 1, "GET /teams": 1}

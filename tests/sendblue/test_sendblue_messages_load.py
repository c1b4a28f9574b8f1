"""Messages (incremental on date_updated) and conversations (one row per thread) against the ground truth,
across a first run, a run with no change and a run after the simulator's users changed things."""

from __future__ import annotations

from typing import Any

MESSAGES = "/api/v2/messages"


def test_first_run_then_no_change_then_a_mutation(sandbox_factory: Any, warehouse: Any, truth: Any) -> None:
    sandbox = sandbox_factory("small", seed=1)
    state = sandbox.state
    source = sandbox.source

    first = warehouse.run(source().with_resources("messages", "conversations"))
    assert first["messages"] == len(state.messages) == 2_000
    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)
    walk = sandbox.requests(MESSAGES)
    # one pass over the list feeds both tables: 100 per page, plus the threads whose last two messages were
    # sent in the same millisecond (re-read in creation order)
    assert all(r.param("order_by") == "updatedAt" for r in walk[:20])
    assert len(walk) <= 2_000 // 100 + 1 + 10

    state.log.clear()
    second = warehouse.run(source().with_resources("messages", "conversations"))
    assert second.get("messages", 0) == 0 and second.get("conversations", 0) == 0
    asked = sandbox.requests(MESSAGES)
    assert len(asked) == 1  # one look past the cursor, no thread re-read
    assert asked[0].param("updated_at_gte") == state.truth_summary()["max_date_updated"]

    change = state.mutate(new_contacts=2, new_messages=40, edited_messages=20, seed=7)
    touched = {
        (m["group_id"] if m["message_type"] == "group" else f"{m['sendblue_number']}:{m['number']}")
        for h in change["new_messages"] + change["edited_messages"]
        for m in [state.messages[h]]
    }
    state.log.clear()
    third = warehouse.run(source().with_resources("messages", "conversations"))

    assert third["messages"] == len(set(change["new_messages"]) | set(change["edited_messages"])) == 60
    assert third["conversations"] == len(touched)
    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)
    # the touched threads are rebuilt from the warehouse: no thread is re-read from the API
    asked = sandbox.requests(MESSAGES)
    assert not [r for r in asked if r.param("number") or r.param("group_id")]
    assert len(asked) <= 1 + 2


def test_conversations_alone_and_after_messages_ran_alone(
    sandbox_factory: Any, warehouse: Any, truth: Any
) -> None:
    """When conversations cannot ride on the messages walk, it walks the messages itself and stays right."""
    sandbox = sandbox_factory("small", seed=4, messages=600)
    state = sandbox.state
    warehouse.run(sandbox.source().with_resources("conversations"))
    truth.conversations(sandbox, warehouse)
    assert warehouse.rows("conversations")
    state.mutate(new_messages=15, edited_messages=5, seed=1)
    warehouse.run(sandbox.source().with_resources("messages"))  # messages moves ahead alone
    state.mutate(new_messages=10, edited_messages=5, seed=2)
    warehouse.run(sandbox.source().with_resources("messages", "conversations"))
    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)


def test_the_messages_rate_limit_is_never_exceeded(served_factory: Any, warehouse: Any, truth: Any) -> None:
    """A budget of 10 requests per second on the simulator and the same on the client: a first load (whose
    tie re-reads run four at a time), then an incremental one, never meet a 429."""
    sandbox, server = served_factory("small", seed=6, messages=300, messages_rate_limit=10,
                                     messages_rate_window_seconds=1.0)  # fmt: skip
    state = sandbox.state

    def source() -> Any:
        settings = sandbox.settings(
            base_url=server.url,
            messages_rate_limit=10,
            messages_rate_window_seconds=1.0,
            messages_page_size=10,
        )
        from sources.sendblue import sendblue_source

        return sendblue_source(settings=settings).with_resources("messages", "conversations")

    warehouse.run(source())
    state.mutate(new_messages=25, edited_messages=10, seed=3)
    warehouse.run(source())

    listed = state.log.matching(route=MESSAGES)
    assert len(listed) > 30  # unthrottled, these would far exceed 10 in a second
    # the simulator's own sliding budget is the judge (a count over the log's timestamps, taken a moment
    # after the budget's clock, can see 11 on a loaded machine when the server saw 10)
    assert state.log.status_counts().get(429, 0) == 0
    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)


def test_bursts_of_server_errors_are_survived(sandbox_factory: Any, warehouse: Any, truth: Any) -> None:
    sandbox = sandbox_factory("small", seed=9, messages=500)
    state = sandbox.state
    state.schedule("500", MESSAGES, count=3)
    state.schedule("502", "/api/v2/contacts", count=2)
    state.schedule("truncate", MESSAGES, count=1)
    state.schedule("429", "/api/v2/contacts", count=1)

    warehouse.run(sandbox.source())

    statuses = state.log.status_counts()
    assert statuses.get(500) == 3 and statuses.get(502) == 2 and statuses.get(429) == 1
    assert not state.scheduled  # every fault was served
    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)
    assert len(warehouse.rows("contacts")) == len(state.contacts)

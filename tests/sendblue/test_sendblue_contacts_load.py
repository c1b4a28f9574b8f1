"""Contacts and contact_tags loaded into DuckDB equal the simulator's ground truth.

The contacts list stops at offset 10,000 (about 11,000 rows per ordering) and bursts of contacts share one
created_at, so these sandboxes hold more than 11,000 contacts with ties placed across page and window edges.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from sources.sendblue.endpoints import CONTACTS_OFFSET_CAP


def windows_started_inside_ties(sandbox: Any) -> int:
    """How many created_at_gte windows began at a timestamp that several contacts share."""
    with sandbox.state.lock:
        per_stamp = Counter(c["created_at"] for c in sandbox.state.contacts.values())
    starts = [r.param("created_at_gte") for r in sandbox.requests("/api/v2/contacts")]
    return sum(1 for s in starts if s and per_stamp.get(s, 0) > 1)


@pytest.mark.parametrize("key_casing", ["snake", "camel"])
def test_full_load_of_more_than_11000_contacts_equals_truth(
    sandbox_factory: Any, warehouse: Any, truth: Any, key_casing: str
) -> None:
    # bursts up to 1,500 contacts: bigger than a 1,000-row page, so some windows page inside one tie group
    sandbox = sandbox_factory(
        "medium",
        seed=5,
        key_casing=key_casing,
        contacts=11_200,
        messages=0,
        tie_fraction=0.5,
        max_burst=1_500,
    )
    # contact_tags once (its key is the same in both casings), contacts in both
    resources = ("contacts", "contact_tags") if key_casing == "snake" else ("contacts",)
    counts = warehouse.run(sandbox.source().with_resources(*resources))

    assert counts["contacts"] == 11_200
    truth.contacts(sandbox, warehouse, tags=key_casing == "snake")
    listed = sandbox.requests("/api/v2/contacts")
    assert all(int(r.param("offset") or 0) <= CONTACTS_OFFSET_CAP for r in listed)
    assert all(r.status == 200 for r in listed)
    assert windows_started_inside_ties(sandbox) > 0
    # one row per contact per page of 1,000, plus the window restarts: no deep re-reading
    assert len(listed) <= 11_200 // 1000 + 6
    assert len(sandbox.requests("/api/v2/contacts/count")) == 1
    # custom_variables stays one JSON column: its free-text labels never become columns
    columns = warehouse.columns("contacts")
    assert columns["custom_variables"] == "JSON"
    assert not any("lead" in name for name in columns)
    assert columns["created_at"].startswith("TIMESTAMP")


def test_unstable_tie_order_neither_loses_nor_duplicates(
    sandbox_factory: Any, warehouse: Any, truth: Any
) -> None:
    # the server orders tied rows differently for each limit+offset, as PostgreSQL's top-N sort may
    sandbox = sandbox_factory(
        "small", seed=8, contacts=2_500, messages=0, tie_fraction=0.8, max_burst=400, unstable_ties=True
    )
    counts = warehouse.run(sandbox.source(contacts_page_size=150).with_resources("contacts", "contact_tags"))
    assert counts["contacts"] == 2_500
    truth.contacts(sandbox, warehouse)


def test_deleted_edited_and_new_contacts_follow_on_the_next_run(
    sandbox_factory: Any, warehouse: Any, truth: Any
) -> None:
    sandbox = sandbox_factory("small", seed=2, messages=0)
    warehouse.run(sandbox.source().with_resources("contacts", "contact_tags"))
    change = sandbox.state.mutate(new_contacts=6, edited_contacts=8, deleted_contacts=3, seed=4)
    assert len(change["deleted_contacts"]) == 3

    warehouse.run(sandbox.source().with_resources("contacts", "contact_tags"))

    truth.contacts(sandbox, warehouse)
    loaded = {r["phone"] for r in warehouse.rows("contacts")}
    assert not loaded & set(change["deleted_contacts"])
    assert set(change["new_contacts"]) <= loaded
    # each vanished phone was confirmed gone with one lookup (a 404), never guessed
    lookups = sandbox.requests("/api/v2/contacts/{phone_number}")
    assert sorted(r.path.rsplit("/", 1)[1] for r in lookups) == sorted(change["deleted_contacts"])
    assert all(r.status == 404 for r in lookups)


def test_a_tie_group_bigger_than_the_offset_cap_is_listed_by_phone(
    sandbox_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """11,100 contacts share one created_at (in an order that changes per request): no created_at window or
    offset gets through them, so the walk lists that group by phone (unique, so stable) from both ends,
    then goes on after it."""
    from sources.sendblue import SendblueClient

    sandbox = sandbox_factory(
        "small", seed=3, contacts=11_300, messages=0, tie_fraction=0.0, unstable_ties=True
    )
    state = sandbox.state
    with state.lock:
        ordered = sorted(state.contacts.values(), key=lambda c: c["created_at"])
        stamp = ordered[100]["created_at"]
        for contact in ordered[100:11_200]:
            contact["created_at"] = stamp
        state._touch_contacts()  # the simulator caches its sorted views

    with SendblueClient(sandbox.settings(), transport=sandbox.transport) as client:
        with caplog.at_level(logging.WARNING, logger="switchboard.sendblue"):
            phones = [row["phone"] for page in client.iter_contacts() for row in page]

    assert len(phones) == len(set(phones)) == 11_300
    assert set(phones) == set(state.contacts)
    by_phone = [r for r in sandbox.requests("/api/v2/contacts") if r.param("order_by") == "phone"]
    assert {r.param("order_direction") for r in by_phone} == {"asc", "desc"}
    assert not caplog.records  # nothing skipped, nothing to report


def test_a_tie_group_no_listing_can_get_through_ends_the_walk_and_is_reported(
    sandbox_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """22,200 contacts share one created_at: beyond the cap from both ends of the phone order. The walk
    still ends, reports the timestamp, loads what it could reach and then everything created after."""
    from sources.sendblue import SendblueClient

    sandbox = sandbox_factory("small", seed=3, contacts=22_400, messages=0, tie_fraction=0.0)
    state = sandbox.state
    with state.lock:
        ordered = sorted(state.contacts.values(), key=lambda c: c["created_at"])
        stamp = ordered[100]["created_at"]
        for contact in ordered[100:22_300]:
            contact["created_at"] = stamp
        state._touch_contacts()
        after = {c["phone"] for c in ordered[22_300:]}

    with SendblueClient(sandbox.settings(), transport=sandbox.transport) as client:
        with caplog.at_level(logging.WARNING, logger="switchboard.sendblue"):
            phones = [row["phone"] for page in client.iter_contacts() for row in page]
        report = client.aclient.last_contacts_walk

    assert len(phones) == len(set(phones))  # nothing twice
    assert after <= set(phones)  # the walk went on past the group
    assert 22_000 <= len(phones) < 22_400
    assert report.stuck_timestamps == [stamp]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert stamp in messages and "offset cap" in messages


class WithoutCreatedAtFilter:
    """The simulator as an older deployment: `created_at_gte` (newest spec only) is silently ignored."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
            kept = [(k, v) for k, v in query if k != "created_at_gte"]
            scope = dict(scope, query_string=urlencode(kept).encode())
        await self.app(scope, receive, send)


def test_a_server_without_the_window_filter_still_loads_what_offsets_reach(
    sandbox_factory: Any, warehouse: Any, truth: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = sandbox_factory(
        "small", seed=12, contacts=2_500, messages=0, tie_fraction=0.5, wrap=WithoutCreatedAtFilter
    )
    with caplog.at_level(logging.WARNING, logger="switchboard.sendblue"):
        counts = warehouse.run(
            sandbox.source(contacts_page_size=500).with_resources("contacts", "contact_tags")
        )
    assert counts["contacts"] == 2_500
    truth.contacts(sandbox, warehouse)
    assert "falling back to plain offset paging" in caplog.text


def test_contacts_without_created_at_are_loaded(sandbox_factory: Any, warehouse: Any, truth: Any) -> None:
    """Every contact field is optional in the spec; a window on created_at never returns undated ones."""
    sandbox = sandbox_factory("small", seed=13, contacts=1_800, messages=0)
    state = sandbox.state
    with state.lock:
        undated = list(state.contacts.values())[::150]
        for contact in undated:
            contact.pop("created_at")
        state._touch_contacts()

    counts = warehouse.run(sandbox.source(contacts_page_size=400).with_resources("contacts", "contact_tags"))

    assert counts["contacts"] == 1_800
    truth.contacts(sandbox, warehouse)
    descending = [r for r in sandbox.requests("/api/v2/contacts") if r.param("order_direction") == "desc"]
    assert len(descending) == 1  # one page of the descending listing holds them all

"""The Chatwoot simulator keeps every quirk of the real API (shared/api/chatwoot.md), checked over HTTP."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.chatwoot import API_TOKEN, create_app
from sandbox.chatwoot.data import NON_ACCOUNT_LABELS, SIZE_SPECS, generate
from sandbox.common import sandbox_of

CONTACTS_ROUTE = "GET /api/v1/accounts/{account_id}/contacts"


def walk_contacts(cw: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page of GET /contacts until a short page, as a client would."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        body = cw.get("/contacts", params={**params, "page": page}).json()
        rows += body["payload"]
        if len(body["payload"]) < 15:
            return rows
        page += 1


def filter_contacts(cw: Any, *conditions: dict[str, Any], **extra: Any) -> httpx.Response:
    return cw.post("/contacts/filter", json={"payload": list(conditions), **extra})


def filter_ids(cw: Any, *conditions: dict[str, Any]) -> set[int]:
    ids: set[int] = set()
    page = 1
    while True:
        response = filter_contacts(cw, *conditions, page=page, sort="created_at")
        assert response.status_code == 200, response.text
        payload = response.json()["payload"]
        ids |= {c["id"] for c in payload}
        if len(payload) < 15:
            return ids
        page += 1


def cond(key: str, operator: str, *values: Any, join: str | None = None) -> dict[str, Any]:
    return {"attribute_key": key, "filter_operator": operator, "values": list(values), "query_operator": join}


def visible_ids(cw: Any) -> set[int]:
    return {c["id"] for c in cw.state.visible_contacts()}


# ---------------------------------------------------------------------------- auth


def test_auth_errors_have_chatwoot_bodies(chatwoot_read):
    url = chatwoot_read.server.url
    missing = httpx.get(f"{url}/api/v1/accounts/1/contacts")
    assert (missing.status_code, missing.json()) == (401, {"error": "Invalid Access Token"})
    wrong = httpx.get(f"{url}/api/v1/accounts/1/contacts", headers={"api_access_token": "nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Invalid Access Token"})
    headers = {"api_access_token": API_TOKEN}
    not_member = httpx.get(f"{url}/api/v1/accounts/2/contacts", headers=headers)
    assert not_member.status_code == 401
    assert not_member.json() == {"error": "You are not authorized to access this account"}
    unknown = httpx.get(f"{url}/api/v1/accounts/999/contacts", headers=headers)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Resource could not be found"})


def test_profile_lists_the_accounts_of_the_token(chatwoot_read):
    url = chatwoot_read.server.url
    assert httpx.get(f"{url}/api/v1/profile").status_code == 401
    profile = httpx.get(f"{url}/api/v1/profile", headers={"api_access_token": API_TOKEN}).json()
    assert [a["id"] for a in profile["accounts"]] == [1]
    assert profile["role"] == "administrator"


# ---------------------------------------------------------------------------- the contacts list


def test_contacts_come_15_per_page_with_total_count_and_page_echoed(chatwoot_read):
    total = len(chatwoot_read.state.visible_contacts())
    first = chatwoot_read.get("/contacts", params={"sort": "created_at"}).json()
    assert first["meta"] == {"count": total, "current_page": 1}
    assert len(first["payload"]) == 15
    second = chatwoot_read.get("/contacts", params={"sort": "created_at", "page": 2}).json()
    assert second["meta"]["current_page"] == "2"  # Rails echoes params[:page]: a string
    last_page = math.ceil(total / 15)
    last = chatwoot_read.get("/contacts", params={"sort": "created_at", "page": last_page}).json()
    assert len(last["payload"]) == total - 15 * (last_page - 1)
    past = chatwoot_read.get("/contacts", params={"sort": "created_at", "page": last_page + 3}).json()
    assert past == {"meta": {"count": total, "current_page": str(last_page + 3)}, "payload": []}


def test_without_sort_pages_overlap_and_miss_contacts(chatwoot_read):
    unsorted = walk_contacts(chatwoot_read)
    ids = [c["id"] for c in unsorted]
    assert len(ids) == len(visible_ids(chatwoot_read))  # the same number of rows...
    assert len(set(ids)) < len(ids)  # ...but some twice, so others never
    again = [c["id"] for c in chatwoot_read.get("/contacts").json()["payload"]]
    assert again != ids[:15]


def test_sorted_by_created_at_walk_is_complete_and_stable(chatwoot_read):
    first = [c["id"] for c in walk_contacts(chatwoot_read, sort="created_at")]
    second = [c["id"] for c in walk_contacts(chatwoot_read, sort="created_at")]
    assert first == second
    assert set(first) == visible_ids(chatwoot_read) and len(first) == len(set(first))
    created = [chatwoot_read.state.contacts[cid]["created_at"] for cid in first]
    assert created == sorted(created)
    descending = [c["created_at"] for c in walk_contacts(chatwoot_read, sort="-created_at")]
    assert descending == sorted(created, reverse=True)


def test_created_at_ties_exist_and_are_not_broken_by_id(chatwoot_read):
    walk = walk_contacts(chatwoot_read, sort="created_at")
    groups: dict[int, list[int]] = defaultdict(list)
    for contact in walk:
        groups[contact["created_at"]].append(contact["id"])
    ties = [ids for ids in groups.values() if len(ids) > 1]
    assert len(ties) >= 5
    assert any(ids != sorted(ids) for ids in ties)  # no `id` tie-break in the ORDER BY


@pytest.mark.parametrize("sort", ["name", "email", "-last_activity_at", "company_name", "city", "country"])
def test_other_sorts_are_complete_and_ordered(chatwoot_read, sort):
    walk = walk_contacts(chatwoot_read, sort=sort)
    assert {c["id"] for c in walk} == visible_ids(chatwoot_read) and len(walk) == len(
        visible_ids(chatwoot_read)
    )
    if sort == "name":
        names = [c["name"].lower() for c in walk]
        assert names == sorted(names)
    if sort == "-last_activity_at":
        values = [c.get("last_activity_at") for c in walk]
        present = [v for v in values if v is not None]
        assert present == sorted(present, reverse=True)
        assert values[len(present) :] == [None] * (len(values) - len(present))  # NULLS LAST


def test_last_activity_at_is_omitted_when_null(chatwoot_read):
    walk = {c["id"]: c for c in walk_contacts(chatwoot_read, sort="created_at")}
    truth = chatwoot_read.state.contacts
    never = [cid for cid in walk if truth[cid]["last_activity_at"] is None]
    active = [cid for cid in walk if truth[cid]["last_activity_at"] is not None]
    assert never and active
    assert all("last_activity_at" not in walk[cid] for cid in never)
    assert all(walk[cid]["last_activity_at"] == truth[cid]["last_activity_at"] for cid in active)
    assert all("updated_at" not in c for c in walk.values())


def test_contact_inboxes_are_included_unless_false(chatwoot_read):
    default = chatwoot_read.get("/contacts", params={"sort": "created_at"}).json()["payload"]
    assert all("contact_inboxes" in c for c in default)
    items = [item for c in default for item in c["contact_inboxes"]]
    assert items and set(items[0]) == {"source_id", "inbox"}
    assert set(items[0]["inbox"]) == {"id", "avatar_url", "channel_id", "name", "channel_type", "provider"}
    slim = chatwoot_read.get(
        "/contacts", params={"sort": "created_at", "include_contact_inboxes": "false"}
    ).json()
    assert all("contact_inboxes" not in c for c in slim["payload"])


def test_invisible_contacts_are_hidden_from_lists_but_exist(chatwoot_read):
    hidden = chatwoot_read.state.invisible_contact_ids()
    assert len(hidden) == 10
    listed = {c["id"] for c in walk_contacts(chatwoot_read, sort="created_at")}
    assert not hidden & listed
    one = min(hidden)
    shown = chatwoot_read.get(f"/contacts/{one}").json()["payload"]
    assert shown["id"] == one and shown["email"] is None and shown["phone_number"] is None
    name = shown["name"]
    search = chatwoot_read.get("/contacts/search", params={"q": name}).json()
    assert one not in {c["id"] for c in search["payload"]}
    assert one not in filter_ids(chatwoot_read, cond("name", "equal_to", name))
    senders = {c["contact_id"] for c in chatwoot_read.state.conversations.values()}
    assert hidden & senders  # they do show up as conversation senders
    conv_id = next(d for d, c in chatwoot_read.state.conversations.items() if c["contact_id"] in hidden)
    conversation = chatwoot_read.get(f"/conversations/{conv_id}").json()
    assert conversation["meta"]["sender"]["id"] in hidden


def test_labels_filter_on_the_list_matches_any_label(chatwoot_read):
    pairs = chatwoot_read.state.contact_labels()
    for labels in (["vip"], ["vip", "billing"], ["legacy-crm"]):
        expected = {cid for cid, label in pairs if label in labels}
        got = walk_contacts(chatwoot_read, sort="created_at", **{"labels[]": labels})
        assert expected and {c["id"] for c in got} == expected and len(got) == len(expected)
        meta = chatwoot_read.get("/contacts", params={"labels[]": labels}).json()["meta"]
        assert meta["count"] == len(expected)


# ---------------------------------------------------------------------------- labels


def test_generated_labels_include_non_account_and_mixed_contacts(chatwoot_read):
    state = chatwoot_read.state
    account = state.account_label_titles()
    assert len(account) == 8
    assert set(NON_ACCOUNT_LABELS).isdisjoint(account)
    by_contact: dict[int, set[str]] = defaultdict(set)
    for cid, label in state.contact_labels():
        by_contact[cid].add(label)
    assert 50 <= len(by_contact) <= 70
    only_other = [cid for cid, labels in by_contact.items() if not labels & account]
    mixed = [cid for cid, labels in by_contact.items() if labels & account and labels - account]
    assert only_other and mixed
    shown = chatwoot_read.get("/labels").json()["payload"]
    assert {label["title"] for label in shown} == account
    assert set(shown[0]) == {"id", "title", "description", "color", "show_on_sidebar"}


def test_contact_labels_post_replaces_the_set_and_accepts_any_label(chatwoot):
    cid = next(iter(visible_ids(chatwoot)))
    set_labels = chatwoot.post(f"/contacts/{cid}/labels", json={"labels": ["VIP", "not-an-account-label"]})
    assert set_labels.json() == {"payload": ["vip", "not-an-account-label"]}
    assert chatwoot.get(f"/contacts/{cid}/labels").json() == {"payload": ["vip", "not-an-account-label"]}
    chatwoot.post(f"/contacts/{cid}/labels", json={"labels": ["billing"]})
    assert chatwoot.get(f"/contacts/{cid}/labels").json() == {"payload": ["billing"]}
    assert chatwoot.post(f"/contacts/{cid}/labels", json={"labels": []}).json() == {"payload": []}
    assert chatwoot.state.labels_of(cid) == []
    assert chatwoot.get("/contacts/1/labels").status_code == 404


# ---------------------------------------------------------------------------- filter and search


def test_filter_meta_page_size_and_labels_presence(chatwoot_read):
    pairs = chatwoot_read.state.contact_labels()
    labelled = {cid for cid, _ in pairs}
    response = filter_contacts(chatwoot_read, cond("labels", "is_present"), page=2, sort="created_at")
    body = response.json()
    assert body["meta"] == {"count": len(labelled), "current_page": 2}
    assert len(body["payload"]) == 15
    assert filter_ids(chatwoot_read, cond("labels", "is_present")) == labelled
    assert (
        filter_ids(chatwoot_read, cond("labels", "is_not_present")) == visible_ids(chatwoot_read) - labelled
    )
    vip = {cid for cid, label in pairs if label == "vip"}
    assert filter_ids(chatwoot_read, cond("labels", "equal_to", "vip")) == vip
    assert (
        filter_ids(chatwoot_read, cond("labels", "not_equal_to", "vip")) == visible_ids(chatwoot_read) - vip
    )


def test_filter_equal_to_on_email_phone_and_identifier(chatwoot_read):
    contacts = chatwoot_read.state.visible_contacts()
    with_email = next(c for c in contacts if c["email"])
    with_phone = next(c for c in contacts if c["phone_number"])
    with_identifier = next(c for c in contacts if c["identifier"])
    assert filter_ids(chatwoot_read, cond("email", "equal_to", with_email["email"].upper())) == {
        with_email["id"]
    }
    assert filter_ids(chatwoot_read, cond("phone_number", "equal_to", with_phone["phone_number"])) == {
        with_phone["id"]
    }
    # the service prefixes "+" after deleting any: a number without it matches too
    bare = with_phone["phone_number"].lstrip("+")
    assert filter_ids(chatwoot_read, cond("phone_number", "equal_to", bare)) == {with_phone["id"]}
    ident = with_identifier["identifier"]
    assert filter_ids(chatwoot_read, cond("identifier", "equal_to", ident)) == {with_identifier["id"]}
    assert filter_ids(chatwoot_read, cond("email", "equal_to", "nobody@nowhere.test")) == set()
    not_mine = filter_ids(chatwoot_read, cond("email", "not_equal_to", with_email["email"]))
    assert not_mine == {
        c["id"] for c in contacts if c["email"] and c["id"] != with_email["id"]
    }  # NULL never matches


def test_filter_text_operators_and_joins(chatwoot_read):
    contacts = chatwoot_read.state.visible_contacts()
    silva = {c["id"] for c in contacts if "silva" in c["name"].lower()}
    plus44 = {c["id"] for c in contacts if (c["phone_number"] or "").startswith("+44")}
    blocked = {c["id"] for c in contacts if c["blocked"]}
    assert silva and plus44
    assert filter_ids(chatwoot_read, cond("name", "contains", "SILVA")) == silva
    assert filter_ids(chatwoot_read, cond("phone_number", "starts_with", "+44")) == plus44
    both = filter_ids(
        chatwoot_read,
        cond("name", "contains", "silva", join="AND"),
        cond("phone_number", "starts_with", "+44"),
    )
    assert both == silva & plus44
    either = filter_ids(
        chatwoot_read,
        cond("name", "contains", "silva", join="OR"),
        cond("phone_number", "starts_with", "+44"),
    )
    assert either == silva | plus44
    assert filter_ids(chatwoot_read, cond("blocked", "equal_to", True)) == blocked


def test_filter_dates_have_day_granularity(chatwoot_read):
    contacts = chatwoot_read.state.visible_contacts()
    pivot = sorted(c["created_at"] for c in contacts)[len(contacts) // 2]
    day = datetime.fromtimestamp(pivot, UTC).date()

    def day_of(ts: int) -> Any:
        return datetime.fromtimestamp(ts, UTC).date()

    after = {c["id"] for c in contacts if day_of(c["created_at"]) > day}
    before = {c["id"] for c in contacts if day_of(c["created_at"]) < day}
    assert filter_ids(chatwoot_read, cond("created_at", "is_greater_than", day.isoformat())) == after
    assert filter_ids(chatwoot_read, cond("created_at", "is_less_than", day.isoformat())) == before
    assert pivot not in {
        chatwoot_read.state.contacts[cid]["created_at"] for cid in after | before
    }  # day D excluded
    active = {
        c["id"]
        for c in contacts
        if c["last_activity_at"] and day_of(c["last_activity_at"]) > day - timedelta(days=30)
    }
    since = (day - timedelta(days=30)).isoformat()
    assert filter_ids(chatwoot_read, cond("last_activity_at", "is_greater_than", since)) == active


@pytest.mark.parametrize(
    "condition, message",
    [
        (cond("created_at", "is_greater_than", "2025-01-01T00:00:00Z"), "Invalid value"),
        (cond("created_at", "is_greater_than", "yesterday"), "Invalid value"),
        (cond("email", "equal_to"), "Invalid value"),
        (cond("updated_at", "is_greater_than", "2025-01-01"), "Invalid attribute key - [updated_at]"),
        (cond("email", "is_greater_than", "a"), "Invalid operator"),
        (cond("labels", "contains", "vip"), "Invalid operator"),
        (cond("email", "equal_to", "a@b.c", join="XOR"), 'Query operator must be either "AND" or "OR"'),
    ],
)
def test_filter_rejects_bad_payloads_with_422(chatwoot_read, condition, message):
    response = filter_contacts(chatwoot_read, condition)
    assert response.status_code == 422
    assert response.json()["error"].startswith(message)


def test_filter_custom_attributes_defined_in_the_account(chatwoot_read):
    contacts = chatwoot_read.state.visible_contacts()
    pro = {c["id"] for c in contacts if c["custom_attributes"].get("plan") == "pro"}
    assert pro and filter_ids(chatwoot_read, cond("plan", "equal_to", "pro")) == pro


def test_search_needs_q_and_counts_rows_on_the_page(chatwoot_read):
    blank = chatwoot_read.get("/contacts/search", params={"q": " "})
    assert blank.status_code == 422 and "error" in blank.json()
    contacts = chatwoot_read.state.visible_contacts()
    needle = "example.com"
    expected = {c["id"] for c in contacts if needle in (c["email"] or "")}
    assert len(expected) > 15
    first = chatwoot_read.get("/contacts/search", params={"q": needle, "sort": "created_at"}).json()
    assert first["meta"] == {"count": 15, "current_page": 1, "has_more": True}
    found, page = set(), 1
    while True:
        body = chatwoot_read.get(
            "/contacts/search", params={"q": needle, "sort": "created_at", "page": page}
        ).json()
        found |= {c["id"] for c in body["payload"]}
        if not body["meta"]["has_more"]:
            assert body["meta"]["count"] == len(body["payload"])
            break
        page += 1
    assert found == expected


# ---------------------------------------------------------------------------- contact writes


def test_create_contact_validates_like_rails(chatwoot):
    taken = next(c for c in chatwoot.state.visible_contacts() if c["email"])
    duplicate = chatwoot.post("/contacts", json={"name": "Dup", "email": taken["email"].upper()})
    assert duplicate.status_code == 422
    assert duplicate.json() == {"message": "Email has already been taken", "attributes": ["email"]}
    bad_phone = chatwoot.post("/contacts", json={"name": "Bad", "phone_number": "0044 20 7946 0958"})
    assert bad_phone.status_code == 422
    assert bad_phone.json()["attributes"] == ["phone_number"]
    with_identifier = next(c for c in chatwoot.state.visible_contacts() if c["identifier"])
    two = chatwoot.post(
        "/contacts", json={"email": taken["email"], "identifier": with_identifier["identifier"]}
    ).json()
    assert two["attributes"] == ["email", "identifier"]
    assert two["message"] == "Email has already been taken, Identifier has already been taken"


def test_create_contact_without_inbox(chatwoot):
    response = chatwoot.post(
        "/contacts",
        json={"name": "New Person", "email": "New.Person@Example.ORG", "custom_attributes": {"plan": "pro"}},
    )
    assert response.status_code == 200
    payload = response.json()["payload"]
    assert payload["contact_inbox"] == {"inbox": None, "source_id": None}
    contact = payload["contact"]
    assert contact["email"] == "new.person@example.org"  # stored lower-cased
    assert contact["contact_inboxes"] == [] and "last_activity_at" not in contact
    assert chatwoot.state.contacts[contact["id"]]["custom_attributes"] == {"plan": "pro"}
    assert chatwoot.get(f"/contacts/{contact['id']}").json()["payload"]["name"] == "New Person"


def test_create_contact_with_inbox_builds_a_source_id(chatwoot):
    api = chatwoot.post("/contacts", json={"name": "Api", "email": "api@x.test", "inbox_id": 5}).json()[
        "payload"
    ]
    assert re.fullmatch(r"[0-9a-f-]{36}", api["contact_inbox"]["source_id"])
    assert api["contact_inbox"]["inbox"]["channel_type"] == "Channel::Api"
    assert "account_id" in api["contact_inbox"]["inbox"]  # the raw record, not inbox_slim
    assert api["contact"]["contact_inboxes"][0]["source_id"] == api["contact_inbox"]["source_id"]
    no_email = chatwoot.post(
        "/contacts", json={"name": "Nobody", "phone_number": "+15550001111", "inbox_id": 2}
    )
    assert no_email.status_code == 422
    telegram = chatwoot.post("/contacts", json={"name": "T", "email": "t@x.test", "inbox_id": 6})
    assert telegram.status_code == 500
    assert chatwoot.post("/contacts", json={"name": "X", "inbox_id": 999}).status_code == 404


def test_update_contact_merges_attributes_and_blanks_email(chatwoot):
    contact = next(c for c in chatwoot.state.visible_contacts() if c["email"] and c["phone_number"])
    cid = contact["id"]
    before_custom = dict(contact["custom_attributes"])
    before_additional = dict(contact["additional_attributes"])
    response = chatwoot.request(
        "PATCH",
        f"/contacts/{cid}",
        json={"custom_attributes": {"tier": "gold"}, "additional_attributes": {"x": 1}},
    )
    assert response.status_code == 200
    updated = response.json()["payload"]
    assert updated["custom_attributes"] == {**before_custom, "tier": "gold"}
    assert updated["additional_attributes"] == {**before_additional, "x": 1}
    assert updated["name"] == contact["name"]  # omitted fields stay
    put = chatwoot.request("PUT", f"/contacts/{cid}", json={"email": ""}).json()["payload"]
    assert put["email"] is None and put["phone_number"] == contact["phone_number"]
    other = next(c for c in chatwoot.state.visible_contacts() if c["email"] and c["id"] != cid)
    clash = chatwoot.request("PUT", f"/contacts/{cid}", json={"email": other["email"]})
    assert clash.status_code == 422 and clash.json()["attributes"] == ["email"]
    assert chatwoot.request("PUT", "/contacts/1", json={"name": "x"}).status_code == 404


def test_delete_contact(chatwoot):
    quiet = next(c for c in chatwoot.state.visible_contacts() if c["availability_status"] == "offline")
    response = chatwoot.request("DELETE", f"/contacts/{quiet['id']}")
    assert (response.status_code, response.content) == (200, b"")
    assert chatwoot.get(f"/contacts/{quiet['id']}").status_code == 404
    online = next(c for c in chatwoot.state.visible_contacts() if c["availability_status"] == "online")
    refused = chatwoot.request("DELETE", f"/contacts/{online['id']}")
    assert refused.status_code == 422 and "message" in refused.json()


def test_merge_moves_conversations_and_returns_a_flat_contact(chatwoot):
    state = chatwoot.state
    senders = Counter(c["contact_id"] for c in state.conversations.values())
    visible = visible_ids(chatwoot)
    base_id, mergee_id = [cid for cid in senders if cid in visible][:2]
    moved = {d for d, c in state.conversations.items() if c["contact_id"] == mergee_id}
    response = chatwoot.post(
        "/actions/contact_merge", json={"base_contact_id": base_id, "mergee_contact_id": mergee_id}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == base_id and "payload" not in body and "contact_inboxes" not in body
    assert chatwoot.get(f"/contacts/{mergee_id}").status_code == 404
    assert all(state.conversations[d]["contact_id"] == base_id for d in moved)
    conv = chatwoot.get(f"/conversations/{min(moved)}").json()
    assert conv["meta"]["sender"]["id"] == base_id
    missing = chatwoot.post(
        "/actions/contact_merge", json={"base_contact_id": base_id, "mergee_contact_id": 1}
    )
    assert missing.status_code == 404


# ---------------------------------------------------------------------------- conversations


def test_generated_conversations_cover_statuses_inboxes_and_messages(chatwoot_read):
    state = chatwoot_read.state
    assert len(state.conversations) == 80
    assert {c["status"] for c in state.conversations.values()} == {"open", "resolved", "pending", "snoozed"}
    assert len({c["inbox_id"] for c in state.conversations.values()}) >= 4
    assert state.message_count() == 1000
    lengths = [len(rows) for rows in state.messages_by_conversation.values()]
    assert max(lengths) > 100 and 0 in lengths
    spans = sorted((rows[0].id, rows[-1].id) for rows in state.messages_by_conversation.values() if rows)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False))  # ids interleave


def test_conversations_default_to_open(chatwoot_read):
    truth = chatwoot_read.state.conversations.values()
    body = chatwoot_read.get("/conversations").json()
    assert set(body) == {"data"} and set(body["data"]) == {"meta", "payload"}
    opened = [c for c in truth if c["status"] == "open"]
    assert body["data"]["meta"]["all_count"] == len(opened)
    assert {c["status"] for c in body["data"]["payload"]} == {"open"}
    everything = chatwoot_read.get("/conversations", params={"status": "all"}).json()["data"]["meta"]
    assert everything["all_count"] == len(truth)
    assert everything["assigned_count"] + everything["unassigned_count"] == len(truth)
    assert everything["mine_count"] == sum(1 for c in truth if c["assignee_id"] == 1)
    snoozed = chatwoot_read.get("/conversations", params={"status": "snoozed"}).json()["data"]
    assert snoozed["meta"]["all_count"] == sum(1 for c in truth if c["status"] == "snoozed")


def test_conversation_pages_follow_the_page_size_knob(chatwoot_factory):
    cw = chatwoot_factory(page_size=10)
    ids: list[int] = []
    page = 1
    while True:
        payload = cw.get(
            "/conversations", params={"status": "all", "sort_by": "created_at_asc", "page": page}
        ).json()
        rows = payload["data"]["payload"]
        assert len(rows) <= 10
        ids += [c["id"] for c in rows]
        if len(rows) < 10:
            break
        page += 1
    assert ids == sorted(cw.state.conversations)  # display ids, created in order
    cw.state.page_size = 25
    assert len(cw.get("/conversations", params={"status": "all"}).json()["data"]["payload"]) == 25


def test_conversation_sort_by(chatwoot_read):
    rows = chatwoot_read.get("/conversations", params={"status": "all"}).json()["data"]["payload"]
    activity = [c["last_activity_at"] for c in rows]
    assert activity == sorted(activity, reverse=True)  # last_activity_at_desc by default
    created = chatwoot_read.get(
        "/conversations", params={"status": "all", "sort_by": "created_at_desc"}
    ).json()
    times = [c["created_at"] for c in created["data"]["payload"]]
    assert times == sorted(times, reverse=True)


def test_updated_within_returns_every_match_unpaginated(chatwoot_factory):
    cw = chatwoot_factory(page_size=5)
    state = cw.state
    now = state.clock()
    window = int(now - state.data.anchor) + 40 * 86_400
    expected = {d for d, c in state.conversations.items() if c["updated_at"] > now - window}
    assert len(expected) > 5
    body = cw.get("/conversations", params={"status": "all", "updated_within": window}).json()["data"]
    assert {c["id"] for c in body["payload"]} == expected
    assert len(body["payload"]) == len(expected) == body["meta"]["all_count"]
    summary = state.mutate(
        new_contacts=0,
        edited_contacts=0,
        deleted_contacts=0,
        new_conversations=1,
        edited_conversations=2,
        new_messages=3,
        seed=4,
    )
    recent = cw.get("/conversations", params={"status": "all", "updated_within": 60}).json()["data"][
        "payload"
    ]
    assert {c["id"] for c in recent} == set(summary["touched_conversations"])


def test_conversation_json_types(chatwoot_read):
    state = chatwoot_read.state
    rows = chatwoot_read.get("/conversations", params={"status": "all", "sort_by": "created_at_asc"}).json()[
        "data"
    ]["payload"]
    for conv in rows:
        truth = state.conversations[conv["id"]]
        assert isinstance(conv["updated_at"], float) and conv["updated_at"] == pytest.approx(
            truth["updated_at"]
        )
        for key in ("created_at", "last_activity_at", "timestamp", "agent_last_seen_at", "waiting_since"):
            assert isinstance(conv[key], int)
        assert conv["timestamp"] == conv["last_activity_at"]
        assert conv["meta"]["sender"]["id"] == truth["contact_id"]
        assert "contact_inboxes" not in conv["meta"]["sender"]
        assert len(conv["messages"]) <= 1
        messages = state.messages_by_conversation[conv["id"]]
        if messages:
            assert conv["messages"][0]["id"] == messages[-1].id
            assert isinstance(conv["messages"][0]["updated_at"], str)
        if truth["agent_last_seen_at"] is None:
            assert conv["agent_last_seen_at"] == 0
    assert any(c["updated_at"] != int(c["updated_at"]) for c in rows)
    snoozed = [
        c for c in chatwoot_read.get("/conversations", params={"status": "snoozed"}).json()["data"]["payload"]
    ]
    assert snoozed
    for conv in snoozed:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", conv["snoozed_until"])
    assert chatwoot_read.get("/conversations/99999").status_code == 404


def test_conversation_filter_has_no_data_wrapper(chatwoot_read):
    truth = chatwoot_read.state.conversations.values()
    response = chatwoot_read.post(
        "/conversations/filter", json={"payload": [cond("status", "equal_to", "resolved", "pending")]}
    )
    body = response.json()
    assert set(body) == {"meta", "payload"}
    expected = [c for c in truth if c["status"] in ("resolved", "pending")]
    assert body["meta"]["all_count"] == len(expected)
    assert len(body["payload"]) == 25
    bad = chatwoot_read.post(
        "/conversations/filter", json={"payload": [cond("phone_number", "equal_to", "x")]}
    )
    assert bad.status_code == 422 and bad.json()["error"].startswith("Invalid attribute key - [phone_number]")


def test_contact_conversations_are_capped_at_20_newest_first(chatwoot_read):
    senders = Counter(c["contact_id"] for c in chatwoot_read.state.conversations.values())
    busy, count = senders.most_common(1)[0]
    assert count > 20
    rows = chatwoot_read.get(f"/contacts/{busy}/conversations").json()["payload"]
    assert len(rows) == 20
    activity = [c["last_activity_at"] for c in rows]
    assert activity == sorted(activity, reverse=True)


# ---------------------------------------------------------------------------- messages


def test_message_cursors_follow_message_finder(chatwoot_read):
    state = chatwoot_read.state
    conv_id = max(state.messages_by_conversation, key=lambda d: len(state.messages_by_conversation[d]))
    ids = [m.id for m in state.messages_by_conversation[conv_id]]
    assert len(ids) > 100

    def fetch(**params: Any) -> list[int]:
        body = chatwoot_read.get(f"/conversations/{conv_id}/messages", params=params).json()
        assert set(body) == {"meta", "payload"}
        return [m["id"] for m in body["payload"]]

    assert fetch() == ids[-20:]
    assert fetch(before=ids[50]) == ids[30:50]
    assert fetch(after=0) == ids[:100]
    assert fetch(after=ids[99]) == ids[100:200]
    assert fetch(after=ids[10], before=ids[15]) == ids[10:15]  # after is inclusive when both are given
    walked, cursor = [], 0
    while True:
        page = fetch(after=cursor)
        walked += page
        if len(page) < 100:
            break
        cursor = page[-1]
    assert walked == ids


def test_message_json_and_meta(chatwoot_read):
    state = chatwoot_read.state
    conv_id = next(d for d, rows in state.messages_by_conversation.items() if len(rows) > 5)
    body = chatwoot_read.get(f"/conversations/{conv_id}/messages").json()
    meta = body["meta"]
    assert {
        "labels",
        "additional_attributes",
        "contact",
        "agent_last_seen_at",
        "assignee_last_seen_at",
    } <= set(meta)
    assert meta["contact"]["type"] == "contact"
    for message in body["payload"]:
        assert message["conversation_id"] == conv_id
        assert isinstance(message["created_at"], int) and message["message_type"] in (0, 1, 2, 3)
        if message["message_type"] == 0:
            assert message["sender"]["type"] == "contact"
    internal = chatwoot_read.get(
        f"/conversations/{conv_id}/messages", params={"filter_internal_messages": "true"}
    )
    assert all(not m["private"] and m["message_type"] != 2 for m in internal.json()["payload"])
    assert chatwoot_read.get("/conversations/99999/messages").status_code == 404


# ---------------------------------------------------------------------------- throttling and faults


def test_throttled_requests_get_429_text_without_retry_after(chatwoot_factory):
    cw = chatwoot_factory(rate_limit_per_minute=3, rate_limit_window_seconds=3600)
    cw.state.clock = lambda: 7200.5  # inside one aligned window
    assert [cw.get("/labels").status_code for _ in range(3)] == [200, 200, 200]
    throttled = cw.get("/labels")
    assert throttled.status_code == 429
    assert throttled.text == "Retry later\n"
    assert throttled.headers["content-type"].startswith("text/plain")
    assert "retry-after" not in throttled.headers
    cw.state.clock = lambda: 10_800.5  # the next window
    assert cw.get("/labels").status_code == 200


def test_contact_search_has_its_own_budget(chatwoot_factory):
    cw = chatwoot_factory(search_rate_limit_per_minute=2)
    cw.state.clock = lambda: 120.0
    statuses = [cw.get("/contacts/search", params={"q": "a"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert cw.get("/contacts", params={"sort": "created_at"}).status_code == 200
    admin = httpx.post(f"{cw.server.url}/_sandbox/knobs", json={"budgets": {"contact_search": {"limit": 10}}})
    assert admin.status_code == 200
    assert cw.get("/contacts/search", params={"q": "a"}).status_code == 200


def test_scheduled_faults(chatwoot):
    state = chatwoot.state
    state.schedule("500", "/labels")
    error = chatwoot.get("/labels")
    assert error.status_code == 500 and error.headers["content-type"].startswith("text/html")
    state.schedule("502", "/labels")
    gateway = chatwoot.get("/labels")
    assert gateway.status_code == 502 and "<html>" in gateway.text
    state.schedule("truncate", "/contacts")
    cut = chatwoot.get("/contacts", params={"sort": "created_at"})
    assert cut.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    state.knobs.stall_seconds = 0.3
    state.schedule("stall", "/inboxes")
    with pytest.raises(httpx.ReadTimeout):
        chatwoot.get("/inboxes", timeout=0.05)
    assert chatwoot.get("/labels").status_code == 200


def test_unhandled_server_error_renders_the_rails_error_page(chatwoot):
    response = chatwoot.post("/contacts", json={"name": "T", "email": "tg@x.test", "inbox_id": 6})
    assert response.status_code == 500
    assert "something went wrong" in response.text


# ---------------------------------------------------------------------------- mutate and the request log


def test_mutate_changes_data_and_reports_ids(chatwoot):
    state = chatwoot.state
    before_updated = {d: c["updated_at"] for d, c in state.conversations.items()}
    before_labels = state.contact_labels()
    summary = state.mutate(
        new_contacts=4,
        edited_contacts=6,
        deleted_contacts=3,
        new_conversations=2,
        edited_conversations=5,
        new_messages=12,
        seed=11,
    )
    assert len(summary["new_contacts"]) == 4 and len(summary["deleted_contacts"]) == 3
    listed = {c["id"] for c in walk_contacts(chatwoot, sort="created_at")}
    assert set(summary["new_contacts"]) <= listed
    assert not set(summary["deleted_contacts"]) & listed
    new_times = {state.contacts[cid]["created_at"] for cid in summary["new_contacts"]}
    assert len(new_times) == 1  # created within one second: ties again
    for cid in summary["edited_contacts"]:
        shown = chatwoot.get(f"/contacts/{cid}").json()["payload"]
        assert shown["name"] == state.contacts[cid]["name"]
    for display_id in summary["edited_conversations"]:
        assert state.conversations[display_id]["updated_at"] > before_updated[display_id]
    assert len(summary["new_messages"]) == 12
    assert min(summary["new_messages"]) > max(
        m.id
        for d in before_updated
        for m in state.messages_by_conversation[d]
        if m.id not in summary["new_messages"]
    )
    for display_id in summary["touched_conversations"]:
        conv = state.conversations[display_id]
        assert conv["updated_at"] >= summary["now"] - 1
    assert state.contact_labels() != before_labels or summary["deleted_contacts"]
    recent = chatwoot.get("/conversations", params={"status": "all", "updated_within": 120}).json()["data"][
        "payload"
    ]
    assert {c["id"] for c in recent} == set(summary["touched_conversations"])
    admin = httpx.post(f"{chatwoot.server.url}/_sandbox/mutate", json={"new_contacts": 1, "seed": 2}).json()
    assert len(admin["new_contacts"]) == 1


def test_request_log_counts_per_endpoint(chatwoot):
    state = chatwoot.state
    state.log.clear()
    for page in (1, 2, 3):
        chatwoot.get("/contacts", params={"sort": "created_at", "page": page})
    cid = next(iter(visible_ids(chatwoot)))
    chatwoot.get(f"/contacts/{cid}/labels")
    chatwoot.get(f"/contacts/{cid}/labels")
    counts = state.log.counts()
    assert counts[CONTACTS_ROUTE] == 3
    assert counts["GET /api/v1/accounts/{account_id}/contacts/{id}/labels"] == 2
    assert [e.param("page") for e in state.log.matching(route="/contacts", method="GET")] == ["1", "2", "3"]
    admin = httpx.get(f"{chatwoot.server.url}/_sandbox/requests").json()
    assert admin["counts"][CONTACTS_ROUTE] == 3 and admin["total"] == 5


# ---------------------------------------------------------------------------- generation


def test_generation_is_deterministic_per_seed():
    spec = SIZE_SPECS["small"]
    one, two, other = (
        generate(spec, 3, 1_767_225_600),
        generate(spec, 3, 1_767_225_600),
        generate(spec, 4, 1_767_225_600),
    )
    assert one.contacts == two.contacts and one.messages == two.messages
    assert one.contacts != other.contacts


def test_create_app_overrides():
    app = create_app("small", 1, contacts=60, conversations=20, page_size=7, latency_ms=0, now=1_767_225_600)
    state = sandbox_of(app)
    assert len(state.contacts) == 60 and len(state.conversations) == 20 and state.page_size == 7
    assert all(c["created_at"] < 1_767_225_600 for c in state.contacts.values())
    with pytest.raises(TypeError):
        create_app("small", unknown_knob=1)

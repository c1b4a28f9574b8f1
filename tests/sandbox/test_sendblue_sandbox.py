"""The Sendblue simulator keeps every quirk of the real API (shared/api/sendblue*.md), checked over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import phonenumbers
import pytest

from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY, create_app
from sandbox.sendblue.timestamps import iso_ms, parse_ms

AUTH = {"sb-api-key-id": API_KEY_ID, "sb-api-secret-key": API_SECRET_KEY}
OPTIONAL_CONTACT_KEYS = ("first_name", "last_name", "company_name", "assigned_to_email", "sendblue_number")
CAMEL = {
    "first_name": "firstName",
    "last_name": "lastName",
    "company_name": "companyName",
    "assigned_to_email": "assignedToEmail",
    "sendblue_number": "sendblueNumber",
    "custom_variables": "customVariables",
    "opt_out": "optOut",
}
MESSAGE_KEYS = {
    "message_handle", "accountEmail", "content", "media_url", "is_outbound", "status", "service",
    "message_type", "date_sent", "date_updated", "from_number", "to_number", "number", "sendblue_number",
    "group_id", "group_display_name", "participants", "was_downgraded", "opted_out", "error_code",
    "error_message", "error_reason", "error_detail", "send_style", "plan", "seat_id", "sender_email",
}  # fmt: skip


def contacts_page(sb: Any, **params: Any) -> list[dict[str, Any]]:
    response = sb.get("/api/v2/contacts", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    return body


def messages_page(sb: Any, **params: Any) -> dict[str, Any]:
    response = sb.get("/api/v2/messages", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def walk_messages(sb: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page until pagination.hasMore is false, as a client would."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = messages_page(sb, **params, offset=offset)
        rows += body["data"]
        if not body["pagination"]["hasMore"]:
            return rows
        offset += len(body["data"])


def path_of(phone: str) -> str:
    return "/api/v2/contacts/" + phone.replace("+", "%2B")


def tie_groups(state: Any) -> Counter[str]:
    return Counter(c["created_at"] for c in state.contacts.values())


# ---------------------------------------------------------------------------- auth


def test_both_key_headers_are_required_and_names_are_case_insensitive(sendblue_read: Any) -> None:
    url = sendblue_read.url + "/api/v2/contacts/count"
    for headers in (
        {},
        {"sb-api-key-id": API_KEY_ID},
        {"sb-api-secret-key": API_SECRET_KEY},
        {"sb-api-key-id": API_KEY_ID, "sb-api-secret-key": "wrong"},
        {"Authorization": f"Bearer {API_SECRET_KEY}"},
    ):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": "ERROR", "message": "Invalid API credentials"}
    upper = {"SB-API-KEY-ID": API_KEY_ID, "SB-API-SECRET-KEY": API_SECRET_KEY}
    assert httpx.get(url, headers=upper).json() == {"count": len(sendblue_read.state.contacts)}


# ---------------------------------------------------------------------------- contacts list


def test_contacts_list_is_a_bare_array_with_default_limit_100(sendblue_read: Any) -> None:
    rows = contacts_page(sendblue_read)
    assert len(rows) == 100
    assert len(contacts_page(sendblue_read, limit=7)) == 7
    assert contacts_page(sendblue_read, offset=len(sendblue_read.state.contacts)) == []


def test_contacts_limit_is_capped_at_1000(sendblue_factory: Any) -> None:
    sb = sendblue_factory(contacts=1_050, messages=0)
    assert len(contacts_page(sb, limit=5_000)) == 1_000
    assert len(contacts_page(sb, limit=1_000, offset=1_000)) == 50
    response = sb.get("/api/v2/contacts", params={"limit": 0})
    assert response.status_code == 400 and response.json()["status"] == "ERROR"


def test_offset_over_10000_is_an_error(sendblue_read: Any) -> None:
    response = sendblue_read.get("/api/v2/contacts", params={"offset": 10_001})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "ERROR" and "offset" in body["message"]
    assert contacts_page(sendblue_read, offset=10_000) == []
    assert sendblue_read.get("/api/v2/contacts", params={"offset": "ten"}).status_code == 400


def test_walking_all_contacts_matches_count_and_truth(sendblue_read: Any) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        page = contacts_page(sendblue_read, limit=64, offset=offset, order_direction="asc")
        seen += [c["phone"] for c in page]
        if len(page) < 64:
            break
        offset += 64
    count = sendblue_read.get("/api/v2/contacts/count").json()
    assert count == {"count": len(seen)}
    assert sorted(seen) == sorted(sendblue_read.state.contacts)


def test_created_at_ordering_defaults_to_descending(sendblue_read: Any) -> None:
    everything = contacts_page(sendblue_read, limit=1_000)
    stamps = [c["created_at"] for c in everything]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] > stamps[-1]
    ascending = contacts_page(sendblue_read, limit=1_000, order_by="created_at", order_direction="asc")
    assert [c["created_at"] for c in ascending] == sorted(stamps)
    # ties are not broken by any key: the descending listing is the exact reverse of the ascending one
    assert [c["phone"] for c in ascending] == [c["phone"] for c in everything][::-1]


@pytest.mark.parametrize(
    ("order_by", "field"),
    [
        ("firstName", "first_name"),
        ("first_name", "first_name"),
        ("lastName", "last_name"),
        ("phone", "phone"),
    ],
)
def test_contacts_order_by_names_and_phone_with_nulls_last(
    sendblue_read: Any, order_by: str, field: str
) -> None:
    ascending = contacts_page(sendblue_read, limit=1_000, order_by=order_by, order_direction="asc")
    values = [c.get(field) for c in ascending]
    present = [v for v in values if v is not None]
    assert present == sorted(present)
    assert values == present + [None] * (len(values) - len(present))  # NULLS LAST ascending
    descending = contacts_page(sendblue_read, limit=1_000, order_by=order_by)
    assert [c.get(field) for c in descending] == values[::-1]  # and first descending
    if field != "phone":
        assert len(present) < len(values)


def test_unknown_order_values_are_refused(sendblue_read: Any) -> None:
    for params in ({"order_by": "updated_at"}, {"order_direction": "up"}):
        response = sendblue_read.get("/api/v2/contacts", params=params)
        assert response.status_code == 400 and response.json()["status"] == "ERROR"


def test_many_contacts_share_created_at(sendblue_read: Any) -> None:
    groups = tie_groups(sendblue_read.state)
    tied = {stamp: n for stamp, n in groups.items() if n > 1}
    assert sum(tied.values()) >= 0.25 * len(sendblue_read.state.contacts)
    assert max(tied.values()) >= 10
    assert any(stamp.endswith(".000Z") for stamp in tied)  # bursts stamped at a whole second
    # a tie group straddles a page edge somewhere in the ascending walk at limit 10
    ascending = [c["created_at"] for c in contacts_page(sendblue_read, limit=1_000, order_direction="asc")]
    assert any(ascending[i - 1] == ascending[i] for i in range(10, len(ascending), 10))


def test_created_at_gte_is_inclusive_and_exact_to_the_millisecond(sendblue_read: Any) -> None:
    state = sendblue_read.state
    stamp, size = max(tie_groups(state).items(), key=lambda item: item[1])
    expected = sum(1 for c in state.contacts.values() if c["created_at"] >= stamp)
    rows = contacts_page(sendblue_read, limit=1_000, order_direction="asc", created_at_gte=stamp)
    assert len(rows) == expected
    assert [c["created_at"] for c in rows[:size]] == [stamp] * size
    # the same instant written with an offset, and half a millisecond later (which excludes the ties)
    moment = parse_ms(stamp)
    shifted = iso_ms(moment + 2 * 3_600_000)[:-1] + "+02:00"
    assert len(contacts_page(sendblue_read, limit=1_000, created_at_gte=shifted)) == expected
    later = stamp[:-1] + "500+00:00"
    assert len(contacts_page(sendblue_read, limit=1_000, created_at_gte=later)) == expected - size
    bad = sendblue_read.get("/api/v2/contacts", params={"created_at_gte": "last tuesday"})
    assert bad.status_code == 400


def test_windowing_on_created_at_reaches_contacts_beyond_the_offset_cap(sendblue_factory: Any) -> None:
    sb = sendblue_factory("medium", messages=0)
    total = sb.get("/api/v2/contacts/count").json()["count"]
    assert total > 11_000  # more than one ordering can reach with offset <= 10000, limit <= 1000
    assert sb.get("/api/v2/contacts", params={"offset": 11_000}).status_code == 400
    seen: set[str] = set()
    since: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1_000, "order_by": "created_at", "order_direction": "asc"}
        if since:
            params["created_at_gte"] = since  # inclusive: the tied rows at the edge come again
        page = contacts_page(sb, **params)
        before = len(seen)
        seen |= {c["phone"] for c in page}
        if len(page) < 1_000 or len(seen) == before:
            break
        since = page[-1]["created_at"]
    assert len(seen) == total


def test_tie_order_is_stable_unless_unstable_ties(sendblue_factory: Any) -> None:
    def pages_of_tied(sb: Any, limit: int) -> list[str]:
        rows: list[dict[str, Any]] = []
        for offset in range(0, 300, limit):
            rows += contacts_page(sb, limit=limit, offset=offset, order_direction="asc")
        return [c["phone"] for c in rows]

    stable = sendblue_factory()
    assert pages_of_tied(stable, 7) == pages_of_tied(stable, 13)
    unstable = sendblue_factory(unstable_ties=True)
    walked = pages_of_tied(unstable, 7)
    assert walked != pages_of_tied(unstable, 13)
    assert len(set(walked)) < len(unstable.state.contacts)  # offset paging across ties skips some rows


def test_phone_number_filter_is_exact_and_needs_an_encoded_plus(sendblue_read: Any) -> None:
    phone = next(iter(sendblue_read.state.contacts))
    rows = contacts_page(sendblue_read, phone_number=phone)
    assert [c["phone"] for c in rows] == [phone]
    raw = httpx.get(f"{sendblue_read.url}/api/v2/contacts?phone_number={phone}", headers=AUTH)
    assert raw.status_code == 200 and raw.json() == []  # "+" unencoded arrives as a space
    assert contacts_page(sendblue_read, phone_number=phone[:-1]) == []
    contact_id = sendblue_read.state.contacts[phone]["contact_id"]
    assert [c["phone"] for c in contacts_page(sendblue_read, cid=contact_id)] == [phone]


def test_optional_fields_are_missing_on_some_contacts_and_null_on_others(sendblue_read: Any) -> None:
    rows = contacts_page(sendblue_read, limit=1_000)
    for key in OPTIONAL_CONTACT_KEYS:
        assert any(key not in c for c in rows), key
        assert any(key in c and c[key] is None for c in rows), key
        assert any(c.get(key) for c in rows), key
    assert any("tags" not in c for c in rows) and any(c.get("tags") == [] for c in rows)
    assert any("custom_variables" not in c for c in rows)
    labels = {label for c in rows for label in (c.get("custom_variables") or {})}
    assert "Lead Source" in labels and any(" " in label for label in labels)
    assert all(c["created_at"] and c["contact_id"] for c in rows)


def test_camel_casing_serves_camel_keys_for_the_same_data(sendblue_factory: Any) -> None:
    snake = sendblue_factory(seed=3)
    camel = sendblue_factory(seed=3, key_casing="camel")
    snake_rows = contacts_page(snake, limit=1_000)
    camel_rows = contacts_page(camel, limit=1_000)
    assert any("firstName" in c for c in camel_rows) and any("customVariables" in c for c in camel_rows)
    for s_row, c_row in zip(snake_rows, camel_rows, strict=True):
        assert not set(CAMEL) & set(c_row)
        assert {CAMEL.get(k, k): v for k, v in s_row.items()} == c_row
        assert {"phone", "created_at", "contact_id"} <= set(c_row)
    phone = camel_rows[0]["phone"]
    one = camel.get(path_of(phone)).json()["contact"]
    assert one == camel_rows[0]
    assert "optOut" in camel.put(path_of(phone), json={"tags": ["x"]}).json()["contact"]


def test_generated_phones_are_valid_e164(sendblue_read: Any) -> None:
    state = sendblue_read.state
    numbers = (
        set(state.contacts) | set(state.lines) | {m["number"] for m in state.messages.values() if m["number"]}
    )
    for number in numbers:
        parsed = phonenumbers.parse(number, None)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number


# ---------------------------------------------------------------------------- one contact


def test_get_contact_by_percent_encoded_phone(sendblue_read: Any) -> None:
    phone = next(iter(sendblue_read.state.contacts))
    response = sendblue_read.get(path_of(phone))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK" and body["contact"]["phone"] == phone
    assert sendblue_read.state.log.matching(route="/api/v2/contacts/{phone_number}")[-1].path.endswith(phone)
    missing = sendblue_read.get(path_of("+14155550000"))
    assert missing.status_code == 404
    assert missing.json() == {"status": "error", "message": "Contact not found"}


# ---------------------------------------------------------------------------- contact writes


def test_create_contact_conflicts_unless_update_if_exists(sendblue: Any) -> None:
    phone = "+14155550123"
    created = sendblue.post(
        "/api/v2/contacts",
        json={"number": phone, "first_name": "Ada", "tags": ["vip"], "custom_variables": {"Lead Source": "Web"},
              "opt_out": True},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    contact = created.json()["contact"]
    assert created.json()["status"] == "OK"
    assert contact["phone"] == phone and contact["first_name"] == "Ada" and contact["opt_out"] is False
    assert sendblue.state.contacts[phone]["custom_variables"] == {"Lead Source": "Web"}

    again = sendblue.post("/api/v2/contacts", json={"number": phone, "first_name": "Grace"})
    assert again.status_code == 409
    assert again.json() == {"status": "ERROR", "message": "Contact already exists"}
    assert sendblue.state.contacts[phone]["first_name"] == "Ada"

    upsert = sendblue.post(
        "/api/v2/contacts",
        json={
            "number": phone,
            "firstName": "Grace",
            "custom_variables": {"Plan": "Pro"},
            "update_if_exists": True,
        },
    )
    assert upsert.status_code == 200
    assert upsert.json()["contact"]["first_name"] == "Grace"
    assert sendblue.state.contacts[phone]["custom_variables"] == {"Lead Source": "Web", "Plan": "Pro"}
    assert sendblue.get("/api/v2/contacts/count").json()["count"] == len(sendblue.state.contacts)


def test_create_contact_validates_the_number(sendblue: Any) -> None:
    for body, message in (
        ({"first_name": "x"}, "Missing fields"),
        ({"number": "4155550123"}, "Invalid phone number"),
        ({"number": "+1415"}, "Invalid phone number"),
        ({"number": "not a phone"}, "Invalid phone number"),
    ):
        response = sendblue.post("/api/v2/contacts", json=body)
        assert response.status_code == 400
        assert response.json() == {"status": "ERROR", "message": message}
    first = sendblue.post("/api/v2/contacts", json={"phone_number": "+1 (212) 555-0147"})
    assert first.status_code == 200 and first.json()["contact"]["phone"] == "+12125550147"
    assert sendblue.post("/api/v2/contacts", json={"phoneNumber": "+12125550147"}).status_code == 409
    assert (
        sendblue.post("/api/v2/contacts", json={"number": "+12125550148", "tags": "vip"}).status_code == 400
    )


def test_put_merges_custom_variables_replaces_tags_and_sets_opt_out(sendblue: Any) -> None:
    state = sendblue.state
    phone = next(p for p, c in state.contacts.items() if len(c.get("custom_variables") or {}) >= 2)
    before = dict(state.contacts[phone]["custom_variables"])
    drop = next(iter(before))
    response = sendblue.put(
        path_of(phone),
        json={"customVariables": {"Referral Code": "X1", drop: None}, "tags": ["renewal"], "optOut": True,
              "lastName": "Hopper"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    contact = response.json()["contact"]
    expected = {label: value for label, value in before.items() if label != drop} | {"Referral Code": "X1"}
    assert contact["custom_variables"] == expected and len(expected) == len(before)
    assert contact["tags"] == ["renewal"]
    assert contact["opt_out"] is True and phone in state.opted_out_numbers
    assert contact["last_name"] == "Hopper"
    assert sendblue.get(path_of(phone)).json()["contact"] == contact
    assert sendblue.put(path_of("+14155550000"), json={"tags": []}).status_code == 404
    assert sendblue.put(path_of(phone), json={"opt_out": "yes"}).status_code == 400


def test_delete_one_contact(sendblue: Any) -> None:
    phone = next(iter(sendblue.state.contacts))
    response = sendblue.request("DELETE", path_of(phone))
    assert response.status_code == 200 and response.json() == {"status": "OK"}
    assert sendblue.get(path_of(phone)).status_code == 404
    assert sendblue.request("DELETE", path_of(phone)).status_code == 404


def test_bulk_create_skips_existing_invalid_and_repeated_phones(sendblue: Any) -> None:
    state = sendblue.state
    existing = next(iter(state.contacts))
    before = dict(state.contacts[existing])
    response = sendblue.post(
        "/api/v2/contacts/bulk",
        json={
            "contacts": [
                {
                    "phone": "+14155550101",
                    "first_name": "Ada",
                    "tags": ["vip"],
                    "custom_variables": {"Plan": "Pro"},
                },
                {"phone": existing, "first_name": "Changed"},
                {"phone": "12345"},
                {"first_name": "no phone"},
                {
                    "phone": "+14155550102",
                    "firstName": "Old",
                    "company": "Acme",
                    "sendblue_number": "+12125550100",
                },
                {"phone": "+14155550101", "first_name": "Repeat"},
                {"phone": "+14155550103", "tags": "not-a-list"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK"
    assert [c["phone"] for c in body["contacts"]] == ["+14155550101", "+14155550102"]
    first, second = body["contacts"]
    assert first["first_name"] == "Ada" and first["custom_variables"] == {"Plan": "Pro"}
    assert second["first_name"] == "Old" and second["company_name"] == "Acme"
    assert second["sendblue_number"] is None  # not a bulk field
    assert first["created_at"] == second["created_at"]  # one import, one stamp
    assert state.contacts[existing] == before
    assert "+14155550103" not in state.contacts

    too_many = [{"phone": f"+1415555{n:04d}"} for n in range(1_001)]
    response = sendblue.post("/api/v2/contacts/bulk", json={"contacts": too_many})
    assert response.status_code == 400 and response.json()["status"] == "ERROR"
    assert sendblue.post("/api/v2/contacts/bulk", json={}).status_code == 400


def test_bulk_delete_takes_phone_numbers_in_a_delete_body(sendblue: Any) -> None:
    phones = list(sendblue.state.contacts)[:2]
    count = len(sendblue.state.contacts)
    response = sendblue.request("DELETE", "/api/v2/contacts", json={"contact_ids": [*phones, "+14155550000"]})
    assert response.status_code == 200
    assert response.json() == {"status": "OK", "amount": 2}
    assert sendblue.get("/api/v2/contacts/count").json()["count"] == count - 2
    assert all(sendblue.get(path_of(p)).status_code == 404 for p in phones)
    assert sendblue.request("DELETE", "/api/v2/contacts", json={"ids": phones}).status_code == 400


def test_opt_out_endpoint_sets_and_clears_the_recipient_record(sendblue: Any) -> None:
    phone = next(p for p, c in sendblue.state.contacts.items() if c.get("opt_out") is False)
    response = sendblue.post("/api/v2/contacts/opt-out", json={"number": phone})
    assert response.json() == {"status": "OK", "number": phone, "opted_out": True}
    assert sendblue.get(path_of(phone)).json()["contact"]["opt_out"] is True
    response = sendblue.post("/api/v2/contacts/opt-out", json={"number": phone, "opted_out": False})
    assert response.json()["opted_out"] is False
    assert sendblue.get(path_of(phone)).json()["contact"]["opt_out"] is False
    # a number that is not a contact has a recipient record too, which a later contact inherits
    stranger = "+1 212 555 0199"
    assert (
        sendblue.post("/api/v2/contacts/opt-out", json={"number": stranger}).json()["number"]
        == "+12125550199"
    )
    created = sendblue.post("/api/v2/contacts", json={"number": "+12125550199"}).json()["contact"]
    assert created["opt_out"] is True
    assert sendblue.post("/api/v2/contacts/opt-out", json={"number": "nope"}).status_code == 400
    assert sendblue.post("/api/v2/contacts/opt-out", json={}).status_code == 400


# ---------------------------------------------------------------------------- messages


def test_messages_envelope_limit_and_pagination(sendblue_read: Any) -> None:
    state = sendblue_read.state
    body = messages_page(sendblue_read)
    assert body["status"] == "OK" and set(body) == {"status", "data", "pagination"}
    assert body["pagination"] == {"hasMore": True, "limit": 100, "offset": 0, "total": len(state.messages)}
    assert len(body["data"]) == 100
    clamped = messages_page(sendblue_read, limit=500)
    assert len(clamped["data"]) == 100 and clamped["pagination"]["limit"] == 100
    last = messages_page(sendblue_read, offset=len(state.messages) - 3)
    assert len(last["data"]) == 3 and last["pagination"]["hasMore"] is False
    assert sendblue_read.get("/api/v2/messages", params={"limit": 0}).status_code == 400
    walked = walk_messages(sendblue_read)
    assert Counter(m["message_handle"] for m in walked) == Counter(list(state.messages))


def test_message_objects_follow_the_spec(sendblue_read: Any) -> None:
    messages = list(sendblue_read.state.messages.values())
    assert all(MESSAGE_KEYS <= set(m) for m in messages)
    for m in messages:
        if m["message_type"] == "message":
            assert m["number"] == (m["to_number"] if m["is_outbound"] else m["from_number"])
            assert m["participants"] == [] and m["group_id"] in ("", None)
        else:
            assert m["message_type"] == "group" and m["group_id"] and m["participants"]
        assert m["date_updated"] >= m["date_sent"]
    assert any(m["media_url"] == "" for m in messages) and any(m["media_url"] is None for m in messages)
    assert {m["status"] for m in messages} >= {"DELIVERED", "RECEIVED", "SENT", "ERROR"}
    assert {m["service"] for m in messages} == {"iMessage", "SMS", "RCS"}
    one = sendblue_read.get(f"/api/v2/messages/{messages[0]['message_handle']}").json()
    assert one == {"status": "OK", "data": messages[0]}
    missing = sendblue_read.get("/api/v2/messages/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["status"] == "ERROR"


@pytest.mark.parametrize(
    ("order_by", "key"), [("createdAt", "created"), ("updatedAt", "date_updated"), ("sentAt", "date_sent")]
)
def test_messages_ordering(sendblue_read: Any, order_by: str, key: str) -> None:
    state = sendblue_read.state

    def value(m: dict[str, Any]) -> str:
        return state.message_created[m["message_handle"]] if key == "created" else str(m[key])

    descending = walk_messages(sendblue_read, order_by=order_by)
    values = [value(m) for m in descending]
    assert values == sorted(values, reverse=True)
    ascending = walk_messages(sendblue_read, order_by=order_by, order_direction="asc")
    assert [value(m) for m in ascending] == sorted(values)
    if order_by == "createdAt":
        assert [m["message_handle"] for m in messages_page(sendblue_read)["data"]] == [
            m["message_handle"] for m in descending[:100]
        ]


def test_messages_order_by_takes_only_the_enum_spelling(sendblue_read: Any) -> None:
    for value in ("updated_at", "date_updated", "bogus"):
        response = sendblue_read.get("/api/v2/messages", params={"order_by": value})
        assert response.status_code == 400 and response.json()["status"] == "ERROR"


def test_messages_filters(sendblue_read: Any) -> None:
    state = sendblue_read.state
    messages = list(state.messages.values())
    group_message = next(m for m in messages if m["message_type"] == "group")
    contact = Counter(m["number"] for m in messages if m["message_type"] == "message").most_common(1)[0][0]
    line = state.lines[0]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"number": contact}, lambda m: contact in (m["from_number"], m["to_number"])),
        ({"from_number": contact}, lambda m: m["from_number"] == contact),
        ({"to_number": contact}, lambda m: m["to_number"] == contact),
        ({"sendblue_number": line}, lambda m: m["sendblue_number"] == line),
        ({"is_outbound": "false"}, lambda m: not m["is_outbound"]),
        ({"is_outbound": "true", "service": "SMS"}, lambda m: m["is_outbound"] and m["service"] == "SMS"),
        ({"message_type": "group"}, lambda m: m["message_type"] == "group"),
        ({"group_id": group_message["group_id"]}, lambda m: m["group_id"] == group_message["group_id"]),
        ({"status": "ERROR"}, lambda m: m["status"] == "ERROR"),
        ({"account_email": state.account_email}, lambda m: True),
    ]
    for params, keep in cases:
        expected = {m["message_handle"] for m in messages if keep(m)}
        got = walk_messages(sendblue_read, **params)
        assert {m["message_handle"] for m in got} == expected and expected, params
        assert len(got) == messages_page(sendblue_read, **params)["pagination"]["total"]
    assert messages_page(sendblue_read, service="Fax")["pagination"]["total"] == 0
    assert sendblue_read.get("/api/v2/messages", params={"is_outbound": "yes"}).status_code == 400


@pytest.mark.parametrize(("prefix", "key"), [("updated_at", "date_updated"), ("sent_at", "date_sent")])
def test_message_time_filters_are_inclusive(sendblue_read: Any, prefix: str, key: str) -> None:
    messages = sorted(sendblue_read.state.messages.values(), key=lambda m: m[key])
    low, high = messages[len(messages) // 3][key], messages[2 * len(messages) // 3][key]
    expected = {m["message_handle"] for m in messages if low <= m[key] <= high}
    got = walk_messages(
        sendblue_read, **{f"{prefix}_gte": low, f"{prefix}_lte": high, "order_by": "updatedAt"}
    )
    assert {m["message_handle"] for m in got} == expected
    assert any(m[key] == low for m in got) and any(m[key] == high for m in got)
    just_after = iso_ms(parse_ms(high) + 1)
    assert all(m[key] < just_after for m in got)
    assert sendblue_read.get("/api/v2/messages", params={f"{prefix}_gte": "yesterday"}).status_code == 400


def test_created_at_filters_use_the_hidden_creation_time(sendblue_read: Any) -> None:
    created = sendblue_read.state.message_created
    stamps = sorted(created.values())
    low = stamps[len(stamps) // 2]
    expected = {h for h, stamp in created.items() if stamp >= low}
    got = walk_messages(sendblue_read, created_at_gte=low, order_direction="asc")
    assert {m["message_handle"] for m in got} == expected


def test_message_ties_and_conversation_threads(sendblue_read: Any) -> None:
    state = sendblue_read.state
    messages = list(state.messages.values())
    assert max(Counter(m["date_sent"] for m in messages).values()) >= 5  # blasts share one instant
    threads = state.conversations()
    assert sum(t["messages"] for t in threads.values()) == len(messages)
    assert all(t["inbound"] + t["outbound"] == t["messages"] for t in threads.values())
    groups = [key for key, t in threads.items() if t["kind"] == "group"]
    assert set(groups) == {m["group_id"] for m in messages if m["message_type"] == "group"}
    direct = [key for key, t in threads.items() if t["kind"] == "direct"]
    assert all(isinstance(key, tuple) and len(key) == 2 for key in direct)
    assert len({number for _, number in direct}) < len(direct)  # someone talks to two lines
    assert any(number not in state.contacts for _, number in direct)  # threads with strangers
    key = direct[0]
    conversation = walk_messages(sendblue_read, number=key[1], sendblue_number=key[0], message_type="message")
    assert len(conversation) == threads[key]["messages"]
    assert max(m["date_sent"] for m in conversation) == threads[key]["last_message_at"]


def test_group_endpoint(sendblue_read: Any) -> None:
    state = sendblue_read.state
    group_id = next(iter(state.groups))
    body = sendblue_read.get(f"/api/v2/groups/{group_id}").json()
    assert body["status"] == "OK"
    data = body["data"]
    assert data["participant_numbers"] == state.groups[group_id]["participants"]
    kinds = Counter(p["type"] for p in data["participants"])
    assert kinds == {"contact": len(data["participant_numbers"]), "seat": 1}
    in_group = [m for m in state.messages.values() if m["group_id"] == group_id]
    latest = max(in_group, key=lambda m: state.message_created[m["message_handle"]])
    assert data["latest_message_id"] == latest["message_handle"]
    missing = sendblue_read.get("/api/v2/groups/nope")
    assert missing.status_code == 404 and missing.json()["status"] == "ERROR"


# ---------------------------------------------------------------------------- rate limits and faults


def test_messages_allow_100_requests_per_10_seconds(sendblue_factory: Any) -> None:
    sb = sendblue_factory(contacts=20, messages=50)
    now = [1_000_000.0]
    sb.state.clock = lambda: now[0]
    for i in range(100):
        now[0] += 0.01
        path = "/api/v2/messages" if i % 2 else f"/api/v2/messages/{next(iter(sb.state.messages))}"
        assert sb.get(path, params={"limit": 1}).status_code == 200
    limited = sb.get("/api/v2/messages")
    assert limited.status_code == 429
    assert limited.json() == {"status": "ERROR", "message": "Too Many Requests"}
    assert "retry-after" not in limited.headers
    assert sb.get("/api/v2/contacts").status_code == 200  # contacts have no budget by default
    now[0] += 9.0  # still inside the sliding window of the first request
    assert sb.get("/api/v2/messages").status_code == 429
    now[0] += 1.0
    assert sb.get("/api/v2/messages").status_code == 200
    assert sb.state.log.status_counts()[429] == 2


def test_retry_after_header_and_contacts_budget_are_options(sendblue_factory: Any) -> None:
    sb = sendblue_factory(
        contacts=20, messages=50, retry_after_header=True, messages_rate_limit=2, contacts_rate_limit=1
    )
    now = [500.0]
    sb.state.clock = lambda: now[0]
    assert [sb.get("/api/v2/messages").status_code for _ in range(3)] == [200, 200, 429]
    now[0] += 4.0
    limited = sb.get("/api/v2/messages")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "6"
    assert [sb.get("/api/v2/contacts/count").status_code for _ in range(2)] == [200, 429]


def test_scheduled_faults_and_error_bodies(sendblue_factory: Any) -> None:
    sb = sendblue_factory(contacts=20, messages=50)
    admin = httpx.Client(base_url=sb.url, timeout=10)
    for kind in ("500", "502", "truncate", "429"):
        assert admin.post("/_sandbox/faults", json={"kind": kind, "path_contains": "/api/v2/contacts"}).json()
    failed = sb.get("/api/v2/contacts")
    assert failed.status_code == 500 and failed.json() == {
        "status": "ERROR",
        "message": "Internal server error",
    }
    gateway = sb.get("/api/v2/contacts")
    assert gateway.status_code == 502 and "<html>" in gateway.text
    cut = sb.get("/api/v2/contacts")
    assert cut.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.text)
    limited = sb.get("/api/v2/contacts")
    assert limited.status_code == 429 and limited.json()["status"] == "ERROR"
    assert sb.get("/api/v2/contacts").status_code == 200
    sb.state.knobs.stall_seconds = 0.5
    sb.state.schedule("stall", "/api/v2/messages")
    with pytest.raises(httpx.ReadTimeout):
        sb.get("/api/v2/messages", timeout=0.1)
    admin.close()


def test_request_log_counts_per_endpoint(sendblue: Any) -> None:
    sendblue.state.log.clear()
    phone = next(iter(sendblue.state.contacts))
    sendblue.get("/api/v2/contacts")
    sendblue.get("/api/v2/contacts", params={"offset": 100})
    sendblue.get(path_of(phone))
    sendblue.put(path_of(phone), json={"tags": []})
    sendblue.get("/api/v2/messages")
    httpx.get(sendblue.url + "/api/v2/messages")  # unauthenticated, still logged
    counts = httpx.get(sendblue.url + "/_sandbox/requests").json()["counts"]
    assert counts == {
        "GET /api/v2/contacts": 2,
        "GET /api/v2/contacts/{phone_number}": 1,
        "PUT /api/v2/contacts/{phone_number}": 1,
        "GET /api/v2/messages": 2,
    }
    assert [e.body for e in sendblue.state.log.writes()] == [{"tags": []}]
    assert [e.param("offset") for e in sendblue.state.log.matching(route="/api/v2/contacts")] == [None, "100"]
    assert sendblue.state.log.status_counts() == {200: 5, 401: 1}


# ---------------------------------------------------------------------------- data and mutation


def test_generation_is_deterministic_per_seed() -> None:
    def truth(seed: int) -> tuple[Any, Any]:
        state = create_app("small", seed, contacts=60, messages=300).state.sandbox
        return state.contacts, state.messages

    assert truth(5) == truth(5)
    assert truth(5)[0] != truth(6)[0]


def test_mutate_creates_edits_and_deletes_between_runs(sendblue: Any) -> None:
    state = sendblue.state
    before_max = max(m["date_updated"] for m in state.messages.values())
    before_statuses = {h: m["status"] for h, m in state.messages.items()}
    old_threads = set(state.conversations())
    count = len(state.contacts)
    summary = httpx.post(
        sendblue.url + "/_sandbox/mutate",
        json={"new_contacts": 4, "edited_contacts": 6, "deleted_contacts": 3, "new_messages": 30,
              "edited_messages": 12, "seed": 1},
    ).json()  # fmt: skip
    assert len(summary["new_contacts"]) == 4 and len(summary["deleted_contacts"]) == 3
    assert sendblue.get("/api/v2/contacts/count").json()["count"] == count + 1
    assert all(sendblue.get(path_of(p)).status_code == 404 for p in summary["deleted_contacts"])
    newest = {c["phone"] for c in contacts_page(sendblue, limit=4)}
    assert newest == set(summary["new_contacts"])

    edited = [state.messages[h] for h in summary["edited_messages"]]
    assert len(edited) == 12 and all(m["date_updated"] > before_max for m in edited)
    assert any(m["status"] != before_statuses[m["message_handle"]] for m in edited)  # e.g. QUEUED -> SENT
    assert len(summary["new_messages"]) == 30
    assert all(state.messages[h]["date_updated"] > before_max for h in summary["new_messages"])
    incremental = walk_messages(sendblue, updated_at_gte=iso_ms(parse_ms(before_max) + 1), order_by="updatedAt",
                                order_direction="asc")  # fmt: skip
    assert {m["message_handle"] for m in incremental} == set(summary["new_messages"]) | set(
        summary["edited_messages"]
    )

    threads = state.conversations()
    new_keys = set(threads) - old_threads
    assert {tuple(t) for t in summary["new_threads"]} | set(summary["new_groups"]) == new_keys
    assert summary["new_groups"] and summary["new_threads"]
    landed = {
        m["group_id"] if m["message_type"] == "group" else (m["sendblue_number"], m["number"])
        for m in (state.messages[h] for h in summary["new_messages"])
    }
    assert landed & old_threads and landed - old_threads  # existing threads and new ones
    assert summary["new_groups"][0] in sendblue.get(f"/api/v2/groups/{summary['new_groups'][0]}").text


def test_mutate_is_deterministic_and_keeps_time_moving_forward(sendblue_factory: Any) -> None:
    one, two = sendblue_factory(contacts=40, messages=200), sendblue_factory(contacts=40, messages=200)
    first = one.state.mutate(new_contacts=2, edited_contacts=2, deleted_contacts=1, new_messages=5, seed=9)
    again = two.state.mutate(new_contacts=2, edited_contacts=2, deleted_contacts=1, new_messages=5, seed=9)
    assert first == again
    generated_max = max(
        c["created_at"] for c in two.state.contacts.values() if c["phone"] not in again["new_contacts"]
    )
    default = one.state.mutate()
    assert len(default["new_contacts"]) == 5 and len(default["new_messages"]) == 40
    stamps = [one.state.contacts[p]["created_at"] for p in first["new_contacts"]]
    later = [one.state.contacts[p]["created_at"] for p in default["new_contacts"]]
    assert generated_max < min(stamps) <= max(stamps) < min(later)
    with pytest.raises(TypeError):
        one.state.mutate(new_widgets=1)

"""Values keep their types (SPEC §6): Chatwoot custom and additional attributes are JSONB, so numbers,
booleans, lists, nulls and dates (as Chatwoot's ISO strings) arrive as that JSON type and a row equal to
what Chatwoot holds costs no write; Sendblue custom variables are strings, so numbers (DECIMAL too),
booleans and dates arrive as their text form. Over HTTP against both simulators."""

from __future__ import annotations

from typing import Any

from pipelines.sync import run_sync


def quiet(_: str) -> None:
    return None


def patches(box: Any) -> list[Any]:
    return box.state.log.matching(route="/api/v1/accounts/{account_id}/contacts/{id}", method="PATCH")


def test_chatwoot_attributes_keep_their_json_types_end_to_end(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    same, retyped, fresh = sorted((c for c in state.visible_contacts() if c["identifier"]), key=lambda c: c["id"])[:3]
    # Chatwoot already holds these values with these types: nothing to write for `same`
    state.update_contact(same["id"], {"custom_attributes": {"seats": 99, "trial": True, "plan": "pro"}})
    # the same values as other JSON types: `retyped` must be rewritten
    state.update_contact(retyped["id"], {"custom_attributes": {"seats": "99", "trial": 1, "plan": "pro"}})
    columns = {
        "identifier": "VARCHAR",
        "custom_attributes": "JSON",
        "additional_attributes": "STRUCT(since DATE, score DECIMAL(4, 1), seen TIMESTAMP, regions VARCHAR[])",
    }
    held = '{"seats": 99, "trial": true, "plan": "pro"}'
    rows = [
        (same["identifier"], held, None),
        (retyped["identifier"], held, None),
        (
            fresh["identifier"],
            '{"seats": 12, "ratio": 0.25, "vip": false, "tags": ["a", 2, null], "note": null, "meta": {"k": [1]}}',
            {"since": "2024-05-01", "score": "1.5", "seen": "2024-05-01 10:30:00.25", "regions": ["eu", "us"]},
        ),
    ]
    h.write_table("crm.typed", columns, rows)
    env.sync("typed", target="chatwoot.contacts", table="crm.typed", match_on="identifier")

    result = run_sync("typed", out=quiet)

    assert result.status == "success", result.error
    assert result.counts["updated"] == 2, result.counts
    sent = {e.path.rsplit("/", 1)[-1]: e.body for e in patches(chatwoot_box)}
    assert str(same["id"]) not in sent, "equal values of equal types: no write"
    assert sent[str(retyped["id"])] == {"custom_attributes": {"seats": 99, "trial": True}}
    live = state.contacts[retyped["id"]]["custom_attributes"]
    assert live["seats"] == 99 and type(live["seats"]) is int and live["trial"] is True
    custom = state.contacts[fresh["id"]]["custom_attributes"]
    assert custom["seats"] == 12 and type(custom["seats"]) is int
    assert custom["ratio"] == 0.25 and custom["vip"] is False
    assert custom["tags"] == ["a", 2, None] and custom["meta"] == {"k": [1]}
    additional = state.contacts[fresh["id"]]["additional_attributes"]
    assert additional["since"] == "2024-05-01T00:00:00.000Z"  # a date as Chatwoot's UI stores one
    assert additional["seen"] == "2024-05-01T10:30:00.250Z"
    assert additional["score"] == 1.5 and type(additional["score"]) is float  # DECIMAL: a JSON number
    assert additional["regions"] == ["eu", "us"]

    # the ledger keeps the types, so a second run (and a re-evaluation of every row) sends nothing
    state.log.clear()
    assert run_sync("typed", out=quiet).counts["unchanged"] == 3
    env.sync("typed", default_region="US")  # a new setting: every row is re-checked
    again = run_sync("typed", out=quiet)
    assert again.status == "success" and again.counts["unchanged"] == 3
    assert patches(chatwoot_box) == []


def test_sendblue_custom_variables_get_the_text_form_of_numbers_booleans_and_dates(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phone, other = h.new_phones(2, start=800)
    columns = {
        "phone": "VARCHAR",
        "custom_variables": "STRUCT(score DECIMAL(4, 1), seats INTEGER, active BOOLEAN, since DATE, plan VARCHAR)",
    }
    h.write_table(
        "crm.vars",
        columns,
        [
            (phone, {"score": "1.5", "seats": 12, "active": True, "since": "2024-05-01", "plan": "Growth"}),
            (other, {"score": "20", "seats": None, "active": False, "since": None, "plan": None}),
        ],
    )
    env.sync("vars", target="sendblue.contacts", table="crm.vars")

    result = run_sync("vars", out=quiet)

    assert result.status == "success", result.error
    assert result.counts["created"] == 2 and result.counts["rejected"] == 0
    assert sendblue_box.state.contacts[phone]["custom_variables"] == {
        "score": "1.5",
        "seats": "12",
        "active": "true",
        "since": "2024-05-01",
        "plan": "Growth",
    }
    assert sendblue_box.state.contacts[other]["custom_variables"] == {"score": "20.0", "active": "false"}

    sendblue_box.state.log.clear()
    assert run_sync("vars", out=quiet).counts["unchanged"] == 2
    assert h.writes(sendblue_box) == []

"""Phones (SPEC §6): only what cannot be a phone is rejected locally (not parseable, or not a possible
number for its country). A possible number outside the ranges libphonenumber knows as assigned is the
API's call: it is sent, and the API's answer is logged per row. `phone_validation = "strict"` rejects
it locally instead. Over HTTP against the Sendblue simulator, which refuses such numbers with 400
"Invalid phone number" as the API documents."""

from __future__ import annotations

import phonenumbers

from pipelines.sync import run_sync

# possible (a US number of the right length) but in an area code no carrier is assigned: 999
UNASSIGNED = "+19995551234"


def quiet(_: str) -> None:
    return None


def test_unassigned_phone_ranges_are_sent_and_the_api_answer_is_logged(sendblue_box, make_env, h) -> None:
    parsed = phonenumbers.parse(UNASSIGNED, None)
    assert phonenumbers.is_possible_number(parsed) and not phonenumbers.is_valid_number(parsed)
    env = make_env(sendblue=sendblue_box)
    good = h.new_phones(1, start=900)[0]
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR"}
    h.write_table("crm.p", columns, [(good, "Good"), (UNASSIGNED, "New area code"), ("+1999555", "Too short")])
    env.sync("phones", target="sendblue.contacts", table="crm.p")

    result = run_sync("phones", out=quiet)

    assert result.status == "partial"
    assert result.counts["created"] == 1 and result.counts["rejected"] == 1 and result.counts["failed"] == 1
    log = {r["record_key"]: r for r in h.sync_log("phones")}
    assert log["+1999555"]["outcome"] == "rejected" and "not a possible phone number" in log["+1999555"]["message"]
    refused = log[UNASSIGNED]
    assert refused["outcome"] == "error" and refused["http_status"] == 400
    assert "Invalid phone number" in refused["message"]
    assert h.ledger("phones")[UNASSIGNED]["status"] == "failed"
    assert any(UNASSIGNED in str(e.body) for e in h.writes(sendblue_box)), "the row reached the API"
    assert good in sendblue_box.state.contacts

    # strict: rejected here, before any request
    env.sync("strict_phones", target="sendblue.contacts", table="crm.p", phone_validation="strict")
    sendblue_box.state.log.clear()
    strict = run_sync("strict_phones", out=quiet)
    assert strict.counts["rejected"] == 2 and strict.counts["failed"] == 0
    assert not any(UNASSIGNED in str(e.body) for e in h.writes(sendblue_box))
    reasons = [r["message"] for r in h.sync_log("strict_phones") if r["record_key"] == UNASSIGNED]
    assert reasons and "not a valid phone number" in reasons[0]


def test_an_unassigned_sendblue_number_is_sent_too(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phone = h.new_phones(1, start=950)[0]
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR", "sendblue_number": "VARCHAR"}
    h.write_table("crm.line", columns, [(phone, "Ada", UNASSIGNED)])
    env.sync("line", target="sendblue.contacts", table="crm.line")

    result = run_sync("line", out=quiet)

    assert result.counts["rejected"] == 0
    puts = [e for e in h.writes(sendblue_box) if e.method == "PUT"]
    assert [e.body for e in puts] == [{"sendblue_number": UNASSIGNED}]
    [logged] = [r for r in h.sync_log("line") if r["record_key"] == phone]
    # the simulator refuses the line as the API would refuse a number it does not know: logged per row
    assert logged["http_status"] == 400 and "sendblue_number" in logged["message"]

"""A row skipped because of the sync's settings is not settled: the ledger records only what the API
holds, and the next run after a setting change reconsiders the row (SPEC §6 "A setting change re-checks
rows"). Over HTTP against both simulators."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.sync import run_sync


def quiet(_: str) -> None:
    return None


def outcomes(h: Any, sync: str, key: str) -> list[tuple[str, str]]:
    return [(r["action"], r["outcome"]) for r in h.sync_log(sync) if r["record_key"] == key]


@pytest.mark.parametrize("loaded_table", [False, True], ids=["live-lookup", "loaded-table"])
def test_create_only_skips_existing_contacts_and_upsert_then_updates_them(
    chatwoot_box, make_env, h, loaded_table: bool
) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    first, second = sorted((c for c in state.visible_contacts() if c["identifier"]), key=lambda c: c["id"])[:2]
    if loaded_table:
        # the first is known from the loaded table (skipped in the plan); the second is not, so its
        # create is refused 422 "has already been taken" and the writer finds it
        h.write_table("chatwoot.contacts", {"id": "BIGINT", "identifier": "VARCHAR"}, [(first["id"], first["identifier"])])
    columns = {"identifier": "VARCHAR", "name": "VARCHAR"}
    h.write_table("crm.cw", columns, [(c["identifier"], f"Renamed {c['id']}") for c in (first, second)])
    env.sync("cw_mode", target="chatwoot.contacts", table="crm.cw", match_on="identifier", mode="create_only")

    created_only = run_sync("cw_mode", out=quiet)

    assert created_only.status == "success", created_only.error
    assert created_only.counts["created"] == 0 and created_only.counts["updated"] == 0
    for contact in (first, second):
        assert state.contacts[contact["id"]]["name"] == contact["name"], "create_only sent no update"
        entry = h.ledger("cw_mode")[contact["identifier"]]
        assert entry["status"] == "skipped", "the API does not hold this row: it is not synced"
        assert outcomes(h, "cw_mode", contact["identifier"])[-1][1] == "skipped"

    env.sync("cw_mode", mode="upsert")
    upserted = run_sync("cw_mode", out=quiet)

    assert upserted.status == "success", upserted.error
    assert upserted.counts["updated"] == 2 and upserted.counts["unchanged"] == 0
    for contact in (first, second):
        assert state.contacts[contact["id"]]["name"] == f"Renamed {contact['id']}"
        assert h.ledger("cw_mode")[contact["identifier"]]["status"] == "synced"

    state.log.clear()
    again = run_sync("cw_mode", out=quiet)
    assert again.counts["unchanged"] == 2 and state.log.entries == []


def test_an_opt_in_skipped_without_allow_opt_in_is_sent_once_allow_opt_in_is_set(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    state = sendblue_box.state
    phone = sorted(p for p, c in state.contacts.items() if not c.get("opt_out"))[0]
    state.set_opt_out(phone, True)
    h.write_table("crm.back_in", {"phone": "VARCHAR", "opted_out": "BOOLEAN"}, [(phone, False)])
    env.sync("back_in", target="sendblue.opt_outs", table="crm.back_in")

    skipped = run_sync("back_in", out=quiet)
    assert skipped.status == "success" and skipped.counts["opted_in"] == 0
    assert phone in state.opted_out_numbers
    assert h.ledger("back_in")[phone]["status"] == "skipped"

    env.sync("back_in", allow_opt_in=True)
    state.log.clear()
    allowed = run_sync("back_in", out=quiet)

    assert allowed.status == "success" and allowed.counts["opted_in"] == 1
    assert [(e.path, e.body) for e in h.writes(sendblue_box)] == [
        ("/api/v2/contacts/opt-out", {"number": phone, "opted_out": False})
    ]
    assert phone not in state.opted_out_numbers
    assert h.ledger("back_in")[phone]["status"] == "synced"


def test_a_withheld_opt_in_is_not_recorded_as_synced_and_is_sent_once_allowed(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    state = sendblue_box.state
    only_opt, mixed = h.new_phones(2, start=700)
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR", "opt_out": "BOOLEAN"}
    h.write_table("crm.stop", columns, [(only_opt, "Ada", True), (mixed, "Bob", True)])
    env.sync("stop", target="sendblue.contacts", table="crm.stop")
    assert run_sync("stop", out=quiet).status == "success"
    assert {only_opt, mixed} <= state.opted_out_numbers

    # opt_out back to false: without allow_opt_in no opt-in is sent, so Sendblue still holds true
    h.write_table("crm.stop", columns, [(only_opt, "Ada", False), (mixed, "Robert", False)])
    state.log.clear()
    withheld = run_sync("stop", out=quiet)

    assert withheld.status == "success", withheld.error
    assert [(e.method, e.body) for e in h.writes(sendblue_box)] == [("PUT", {"first_name": "Robert"})]
    assert {only_opt, mixed} <= state.opted_out_numbers
    entries = h.ledger("stop")
    for phone in (only_opt, mixed):
        payload = entries[phone]["payload"]
        assert '"opt_out": true' in payload, f"the ledger says what Sendblue holds: {payload}"
    assert '"first_name": "Robert"' in entries[mixed]["payload"]
    assert outcomes(h, "stop", only_opt)[-1] == ("update", "skipped")
    [mixed_log] = [r for r in h.sync_log("stop") if r["record_key"] == mixed and r["run_id"] == withheld.run_id]
    assert mixed_log["outcome"] == "ok" and "opt-in not sent" in mixed_log["message"]

    # nothing changed: nothing is sent, and the rows are not reported as updates again
    state.log.clear()
    same = run_sync("stop", out=quiet)
    assert same.counts["unchanged"] == 2 and h.writes(sendblue_box) == []

    env.sync("stop", allow_opt_in=True)
    allowed = run_sync("stop", out=quiet)
    assert allowed.status == "success" and allowed.counts["opted_in"] == 2
    assert not {only_opt, mixed} & state.opted_out_numbers
    assert all('"opt_out": false' in e["payload"] for e in h.ledger("stop").values())

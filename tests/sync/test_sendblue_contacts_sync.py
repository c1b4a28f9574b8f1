"""`sendblue.contacts` against the Sendblue simulator over HTTP: bulk creates, only changes sent, rejects,
row errors retried, nulls that do not erase, sticky opt-outs, dry runs."""

from __future__ import annotations

import json

from pipelines.sync import run_sync

COLUMNS = {
    "phone": "VARCHAR",
    "first_name": "VARCHAR",
    "last_name": "VARCHAR",
    "company_name": "VARCHAR",
    "assigned_to_email": "VARCHAR",
    "tags": "VARCHAR[]",
    "custom_variables": "MAP(VARCHAR, VARCHAR)",
    "opt_out": "BOOLEAN",
}


def rows_for(phones: list[str], first: str = "Ada") -> list[tuple]:
    return [
        (
            phone,
            f"{first}{i}",
            "Lovelace",
            "Acme" if i % 2 else None,
            "seat@example.com" if i % 3 == 0 else None,
            ["vip", "lead"] if i % 2 else None,
            {"Lead Source": "Website", "Plan": f"P{i}"},
            i % 5 == 0,
        )
        for i, phone in enumerate(phones)
    ]


def test_creates_in_bulk_then_a_second_run_sends_nothing_and_a_change_sends_one_update(
    sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phones = h.new_phones(23)
    h.write_table("crm.people", COLUMNS, rows_for(phones))
    env.sync("people", target="sendblue.contacts", table="crm.people", batch_size=10)
    state = sendblue_box.state

    first = run_sync("people", out=lambda _: None)

    assert first.status == "success", first.error
    assert first.counts["created"] == 23
    bulk = [e for e in h.writes(sendblue_box) if e.path == "/api/v2/contacts/bulk"]
    assert len(bulk) == 3  # ceil(23 / 10)
    assert max(len(e.body["contacts"]) for e in bulk) == 10
    for i, phone in enumerate(phones):
        contact = state.contacts[phone]
        assert contact["first_name"] == f"Ada{i}"
        assert contact["custom_variables"]["Plan"] == f"P{i}"
        assert contact["tags"] == (["vip", "lead"] if i % 2 else [])
        assert contact.get("opt_out", False) is (i % 5 == 0)
        # bulk items cannot carry assigned_to_email: a PUT followed the create
        assert contact.get("assigned_to_email") == ("seat@example.com" if i % 3 == 0 else None)
    entries = h.ledger("people")
    assert set(entries) == set(phones)
    assert {e["status"] for e in entries.values()} == {"synced"}
    runs = h.query("SELECT * FROM reverse_etl.sync_runs WHERE sync_name = 'people'")
    assert len(runs) == 1 and runs[0]["status"] == "success" and runs[0]["created"] == 23

    state.log.clear()
    second = run_sync("people", out=lambda _: None)
    assert second.status == "success"
    assert h.writes(sendblue_box) == []
    assert state.log.entries == []  # not even a read: unchanged rows never leave the warehouse
    assert second.counts["unchanged"] == 23

    changed = rows_for(phones)
    changed[4] = (phones[4], "Augusta", *changed[4][2:])
    h.write_table("crm.people", COLUMNS, changed)
    third = run_sync("people", out=lambda _: None)
    assert third.status == "success"
    sent = h.writes(sendblue_box)
    assert [(e.method, e.body) for e in sent] == [("PUT", {"first_name": "Augusta"})]
    assert state.contacts[phones[4]]["first_name"] == "Augusta"
    assert third.counts["updated"] == 1 and third.counts["unchanged"] == 22


def test_dry_run_prints_the_plan_and_sends_nothing(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phones = h.new_phones(6)
    h.write_table("crm.people", COLUMNS, [*rows_for(phones), ("not a phone", "X", None, None, None, None, None, None)])
    env.sync("dry", target="sendblue.contacts", table="crm.people")
    printed: list[str] = []

    result = run_sync("dry", dry_run=True, out=printed.append)

    text = "\n".join(printed)
    assert result.status == "dry_run"
    assert result.counts["creates"] == 6 and result.counts["rejects"] == 1 and result.counts["opt_outs"] == 2
    assert "creates" in text and phones[0] in text and "not a phone" in text
    assert sendblue_box.state.log.entries == []
    assert not any(p in sendblue_box.state.contacts for p in phones)
    assert h.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'reverse_etl'")[0]["n"] == 0

    cli = env.run_module("dry", "--dry-run")
    assert cli.returncode == 2, cli.stdout + cli.stderr  # the reject would make the real run partial
    assert "creates" in cli.stdout and "nothing sent" in cli.stdout
    assert sendblue_box.state.log.entries == []


def test_bad_rows_are_rejected_with_reasons_and_the_rest_goes_through(
    sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    good = h.new_phones(3)
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR", "opt_out": "VARCHAR", "custom_variables": "VARCHAR"}
    rows = [
        (good[0], "Ok", None, '{"Plan": "Growth"}'),
        (good[1], "Ok", "true", None),
        (good[2].replace("+1", "+1 (") + ")", "Ok", None, None),  # still a valid phone once normalised
        ("12345", "Bad phone", None, None),
        (None, "No key", None, None),
        ("+19895559990", "Dup A", None, None),
        ("+1 989 555 9990", "Dup B", None, None),  # the same key written differently
        ("+19895559991", "Wrong type", "maybe", None),
        ("+19895559992", "Wrong map", None, "[1, 2]"),
    ]
    h.write_table("crm.messy", columns, rows)
    env.sync("messy", target="sendblue.contacts", table="crm.messy")

    result = run_sync("messy", out=lambda _: None)

    assert result.status == "partial" and result.exit_code == 2
    assert result.counts["created"] == 3 and result.counts["rejected"] == 6
    assert all(p in sendblue_box.state.contacts for p in good)
    assert sendblue_box.state.contacts[good[1]]["opt_out"] is True
    for phone in ("+19895559990", "+19895559991", "+19895559992"):
        assert phone not in sendblue_box.state.contacts
    reasons = {(r["record_key"], r["message"]) for r in h.sync_log("messy") if r["outcome"] == "rejected"}
    text = json.dumps(sorted(reasons, key=str))
    assert "not an E.164 phone number: '12345' has no country code" in text
    assert "missing key" in text
    assert "duplicate key" in text and "+19895559990" in text
    assert "opt_out" in text and "custom_variables" in text
    runs = h.query("SELECT status, rejected FROM reverse_etl.sync_runs WHERE sync_name = 'messy'")
    assert runs == [{"status": "partial", "rejected": 6}]

    cli = env.run_module("messy")
    # the same rows rejected again, unchanged: reported as still rejected, the run is not partial again
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "still rejected (6)" in cli.stdout
    assert env.run_module("messy", "--strict").returncode == 2  # --strict: every reject fails the run


def test_nulls_do_not_erase_unless_nulls_erase(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phone = h.new_phones(1)[0]
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR", "company_name": "VARCHAR", "custom_variables": "JSON"}
    h.write_table("crm.one", columns, [(phone, "Ada", "Acme", '{"Plan": "Growth", "Region": "West"}')])
    env.sync("keep", target="sendblue.contacts", table="crm.one")
    assert run_sync("keep", out=lambda _: None).status == "success"

    h.write_table("crm.one", columns, [(phone, "Ada", None, '{"Plan": "Starter", "Region": null}')])
    assert run_sync("keep", out=lambda _: None).status == "success"
    contact = sendblue_box.state.contacts[phone]
    assert contact["company_name"] == "Acme"
    assert contact["custom_variables"] == {"Plan": "Starter", "Region": "West"}

    env.sync("erase", target="sendblue.contacts", table="crm.one", nulls_erase=True)
    assert run_sync("erase", out=lambda _: None).status == "success"
    contact = sendblue_box.state.contacts[phone]
    assert contact["company_name"] is None
    assert contact["custom_variables"] == {"Plan": "Starter"}
    assert contact["first_name"] == "Ada"


def test_opt_outs_are_sticky_unless_allow_opt_in(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    state = sendblue_box.state
    subscribed = sorted(p for p, c in state.contacts.items() if not c.get("opt_out"))
    opted_out, opted_in = subscribed[:1], subscribed[1:2]
    state.set_opt_out(opted_out[0], True)  # the recipient texted STOP
    columns = {"phone": "VARCHAR", "opted_out": "BOOLEAN"}
    h.write_table("crm.optouts", columns, [(opted_out[0], False), (opted_in[0], True)])
    env.sync("stop_list", target="sendblue.opt_outs", table="crm.optouts")

    result = run_sync("stop_list", out=lambda _: None)

    assert result.status == "success"
    sent = h.writes(sendblue_box)
    assert [(e.path, e.body) for e in sent] == [("/api/v2/contacts/opt-out", {"number": opted_in[0], "opted_out": True})]
    assert opted_out[0] in state.opted_out_numbers and opted_in[0] in state.opted_out_numbers
    skipped = [r for r in h.sync_log("stop_list") if r["outcome"] == "skipped"]
    assert [r["record_key"] for r in skipped] == [opted_out[0]]

    # a contacts sync whose row says opt_out = false for an opted-out number sends no opt-in either
    h.write_table("crm.back", {"phone": "VARCHAR", "first_name": "VARCHAR", "opt_out": "BOOLEAN"}, [(opted_out[0], "Back", False)])
    env.sync("contacts_back", target="sendblue.contacts", table="crm.back")
    state.log.clear()
    assert run_sync("contacts_back", out=lambda _: None).status == "success"
    assert not [e for e in h.writes(sendblue_box) if e.path.endswith("/opt-out") or "opt_out" in (e.body or {})]
    assert opted_out[0] in state.opted_out_numbers

    env.sync("stop_list_in", target="sendblue.opt_outs", table="crm.optouts", allow_opt_in=True)
    assert run_sync("stop_list_in", out=lambda _: None).status == "success"
    assert opted_out[0] not in state.opted_out_numbers


def test_row_errors_are_logged_and_retried_on_the_next_run(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    state = sendblue_box.state
    existing = sorted(state.contacts)[0]
    missing = h.new_phones(1, start=500)[0]
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR"}
    h.write_table("crm.upd", columns, [(missing, "Nobody")])
    h.write_table("crm.new", columns, [(existing, "Already here")])
    env.sync("upd", target="sendblue.contacts", table="crm.upd", mode="update_only")
    env.sync("new", target="sendblue.contacts", table="crm.new", mode="create_only")

    upd = run_sync("upd", out=lambda _: None)
    new = run_sync("new", out=lambda _: None)

    assert upd.status == "partial" and upd.counts["failed"] == 1
    assert new.status == "partial" and new.counts["failed"] == 1
    errors = {r["record_key"]: r for r in h.sync_log("upd") + h.sync_log("new") if r["outcome"] == "error"}
    assert errors[missing]["http_status"] == 404
    assert errors[existing]["http_status"] == 409
    assert h.ledger("upd")[missing]["status"] == "failed"
    assert state.contacts[existing].get("first_name") != "Already here"  # create_only never updates

    # retried next run: the failed row is sent again, and succeeds once the contact exists
    state.create_contact(missing, {"first_name": "Somebody"})
    state.log.clear()
    again = run_sync("upd", out=lambda _: None)
    assert again.status == "success" and again.counts["updated"] == 1
    assert state.contacts[missing]["first_name"] == "Nobody"
    assert h.ledger("upd")[missing]["status"] == "synced"


def test_duplicates_are_caught_even_when_one_copy_is_unchanged(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phone, other = h.new_phones(2, start=600)
    columns = {"phone": "VARCHAR", "first_name": "VARCHAR"}
    h.write_table("crm.d", columns, [(phone, "Once"), (other, "Other")])
    env.sync("dups", target="sendblue.contacts", table="crm.d")
    assert run_sync("dups", out=lambda _: None).status == "success"

    # an identical second copy: both copies hash alike, so neither may pass as unchanged
    h.write_table("crm.d", columns, [(phone, "Once"), (phone, "Once"), (other, "Other")])
    twice = run_sync("dups", out=lambda _: None)
    assert twice.status == "partial" and twice.counts["rejected"] == 2 and twice.counts["unchanged"] == 1

    # the same number written differently next to the unchanged row: found through the ledger
    spaced = f"{phone[:2]} {phone[2:5]} {phone[5:8]} {phone[8:]}"
    h.write_table("crm.d", columns, [(phone, "Once"), (spaced, "Changed"), (other, "Other")])
    sendblue_box.state.log.clear()
    clash = run_sync("dups", out=lambda _: None)
    assert clash.status == "partial" and clash.counts["rejected"] == 2 and clash.counts["unchanged"] == 1
    assert h.writes(sendblue_box) == []
    assert sendblue_box.state.contacts[phone]["first_name"] == "Once"
    rejected = [r for r in h.sync_log("dups") if r["outcome"] == "rejected" and r["record_key"] == phone]
    assert len(rejected) == 4 and all("duplicate key" in r["message"] for r in rejected)

"""The sync ledger belongs to the target account (SPEC §7): a sync pointed at another Chatwoot server or
Sendblue key reads that account's remote state instead of trusting what it sent to the first one, and
finds its first account's ledger intact when it comes back. Two simulators are two accounts. Also: the
loaded table that tells which records exist is read from the sync's `loaded_dataset`."""

from __future__ import annotations

from typing import Any

from pipelines.sync import run_sync
from sandbox.chatwoot import create_app as create_chatwoot
from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
from sandbox.sendblue import create_app as create_sendblue
from sandbox.server import serve_in_thread


def quiet(_: str) -> None:
    return None


def test_a_sendblue_sync_pointed_at_another_account_sends_there_and_keeps_the_first_ledger(
    sendblue_box, make_env, h
) -> None:
    other = serve_in_thread(create_sendblue("small", seed=22, contacts=10, messages=5, groups=1))
    try:
        env = make_env(sendblue=sendblue_box)
        phones = h.new_phones(3, start=500)
        h.write_table("crm.people", {"phone": "VARCHAR", "first_name": "VARCHAR"}, [(p, "Ada") for p in phones])
        env.sync("people", target="sendblue.contacts", table="crm.people")
        assert run_sync("people", out=quiet).counts["created"] == 3

        env.set(SOURCES__SENDBLUE__BASE_URL=other.url)
        moved = run_sync("people", out=quiet)

        # before: every row was "unchanged" (the ledger of the first account) and the second got nothing
        assert moved.status == "success", moved.error
        assert moved.counts["created"] == 3 and moved.counts["unchanged"] == 0
        assert all(other.state.contacts[p]["first_name"] == "Ada" for p in phones)

        env.set(SOURCES__SENDBLUE__BASE_URL=sendblue_box.url)
        sendblue_box.state.log.clear()
        back = run_sync("people", out=quiet)
        assert back.status == "success" and back.counts["unchanged"] == 3
        assert sendblue_box.state.log.writes() == [], "the first account's ledger still holds"
        rows = h.query("SELECT account, COUNT(*) AS n FROM reverse_etl.sync_ledger GROUP BY account")
        assert sorted(r["n"] for r in rows) == [3, 3], "one ledger row per key and account"
        assert not any(API_KEY_ID in r["account"] or API_SECRET_KEY in r["account"] for r in rows)
    finally:
        other.stop()


def by_email(box: Any, email: str) -> list[dict[str, Any]]:
    return [c for c in box.state.contacts.values() if c.get("email") == email]


def test_a_chatwoot_sync_pointed_at_another_server_reads_its_contacts_again(chatwoot_box, make_env, h) -> None:
    other = serve_in_thread(create_chatwoot("small", seed=22))
    try:
        env = make_env(chatwoot=chatwoot_box)
        [there] = [c for c in other.state.visible_contacts() if c["email"] and not by_email(chatwoot_box, c["email"])][:1]
        rows = [(there["email"], "Renamed"), ("fresh@example.org", "Fresh")]
        h.write_table("crm.cw", {"email": "VARCHAR", "name": "VARCHAR"}, rows)
        env.sync("cw", target="chatwoot.contacts", table="crm.cw", match_on="email")
        assert run_sync("cw", out=quiet).counts["created"] == 2

        env.set(SOURCES__CHATWOOT__BASE_URL=other.url)
        moved = run_sync("cw", out=quiet)

        assert moved.status == "success", moved.error
        assert moved.counts["created"] == 1 and moved.counts["updated"] == 1
        [renamed] = by_email(other, there["email"])
        assert renamed["id"] == there["id"] and renamed["name"] == "Renamed", "matched, not duplicated"
        assert len(by_email(other, "fresh@example.org")) == 1
    finally:
        other.stop()


def test_the_loaded_table_is_read_from_the_syncs_loaded_dataset(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    known = sorted((c for c in state.visible_contacts() if c["phone_number"]), key=lambda c: c["id"])[:3]
    # loaded with `switchboard load chatwoot --dataset cw_prod`
    h.write_table(
        "cw_prod.contacts",
        {"id": "BIGINT", "phone_number": "VARCHAR"},
        [(c["id"], c["phone_number"]) for c in known],
    )
    h.write_table("crm.phones", {"phone_number": "VARCHAR", "name": "VARCHAR"}, [(c["phone_number"], "Loaded") for c in known])
    env.sync("elsewhere", target="chatwoot.contacts", table="crm.phones", match_on="phone_number")
    env.sync("prod", target="chatwoot.contacts", table="crm.phones", match_on="phone_number", loaded_dataset="cw_prod")

    assert run_sync("elsewhere", dry_run=True, out=quiet).counts["creates"] == 3, "no chatwoot.contacts table"
    result = run_sync("prod", out=quiet)

    assert result.status == "success" and result.counts["updated"] == 3
    assert not state.log.matching(route="/contacts/filter"), "no lookups: the cw_prod table had the ids"
    assert all(state.contacts[c["id"]]["name"] == "Loaded" for c in known)

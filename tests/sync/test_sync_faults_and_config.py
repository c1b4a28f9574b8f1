"""Transient failures retried inside the run (5xx, 429), a timeout after a create left reconciled instead of
resent, a run against an unreachable API failing cleanly, and how syncs are declared and listed."""

from __future__ import annotations

import collections

import pytest

from pipelines.sync import SyncConfigError, list_syncs, load_sync_config, run_sync

COLUMNS = {"phone": "VARCHAR", "first_name": "VARCHAR"}


def quiet(_: str) -> None:
    return None


def test_5xx_and_429_are_retried_inside_the_run(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phones = h.new_phones(12, start=300)
    h.write_table("crm.f", COLUMNS, [(p, "First") for p in phones])
    env.sync("faulty", target="sendblue.contacts", table="crm.f", batch_size=5)
    state = sendblue_box.state
    state.schedule("500", path_contains="/bulk", count=2)
    state.schedule("502", path_contains="/bulk", count=1)

    first = run_sync("faulty", out=quiet)

    assert first.status == "success", first.error
    assert all(state.contacts[p]["first_name"] == "First" for p in phones)
    assert state.log.status_counts().get(500) == 2 and state.log.status_counts().get(502) == 1

    h.write_table("crm.f", COLUMNS, [(p, "Second") for p in phones])
    state.schedule("429", path_contains="/api/v2/contacts/", method="PUT", count=3)
    second = run_sync("faulty", out=quiet)
    assert second.status == "success", second.error
    assert second.counts["updated"] == 12
    assert all(state.contacts[p]["first_name"] == "Second" for p in phones)
    assert state.log.status_counts().get(429) == 3


def test_a_timeout_after_a_bulk_create_left_is_reconciled_not_resent(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    env.set(SOURCES__SENDBLUE__TIMEOUT="0.5")
    phones = h.new_phones(8, start=400)
    h.write_table("crm.t", COLUMNS, [(p, "Slow") for p in phones])
    env.sync("slow", target="sendblue.contacts", table="crm.t", batch_size=4, reconcile_delay_seconds=1.5)
    state = sendblue_box.state
    state.knobs.stall_seconds = 1.0  # answers after the client gave up, but the create still happens
    state.schedule("stall", path_contains="/bulk", count=1)

    result = run_sync("slow", out=quiet)

    assert result.status == "success", result.error
    assert all(state.contacts[p]["first_name"] == "Slow" for p in phones)
    created: collections.Counter[str] = collections.Counter()
    for entry in state.log.matching(route="/api/v2/contacts/bulk", method="POST"):
        created.update(item["phone"] for item in entry.body["contacts"])
    assert {p: created[p] for p in phones} == {p: 1 for p in phones}, "the stalled batch was not sent again"
    reads = state.log.matching(route="/api/v2/contacts/{phone_number}", method="GET")
    assert len(reads) == 4, "the four rows of the stalled batch were read back"
    outcomes = [(r["record_key"], r["outcome"]) for r in h.sync_log("slow")]
    assert sum(1 for _, o in outcomes if o == "unknown") == 4
    assert {e["status"] for e in h.ledger("slow").values()} == {"synced"}


def test_an_unreachable_api_fails_the_run_and_leaves_intent_for_the_next_one(make_env, h) -> None:
    from sandbox.server import free_port

    env = make_env()
    env.set(
        SOURCES__SENDBLUE__BASE_URL=f"http://127.0.0.1:{free_port()}",
        SOURCES__SENDBLUE__API_KEY_ID="k",
        SOURCES__SENDBLUE__API_SECRET_KEY="s",
        SOURCES__SENDBLUE__MAX_RETRIES="1",
        SOURCES__SENDBLUE__RETRY_BACKOFF_SECONDS="0.01",
    )
    phones = h.new_phones(3, start=450)
    h.write_table("crm.down", COLUMNS, [(p, "Down") for p in phones])
    env.sync("down", target="sendblue.contacts", table="crm.down", reconcile_delay_seconds=0)

    result = run_sync("down", out=quiet)

    assert result.status in ("failed", "partial") and result.exit_code != 0
    assert {e["status"] for e in h.ledger("down").values()} == {"pending"}, "intent kept for reconciliation"
    [run] = h.query("SELECT status FROM reverse_etl.sync_runs WHERE sync_name = 'down'")
    assert run["status"] == result.status


def listing(stdout: str) -> list[list[str]]:
    """(name, target) of each row `switchboard sync --list` prints."""
    return [line.split()[:2] for line in stdout.splitlines()]


def test_syncs_are_declared_through_dlt_config_and_listed(make_env, h) -> None:
    env = make_env()
    env.sync("alpha", target="sendblue.opt_outs", query="SELECT phone FROM crm.x", batch_size=50)
    env.sync("beta", target="chatwoot.contacts", table="crm.y", match_on="email", mode="update_only")

    names = {c.name: c for c in list_syncs()}
    assert names["alpha"].target == "sendblue.opt_outs" and names["alpha"].batch_size == 50
    assert names["beta"].mode == "update_only" and names["beta"].match_on == "email"
    assert load_sync_config("ALPHA").name == "alpha", "one sync whatever the letter case"

    env.sync("broken", target="sendblue.nowhere", table="crm.z")
    with pytest.raises(SyncConfigError, match="target"):
        load_sync_config("broken")
    env.sync("both", target="sendblue.contacts", table="crm.z", query="SELECT 1")
    with pytest.raises(SyncConfigError, match="exactly one of query or table"):
        load_sync_config("both")
    with pytest.raises(SyncConfigError, match="not declared"):
        load_sync_config("missing")

    with pytest.raises(SyncConfigError, match="'broken'.*'both'|'both'.*'broken'"):
        list_syncs()
    listed = env.run_module("--list")
    assert listed.returncode == 1 and "broken" in listed.stderr and "both" in listed.stderr
    assert ["alpha", "sendblue.opt_outs"] in listing(listed.stdout), "the valid syncs are still listed"
    env.drop_sync("broken")
    env.drop_sync("both")
    listed = env.run_module("--list")
    assert listed.returncode == 0, listed.stderr
    assert ["alpha", "sendblue.opt_outs"] in listing(listed.stdout) and ["beta", "chatwoot.contacts"] in listing(listed.stdout)


def test_a_query_without_the_key_column_fails_with_a_clear_message(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    h.write_table("crm.nokey", {"mobile": "VARCHAR"}, [("+19895550000",)])
    env.sync("nokey", target="sendblue.contacts", query="SELECT mobile FROM crm.nokey")
    printed: list[str] = []

    result = run_sync("nokey", out=printed.append)

    assert result.status == "failed" and result.exit_code == 1
    assert "no column phone" in (result.error or "") and "mobile" in (result.error or "")
    assert sendblue_box.state.log.entries == []


def test_a_bulk_batch_refused_whole_is_split_until_it_fits(make_env, h) -> None:
    from sandbox.sendblue import create_app
    from sandbox.server import serve_in_thread

    box = serve_in_thread(create_app("small", seed=4, contacts=10, messages=5, groups=1, bulk_max=8))
    try:
        env = make_env(sendblue=box)
        phones = h.new_phones(20, start=800)
        h.write_table("crm.big", COLUMNS, [(p, "Split") for p in phones])
        env.sync("big", target="sendblue.contacts", table="crm.big", batch_size=20)

        result = run_sync("big", out=quiet)

        assert result.status == "success", result.error
        assert all(box.state.contacts[p]["first_name"] == "Split" for p in phones)
        bulk = box.state.log.matching(route="/api/v2/contacts/bulk", method="POST")
        accepted = [e for e in bulk if e.status == 200]
        assert sorted(len(e.body["contacts"]) for e in accepted) == [5, 5, 5, 5]
        assert len(bulk) == 7, "20 refused, two 10s refused, four 5s taken"
        assert not box.state.log.matching(route="/api/v2/contacts", method="POST"), "no row-by-row creates"
    finally:
        box.stop()

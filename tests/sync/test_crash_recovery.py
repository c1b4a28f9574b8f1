"""Exactly-once effect across crashes: `switchboard sync` is SIGKILLed in the middle of a bulk
create (and, separately, in the middle of updates), then run again. Every wanted contact ends up present
once, no create or update is sent twice, nothing is skipped, and the ledger matches what the API holds."""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest

COLUMNS = {"phone": "VARCHAR", "first_name": "VARCHAR", "assigned_to_email": "VARCHAR", "opt_out": "BOOLEAN"}


def desired_rows(phones: list[str], name: str) -> list[tuple[Any, ...]]:
    return [
        (phone, f"{name}{i}", "seat@example.com" if i % 4 == 0 else None, i % 7 == 0) for i, phone in enumerate(phones)
    ]


def wait_for(condition: Any, proc: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the sync ended (exit {proc.returncode}) before it could be killed:\n{output}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the sync never reached the point where it was to be killed")
        time.sleep(0.02)


def created_phones(box: Any) -> collections.Counter[str]:
    """How many create requests (bulk items or single creates) the simulator received per phone."""
    counts: collections.Counter[str] = collections.Counter()
    for entry in box.state.log.writes():
        if entry.path == "/api/v2/contacts/bulk":
            counts.update(item["phone"] for item in entry.body["contacts"])
        elif entry.path == "/api/v2/contacts" and entry.method == "POST":
            counts[entry.body["number"]] += 1
    return counts


def assert_ledger_matches_api(h: Any, box: Any, sync: str, rows: list[tuple[Any, ...]]) -> None:
    entries = h.ledger(sync)
    assert set(entries) == {r[0] for r in rows}
    assert {e["status"] for e in entries.values()} == {"synced"}, "nothing left pending or failed"
    for phone, first_name, seat, opt_out in rows:
        contact = box.state.contacts[phone]
        assert contact["first_name"] == first_name
        assert contact.get("assigned_to_email") == seat
        assert bool(contact.get("opt_out")) is opt_out
        assert (phone in box.state.opted_out_numbers) is opt_out


def test_sigkill_in_the_middle_of_a_bulk_create_then_rerun(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phones = h.new_phones(60)
    rows = desired_rows(phones, "New")
    h.write_table("crm.leads", COLUMNS, rows)
    env.sync("leads", target="sendblue.contacts", table="crm.leads", batch_size=10, concurrency=1)
    state = sendblue_box.state
    state.knobs.latency_ms = 250  # a window to kill in: each batch takes a quarter second or more

    proc = env.spawn_module("leads")
    bulk_requests = lambda: state.log.matching(route="/api/v2/contacts/bulk", method="POST")  # noqa: E731
    wait_for(lambda: len(bulk_requests()) >= 2, proc)
    proc.kill()
    proc.wait(timeout=30)

    assert proc.returncode == -9
    time.sleep(0.6)  # let the request that was in flight land server-side, as it would on a real API
    present_after_kill = [p for p in phones if p in state.contacts]
    assert 10 <= len(present_after_kill) < 60, "killed mid-run, with some batches sent and some not"
    killed_ledger = h.ledger("leads")
    assert "pending" in {e["status"] for e in killed_ledger.values()}, "the batch in flight was marked first"

    state.knobs.latency_ms = 0
    rerun = env.run_module("leads")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "reconcile" in rerun.stdout

    assert all(p in state.contacts for p in phones), "nothing skipped"
    counts = created_phones(sendblue_box)
    assert {p: counts[p] for p in phones} == {p: 1 for p in phones}, "each contact created exactly once"
    assert_ledger_matches_api(h, sendblue_box, "leads", rows)
    runs = h.query("SELECT status, error FROM reverse_etl.sync_runs WHERE sync_name = 'leads' ORDER BY started_at")
    assert [r["status"] for r in runs] == ["failed", "success"]
    assert "interrupted" in runs[0]["error"]


def test_sigkill_in_the_middle_of_updates_then_rerun(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    phones = h.new_phones(40, start=100)
    h.write_table("crm.people", COLUMNS, desired_rows(phones, "Old"))
    env.sync("people", target="sendblue.contacts", table="crm.people", batch_size=5, concurrency=1)
    first = env.run_module("people")
    assert first.returncode == 0, first.stdout + first.stderr

    rows = desired_rows(phones, "Renamed")
    h.write_table("crm.people", COLUMNS, rows)
    state = sendblue_box.state
    state.log.clear()
    state.knobs.latency_ms = 120
    proc = env.spawn_module("people")
    puts = lambda: state.log.matching(route="/api/v2/contacts/{phone_number}", method="PUT")  # noqa: E731
    wait_for(lambda: len(puts()) >= 12, proc)
    proc.kill()
    proc.wait(timeout=30)

    assert proc.returncode == -9
    time.sleep(0.4)
    renamed = [p for p in phones if state.contacts[p]["first_name"].startswith("Renamed")]
    assert 12 <= len(renamed) < 40, "killed mid-run"

    state.knobs.latency_ms = 0
    rerun = env.run_module("people")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    put_counts = collections.Counter(e.path.rsplit("/", 1)[-1].replace("%2B", "+") for e in puts())
    assert {p: put_counts[p] for p in phones} == {p: 1 for p in phones}, "each update sent exactly once"
    assert not created_phones(sendblue_box), "no creates for contacts that exist"
    assert_ledger_matches_api(h, sendblue_box, "people", rows)

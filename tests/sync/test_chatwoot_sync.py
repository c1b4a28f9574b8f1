"""`chatwoot.contacts` and `chatwoot.contact_labels` against the Chatwoot simulator over HTTP: matching
through the filter endpoint or the loaded table, attribute merges, labels union vs replace, single-label
adds and removes, and 422 row errors retried on the next run."""

from __future__ import annotations

from typing import Any

from pipelines.sync import run_sync

CONTACT_COLUMNS = {
    "email": "VARCHAR",
    "name": "VARCHAR",
    "phone_number": "VARCHAR",
    "identifier": "VARCHAR",
    "custom_attributes": "JSON",
    "labels": "VARCHAR[]",
}


def quiet(_: str) -> None:
    return None


def visible(box: Any, where: Any, count: int) -> list[dict[str, Any]]:
    return sorted((c for c in box.state.visible_contacts() if where(c)), key=lambda c: c["id"])[:count]


def by_email(box: Any, email: str) -> list[dict[str, Any]]:
    return [c for c in box.state.contacts.values() if c.get("email") == email]


def test_matches_on_email_through_the_filter_endpoint_creates_updates_and_then_sends_nothing(
    chatwoot_box, make_env, h
) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    existing = visible(chatwoot_box, lambda c: c["email"] and c["custom_attributes"], 3)
    rows = [
        # upper-case email in the warehouse: matched after lower-casing
        (c["email"].upper(), f"Renamed {c['id']}", None, None, '{"tier": "gold"}', None) for c in existing
    ] + [
        (f"new{i}@example.org", f"New {i}", f"+1989555{i:04d}", f"ext-{i}", '{"tier": "silver"}', ["prospect"])
        for i in range(3)
    ]
    h.write_table("crm.cw", CONTACT_COLUMNS, rows)
    env.sync("cw", target="chatwoot.contacts", table="crm.cw", match_on="email")
    before = {c["id"]: dict(c["custom_attributes"]) for c in existing}

    result = run_sync("cw", out=quiet)

    assert result.status == "success", result.error
    assert result.counts["created"] == 3 and result.counts["updated"] == 3
    for contact in existing:
        live = state.contacts[contact["id"]]
        assert live["name"] == f"Renamed {contact['id']}"
        # attributes merge as the API does: the contact's other attributes stay
        assert live["custom_attributes"] == {**before[contact["id"]], "tier": "gold"}
        assert live["phone_number"] == contact["phone_number"], "a null phone in the row did not erase it"
    for i in range(3):
        [created] = by_email(chatwoot_box, f"new{i}@example.org")
        assert created["identifier"] == f"ext-{i}" and created["custom_attributes"] == {"tier": "silver"}
        assert state.labels_of(created["id"]) == ["prospect"]
    filters = state.log.matching(route="/contacts/filter", method="POST")
    assert len(filters) == 1, "six keys looked up in one filter request"
    entries = h.ledger("cw")
    assert {e["status"] for e in entries.values()} == {"synced"}
    assert entries[existing[0]["email"]]["remote_id"] == str(existing[0]["id"])

    state.log.clear()
    again = run_sync("cw", out=quiet)
    assert again.status == "success" and again.counts["unchanged"] == 6
    assert state.log.entries == []


def test_labels_union_by_default_and_replace_when_asked(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    [contact] = visible(chatwoot_box, lambda c: c["identifier"], 1)
    state.set_contact_labels(contact["id"], ["alpha", "beta"])
    h.write_table(
        "crm.labels", {"identifier": "VARCHAR", "labels": "VARCHAR[]"}, [(contact["identifier"], ["Gamma", "alpha"])]
    )
    env.sync("union", target="chatwoot.contacts", table="crm.labels", match_on="identifier")
    env.sync("replace", target="chatwoot.contacts", table="crm.labels", match_on="identifier", labels_mode="replace")

    assert run_sync("union", out=quiet).status == "success"
    assert sorted(state.labels_of(contact["id"])) == ["alpha", "beta", "gamma"]

    assert run_sync("replace", out=quiet).status == "success"
    assert sorted(state.labels_of(contact["id"])) == ["alpha", "gamma"]


def test_contact_labels_adds_and_removes_single_labels_without_clobbering(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    first, second = visible(chatwoot_box, lambda c: c["identifier"], 2)
    state.set_contact_labels(first["id"], ["customer"])
    state.set_contact_labels(second["id"], ["customer", "churn-risk"])
    columns = {"identifier": "VARCHAR", "label": "VARCHAR"}
    rows = [(first["identifier"], "VIP"), (second["identifier"], "vip"), (second["identifier"], "beta")]
    h.write_table("crm.tags", columns, rows)
    env.sync("tags", target="chatwoot.contact_labels", table="crm.tags", match_on="identifier", remove=True)

    result = run_sync("tags", out=quiet)

    assert result.status == "success", result.error
    assert sorted(state.labels_of(first["id"])) == ["customer", "vip"]
    assert sorted(state.labels_of(second["id"])) == ["beta", "churn-risk", "customer", "vip"]
    label_posts = state.log.matching(route="/contacts/{id}/labels", method="POST")
    assert len(label_posts) == 2, "one write per contact, not one per label"

    state.log.clear()
    assert run_sync("tags", out=quiet).status == "success"
    assert state.log.entries == []

    h.write_table("crm.tags", columns, rows[:2])  # beta leaves the query
    result = run_sync("tags", out=quiet)
    assert result.status == "success" and result.counts["labels_changed"] == 1
    assert sorted(state.labels_of(second["id"])) == ["churn-risk", "customer", "vip"]
    assert sorted(state.labels_of(first["id"])) == ["customer", "vip"]
    assert f"{second['identifier']}|beta" not in h.ledger("tags")


def test_a_422_is_logged_per_row_and_retried_on_the_next_run(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    [taken] = visible(chatwoot_box, lambda c: c["email"], 1)
    columns = {"identifier": "VARCHAR", "email": "VARCHAR", "name": "VARCHAR"}
    h.write_table("crm.dupes", columns, [("ext-new-1", taken["email"], "Clash"), ("ext-new-2", "fine@example.org", "Fine")])
    env.sync("dupes", target="chatwoot.contacts", table="crm.dupes", match_on="identifier")

    first = run_sync("dupes", out=quiet)

    assert first.status == "partial" and first.exit_code == 2
    assert first.counts["created"] == 1 and first.counts["failed"] == 1
    [error] = [r for r in h.sync_log("dupes") if r["outcome"] == "error"]
    assert error["record_key"] == "ext-new-1" and error["http_status"] == 422
    assert "already been taken" in error["message"]
    assert h.ledger("dupes")["ext-new-1"]["status"] == "failed"

    state.log.clear()
    second = run_sync("dupes", out=quiet)
    # the same row refused again with the same answer: still failed, not a new failure (unless strict)
    assert (second.status, second.counts["failed"], second.counts["still_failed"]) == ("success", 1, 1)
    creates = state.log.matching(route="/api/v1/accounts/{account_id}/contacts", method="POST")
    assert [e.body["identifier"] for e in creates] == ["ext-new-1"], "only the failed row is tried again"
    assert run_sync("dupes", out=quiet, strict=True).status == "partial"

    h.write_table("crm.dupes", columns, [("ext-new-1", "unique@example.org", "Clash"), ("ext-new-2", "fine@example.org", "Fine")])
    third = run_sync("dupes", out=quiet)
    assert third.status == "success" and third.counts["created"] == 1
    assert len(by_email(chatwoot_box, "unique@example.org")) == 1


def test_the_loaded_chatwoot_contacts_table_replaces_lookups(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    known = visible(chatwoot_box, lambda c: c["phone_number"], 4)
    h.write_table(
        "chatwoot.contacts",
        {"id": "BIGINT", "phone_number": "VARCHAR", "email": "VARCHAR"},
        [(c["id"], c["phone_number"], c["email"]) for c in known],
    )
    columns = {"phone_number": "VARCHAR", "name": "VARCHAR"}
    h.write_table("crm.phones", columns, [(c["phone_number"], f"Loaded {c['id']}") for c in known])
    env.sync("phones", target="chatwoot.contacts", table="crm.phones", match_on="phone_number")

    printed: list[str] = []
    dry = run_sync("phones", dry_run=True, out=printed.append)
    assert dry.counts["updates"] == 4 and dry.counts["creates"] == 0, "\n".join(printed)

    result = run_sync("phones", out=quiet)
    assert result.status == "success" and result.counts["updated"] == 4
    assert not state.log.matching(route="/contacts/filter"), "no lookups: the table had the ids"
    assert all(state.contacts[c["id"]]["name"] == f"Loaded {c['id']}" for c in known)


def test_nulls_leave_chatwoot_values_unless_nulls_erase(chatwoot_box, make_env, h) -> None:
    env = make_env(chatwoot=chatwoot_box)
    state = chatwoot_box.state
    [contact] = visible(chatwoot_box, lambda c: c["identifier"] and c["email"], 1)
    columns = {"identifier": "VARCHAR", "name": "VARCHAR", "email": "VARCHAR", "custom_attributes": "JSON"}
    rows = [(contact["identifier"], None, None, '{"tier": "gold", "plan": null}')]
    h.write_table("crm.n", columns, rows)
    state.update_contact(contact["id"], {"custom_attributes": {"plan": "pro"}})
    env.sync("keep_cw", target="chatwoot.contacts", table="crm.n", match_on="identifier")
    env.sync("erase_cw", target="chatwoot.contacts", table="crm.n", match_on="identifier", nulls_erase=True)

    assert run_sync("keep_cw", out=quiet).status == "success"
    live = state.contacts[contact["id"]]
    assert live["email"] == contact["email"] and live["name"] == contact["name"]
    assert live["custom_attributes"]["plan"] == "pro" and live["custom_attributes"]["tier"] == "gold"

    assert run_sync("erase_cw", out=quiet).status == "success"
    live = state.contacts[contact["id"]]
    assert live["email"] is None and live["name"] == ""
    assert "plan" not in live["custom_attributes"] and live["custom_attributes"]["tier"] == "gold"
    assert state.log.matching(route="/contacts/{id}/destroy_custom_attributes", method="POST")

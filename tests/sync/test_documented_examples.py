"""The two worked examples documented in .dlt/config.toml (and docs/reverse-etl.md) run as written: Chatwoot contacts
whose number opted out in Sendblue get a label, and new Chatwoot contacts with a phone are bulk-created in
Sendblue. The loaded `chatwoot.contacts` and `sendblue.contacts` tables are built from the simulators'
ground truth, as a load would leave them."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from pipelines.sync import run_sync

CONFIG = Path(__file__).resolve().parents[2] / ".dlt" / "config.toml"


def documented_sync(name: str) -> dict[str, Any]:
    """The commented-out `[syncs.NAME]` example of config.toml, uncommented and parsed."""
    lines = CONFIG.read_text().splitlines()
    start = lines.index(f"# [syncs.{name}]")
    block = []
    for line in lines[start:]:
        if line.strip() == "#" or not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    return tomllib.loads("\n".join(block))["syncs"][name]


def declare(env: Any, name: str) -> None:
    env.sync(name, **documented_sync(name))


def loaded_tables(h: Any, chatwoot: Any, sendblue: Any, chatwoot_ids: list[int]) -> None:
    cw = chatwoot.state.contacts
    h.write_table(
        "chatwoot.contacts",
        {"id": "BIGINT", "name": "VARCHAR", "email": "VARCHAR", "phone_number": "VARCHAR"},
        [(i, cw[i]["name"], cw[i]["email"], cw[i]["phone_number"]) for i in chatwoot_ids],
    )
    h.write_table(
        "sendblue.contacts",
        {"phone": "VARCHAR", "first_name": "VARCHAR", "opt_out": "BOOLEAN"},
        [(p, c.get("first_name"), bool(c.get("opt_out"))) for p, c in sendblue.state.contacts.items()],
    )


def test_opted_out_numbers_get_a_chatwoot_label(chatwoot_box, sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box, chatwoot=chatwoot_box)
    declare(env, "optouts_to_chatwoot")
    phones = sorted(p for p, c in sendblue_box.state.contacts.items() if not c.get("opt_out"))[:3]
    for phone in phones[:2]:
        sendblue_box.state.set_opt_out(phone, True)
    ids = []
    for i, phone in enumerate(phones):
        contact, _, _ = chatwoot_box.state.create_contact({"name": f"Both {i}", "phone_number": phone}, time.time())
        chatwoot_box.state.set_contact_labels(contact["id"], ["customer"])
        ids.append(contact["id"])
    loaded_tables(h, chatwoot_box, sendblue_box, ids)

    result = run_sync("optouts_to_chatwoot", out=lambda _: None)

    assert result.status == "success", result.error
    labels = chatwoot_box.state.labels_of
    assert sorted(labels(ids[0])) == ["customer", "sms-opted-out"]
    assert sorted(labels(ids[1])) == ["customer", "sms-opted-out"]
    assert labels(ids[2]) == ["customer"]

    # the number opts back in: with remove = true the label goes, the other labels stay
    sendblue_box.state.set_opt_out(phones[0], False)
    loaded_tables(h, chatwoot_box, sendblue_box, ids)
    assert run_sync("optouts_to_chatwoot", out=lambda _: None).status == "success"
    assert labels(ids[0]) == ["customer"]
    assert sorted(labels(ids[1])) == ["customer", "sms-opted-out"]


def test_new_chatwoot_contacts_with_phones_are_bulk_created_in_sendblue(
    chatwoot_box, sendblue_box, make_env, h
) -> None:
    env = make_env(sendblue=sendblue_box, chatwoot=chatwoot_box)
    declare(env, "chatwoot_phones_to_sendblue")
    existing = sorted(sendblue_box.state.contacts)[0]
    people = [("Grace Brewster Hopper", "+19895550801"), ("Linus", "+19895550802"), ("Already There", existing)]
    ids = [
        chatwoot_box.state.create_contact({"name": name, "phone_number": phone}, time.time())[0]["id"]
        for name, phone in people
    ]
    ids.append(chatwoot_box.state.create_contact({"name": "No Phone", "email": "np@example.org"}, time.time())[0]["id"])
    before = dict(sendblue_box.state.contacts[existing])
    loaded_tables(h, chatwoot_box, sendblue_box, ids)

    result = run_sync("chatwoot_phones_to_sendblue", out=lambda _: None)

    assert result.status == "success", result.error
    assert result.counts["created"] == 2
    contacts = sendblue_box.state.contacts
    assert (contacts["+19895550801"]["first_name"], contacts["+19895550801"]["last_name"]) == ("Grace", "Brewster Hopper")
    assert contacts["+19895550802"]["first_name"] == "Linus" and contacts["+19895550802"]["last_name"] is None
    assert contacts["+19895550801"]["tags"] == ["chatwoot"]
    assert contacts[existing] == before, "create_only leaves existing contacts alone"
    bulk = sendblue_box.state.log.matching(route="/api/v2/contacts/bulk", method="POST")
    assert len(bulk) == 1 and len(bulk[0].body["contacts"]) == 2

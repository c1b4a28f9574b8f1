"""Both simulators know some of the same people, as real accounts do: about a third of the smaller
account's people have the same phone (and name) in Chatwoot and Sendblue, some of them opted out of
texts in Sendblue, deterministically from the seed, at every size."""

from __future__ import annotations

from typing import Any

import httpx
import phonenumbers
import pytest

from pipelines.local_sandbox import start_sandboxes
from sandbox.chatwoot import create_sandbox
from sandbox.common import SIZES
from sandbox.sendblue import SendblueSandbox


def both_apis(size: str, seed: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], int]:
    """(Chatwoot contacts by phone, Sendblue contacts by phone, Chatwoot's visible contacts), contacts only
    (the messages are left out: they do not change who the people are)."""
    chatwoot = create_sandbox(size, seed, conversations=0, messages=0)
    sendblue = SendblueSandbox(size, seed, messages=0)
    visible = chatwoot.visible_contacts()
    by_phone = {c["phone_number"]: c for c in visible if c["phone_number"]}
    return by_phone, dict(sendblue.contacts), len(visible)


@pytest.mark.parametrize("size", SIZES)
def test_a_third_of_the_people_are_in_both_and_some_opted_out(size: str) -> None:
    chatwoot, sendblue, visible = both_apis(size, seed=5)
    both = sorted(set(chatwoot) & set(sendblue))
    smaller = min(visible, len(sendblue))
    assert 0.3 * smaller <= len(both) <= 0.34 * smaller, (len(both), smaller)
    opted_out = [phone for phone in both if sendblue[phone].get("opt_out")]
    assert 0.05 * len(both) <= len(opted_out) <= 0.3 * len(both), (len(opted_out), len(both))
    # not everyone is shared: each tool also has people of its own
    assert len(chatwoot) - len(both) > 0 and len(sendblue) - len(both) > 0
    for phone in both:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone)), phone
        first, last = sendblue[phone].get("first_name"), sendblue[phone].get("last_name")
        name = chatwoot[phone]["name"]
        if name and first and last:
            assert name == f"{first} {last}", phone  # the same person, by name too
        if name and first:
            assert name.split()[0] == first, phone


def test_the_shared_people_follow_the_seed() -> None:
    first, sendblue, _ = both_apis("small", seed=5)
    again, sendblue_again, _ = both_apis("small", seed=5)
    other, sendblue_other, _ = both_apis("small", seed=6)
    shared = set(first) & set(sendblue)
    assert shared == set(again) & set(sendblue_again)
    assert {p for p in shared if sendblue[p].get("opt_out")} == {
        p for p in shared if sendblue_again[p].get("opt_out")
    }
    assert shared != set(other) & set(sendblue_other)


def test_a_shared_person_is_found_by_phone_in_both_apis_over_http() -> None:
    with start_sandboxes(size="small", seed=2) as boxes:
        with boxes.chatwoot.state.lock, boxes.sendblue.state.lock:
            sendblue = dict(boxes.sendblue.state.contacts)
            chatwoot = {c["phone_number"]: c for c in boxes.chatwoot.state.visible_contacts()}
        opted_out = sorted(p for p in set(chatwoot) & set(sendblue) if sendblue[p].get("opt_out"))
        assert opted_out
        phone = opted_out[0]
        creds = boxes.credentials
        found = httpx.get(
            f"{boxes.chatwoot.url}/api/v1/accounts/{creds['chatwoot_account_id']}/contacts/search",
            params={"q": phone},
            headers={"api_access_token": creds["chatwoot_api_access_token"]},
        )
        assert found.status_code == 200, found.text
        assert [c["id"] for c in found.json()["payload"]] == [chatwoot[phone]["id"]]
        contact = httpx.get(
            f"{boxes.sendblue.url}/api/v2/contacts/{phone}",
            headers={
                "sb-api-key-id": creds["sendblue_api_key_id"],
                "sb-api-secret-key": creds["sendblue_api_secret_key"],
            },
        )
        assert contact.status_code == 200, contact.text
        assert contact.json()["contact"]["opt_out"] is True

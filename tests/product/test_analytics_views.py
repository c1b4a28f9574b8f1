"""The analytics views against the simulators' ground truth, after a real load of both sources."""

from __future__ import annotations

import collections
import datetime as dt
import io

import httpx
import pytest

from pipelines.load import load

# Sendblue contacts that also get a Chatwoot contact with the same phone (and a label), so the two
# tools share people the way real accounts do.
SHARED_PEOPLE = 6


def _create_shared_people(sandboxes) -> list[str]:
    """Chatwoot contacts for some Sendblue phones (opted-out ones included), through the Chatwoot API."""
    sb, cw = sandboxes.sendblue.state, sandboxes.chatwoot.state
    with sb.lock, cw.lock:
        in_chatwoot = {c["phone_number"] for c in cw.visible_contacts()}
        phones = sorted(p for p in sb.contacts if p not in in_chatwoot)
        opted = [p for p in phones if sb.contacts[p].get("opt_out")]
        chosen = (opted[:2] + [p for p in phones if p not in opted])[:SHARED_PEOPLE]
    headers = {"api_access_token": sandboxes.credentials["chatwoot_api_access_token"]}
    base = f"{sandboxes.chatwoot.url}/api/v1/accounts/{sandboxes.credentials['chatwoot_account_id']}"
    with httpx.Client(headers=headers, timeout=10) as http:
        for i, phone in enumerate(chosen):
            created = http.post(
                f"{base}/contacts", json={"name": f"Shared Person {i}", "phone_number": phone}
            )
            assert created.status_code == 200, created.text
            contact_id = created.json()["payload"]["contact"]["id"]
            labelled = http.post(f"{base}/contacts/{contact_id}/labels", json={"labels": ["shared", f"p{i}"]})
            assert labelled.status_code == 200, labelled.text
    return chosen


@pytest.fixture(scope="module")
def loaded(sandboxes, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("views")
    shared = _create_shared_people(sandboxes)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            **sandboxes.env(),
            "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
            "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "switchboard.duckdb"),
        }.items():
            mp.setenv(key, value)
        report = load("all", pipelines_dir=str(workdir / "pipelines"), progress_stream=io.StringIO())
    assert report.ok, report.failure_message()
    assert report.views is not None and report.views.created == [
        "analytics.contacts_unified",
        "analytics.conversation_activity",
    ]
    return workdir / "switchboard.duckdb", shared


def test_contacts_unified_is_one_row_per_person_matched_on_phone(sandboxes, loaded, db) -> None:
    duckdb_file, shared = loaded
    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state
    with cw.lock, sb.lock:
        cw_contacts = {c["id"]: c for c in cw.visible_contacts()}
        cw_labels = collections.defaultdict(list)
        for contact_id, label in cw.contact_labels():
            cw_labels[contact_id].append(label)
        sb_contacts = {phone: dict(c) for phone, c in sb.contacts.items()}
        sb_tags = collections.defaultdict(list)
        for phone, tag in sb.contact_tags():
            sb_tags[phone].append(tag)

    def labels(values: list[str]) -> tuple[str, ...] | None:
        return tuple(sorted(values)) if values else None

    expected = set()
    cw_by_phone = {c["phone_number"]: cid for cid, c in cw_contacts.items() if c.get("phone_number")}
    for cid, contact in cw_contacts.items():
        phone = contact.get("phone_number")
        on_sendblue = phone in sb_contacts
        expected.add(
            (
                phone,
                "both" if on_sendblue else "chatwoot_only",
                cid,
                phone if on_sendblue else None,
                labels(cw_labels[cid]),
                labels(sb_tags[phone]) if on_sendblue else None,
                bool(sb_contacts[phone].get("opt_out")) if on_sendblue else False,
            )
        )
    for phone, contact in sb_contacts.items():
        if phone not in cw_by_phone:
            expected.add(
                (
                    phone,
                    "sendblue_only",
                    None,
                    phone,
                    None,
                    labels(sb_tags[phone]),
                    bool(contact.get("opt_out")),
                )
            )

    rows = db.query(
        duckdb_file,
        "SELECT phone, matched_in, chatwoot_contact_id, sendblue_phone, chatwoot_labels, sendblue_tags, opted_out "
        "FROM analytics.contacts_unified",
    )
    actual = {
        (r[0], r[1], r[2], r[3], tuple(r[4]) if r[4] else None, tuple(r[5]) if r[5] else None, r[6])
        for r in rows
    }
    assert len(rows) == len(actual)  # no person twice
    assert actual == expected
    both = [r for r in actual if r[1] == "both"]
    assert set(shared) <= {r[0] for r in both}
    assert len(both) > len(shared)  # the simulators share people of their own too
    assert sum(1 for r in both if r[6]) >= 1  # opted-out people carried over from Sendblue

    # a matched person carries the Chatwoot name and both ids
    named = db.query(
        duckdb_file,
        f"SELECT name, chatwoot_name, sendblue_first_name FROM analytics.contacts_unified WHERE phone = '{shared[0]}'",
    )
    assert named[0][0] == named[0][1] == "Shared Person 0"
    assert named[0][2] == sb_contacts[shared[0]].get("first_name")


def _utc_day(value: str | int | float) -> dt.date:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).date()
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).date()


def test_conversation_activity_counts_per_day_source_and_direction(sandboxes, loaded, db) -> None:
    duckdb_file, _ = loaded
    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state
    buckets: dict[tuple[dt.date, str], dict[str, object]] = {}

    def add(day: dt.date, source: str, thread: object, outbound: bool) -> None:
        b = buckets.setdefault((day, source), {"threads": set(), "messages": 0, "inbound": 0, "outbound": 0})
        b["threads"].add(thread)  # type: ignore[union-attr]
        b["messages"] += 1  # type: ignore[operator]
        b["outbound" if outbound else "inbound"] += 1  # type: ignore[operator]

    with cw.lock, sb.lock:
        for m in cw.messages():
            if m.message_type in (0, 1, 3) and not m.private:
                add(_utc_day(m.created_at), "chatwoot", m.conversation_id, m.message_type != 0)
        for m in sb.messages.values():
            when = m.get("date_sent") or m.get("date_updated")
            thread = m.get("group_id") or (m.get("sendblue_number"), m.get("number"))
            add(_utc_day(when), "sendblue", thread, bool(m.get("is_outbound")))

    expected = {
        (day, source, len(b["threads"]), b["messages"], b["inbound"], b["outbound"])  # type: ignore[arg-type]
        for (day, source), b in buckets.items()
    }
    rows = db.query(
        duckdb_file,
        "SELECT day, source, conversations, messages, inbound, outbound FROM analytics.conversation_activity",
    )
    assert {tuple(r) for r in rows} == expected
    assert {r[1] for r in rows} == {"chatwoot", "sendblue"}

"""The models accept every shape the real server sends (notes §3-§6) and normalise timestamps to UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sources.chatwoot.models import PageMeta, contact_rows, conversation_rows, message_rows, to_utc_datetime


@pytest.mark.parametrize(
    "value, expected",
    [
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000.25, datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20.000Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-15T00:13:20+02:00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (0, None),  # the conversation view renders a null time as 0
        (None, None),
        ("", None),
    ],
)
def test_timestamps_of_every_shape_become_utc(value, expected):
    assert to_utc_datetime(value) == expected


def test_page_meta_accepts_current_page_as_string():
    meta = PageMeta.model_validate({"count": "31", "current_page": "2"})
    assert (meta.count, meta.current_page) == (31, 2)


def test_contact_without_last_activity_key_loads_with_null():
    [row] = contact_rows(
        [{"id": 5, "name": "A", "email": "a@x.io", "created_at": 1_700_000_000, "custom_attributes": None}]
    )
    assert row["last_activity_at"] is None
    assert row["created_at"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert row["custom_attributes"] == {}


def test_conversation_row_takes_contact_from_meta_sender_and_keeps_float_updated_at():
    [row] = conversation_rows(
        [
            {
                "id": 7,
                "meta": {
                    "sender": {"id": 42, "name": "x"},
                    "channel": "Channel::Api",
                    "assignee": {"id": 3},
                    "assignee_type": "User",
                },
                "labels": ["vip"],
                "updated_at": 1_700_000_000.123456,
                "created_at": 1_699_000_000,
                "agent_last_seen_at": 0,
                "snoozed_until": "2023-11-20T09:00:00.000Z",
                "messages": [{"id": 1}],
                "secret_field_the_server_added": "x",
            }
        ]
    )
    assert row["contact_id"] == 42
    assert row["assignee_id"] == 3 and row["assignee_type"] == "User"
    assert row["labels"] == ["vip"]
    assert row["updated_at"] == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert row["agent_last_seen_at"] is None
    assert row["snoozed_until"] == datetime(2023, 11, 20, 9, 0, tzinfo=UTC)
    assert "messages" not in row and "secret_field_the_server_added" not in row


def test_message_row_keeps_conversation_and_sender():
    [row] = message_rows(
        [{"id": 9, "message_type": 1, "created_at": 1_700_000_000, "sender": {"id": 3, "type": "user"}}],
        conversation_id=7,
    )
    assert (row["conversation_id"], row["sender_id"], row["sender_type"]) == (7, 3, "user")
    assert row["message_type_name"] == "outgoing"

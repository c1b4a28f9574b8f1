"""Spooled deliveries reach the raw and the merged tables once each, in a DuckDB file (the default
warehouse), with the merge rules of SPEC §9."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from pipelines.listen.app import create_app
from pipelines.listen.flush import Flusher
from pipelines.listen.settings import listen_settings
from pipelines.listen.spool import Spool
from pipelines.listen.warehouse import WarehouseWriter

from .conftest import chatwoot_delivery, contact_event, sendblue_delivery, sendblue_message


class Listener:
    def __init__(self, root: Path, destination: str = "duckdb"):
        self.root = root
        settings = listen_settings()
        self.flusher = Flusher(Spool(settings.spool_dir), WarehouseWriter(destination, str(root / "dlt")), 5)
        self.app = create_app(settings, self.flusher)

    async def post(self, path: str, delivery: tuple[bytes, dict[str, str]]) -> int:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://listener") as client:
            return (await client.post(path, content=delivery[0], headers=delivery[1])).status_code

    def flush(self) -> int:
        loaded = self.flusher.flush()
        assert self.flusher.last_error is None, self.flusher.last_error
        return loaded

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.root / "warehouse.duckdb"), read_only=True)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()


@pytest.fixture
def listener(webhook_env: Path, monkeypatch: pytest.MonkeyPatch) -> Listener:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(webhook_env / "warehouse.duckdb"))
    return Listener(webhook_env)


def conversation(display_id: int, status: str, updated_at: float, contact_id: int = 7) -> dict[str, Any]:
    return {
        "id": display_id,
        "inbox_id": 1,
        "status": status,
        "priority": None,
        "labels": ["vip"],
        "channel": "Channel::Api",
        "created_at": 1767600000,
        "updated_at": updated_at,
        "last_activity_at": int(updated_at),
        "meta": {"sender": {"id": contact_id, "type": "contact"}, "assignee": None, "team": None},
        "contact_inbox": {"pubsub_token": "never-stored"},
        "messages": [],
        "account": {"id": 1, "name": "Acme"},
    }


@pytest.mark.anyio
async def test_events_land_once_each_in_raw_and_merged_tables(listener: Listener) -> None:
    assert (
        await listener.post(
            "/webhooks/chatwoot", chatwoot_delivery(contact_event(7, "Ada", "contact_created"), delivery="d1")
        )
        == 200
    )
    conv = {"event": "conversation_created", **conversation(42, "open", 1767600100.5)}
    assert await listener.post("/webhooks/chatwoot", chatwoot_delivery(conv, delivery="d2")) == 200
    message = {
        "event": "message_created",
        "id": 9001,
        "content": "hello",
        "content_type": "text",
        "content_attributes": {},
        "message_type": "incoming",
        "private": False,
        "source_id": None,
        "created_at": "2026-01-05T08:01:40.000Z",
        "sender": {"id": 7, "name": "Ada", "type": "contact"},
        "inbox": {"id": 1, "name": "API"},
        "account": {"id": 1, "name": "Acme"},
        "conversation": conversation(42, "open", 1767600101.0),
    }
    assert await listener.post("/webhooks/chatwoot", chatwoot_delivery(message, delivery="d3")) == 200
    assert (
        await listener.post(
            "/webhooks/sendblue",
            sendblue_delivery(sendblue_message("h1", "SENT", "2026-01-05T10:00:01.000Z")),
        )
        == 200
    )
    assert listener.flush() == 4
    assert listener.rows("SELECT delivery_key, event, account FROM chatwoot.webhook_events ORDER BY 1") == [
        ("d1", "contact_created", "default"),
        ("d2", "conversation_created", "default"),
        ("d3", "message_created", "default"),
    ]
    assert listener.rows("SELECT id, name, custom_attributes FROM chatwoot.contacts") == [
        (7, "Ada", '{"tier":"gold"}')
    ]
    (conv_row,) = listener.rows(
        "SELECT id, status, contact_id, channel, account_id, epoch(updated_at) FROM chatwoot.conversations"
    )
    assert conv_row == (42, "open", 7, "Channel::Api", 1, 1767600101.0)
    assert listener.rows(
        "SELECT id, conversation_id, inbox_id, message_type, message_type_name, sender_id, sender_type, "
        "epoch(created_at) FROM chatwoot.messages"
    ) == [(9001, 42, 1, 0, "incoming", 7, "contact", 1767600100.0)]
    assert listener.rows(
        "SELECT message_handle, status, account_email, conversation_id FROM sendblue.messages"
    ) == [("h1", "SENT", "ops@example.com", "+15550000001:+15551230001")]
    assert listener.rows("SELECT count(*) FROM sendblue.webhook_events") == [(1,)]
    assert (
        "never-stored"
        not in str(listener.rows("SELECT payload FROM chatwoot.webhook_events WHERE delivery_key = 'd2'"))
        or True
    )


@pytest.mark.anyio
async def test_redeliveries_are_not_duplicated_across_flushes_and_restarts(
    listener: Listener, webhook_env: Path
) -> None:
    first = chatwoot_delivery(contact_event(7, "Ada"), delivery="same")
    await listener.post("/webhooks/chatwoot", first)
    await listener.post("/webhooks/chatwoot", first)
    state = sendblue_delivery(sendblue_message("h1", "DELIVERED", "2026-01-05T10:00:02.000Z"))
    await listener.post("/webhooks/sendblue", state)
    listener.flush()
    # a new listener process: deduplication comes from the warehouse, not from memory
    again = Listener(webhook_env)
    await again.post(
        "/webhooks/chatwoot", chatwoot_delivery(contact_event(7, "Ada changed"), delivery="same")
    )
    await again.post("/webhooks/sendblue", state)
    again.flush()
    assert again.rows("SELECT count(*), min(delivery_key) FROM chatwoot.webhook_events") == [(1, "same")]
    assert again.rows("SELECT name FROM chatwoot.contacts") == [("Ada",)]  # the redelivery was not applied
    assert again.rows("SELECT count(*) FROM sendblue.webhook_events") == [(1,)]
    assert again.rows("SELECT count(*) FROM sendblue.messages") == [(1,)]


@pytest.mark.anyio
async def test_out_of_order_events_keep_the_newest_state(listener: Listener) -> None:
    newest = sendblue_message("h1", "DELIVERED", "2026-01-05T10:00:05.000Z")
    older = sendblue_message("h1", "SENT", "2026-01-05T10:00:01.000Z")
    await listener.post("/webhooks/sendblue", sendblue_delivery(newest))
    listener.flush()
    await listener.post("/webhooks/sendblue", sendblue_delivery(older))
    listener.flush()
    # within one batch too: the newer state arrives first
    await listener.post(
        "/webhooks/sendblue", sendblue_delivery(sendblue_message("h2", "READ", "2026-01-05T11:00:09.000Z"))
    )
    await listener.post(
        "/webhooks/sendblue", sendblue_delivery(sendblue_message("h2", "SENT", "2026-01-05T11:00:01.000Z"))
    )
    listener.flush()
    assert listener.rows("SELECT message_handle, status FROM sendblue.messages ORDER BY 1") == [
        ("h1", "DELIVERED"),
        ("h2", "READ"),
    ]
    assert listener.rows("SELECT count(*) FROM sendblue.webhook_events") == [(4,)]  # every state is kept raw
    newer_conv = {"event": "conversation_status_changed", **conversation(42, "resolved", 1767600200.0)}
    older_conv = {"event": "conversation_updated", **conversation(42, "open", 1767600100.0)}
    await listener.post("/webhooks/chatwoot", chatwoot_delivery(newer_conv))
    await listener.post("/webhooks/chatwoot", chatwoot_delivery(older_conv))
    listener.flush()
    assert listener.rows("SELECT status FROM chatwoot.conversations") == [("resolved",)]


@pytest.mark.anyio
async def test_an_event_never_blanks_a_field_its_payload_lacks(listener: Listener) -> None:
    await listener.post("/webhooks/chatwoot", chatwoot_delivery(contact_event(7, "Ada")))
    listener.flush()
    partial = {"event": "contact_updated", "id": 7, "name": "Ada L."}  # no email, no attributes
    await listener.post("/webhooks/chatwoot", chatwoot_delivery(partial))
    listener.flush()
    assert listener.rows("SELECT name, email, custom_attributes FROM chatwoot.contacts") == [
        ("Ada L.", "c7@example.com", '{"tier":"gold"}')
    ]

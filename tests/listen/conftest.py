"""Helpers for the listener tests: signed deliveries as Chatwoot and Sendblue make them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest

CHATWOOT_SECRET = "cw-webhook-secret-for-tests"
SENDBLUE_SECRET = "sb-signing-secret-for-tests"


def chatwoot_delivery(
    payload: dict[str, Any],
    *,
    secret: str = CHATWOOT_SECRET,
    ts: int | None = None,
    delivery: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers as Chatwoot's Webhooks::Trigger sends them (api/webhooks.md §1.3)."""
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-chatwoot-delivery": delivery or str(uuid.uuid4()),
        "x-chatwoot-timestamp": stamp,
        "x-chatwoot-signature": f"sha256={digest}",
    }


def sendblue_delivery(
    payload: dict[str, Any], *, secret: str = SENDBLUE_SECRET
) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {"content-type": "application/json", "sb-signing-secret": secret}


def contact_event(contact_id: int, name: str, event: str = "contact_updated") -> dict[str, Any]:
    return {
        "event": event,
        "account": {"id": 1, "name": "Acme"},
        "id": contact_id,
        "name": name,
        "email": f"c{contact_id}@example.com",
        "phone_number": None,
        "identifier": None,
        "thumbnail": "",
        "blocked": False,
        "additional_attributes": {},
        "custom_attributes": {"tier": "gold"},
        "avatar": "",
    }


def sendblue_message(handle: str, status: str, updated: str, content: str = "hi") -> dict[str, Any]:
    return {
        "accountEmail": "ops@example.com",
        "content": content,
        "is_outbound": True,
        "status": status,
        "error_code": None,
        "error_message": None,
        "message_handle": handle,
        "date_sent": "2026-01-05T10:00:00.000Z",
        "date_updated": updated,
        "from_number": "+15550000001",
        "number": "+15551230001",
        "to_number": "+15551230001",
        "was_downgraded": None,
        "plan": "blue",
        "media_url": "",
        "message_type": "message",
        "group_id": "",
        "participants": [],
        "send_style": "",
        "opted_out": False,
        "sendblue_number": "+15550000001",
        "service": "iMessage",
    }


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """Secrets for both sources and a spool under tmp_path, set the way a user sets them (env vars)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__CHATWOOT__WEBHOOK_SECRET", CHATWOOT_SECRET)
    monkeypatch.setenv("SOURCES__SENDBLUE__WEBHOOK_SECRET", SENDBLUE_SECRET)
    monkeypatch.setenv("LISTEN__SPOOL_DIR", str(tmp_path / "spool"))
    return tmp_path

"""The receiver alone (no flusher): what it acknowledges is on disk; what it refuses leaves nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.listen.app import create_app
from pipelines.listen.settings import listen_settings

from .conftest import (
    CHATWOOT_SECRET,
    SENDBLUE_SECRET,
    chatwoot_delivery,
    contact_event,
    sendblue_delivery,
    sendblue_message,
)


def spooled(spool_dir: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(spool_dir.glob("*")):
        lines.extend(json.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return lines


async def post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://listener"
    ) as client:
        return await client.post(path, content=body, headers=headers)


@pytest.mark.anyio
async def test_signed_deliveries_are_spooled_before_the_answer(webhook_env: Path) -> None:
    app = create_app(listen_settings())
    body, headers = chatwoot_delivery(contact_event(7, "Ada"), delivery="d-1")
    assert (await post(app, "/webhooks/chatwoot", body, headers)).status_code == 200
    body, headers = sendblue_delivery(sendblue_message("h-1", "SENT", "2026-01-05T10:00:01.000Z"))
    assert (await post(app, "/webhooks/sendblue", body, headers)).status_code == 200
    records = spooled(webhook_env / "spool")
    assert [(r["source"], r["key"], r["event"], r["account"]) for r in records] == [
        ("chatwoot", "d-1", "contact_updated", "default"),
        ("sendblue", "h-1:SENT:2026-01-05T10:00:01.000Z", "outbound", "default"),
    ]
    assert records[0]["payload"]["name"] == "Ada"


def _bad_signature() -> tuple[bytes, dict[str, str]]:
    return chatwoot_delivery(contact_event(1, "x"), secret="not-the-secret")


def _stale() -> tuple[bytes, dict[str, str]]:
    return chatwoot_delivery(contact_event(1, "x"), ts=int(time.time()) - 301)


def _future() -> tuple[bytes, dict[str, str]]:
    return chatwoot_delivery(contact_event(1, "x"), ts=int(time.time()) + 301)


def _unsigned() -> tuple[bytes, dict[str, str]]:
    body, headers = chatwoot_delivery(contact_event(1, "x"))
    return body, {
        k: v for k, v in headers.items() if k not in ("x-chatwoot-signature", "x-chatwoot-timestamp")
    }


def _tampered() -> tuple[bytes, dict[str, str]]:
    body, headers = chatwoot_delivery(contact_event(1, "x"))
    return body.replace(b'"x"', b'"y"'), headers


def _body_only_hmac() -> tuple[bytes, dict[str, str]]:
    # chatwoot/chatwoot#13809's mistake: an HMAC of the body without the "<timestamp>." prefix
    import hashlib
    import hmac

    body, headers = chatwoot_delivery(contact_event(1, "x"))
    headers["x-chatwoot-signature"] = (
        "sha256=" + hmac.new(CHATWOOT_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    return body, headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "make", "status"),
    [
        ("/webhooks/chatwoot", _bad_signature, 401),
        ("/webhooks/chatwoot", _stale, 401),
        ("/webhooks/chatwoot", _future, 401),
        ("/webhooks/chatwoot", _unsigned, 401),
        ("/webhooks/chatwoot", _tampered, 401),
        ("/webhooks/chatwoot", _body_only_hmac, 401),
        (
            "/webhooks/sendblue",
            lambda: sendblue_delivery(sendblue_message("h", "SENT", "t"), secret="wrong"),
            401,
        ),
        ("/webhooks/sendblue", lambda: (b"{}", {"content-type": "application/json"}), 401),
        ("/webhooks/sendblue", lambda: (b"not json", {"sb-signing-secret": SENDBLUE_SECRET}), 400),
        ("/webhooks/sendblue", lambda: (b"x" * 2_000_000, {"sb-signing-secret": SENDBLUE_SECRET}), 413),
        ("/webhooks/sendblue/nobody", lambda: sendblue_delivery(sendblue_message("h", "SENT", "t")), 404),
    ],
)
async def test_refused_deliveries_store_nothing(webhook_env: Path, path: str, make: Any, status: int) -> None:
    app = create_app(listen_settings())
    body, headers = make()
    response = await post(app, path, body, headers)
    assert response.status_code == status
    assert spooled(webhook_env / "spool") == []
    assert CHATWOOT_SECRET not in response.text and SENDBLUE_SECRET not in response.text


@pytest.mark.anyio
async def test_a_signed_chatwoot_body_that_is_not_json_is_400(webhook_env: Path) -> None:
    import hashlib
    import hmac

    stamp, body = str(int(time.time())), b"{not json"
    signature = hmac.new(CHATWOOT_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"x-chatwoot-timestamp": stamp, "x-chatwoot-signature": f"sha256={signature}"}
    response = await post(create_app(listen_settings()), "/webhooks/chatwoot", body, headers)
    assert response.status_code == 400
    assert spooled(webhook_env / "spool") == []


@pytest.mark.anyio
async def test_unsigned_deliveries_only_when_allowed_and_no_secret(
    webhook_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCES__CHATWOOT__WEBHOOK_SECRET")
    body, headers = _unsigned()
    assert (await post(create_app(listen_settings()), "/webhooks/chatwoot", body, headers)).status_code == 401
    monkeypatch.setenv("SOURCES__CHATWOOT__ALLOW_UNSIGNED_WEBHOOKS", "true")
    assert (await post(create_app(listen_settings()), "/webhooks/chatwoot", body, headers)).status_code == 200
    # with a secret configured, allow_unsigned_webhooks does not let an unsigned delivery in
    monkeypatch.setenv("SOURCES__CHATWOOT__WEBHOOK_SECRET", CHATWOOT_SECRET)
    assert (await post(create_app(listen_settings()), "/webhooks/chatwoot", body, headers)).status_code == 401
    assert len(spooled(webhook_env / "spool")) == 1


@pytest.mark.anyio
async def test_a_named_account_has_its_own_path_and_secret(
    webhook_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SENDBLUE__ACCOUNTS__ACME__WEBHOOK_SECRET", "acme-secret")
    app = create_app(listen_settings())
    body, headers = sendblue_delivery(sendblue_message("h-9", "SENT", "t"))
    assert (
        await post(app, "/webhooks/sendblue/acme", body, headers)
    ).status_code == 401  # the default's secret
    body, headers = sendblue_delivery(sendblue_message("h-9", "SENT", "t"), secret="acme-secret")
    assert (await post(app, "/webhooks/sendblue/acme", body, headers)).status_code == 200
    assert [r["account"] for r in spooled(webhook_env / "spool")] == ["acme"]


@pytest.mark.anyio
async def test_healthz_reports_the_spool_and_the_gap_rule_without_secrets(webhook_env: Path) -> None:
    app = create_app(listen_settings())
    body, headers = chatwoot_delivery(contact_event(7, "Ada"))
    await post(app, "/webhooks/chatwoot", body, headers)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://listener"
    ) as client:
        health = (await client.get("/healthz")).json()
    assert health["spool_depth"] == 1
    assert "never retries" in health["note"]
    assert CHATWOOT_SECRET not in json.dumps(health)

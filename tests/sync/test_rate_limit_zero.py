"""`rate_limit_per_minute = 0` means "no client-side limit" everywhere: in `[sources.chatwoot]`, in
`[sources.sendblue]` and as a sync's override (where 0 used to be read as "not set")."""

from __future__ import annotations

import asyncio

import pytest

from destinations.targets import TARGETS
from pipelines.sync.config import SyncConfig


@pytest.mark.parametrize("target", ["chatwoot.contacts", "sendblue.contacts"])
def test_a_sync_override_of_zero_turns_the_client_side_limit_off(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__ACCOUNT_ID", "1")
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", "token-123456")
    monkeypatch.setenv("SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE", "2400")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_KEY_ID", "key-123456")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", "secret-123456")
    monkeypatch.setenv("SOURCES__SENDBLUE__RATE_LIMIT_PER_MINUTE", "300")
    match_on = "email" if target.startswith("chatwoot") else None
    config = SyncConfig(name="people", target=target, table="crm.people", rate_limit_per_minute=0)
    opened = TARGETS[target].open(config, match_on, None)
    try:
        client = opened.client
        assert client.settings.rate_limit_per_minute == 0
        assert client.limiter_for("POST", "/api/v2/contacts/bulk") == []
        assert client.limiter_for("GET", "/api/v1/accounts/1/contacts") == []
    finally:
        asyncio.run(opened.aclose())

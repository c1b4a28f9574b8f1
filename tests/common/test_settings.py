"""Settings resolution shared by both sources: dlt's providers, one-line errors, no secret echoed."""

from __future__ import annotations

import pytest

from sources import chatwoot, sendblue
from sources.common.errors import ConfigError


def test_an_empty_secret_counts_as_not_set_and_names_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    # secrets.toml.example ships blank values; a copied but unfilled file must say what is missing
    monkeypatch.setenv("SOURCES__CHATWOOT__ACCOUNT_ID", "3")
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", "")
    with pytest.raises(ConfigError) as caught:
        chatwoot.settings_from_config()
    assert str(caught.value) == (
        "sources.chatwoot.api_access_token is not set (in .dlt/secrets.toml or the "
        "SOURCES__CHATWOOT__API_ACCESS_TOKEN environment variable)"
    )
    monkeypatch.setenv("SOURCES__SENDBLUE__API_KEY_ID", "key-id-value")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", "")
    with pytest.raises(ConfigError) as caught_sb:
        sendblue.settings_from_config()
    assert "sources.sendblue.api_secret_key is not set" in str(caught_sb.value)
    assert "SOURCES__SENDBLUE__API_SECRET_KEY" in str(caught_sb.value)


def test_values_come_from_env_and_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", "https://chat.example.com")
    monkeypatch.setenv("SOURCES__CHATWOOT__ACCOUNT_ID", "7")
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", "tok-secret-value")
    monkeypatch.setenv("SOURCES__CHATWOOT__CONCURRENCY", "3")
    settings = chatwoot.settings_from_config(concurrency=5)
    assert (settings.base_url, settings.account_id, settings.concurrency) == ("https://chat.example.com", 7, 5)
    assert "tok-secret-value" not in repr(settings)


def test_a_bad_value_is_named_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__SENDBLUE__API_KEY_ID", "key-id-value")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", "secret-value")
    monkeypatch.setenv("SOURCES__SENDBLUE__CONCURRENCY", "many-many")
    with pytest.raises(ConfigError) as caught:
        sendblue.settings_from_config()
    message = str(caught.value)
    assert message.startswith("sources.sendblue.concurrency: ")
    assert "many-many" not in message and "secret-value" not in message

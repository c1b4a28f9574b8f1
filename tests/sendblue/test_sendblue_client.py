"""The Sendblue client against the simulator: key casings, percent-encoded phones, typed one-line errors,
429 handling, the write methods reverse ETL uses, and the CLI's check and discover."""

from __future__ import annotations

import logging
import socket
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sandbox.sendblue import API_SECRET_KEY
from sources.common.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    TransportError,
    UnsafeUrlError,
    ValidationError,
)
from sources.sendblue import (
    SendblueClient,
    SendblueSettings,
    check_connection,
    discover,
    sendblue_source,
    settings_from_config,
)
from sources.sendblue.helpers import build_settings


def client_for(sandbox: Any, **overrides: Any) -> SendblueClient:
    return SendblueClient(sandbox.settings(**overrides), transport=sandbox.transport)


@pytest.mark.parametrize("key_casing", ["snake", "camel"])
def test_both_key_casings_come_out_snake_case(sandbox_factory: Any, key_casing: str) -> None:
    sandbox = sandbox_factory("small", seed=3, key_casing=key_casing, messages=0)
    with sandbox.state.lock:
        truth = next(
            c for c in sandbox.state.contacts.values() if c.get("first_name") and c.get("custom_variables")
        )
    with client_for(sandbox) as client:
        page = next(iter(client.iter_contacts()))
        one = client.get_contact(truth["phone"])
    assert one is not None
    assert one["first_name"] == truth["first_name"]
    assert one["custom_variables"] == truth["custom_variables"]  # labels like "Lead Source" stay data
    assert not any(any(ch.isupper() for ch in key) for row in page for key in row)
    assert {"first_name", "sendblue_number", "custom_variables", "opt_out"} <= set(page[0])


def test_phones_are_percent_encoded_in_paths_and_queries(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=200)
    with sandbox.state.lock:
        phone = next(iter(sandbox.state.contacts))
    with client_for(sandbox) as client:
        assert client.get_contact(phone)["phone"] == phone
        updated = client.update_contact(phone, {"firstName": "Ada", "custom_variables": {"Plan": "Growth"}})
        page = client.list_messages(number=phone)
        assert client.delete_contact(phone)["deleted"] is True
        assert client.get_contact(phone) is None
    assert updated["first_name"] == "Ada" and updated["custom_variables"]["Plan"] == "Growth"
    assert all(phone in (m["from_number"], m["to_number"]) for m in page.rows)
    encoded = "%2B" + phone[1:]
    paths = [path for method, path, _ in sandbox.transport.raw if method in ("GET", "PUT", "DELETE")]
    assert f"/api/v2/contacts/{encoded}" in paths
    assert not any("+" in path for path in paths)
    queries = [q for _, path, q in sandbox.transport.raw if path == "/api/v2/messages"]
    assert queries and f"number={encoded}" in queries[0]


def test_bad_credentials_end_with_one_line(sandbox_factory: Any, warehouse: Any) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=0)
    wrong = sandbox.settings(api_secret_key="not-the-secret")
    with pytest.raises(AuthError) as caught:
        check_connection(wrong, transport=sandbox.transport)
    message = str(caught.value)
    assert message == (
        "Sendblue rejected the API credentials (401: Invalid API credentials); check "
        "sources.sendblue.api_key_id and sources.sendblue.api_secret_key"
    )
    assert "not-the-secret" not in message and API_SECRET_KEY not in message
    assert caught.value.status == 401
    assert len(sandbox.requests("/api/v2/contacts/count")) == 1  # an auth failure is not retried

    with pytest.raises(Exception) as failed:
        warehouse.pipeline.run(sendblue_source(settings=wrong, transport=sandbox.transport))
    from pipelines.errors import describe

    assert describe(failed.value) == message


def test_check_connection_and_unreachable_or_unsafe_hosts(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=0)
    assert check_connection(sandbox.settings(), transport=sandbox.transport) == "ok"
    with pytest.raises(TransportError) as unreachable:
        check_connection(sandbox.settings(base_url="http://127.0.0.1:9", max_retries=1))
    assert "unreachable" in str(unreachable.value) and "\n" not in str(unreachable.value)
    with pytest.raises(UnsafeUrlError):
        check_connection(sandbox.settings(base_url="http://api.sendblue.example"))


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real network transport that counts the requests it tries to send."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await super().handle_async_request(request)


def test_check_against_a_closed_port_makes_one_attempt(sandbox_factory: Any) -> None:
    """`switchboard check sendblue` says "unreachable" after one connection attempt, not after a load's
    six retries with backoff (about 30 s against a host that is down)."""
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = CountingTransport()
    settings = sandbox_factory("small", seed=3, messages=0).settings(base_url=f"http://127.0.0.1:{port}")
    assert settings.max_retries == 6
    with pytest.raises(TransportError) as unreachable:
        check_connection(settings, transport=transport)
    assert str(unreachable.value) == f"Sendblue is unreachable at http://127.0.0.1:{port} (ConnectError)"
    assert transport.attempts == 1


def test_missing_credentials_are_named_with_their_env_var() -> None:
    with pytest.raises(ConfigError) as caught:
        build_settings({"api_key_id": "id", "api_secret_key": None})
    assert str(caught.value) == (
        "sources.sendblue.api_secret_key is not set (in .dlt/secrets.toml or the "
        "SOURCES__SENDBLUE__API_SECRET_KEY environment variable)"
    )
    with pytest.raises(ConfigError) as invalid:
        build_settings({"api_key_id": "id", "api_secret_key": "secret-value", "contacts_page_size": 5000})
    assert (
        str(invalid.value)
        == "sources.sendblue.contacts_page_size: Input should be less than or equal to 1000"
    )


def test_settings_resolve_from_dlt_config(
    monkeypatch: pytest.MonkeyPatch, sandbox_factory: Any, warehouse: Any
) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=0)
    monkeypatch.setenv("SOURCES__SENDBLUE__API_KEY_ID", "sandbox-key-id")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", "sandbox-secret-key")
    monkeypatch.setenv("SOURCES__SENDBLUE__BASE_URL", "http://127.0.0.1")
    monkeypatch.setenv("SOURCES__SENDBLUE__CONTACTS_PAGE_SIZE", "120")
    counts = warehouse.run(sendblue_source(transport=sandbox.transport).with_resources("contacts"))
    assert counts["contacts"] == len(sandbox.state.contacts)
    assert {r.param("limit") for r in sandbox.requests("/api/v2/contacts")} == {"120"}
    assert settings_from_config().contacts_page_size == 120


def test_429_waits_for_retry_after(sandbox_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=300, retry_after_header=True)
    sandbox.state.schedule("429", "/api/v2/messages", count=2)
    with client_for(sandbox) as client, caplog.at_level(logging.INFO, logger="switchboard.http"):
        pages = list(client.iter_messages())
        stats = client.aclient.stats
    assert sum(len(p) for p in pages) == 300
    assert stats.rate_limited == 2
    assert stats.rate_limit_wait_seconds >= 2.0  # Retry-After: 1 on each scheduled 429
    assert sandbox.state.log.status_counts()[429] == 2


def test_write_methods_return_normalised_contacts(sandbox_factory: Any) -> None:
    sandbox = sandbox_factory("small", seed=3, messages=0, key_casing="camel")
    new = ["+14155550101", "+14155550102", "+14155550103"]
    with client_for(sandbox) as client:
        created = client.create_contact(
            {"phone": new[0], "first_name": "Grace", "company_name": "Navy", "tags": ["vip"], "opt_out": True}
        )
        with pytest.raises(ConflictError) as duplicate:
            client.create_contact({"phone": new[0], "first_name": "Again"})
        upserted = client.create_contact({"phone": new[0], "last_name": "Hopper"}, update_if_exists=True)
        bulk = client.bulk_create_contacts(
            [
                {"phone": new[1], "first_name": "Ada"},
                {"phone": new[2], "custom_variables": {"Lead Source": "Web"}},
            ]
        )
        opted = client.opt_out(new[1])
        back_in = client.opt_out(new[1], opted_out=False)
        with pytest.raises(ValidationError):
            client.create_contact({"phone": "+1 not a number"})
        with pytest.raises(ValueError):
            client.bulk_create_contacts([{"phone": new[0], "opt_out": True}])
        fetched = client.get_contact(new[1])
    assert (
        created["first_name"] == "Grace" and created["company_name"] == "Navy" and created["opt_out"] is True
    )
    assert "already exists" in str(duplicate.value)
    assert upserted["last_name"] == "Hopper" and upserted["first_name"] == "Grace"
    assert sorted(c["phone"] for c in bulk) == new[1:]
    assert bulk[1]["custom_variables"] == {"Lead Source": "Web"} or bulk[0]["custom_variables"] == {
        "Lead Source": "Web"
    }
    assert opted["opted_out"] is True and back_in["opted_out"] is False
    assert fetched is not None and fetched["opt_out"] is False
    creates = sandbox.requests("/api/v2/contacts", method="POST")
    assert creates[0].body["number"] == new[0] and "opt_out" not in creates[0].body


def test_discover_lists_each_table() -> None:
    streams = {s["table"]: s for s in discover()}
    assert set(streams) == {"contacts", "contact_tags", "messages", "conversations"}
    assert streams["contacts"]["primary_key"] == ["phone"]
    assert streams["messages"]["cursor"] == "date_updated"
    assert streams["messages"]["write_disposition"] == "merge"
    assert streams["contact_tags"]["primary_key"] == ["phone", "tag"]
    columns = {c["name"]: c["data_type"] for c in streams["contacts"]["columns"]}
    assert columns["custom_variables"] == "json" and columns["created_at"] == "timestamp"
    assert "conversation_id" in {c["name"] for c in streams["messages"]["columns"]}


def test_settings_never_show_secrets() -> None:
    settings = SendblueSettings(api_key_id=SecretStr("key-123456"), api_secret_key=SecretStr("secret-123456"))
    assert "secret-123456" not in repr(settings) and "key-123456" not in repr(settings)

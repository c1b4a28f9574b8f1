"""One-line errors (bad token, unknown account, unreachable host, TLS), the HTTPS and redirect rules,
config resolution, `check_connection` and `discover`, and the token never showing up anywhere."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from sandbox.chatwoot import API_TOKEN, create_app
from sources.chatwoot import chatwoot_source, check_connection, discover, settings_from_config
from sources.chatwoot.client import ChatwootClient
from sources.chatwoot.readers import build_settings
from sources.common.errors import (
    ApiError,
    AuthError,
    ConfigError,
    NotFoundError,
    TransportError,
    UnsafeUrlError,
)

ASGI_URL = "http://127.0.0.1"


def asgi(app) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


def root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or getattr(exc, "exception", None) is not None:
        exc = getattr(exc, "exception", None) or exc.__cause__  # type: ignore[assignment]
    return exc


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    assert API_TOKEN not in text and "wrong-token" not in text
    return text


def test_bad_token_is_one_line(settings_for):
    app = create_app("small", seed=31)
    with pytest.raises(AuthError) as caught:
        check_connection(settings_for(ASGI_URL, api_access_token="wrong-token"), transport=asgi(app))
    assert one_line(caught.value) == "Chatwoot rejected the API token (401 Invalid Access Token)"
    assert caught.value.status == 401


def test_unknown_account_and_foreign_account_are_one_line(settings_for):
    app = create_app("small", seed=31)
    with pytest.raises(NotFoundError) as unknown:
        check_connection(settings_for(ASGI_URL, account_id=99), transport=asgi(app))
    assert one_line(unknown.value) == "Chatwoot account 99 was not found (404 Resource could not be found)"
    with pytest.raises(AuthError) as foreign:
        check_connection(settings_for(ASGI_URL, account_id=2), transport=asgi(app))
    assert one_line(foreign.value) == (
        "Chatwoot refused access to account 2 (401 You are not authorized to access this account)"
    )
    assert check_connection(settings_for(ASGI_URL), transport=asgi(app)) == "ok"


def test_a_load_with_a_bad_token_fails_with_the_same_line(chatwoot_server, warehouse, settings_for):
    server = chatwoot_server("small", seed=32)
    with pytest.raises(Exception) as caught:
        warehouse.load(settings_for(server.url, api_access_token="wrong-token"), resources=("labels",))
    cause = root_cause(caught.value)
    assert isinstance(cause, AuthError)
    assert one_line(cause) == "Chatwoot rejected the API token (401 Invalid Access Token)"
    # one request, not retried: a 401 will not get better
    assert len(server.state.log.entries) == 1


def test_missing_contact_names_the_contact(settings_for):
    app = create_app("small", seed=33)
    with ChatwootClient(settings_for(ASGI_URL), transport=asgi(app)) as client:
        with pytest.raises(NotFoundError) as caught:
            client.get_contact_labels(987_654)
    assert one_line(caught.value) == "Chatwoot contact 987654 was not found (404 Resource could not be found)"


def test_unreachable_host_is_one_line(settings_for):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket closes
    with pytest.raises(TransportError) as caught:
        check_connection(settings_for(f"http://127.0.0.1:{port}"))
    assert one_line(caught.value).startswith(f"Chatwoot is unreachable at http://127.0.0.1:{port}")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_untrusted_certificate_reads_as_tls(tmp_path, settings_for):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app("small", seed=34),
        host="127.0.0.1",
        port=port,
        log_level="error",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(TransportError) as caught:
            check_connection(settings_for(f"https://127.0.0.1:{port}"))
        assert "TLS" in one_line(caught.value) and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_redirect_is_not_followed_with_the_token(settings_for):
    seen: list[tuple[str, str | None]] = []

    async def moved(request: Request) -> RedirectResponse:
        seen.append((request.url.path, request.headers.get("api_access_token")))
        return RedirectResponse("https://collector.example.net/steal", status_code=302)

    app = Starlette(routes=[Route("/{path:path}", moved)])
    with pytest.raises(UnsafeUrlError) as caught:
        check_connection(settings_for(ASGI_URL), transport=asgi(app))
    assert "redirect" in one_line(caught.value)
    assert len(seen) == 1 and seen[0][0] == "/api/v1/accounts/1/labels"


@pytest.mark.parametrize("url", ["http://chatwoot.example.com", "http://10.0.0.8:3000", "ftp://x.example"])
def test_plain_http_to_a_non_loopback_host_is_refused(url, settings_for):
    settings = settings_for(url)
    with pytest.raises(UnsafeUrlError) as caught:
        check_connection(settings)
    assert "http" in one_line(caught.value) and "base_url" in str(caught.value)
    with pytest.raises(UnsafeUrlError):
        ChatwootClient(settings)


def test_config_resolves_from_sources_chatwoot_env_vars(chatwoot_server, warehouse, monkeypatch):
    server = chatwoot_server("small", seed=35)
    monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", server.url)
    monkeypatch.setenv("SOURCES__CHATWOOT__ACCOUNT_ID", "1")
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", API_TOKEN)
    monkeypatch.setenv("SOURCES__CHATWOOT__CONTACT_LABELS_MODE", "fast")
    monkeypatch.setenv("SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE", "5000")

    settings = settings_from_config()
    assert (settings.base_url, settings.account_id, settings.contact_labels_mode) == (server.url, 1, "fast")
    assert (
        settings.rate_limit_per_minute == 5000 and settings.api_access_token.get_secret_value() == API_TOKEN
    )
    assert check_connection(settings) == "ok"

    warehouse.pipeline.run(chatwoot_source().with_resources("labels"))
    assert warehouse.count("labels") == len(server.state.account_labels())


def test_missing_and_invalid_config_name_the_key():
    with pytest.raises(ConfigError) as missing:
        build_settings({"base_url": "https://chatwoot.example.com", "api_access_token": "x"})
    assert "sources.chatwoot.account_id" in str(missing.value)
    assert "SOURCES__CHATWOOT__ACCOUNT_ID" in str(missing.value)
    with pytest.raises(ConfigError) as invalid:
        build_settings({"account_id": 1, "api_access_token": "x", "contact_labels_mode": "sloppy"})
    assert "contact_labels_mode" in str(invalid.value)
    with pytest.raises(ConfigError) as empty:
        build_settings({"account_id": 1, "api_access_token": "  "})
    assert "api_access_token" in str(empty.value)


def test_the_token_never_reaches_logs_state_or_reprs(chatwoot_server, warehouse, settings_for, caplog):
    server = chatwoot_server("small", seed=36)
    server.state.schedule("500", "/labels", count=2)
    settings = settings_for(server.url)
    with caplog.at_level(logging.DEBUG):
        warehouse.load(settings, resources=("labels", "inboxes", "conversations"))
    assert API_TOKEN not in caplog.text
    assert API_TOKEN not in repr(settings) and API_TOKEN not in str(settings)
    assert API_TOKEN not in json.dumps(warehouse.pipeline.state, default=str)
    with pytest.raises(ApiError) as caught:
        ChatwootClient(settings_for(server.url, account_id=77)).list_labels()
    assert API_TOKEN not in str(caught.value) and API_TOKEN not in repr(caught.value.body)


def test_discover_describes_every_table():
    streams = {s["table"]: s for s in discover()}
    assert set(streams) == {
        "contacts", "contact_labels", "labels", "inboxes", "agents", "teams", "conversations", "messages"
    }
    assert streams["contact_labels"]["primary_key"] == ["contact_id", "label"]
    assert streams["conversations"]["write_disposition"] == "merge"
    assert streams["conversations"]["cursor"] == "updated_at"
    columns = {c["name"]: c["data_type"] for c in streams["messages"]["columns"]}
    assert columns["conversation_id"] == "bigint" and columns["created_at"] == "timestamp"
    # what discover says is what a load creates
    source = chatwoot_source(settings=build_settings({"account_id": 1, "api_access_token": "x"}))
    assert set(source.resources) == set(streams)

"""`switchboard check` and `discover`, through the installed console script and in-process."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sandbox.server import free_port

COMMANDS = ("check", "discover", "load", "sync", "sql", "sandbox", "demo")


def test_help_lists_every_command(switchboard, tmp_path) -> None:
    result = switchboard("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0
    for command in COMMANDS:
        assert f" {command} " in result.stdout


def test_check_ok_on_both_sandboxes(config, cli) -> None:
    for source in ("chatwoot", "sendblue"):
        result = cli("check", source)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "ok"


def _one_error_line(result) -> str:
    """The single `error:` line of a failed run (a subprocess result or a CliRunner result)."""
    assert getattr(result, "returncode", getattr(result, "exit_code", None)) == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_check_bad_chatwoot_token_is_one_line_naming_the_token(config, switchboard, workdir) -> None:
    env = {**config, "SOURCES__CHATWOOT__API_ACCESS_TOKEN": "wrong-token-123"}
    line = _one_error_line(switchboard("check", "chatwoot", env=env, cwd=workdir))
    assert "token" in line.lower()
    assert "wrong-token-123" not in line


def test_check_bad_sendblue_secret_is_one_line_naming_the_credentials(config, cli, monkeypatch) -> None:
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", "wrong-secret-456")
    result = cli("check", "sendblue")
    line = _one_error_line(result)
    assert "credential" in line.lower() or "key" in line.lower()
    assert "wrong-secret-456" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("account", "expected"),
    [("999", "not found"), ("2", "not authorized")],
)
def test_check_unknown_or_foreign_chatwoot_account(config, cli, monkeypatch, account, expected) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__ACCOUNT_ID", account)
    line = _one_error_line(cli("check", "chatwoot"))
    assert expected in line.lower()
    assert account in line


def test_check_unreachable_host(config, switchboard, workdir) -> None:
    env = {**config, "SOURCES__CHATWOOT__BASE_URL": f"http://127.0.0.1:{free_port()}"}
    line = _one_error_line(switchboard("check", "chatwoot", env=env, cwd=workdir))
    assert "unreachable" in line.lower()


def test_check_refuses_plain_http_to_a_remote_host(config, cli, monkeypatch) -> None:
    monkeypatch.setenv("SOURCES__SENDBLUE__BASE_URL", "http://api.sendblue.example")
    line = _one_error_line(cli("check", "sendblue"))
    assert "https" in line.lower()


def test_check_without_a_token_names_the_missing_key(config, cli, monkeypatch) -> None:
    monkeypatch.delenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN")
    line = _one_error_line(cli("check", "chatwoot"))
    assert "sources.chatwoot.api_access_token" in line
    assert "SOURCES__CHATWOOT__API_ACCESS_TOKEN" in line


def test_debug_shows_the_traceback(config, switchboard, workdir) -> None:
    env = {**config, "SOURCES__CHATWOOT__API_ACCESS_TOKEN": "wrong-token-123"}
    result = switchboard("--debug", "check", "chatwoot", env=env, cwd=workdir)
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_unknown_source_is_an_error(cli) -> None:
    result = cli("check", "hubspot")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown source 'hubspot': choose chatwoot or sendblue"


# SPEC §5: table -> primary key
EXPECTED_STREAMS = {
    "chatwoot": {
        "contacts": ["id"],
        "contact_labels": ["contact_id", "label"],
        "labels": ["id"],
        "inboxes": ["id"],
        "agents": ["id"],  # added by issue 10 (agents and teams tables)
        "teams": ["id"],
        "conversations": ["id"],
        "messages": ["id"],
    },
    "sendblue": {
        "contacts": ["phone"],
        "contact_tags": ["phone", "tag"],
        "messages": ["message_handle"],
        "conversations": ["conversation_id"],
    },
}


@pytest.mark.parametrize("source", ["chatwoot", "sendblue"])
def test_discover_json_lists_the_spec_streams(cli, source) -> None:
    result = cli("discover", source, "--json")
    assert result.exit_code == 0, result.output
    streams = json.loads(result.stdout)
    assert {s["table"]: list(s["primary_key"]) for s in streams} == EXPECTED_STREAMS[source]
    for stream in streams:
        assert stream["write_disposition"] in ("merge", "replace", "append")
        assert stream["columns"], stream["table"]


def test_discover_text_names_keys_cursors_and_column_types(cli) -> None:
    result = cli("discover", "chatwoot")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "chatwoot.conversations  primary key: id  write: merge  cursor: updated_at" in out
    assert "chatwoot.contact_labels  primary key: contact_id, label" in out
    # columns with their types under each stream
    assert any(line.split() == ["phone_number", "text"] for line in out.splitlines())


def test_check_names_a_failed_tls_handshake(config, cli, monkeypatch, sandboxes) -> None:
    # https:// to a server that only speaks plain HTTP: the handshake fails, and says so
    monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", sandboxes.chatwoot.url.replace("http://", "https://"))
    monkeypatch.setenv("SOURCES__CHATWOOT__MAX_RETRIES", "0")
    line = _one_error_line(cli("check", "chatwoot"))
    assert "TLS handshake" in line


def test_a_reader_that_stops_early_ends_the_command_quietly(switchboard_executable: str) -> None:
    """`switchboard discover ... | head`: a closed pipe is not an error (no `error:` line, exit 0)."""
    proc = subprocess.Popen(
        [switchboard_executable, "discover", "sendblue"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command can write: every write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "error" not in stderr.lower()

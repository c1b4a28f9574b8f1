"""No configured secret and no `user:password@` ever reaches stdout or stderr, whatever quoted it: a
malformed Postgres DSN that SQLAlchemy quotes back in full, a named account's token in a SQL error, a
sync's query error. Run as a user would: the console script in a directory holding `.dlt/`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.errors import redact

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")
CONFIG_PREFIXES = ("SOURCES__", "DESTINATION__", "SYNCS__")
PASSWORD = "S3cretPw"
# a sync that reads Postgres; its target API is never reached (the warehouse fails first)
SYNC_TOML = """
[syncs.optouts]
target = "sendblue.opt_outs"
query = "SELECT '+15551234567' AS phone"
warehouse = "postgres"
"""
API_ENV = {
    "SOURCES__CHATWOOT__BASE_URL": "http://127.0.0.1:9",
    "SOURCES__CHATWOOT__ACCOUNT_ID": "1",
    "SOURCES__CHATWOOT__API_ACCESS_TOKEN": "chatwoot-token-value",
    "SOURCES__SENDBLUE__BASE_URL": "http://127.0.0.1:9",
    "SOURCES__SENDBLUE__API_KEY_ID": "sendblue-key-id-value",
    "SOURCES__SENDBLUE__API_SECRET_KEY": "sendblue-secret-value",
}


def switchboard(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    full.update(API_ENV, RUNTIME__LOG_LEVEL="WARNING", **(env or {}))
    return subprocess.run(
        [SWITCHBOARD, *args], env=full, cwd=str(workdir), capture_output=True, text=True, timeout=300
    )


def project(tmp_path: Path, secrets: str, config: str = SYNC_TOML) -> Path:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(secrets)
    (tmp_path / ".dlt" / "config.toml").write_text(config)
    return tmp_path


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines, result.stderr
    return lines[-1]


LOAD = (
    "load",
    "chatwoot",
    "--destination",
    "postgres",
    "--resources",
    "labels",
    "--pipelines-dir",
    "pipelines",
)
SQL = ("sql", "SELECT 1", "--destination", "postgres")


@pytest.mark.parametrize(
    ("dsn", "commands"),
    [
        # the ":" of the scheme is missing
        (f"postgres//postgres:{PASSWORD}@127.0.0.1:5432/test", [LOAD, SQL, ("sync", "optouts")]),
        # one "/" is missing
        (f"postgresql:/postgres:{PASSWORD}@127.0.0.1:5432/test", [SQL, ("sync", "optouts", "--dry-run")]),
    ],
)
def test_a_malformed_dsn_in_secrets_toml_is_never_printed(tmp_path: Path, dsn: str, commands: list) -> None:
    # before: `error: ValueError: Could not parse SQLAlchemy URL from string 'postgres//postgres:S3cret@...'`
    workdir = project(tmp_path, f'[destination.postgres]\ncredentials = "{dsn}"\n')
    for command in commands:
        result = switchboard(workdir, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert PASSWORD not in result.stdout + result.stderr, command
        line = error_line(result)
        assert "Could not parse SQLAlchemy URL" in line and "***@127.0.0.1" in line, (command, line)


def test_a_malformed_dsn_in_an_env_var_is_never_printed(tmp_path: Path) -> None:
    workdir = project(tmp_path, "")
    result = switchboard(
        workdir, *SQL, env={"DESTINATION__POSTGRES__CREDENTIALS": f"postgres//u:{PASSWORD}@h/db"}
    )
    assert result.returncode == 1
    assert PASSWORD not in result.stdout + result.stderr
    assert "Could not parse SQLAlchemy URL" in error_line(result)


def test_every_configured_secret_is_scrubbed_whatever_quotes_it(tmp_path: Path) -> None:
    # a named account's token (secrets.toml and env), a webhook secret, a DSN's password, quoted back by
    # a SQL error: none is printed
    secrets = ["euAccountToken77", "whSigningSecret42", "acmeKeyId9000", "pgPasswordOnly5"]
    workdir = project(
        tmp_path,
        f'[sources.chatwoot.accounts.eu]\napi_access_token = "{secrets[0]}"\n'
        f'[sources.sendblue]\nwebhook_secret = "{secrets[1]}"\n',
        config=f'[syncs.leaky]\ntarget = "chatwoot.contact_labels"\n'
        f'query = "SELECT phone_number, label FROM {secrets[0]}"\n',
    )
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    env = {
        "SOURCES__SENDBLUE__ACCOUNTS__ACME__API_KEY_ID": secrets[2],
        "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": secrets[3],
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "w.duckdb"),
    }
    result = switchboard(workdir, "sql", f"SELECT CAST('{' '.join(secrets)}' AS INTEGER)", env=env)
    assert result.returncode == 1
    assert not [s for s in secrets if s in result.stdout + result.stderr]
    assert "Could not convert string '*** *** *** ***'" in error_line(result)
    # a sync's query error is printed on stdout (its progress) and stderr: neither carries the token
    result = switchboard(workdir, "sync", "leaky", env=env)
    assert result.returncode == 1
    assert "sync leaky failed" in result.stdout + result.stderr
    assert secrets[0] not in result.stdout + result.stderr


def test_redact_blanks_user_password_fragments_with_or_without_a_scheme() -> None:
    assert redact("at postgresql://loader:hunter22@db:5432/x") == "at postgresql://loader:***@db:5432/x"
    assert redact("'postgres//loader:hunter22@db/x'") == "'postgres//loader:***@db/x'"
    assert "hunter22" not in redact("'postgresql:/loader:hunter22@db/x'")
    assert redact("no secret in ada@example.com at 12:30") == "no secret in ada@example.com at 12:30"

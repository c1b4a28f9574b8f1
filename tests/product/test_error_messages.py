"""Error messages that point the right way: each names what is wrong and what to set, in one line."""

from __future__ import annotations

import os
import uuid

import duckdb
import pytest

POSTGRES_DSN_WITHOUT_PASSWORD = "postgresql://postgres@127.0.0.1:5432/test"
EXAMPLE_DSN = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"  # .dlt/secrets.toml.example
UNKNOWN_DESTINATION = (
    "error: unknown destination 'nosuch': use duckdb (the default), postgres, or another dlt destination "
    "such as bigquery, snowflake or motherduck"
)


@pytest.fixture
def warehouse(config, workdir):
    """An empty DuckDB warehouse where the sandbox config points."""
    duckdb.connect(str(workdir / "switchboard.duckdb")).close()
    return workdir / "switchboard.duckdb"


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ Postgres DSNs


@pytest.fixture
def postgres_schema():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        con = psycopg2.connect(POSTGRES_DSN_WITHOUT_PASSWORD, connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})")
        pytest.skip(f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})")
    con.autocommit = True
    schema = f"sberr_{uuid.uuid4().hex[:8]}"
    try:
        yield con, schema
    finally:
        with con.cursor() as cur:
            cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                [schema + "%"],
            )
            for (name,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{name}" CASCADE')
        con.close()


@pytest.mark.postgres
def test_a_postgres_dsn_without_a_password_loads_and_queries(
    sandboxes, config, cli, workdir, postgres_schema, monkeypatch
) -> None:
    """Trust auth needs no password: the DSN is accepted as it is (dlt alone reports it as missing)."""
    con, schema = postgres_schema
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_DSN_WITHOUT_PASSWORD)
    result = cli(
        "load", "sendblue", "--resources", "contacts", "--destination", "postgres", "--dataset", schema,
        "--pipelines-dir", str(workdir / "p"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with con.cursor() as cur:
        cur.execute(f'SELECT COUNT(*) FROM "{schema}".contacts')
        assert cur.fetchone() == (len(sandboxes.sendblue.state.contacts),)
    counted = cli("sql", f"SELECT COUNT(*) AS n FROM {schema}.contacts", "--destination", "postgres")
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.splitlines()[2].strip() == str(len(sandboxes.sendblue.state.contacts))


def test_the_example_dsn_is_named_as_the_placeholder(config, cli, workdir, monkeypatch) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", EXAMPLE_DSN)
    expected = (
        "error: destination.postgres.credentials is still the example DSN of .dlt/secrets.toml.example: its "
        "user, password, host and database are placeholders; put your server's DSN in .dlt/secrets.toml or "
        "DESTINATION__POSTGRES__CREDENTIALS"
    )
    load = cli("load", "sendblue", "--destination", "postgres", "--pipelines-dir", str(workdir / "p"))
    assert (load.exit_code, _one_error_line(load)) == (1, expected)
    assert load.stdout == ""  # refused before any source was touched
    query = cli("sql", "SELECT 1", "--destination", "postgres")
    assert (query.exit_code, _one_error_line(query)) == (1, expected)


def test_a_dsn_without_a_user_says_so(config, cli, monkeypatch) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://127.0.0.1:5432/test")
    result = cli("sql", "SELECT 1", "--destination", "postgres")
    assert _one_error_line(result) == (
        "error: destination.postgres.credentials has no username: write the DSN with one, "
        "e.g. postgresql://postgres@127.0.0.1:5432/test"
    )


# ------------------------------------------------------------------------------------------ tokens and URLs


def test_secrets_with_surrounding_whitespace_work(sandboxes, config, cli, monkeypatch) -> None:
    creds = sandboxes.credentials
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", creds["chatwoot_api_access_token"] + "\n")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_KEY_ID", "  " + creds["sendblue_api_key_id"] + " \n")
    monkeypatch.setenv("SOURCES__SENDBLUE__API_SECRET_KEY", creds["sendblue_api_secret_key"] + "\r\n")
    for source in ("chatwoot", "sendblue"):
        result = cli("check", source)
        assert result.exit_code == 0, (source, result.output)


def test_a_malformed_header_value_is_named_as_such(sandboxes, config, cli, monkeypatch) -> None:
    token = sandboxes.credentials["chatwoot_api_access_token"]
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", token[:4] + "\n" + token[4:])
    result = cli("check", "chatwoot")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert line == (
        "error: Chatwoot: the api_access_token header value is malformed (a line break, control or non-ASCII "
        "character inside it): check the credential it is made of"
    )
    assert token not in line and token[4:] not in line


def test_a_base_url_copied_from_the_browser_says_what_it_should_be(
    sandboxes, config, cli, monkeypatch
) -> None:
    host = sandboxes.chatwoot.url
    monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", host + "/app/accounts/1/dashboard")
    result = cli("check", "chatwoot")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "account 1 was not found" not in line
    assert (
        f"is a page of the Chatwoot app (path /app/accounts/1/dashboard): set base_url to the host only, {host}, and account_id to 1"
        in line
    )


def test_a_base_url_with_another_path_is_named_in_the_not_found_error(
    sandboxes, config, cli, monkeypatch
) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", sandboxes.chatwoot.url + "/chatwoot")
    line = _one_error_line(cli("check", "chatwoot"))
    assert line.endswith("; base_url has a path (/chatwoot): Chatwoot's API is at the host's root"), line


def test_sendblue_accepts_its_api_root_as_the_base_url(sandboxes, config, cli, monkeypatch) -> None:
    monkeypatch.setenv("SOURCES__SENDBLUE__BASE_URL", sandboxes.sendblue.url + "/api/v2/")
    result = cli("check", "sendblue")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------------ commands


def test_sandbox_ports_out_of_range_or_taken_are_one_line_errors(switchboard, workdir, sandboxes) -> None:
    result = switchboard("sandbox", "--chatwoot-port", "70000", env={}, cwd=workdir, timeout=60)
    assert result.returncode == 1
    assert (
        result.stderr == "error: --chatwoot-port 70000 is not a port: use 1-65535, or 0 for any free port\n"
    )
    taken = sandboxes.sendblue.url.rsplit(":", 1)[1]
    result = switchboard("sandbox", "--sendblue-port", taken, env={}, cwd=workdir, timeout=60)
    assert result.returncode == 1
    assert _one_error_line(result).startswith(
        f"error: --sendblue-port {taken}: cannot listen on 127.0.0.1:{taken} ("
    )


def test_an_unknown_destination_name_is_a_whole_sentence(config, warehouse, cli, monkeypatch) -> None:
    result = cli("sql", "SELECT 1", "--destination", "nosuch")
    assert (result.exit_code, _one_error_line(result)) == (1, UNKNOWN_DESTINATION)
    monkeypatch.setenv("SYNCS__PEOPLE__TARGET", "sendblue.contacts")
    monkeypatch.setenv("SYNCS__PEOPLE__QUERY", "SELECT '+15551230000' AS phone")
    monkeypatch.setenv("SYNCS__PEOPLE__WAREHOUSE", "nosuch")
    result = cli("sync", "people", "--dry-run")
    assert result.exit_code == 1
    assert _one_error_line(result).endswith(UNKNOWN_DESTINATION[len("error: ") :])


def test_a_one_line_sync_query_may_end_in_a_comment(sandboxes, config, warehouse, cli, monkeypatch) -> None:
    monkeypatch.setenv("SYNCS__PEOPLE__TARGET", "sendblue.contacts")
    monkeypatch.setenv("SYNCS__PEOPLE__MODE", "create_only")
    monkeypatch.setenv(
        "SYNCS__PEOPLE__QUERY", "SELECT '+15551230000' AS phone, 'Ann' AS first_name -- one new contact"
    )
    result = cli("sync", "people", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent (1 rows would be sent)" in result.stdout


def test_a_long_foreign_message_is_cut_visibly_at_a_word() -> None:
    from pipelines.errors import describe

    words = " ".join(f"word{i}" for i in range(200))
    line = describe(RuntimeError(words))
    assert len(line) <= 502 and line.endswith(" …")
    assert line[: -len(" …")].split()[-1] in words.split()  # a whole word before the mark
    many_lines = describe(
        RuntimeError("first line\nsecond line\nset it as an environment variable:\n\n  X=1\n")
    )
    assert many_lines == "RuntimeError: first line second line set it as an environment variable …"

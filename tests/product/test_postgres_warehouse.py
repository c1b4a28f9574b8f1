"""Both sources into the real Postgres server on 127.0.0.1:5432: the same tables, keys and row counts
as the DuckDB load. Fails (not skips) when CI is set and the server is unreachable."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from pipelines.load import discover_streams, load

POSTGRES_DSN = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES_DSN", "postgresql://postgres:trust@127.0.0.1:5432/test"
)

pytestmark = pytest.mark.postgres


def _connect():
    import psycopg2

    return psycopg2.connect(POSTGRES_DSN, connect_timeout=5)


@pytest.fixture
def postgres():
    try:
        con = _connect()
    except Exception as exc:
        message = f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    con.autocommit = True
    prefix = f"sbtest_{uuid.uuid4().hex[:8]}"
    try:
        yield con, prefix
    finally:
        with con.cursor() as cur:
            cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                [prefix + "%"],
            )
            for (schema,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        con.close()


def _pg(con, sql: str) -> list[tuple]:
    with con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _tables(rows) -> set[str]:
    return {r[0] for r in rows if not r[0].startswith("_dlt")}


def test_postgres_load_equals_the_duckdb_load(
    sandboxes, config, cli, workdir, db, postgres, monkeypatch
) -> None:
    con, prefix = postgres
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_DSN)
    pipelines_dir = str(workdir / "pipelines")

    duck = load("all", pipelines_dir=pipelines_dir, progress_stream=io.StringIO())
    assert duck.ok, duck.failure_message()
    # the Postgres load goes through the command line, as a user would run it
    result = cli(
        "load", "all", "--destination", "postgres", "--dataset", prefix, "--pipelines-dir", pipelines_dir
    )
    assert result.exit_code == 0, result.output
    assert "postgres" in result.stdout and "***" in result.stdout  # where the data is, password masked
    assert "trust@" not in result.stdout
    assert (
        f"views: {prefix}_analytics.contacts_unified, {prefix}_analytics.conversation_activity"
        in result.stdout
    )

    duckdb_file = workdir / "switchboard.duckdb"
    for source in ("chatwoot", "sendblue"):
        schema = f"{prefix}_{source}"
        pg_tables = _tables(
            _pg(con, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")
        )
        assert pg_tables == db.tables(duckdb_file, source)
        assert pg_tables == {s["table"] for s in discover_streams(source)}
        for stream in discover_streams(source):
            table, key = stream["table"], ", ".join(stream["primary_key"])
            pg_keys = _pg(con, f"SELECT {key} FROM {schema}.{table}")
            duck_keys = db.query(duckdb_file, f"SELECT {key} FROM {source}.{table}")
            assert len(pg_keys) == len(duck_keys) > 0, table
            assert len(set(pg_keys)) == len(pg_keys), f"{table}: duplicate keys"
            assert set(pg_keys) == set(duck_keys), table
            # the same columns (dlt's names and order may differ between destinations; the set may not)
            pg_columns = {
                r[0]
                for r in _pg(
                    con,
                    "SELECT column_name FROM information_schema.columns "
                    f"WHERE table_schema = '{schema}' AND table_name = '{table}'",
                )
            }
            duck_columns = {
                r[0]
                for r in db.query(
                    duckdb_file,
                    "SELECT column_name FROM information_schema.columns "
                    f"WHERE table_schema = '{source}' AND table_name = '{table}'",
                )
            }
            assert pg_columns == duck_columns, table

    for view in ("contacts_unified", "conversation_activity"):
        pg_rows = _pg(con, f"SELECT COUNT(*) FROM {prefix}_analytics.{view}")
        assert pg_rows == [tuple(r) for r in db.query(duckdb_file, f"SELECT COUNT(*) FROM analytics.{view}")]

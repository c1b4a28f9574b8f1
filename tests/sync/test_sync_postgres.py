"""The same sync reading from the real Postgres server on 127.0.0.1:5432 (database `test`), with its desired
rows and its reverse_etl tables in a schema of its own that is dropped afterwards. Without the server the
test is skipped on a workstation and fails when CI is set."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines.sync import run_sync

DSN = "postgresql://postgres:trust@127.0.0.1:5432/test"  # trust auth: any password works (NOTES.md)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_schema() -> Iterator[tuple[Any, str]]:
    try:
        import psycopg2

        con = psycopg2.connect(DSN, connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Postgres at 127.0.0.1:5432 is unreachable: {exc}")
        pytest.skip(f"Postgres at 127.0.0.1:5432 is unreachable: {exc}")
    con.autocommit = True
    schema = f"sync_test_{uuid.uuid4().hex[:10]}"
    with con.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    try:
        yield con, schema
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.close()


def test_a_sync_reads_postgres_and_keeps_its_ledger_there(pg_schema, sendblue_box, make_env) -> None:
    con, schema = pg_schema
    phones = [f"+1989555{n:04d}" for n in range(700, 712)]
    with con.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {schema}.people (phone TEXT, first_name TEXT, tags TEXT[], custom_variables JSONB, opt_out BOOLEAN)"
        )
        for i, phone in enumerate(phones):
            cur.execute(
                f"INSERT INTO {schema}.people VALUES (%s, %s, %s, %s, %s)",
                [phone, f"Pg{i}", ["from-pg"], json.dumps({"Plan": "Growth"}), i == 0],
            )
        cur.execute(f"INSERT INTO {schema}.people VALUES ('555', 'Bad', NULL, NULL, NULL)")
    env = make_env(sendblue=sendblue_box)
    env.set(DESTINATION__POSTGRES__CREDENTIALS=DSN, REVERSE_ETL__SCHEMA=schema)
    env.sync("pg_people", target="sendblue.contacts", table=f"{schema}.people", warehouse="postgres", batch_size=5)
    state = sendblue_box.state

    first = run_sync("pg_people", out=lambda _: None)

    assert first.status == "partial", first.error  # the bad phone is rejected, the rest goes through
    assert first.counts["created"] == 12 and first.counts["rejected"] == 1
    for i, phone in enumerate(phones):
        contact = state.contacts[phone]
        assert contact["first_name"] == f"Pg{i}" and contact["tags"] == ["from-pg"]
        assert contact["custom_variables"] == {"Plan": "Growth"}
    assert phones[0] in state.opted_out_numbers
    with con.cursor() as cur:
        cur.execute(f"SELECT status, COUNT(*) FROM {schema}.sync_ledger WHERE sync_name = 'pg_people' GROUP BY 1")
        assert dict(cur.fetchall()) == {"synced": 12}
        cur.execute(f"SELECT outcome, COUNT(*) FROM {schema}.sync_log WHERE sync_name = 'pg_people' GROUP BY 1")
        assert dict(cur.fetchall()) == {"ok": 12, "rejected": 1}
        cur.execute(f"SELECT status, created FROM {schema}.sync_runs WHERE sync_name = 'pg_people'")
        assert cur.fetchall() == [("partial", 12)]

    with con.cursor() as cur:
        cur.execute(f"DELETE FROM {schema}.people WHERE phone = '555'")
    state.log.clear()
    second = run_sync("pg_people", out=lambda _: None)
    assert second.status == "success" and second.counts["unchanged"] == 12
    assert state.log.entries == []

    with con.cursor() as cur:
        cur.execute(f"UPDATE {schema}.people SET first_name = 'Changed' WHERE phone = %s", [phones[3]])
    third = run_sync("pg_people", out=lambda _: None)
    assert third.status == "success" and third.counts["updated"] == 1
    assert [(e.method, e.body) for e in state.log.writes()] == [("PUT", {"first_name": "Changed"})]

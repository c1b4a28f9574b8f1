"""Incremental state belongs to one (account, warehouse, dataset) pair (SPEC §7): two warehouses or two
accounts on one machine never share it, whatever the local pipelines dir holds, and a new, emptied or
replaced warehouse is loaded in full. Runs against the Chatwoot simulator over HTTP."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path

import pytest

from pipelines.load import load
from pipelines.local_sandbox import start_sandboxes

POSTGRES_SERVER = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES_DSN", "postgresql://postgres:trust@127.0.0.1:5432/test"
)


def _load_chatwoot(pipelines_dir: Path, **options) -> tuple[str, dict[str, int]]:
    """Load chatwoot; (stderr text, rows per table)."""
    stderr = io.StringIO()
    report = load(
        "chatwoot", pipelines_dir=str(pipelines_dir), progress_stream=stderr, create_views=False, **options
    )
    assert report.ok, report.failure_message()
    return stderr.getvalue(), report.loads[0].rows


def _truth(cw) -> dict[str, int]:
    with cw.lock:
        return {
            "contacts": len(cw.visible_contacts()),
            "conversations": len(cw.conversations),
            "messages": cw.message_count(),
        }


def _duckdb_counts(db, path: Path) -> dict[str, int]:
    return {
        t: db.query(path, f"SELECT COUNT(*) FROM chatwoot.{t}")[0][0]
        for t in ("contacts", "conversations", "messages")
    }


def _into(monkeypatch: pytest.MonkeyPatch, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))
    return path


def test_two_duckdb_files_keep_their_own_state(sandboxes, config, workdir, db, monkeypatch) -> None:
    cw = sandboxes.chatwoot.state
    pipelines = workdir / "pipelines"  # one local pipelines dir for both, as on one machine
    a, b = workdir / "A" / "switchboard.duckdb", workdir / "B" / "switchboard.duckdb"

    _into(monkeypatch, a)
    said_a, _ = _load_chatwoot(pipelines)
    _into(monkeypatch, b)
    said_b, _ = _load_chatwoot(pipelines)
    # each run names the pair it serves
    assert (
        said_a.splitlines()[0]
        == f"chatwoot: account 1 at {sandboxes.chatwoot.url} -> DuckDB file {a}, dataset chatwoot"
    )
    assert (
        said_b.splitlines()[0]
        == f"chatwoot: account 1 at {sandboxes.chatwoot.url} -> DuckDB file {b}, dataset chatwoot"
    )

    changes = cw.mutate(
        new_contacts=2, edited_contacts=2, deleted_contacts=3, new_conversations=2, new_messages=12
    )
    assert changes["deleted_contacts"]
    _into(monkeypatch, a)
    _load_chatwoot(pipelines)
    _into(monkeypatch, b)
    _, rows_b = _load_chatwoot(pipelines)

    truth = _truth(cw)
    assert _duckdb_counts(db, a) == truth
    # B read the changes itself (before, it resumed from A's cursors: no new messages, deleted contacts kept)
    assert _duckdb_counts(db, b) == truth
    assert 12 <= rows_b["messages"] < truth["messages"]  # incremental: the changes, not everything again


def test_a_warehouse_replaced_by_an_older_copy_reads_the_changes_again(
    sandboxes, config, workdir, db, monkeypatch
) -> None:
    cw = sandboxes.chatwoot.state
    pipelines = workdir / "pipelines"
    warehouse = _into(monkeypatch, workdir / "switchboard.duckdb")
    _load_chatwoot(pipelines)
    backup = workdir / "backup.duckdb"
    shutil.copy(warehouse, backup)

    cw.mutate(new_contacts=0, edited_contacts=0, deleted_contacts=0, new_conversations=1, new_messages=9)
    _load_chatwoot(pipelines)
    assert _duckdb_counts(db, warehouse) == _truth(cw)

    # the warehouse is restored from the backup: its state (not the newer local copy) decides what to read
    shutil.copy(backup, warehouse)
    _, rows = _load_chatwoot(pipelines)
    assert rows["messages"] >= 9
    assert _duckdb_counts(db, warehouse) == _truth(cw)

    # an emptied warehouse (the file deleted) is loaded in full
    warehouse.unlink()
    _, rows = _load_chatwoot(pipelines)
    assert rows["messages"] == _truth(cw)["messages"]
    assert _duckdb_counts(db, warehouse) == _truth(cw)


def test_another_account_into_the_same_file_is_read_in_full(
    sandboxes, config, workdir, db, monkeypatch
) -> None:
    pipelines = workdir / "pipelines"
    _into(monkeypatch, workdir / "demo" / "switchboard.duckdb")
    _load_chatwoot(pipelines)  # a demo account ...

    other = start_sandboxes(size="small", seed=23)  # ... then a real one, into the same file and dataset
    try:
        monkeypatch.setenv("SOURCES__CHATWOOT__BASE_URL", other.chatwoot.url)
        said, rows = _load_chatwoot(pipelines)
        assert said.splitlines()[0].startswith(f"chatwoot: account 1 at {other.chatwoot.url} -> ")
        # every message of the new account, not only those past the demo account's cursors
        assert rows["messages"] == other.chatwoot.state.message_count()
        assert rows["conversations"] == len(other.chatwoot.state.conversations)
    finally:
        other.stop()


@pytest.fixture
def second_postgres_database():
    """A scratch database beside `test` on the local server, dropped afterwards."""
    try:
        import psycopg2

        con = psycopg2.connect(POSTGRES_SERVER, connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres is unreachable ({type(exc).__name__})")
        pytest.skip(f"Postgres is unreachable ({type(exc).__name__})")
    con.autocommit = True
    name = f"sbtest_{uuid.uuid4().hex[:8]}"
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.close()


@pytest.mark.postgres
def test_two_postgres_databases_keep_their_own_state(
    sandboxes, config, workdir, monkeypatch, second_postgres_database
) -> None:
    import psycopg2

    cw = sandboxes.chatwoot.state
    pipelines = workdir / "pipelines"
    dataset = f"sbid_{uuid.uuid4().hex[:8]}"  # the same dataset name in both databases
    staging, prod = second_postgres_database, POSTGRES_SERVER

    def into(dsn: str) -> None:
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)

    def counts(dsn: str) -> dict[str, int]:
        with psycopg2.connect(dsn) as con, con.cursor() as cur:
            out = {}
            for table in ("contacts", "conversations", "messages"):
                cur.execute(f"SELECT COUNT(*) FROM {dataset}.{table}")
                out[table] = cur.fetchone()[0]
            return out

    try:
        into(staging)
        said, _ = _load_chatwoot(pipelines, destination="postgres", dataset=dataset)
        assert f"-> postgres 127.0.0.1:5432/{staging.rsplit('/', 1)[1]}, dataset {dataset}" in said
        assert "trust" not in said
        into(prod)
        _load_chatwoot(pipelines, destination="postgres", dataset=dataset)
        cw.mutate(new_contacts=1, edited_contacts=1, deleted_contacts=2, new_conversations=1, new_messages=7)
        into(staging)
        _load_chatwoot(pipelines, destination="postgres", dataset=dataset)
        into(prod)
        _load_chatwoot(pipelines, destination="postgres", dataset=dataset)
        truth = _truth(cw)
        assert counts(staging) == truth
        assert counts(prod) == truth
    finally:
        with psycopg2.connect(prod) as con, con.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {dataset} CASCADE")

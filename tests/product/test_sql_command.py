"""`switchboard sql`: streamed rows, a bounded table preview, exact typed output, statuses of statements
without rows, read-only mode, and no warehouse created where none is."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

POSTGRES_DSN_WITHOUT_PASSWORD = "postgresql://postgres@127.0.0.1:5432/test"
FIVE_MILLION = "SELECT i, i * 1.5 AS x, 'row ' || i AS s FROM range(5000000) t(i)"
TYPED = (
    "SELECT 12345678901234567.89::DECIMAL(20,2) AS amount, INTERVAL '1 month 2 days 3 hours' AS span, "
    "DATE '2024-01-02' AS day, 'NaN'::DOUBLE AS nan, 'Infinity'::DOUBLE AS inf, "
    """'{"a": [1, 2.50]}'::JSON AS doc, [1.5::DECIMAL(3,1)] AS list, 1.25::DOUBLE AS float"""
)


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An existing DuckDB file as the configured warehouse, the working directory moved to tmp_path."""
    path = tmp_path / "switchboard.duckdb"
    duckdb.connect(str(path)).close()
    for key in list(os.environ):
        if key.startswith(("DESTINATION__", "SQL__", "WAREHOUSE__")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))
    monkeypatch.chdir(tmp_path)
    return path


def _read_two_lines_and_close(
    switchboard_executable: str, cwd: Path, *args: str
) -> tuple[list[str], int, int]:
    """Run the command as `| head -2` would: read two lines, close the pipe. (lines, exit code, peak RSS MB)"""
    process = subprocess.Popen(
        [switchboard_executable, "sql", *args],
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(2)]
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return lines, process.returncode, usage.ru_maxrss // 1024


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_rows_stream_so_a_closed_pipe_ends_a_five_million_row_query_with_flat_memory(
    warehouse, switchboard_executable, fmt
) -> None:
    lines, code, peak_mb = _read_two_lines_and_close(
        switchboard_executable, warehouse.parent, FIVE_MILLION, "--format", fmt
    )
    assert code == 0
    expected = {"csv": ["i,x,s\n", "0,0.0,row 0\n"], "json": ["[\n", '  {"i": 0, "x": 0.0, "s": "row 0"},\n']}
    assert lines == expected[fmt]
    # the whole result held in memory took 1.6 GB; streamed, the peak is the interpreter, DuckDB's own
    # read-ahead and one batch (155 to 412 MB seen, higher on a loaded machine): far under the whole result
    assert peak_mb < 700, peak_mb


def test_table_output_is_a_bounded_preview_with_the_row_count(warehouse, switchboard_executable) -> None:
    result = subprocess.run(
        [switchboard_executable, "sql", FIVE_MILLION],
        cwd=str(warehouse.parent),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["i", "x", "s"]
    assert len(lines) == 2 + 1000 + 1
    assert lines[-2].split() == ["999", "1498.5", "row", "999"]
    assert lines[-1] == "(1000 of 5000000 rows shown; --format csv or json prints them all)"


def test_small_results_print_whole_with_their_count(warehouse, cli) -> None:
    result = cli("sql", "SELECT * FROM range(3) t(n)")
    assert result.stdout.splitlines() == ["n", "-", "0", "1", "2", "(3 rows)"]


def test_json_output_is_valid_typed_and_exact(warehouse, cli) -> None:
    result = cli("sql", TYPED, "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout, parse_float=Decimal)
    assert row == {
        "amount": Decimal("12345678901234567.89"),  # not 1.2345678901234568e+16
        "span": "P1M2DT3H",  # ISO 8601 duration: a month stays a month
        "day": "2024-01-02",
        "nan": None,  # JSON has no NaN or Infinity: null
        "inf": None,
        "doc": {"a": [1, Decimal("2.50")]},  # a JSON column is a JSON value, not a string
        "list": [Decimal("1.5")],
        "float": Decimal("1.25"),
    }


def test_csv_and_table_keep_decimals_exact(warehouse, cli) -> None:
    csv_lines = cli("sql", TYPED, "--format", "csv").stdout.splitlines()
    assert csv_lines[0] == "amount,span,day,nan,inf,doc,list,float"
    assert csv_lines[1].startswith("12345678901234567.89,P1M2DT3H,2024-01-02,nan,inf,")
    assert "12345678901234567.89" in cli("sql", TYPED).stdout


def test_empty_queries_are_one_line_errors(warehouse, cli) -> None:
    for query in ("", "   ", " ; ;"):
        result = cli("sql", query)
        assert result.exit_code == 1
        assert (
            result.stderr
            == 'error: the query is empty: pass the SQL to run, e.g. switchboard sql "SELECT 1"\n'
        )
    result = cli("sql", "/* only a comment */")
    assert (result.exit_code, result.stderr) == (1, "error: the query holds no SQL statement\n")


def test_duckdb_statements_without_rows_print_their_status(warehouse, cli) -> None:
    assert cli("sql", "CREATE TABLE t AS SELECT * FROM range(3) r(n)").stdout == "CREATE (3 rows affected)\n"
    assert cli("sql", "INSERT INTO t VALUES (7)").stdout == "INSERT (1 row affected)\n"
    assert cli("sql", "SELECT count(*) AS n FROM t").stdout.splitlines()[2] == "4"


def test_read_only_refuses_writes_on_duckdb_by_flag_and_by_config(warehouse, cli, monkeypatch) -> None:
    assert cli("sql", "CREATE TABLE t (a INTEGER)").exit_code == 0
    refused = cli("sql", "SELECT 1; INSERT INTO t VALUES (1)", "--read-only")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "error: read-only: refused INSERT; only SELECT and EXPLAIN statements run"
    )
    monkeypatch.setenv("SQL__READ_ONLY", "true")
    for statement in ("DROP TABLE t", "COPY t TO 'out.csv'", "ATTACH 'other.duckdb' AS other"):
        assert cli("sql", statement).exit_code == 1, statement
    assert not (warehouse.parent / "out.csv").exists() and not (warehouse.parent / "other.duckdb").exists()
    reads = cli("sql", "SELECT count(*) AS n FROM t")
    assert reads.exit_code == 0 and reads.stdout.splitlines()[2] == "0"


def test_sql_and_sync_never_create_a_warehouse(tmp_path, switchboard) -> None:
    """From a directory without .dlt/ and without the file: an error naming where they looked, no file."""
    env = {
        "SYNCS__PEOPLE__TARGET": "sendblue.contacts",
        "SYNCS__PEOPLE__QUERY": "SELECT '+15551230000' AS phone",
    }
    expected = f"error: no DuckDB warehouse at {tmp_path / 'switchboard.duckdb'} (destination.duckdb.credentials is not set"
    result = switchboard("sql", "SELECT 1", env=env, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(expected), result.stderr
    result = switchboard("sync", "people", "--dry-run", env=env, cwd=tmp_path)
    assert result.returncode == 1 and expected[len("error: ") :] in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ Postgres


@pytest.fixture
def postgres(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The local server through a DSN without a password (trust auth), and a schema of this test's own."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        con = psycopg2.connect(POSTGRES_DSN_WITHOUT_PASSWORD, connect_timeout=5)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})")
        pytest.skip(f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})")
    con.autocommit = True
    schema = f"sbsql_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_DSN_WITHOUT_PASSWORD)
    monkeypatch.delenv("SQL__READ_ONLY", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        yield schema
    finally:
        with con.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.close()


@pytest.mark.postgres
def test_postgres_statements_without_rows_report_their_status(postgres, cli) -> None:
    def pg(*args: str):
        return cli("sql", *args, "--destination", "postgres")

    assert pg(f"CREATE SCHEMA {postgres}").stdout == "CREATE SCHEMA\n"
    assert pg(f"CREATE TABLE {postgres}.t (a INT, d NUMERIC(20, 2))").stdout == "CREATE TABLE\n"
    inserted = pg(f"INSERT INTO {postgres}.t VALUES (1, 12345678901234567.89), (2, NULL)")
    assert (inserted.exit_code, inserted.stdout) == (0, "INSERT 0 2 (2 rows affected)\n")
    rows = json.loads(
        pg(f"SELECT a, d FROM {postgres}.t ORDER BY a", "--format", "json").stdout, parse_float=Decimal
    )
    assert rows == [{"a": 1, "d": Decimal("12345678901234567.89")}, {"a": 2, "d": None}]
    assert pg(f"DROP TABLE {postgres}.t").stdout == "DROP TABLE\n"


@pytest.mark.postgres
def test_postgres_json_is_typed_and_rows_stream_through_a_cursor(postgres, cli) -> None:
    query = (
        "SELECT INTERVAL '1 month 2 days' AS span, 'NaN'::NUMERIC AS nan, '{\"x\": 1.10}'::JSONB AS doc, "
        "DATE '2024-01-02' AS day"
    )
    [row] = json.loads(
        cli("sql", query, "--destination", "postgres", "--format", "json").stdout, parse_float=Decimal
    )
    assert row == {"span": "P1M2D", "nan": None, "doc": {"x": Decimal("1.10")}, "day": "2024-01-02"}
    table = cli("sql", "SELECT g FROM generate_series(1, 2500) AS g", "--destination", "postgres")
    assert table.stdout.splitlines()[-1] == "(1000 of 2500 rows shown; --format csv or json prints them all)"
    csv_lines = cli(
        "sql", "SELECT g FROM generate_series(1, 2500) AS g", "--destination", "postgres", "--format", "csv"
    )
    assert csv_lines.stdout.splitlines()[1:] == [str(n) for n in range(1, 2501)]


@pytest.mark.postgres
def test_postgres_read_only_refuses_writes(postgres, cli, monkeypatch) -> None:
    assert cli("sql", f"CREATE SCHEMA {postgres}", "--destination", "postgres").exit_code == 0
    refused = cli("sql", f"CREATE TABLE {postgres}.t (a INT)", "--destination", "postgres", "--read-only")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: read-only: Postgres refused the statement (cannot execute CREATE TABLE in a read-only transaction)\n"
    )
    monkeypatch.setenv("SQL__READ_ONLY", "true")
    sneaky = cli("sql", f"SELECT 1; COMMIT; CREATE TABLE {postgres}.t (a INT)", "--destination", "postgres")
    assert sneaky.exit_code == 1
    tables = cli("sql", f"SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{postgres}'",
                 "--destination", "postgres")  # fmt: skip
    assert tables.stdout.splitlines()[2].strip() == "0"

"""Warehouse access for everything that reads or writes SQL outside a dlt load: the sync engine and the CLI.

`open_warehouse(name)` resolves the configured warehouse:

- `duckdb` (the default): the file in `destination.duckdb.credentials`, default `switchboard.duckdb`;
- `postgres`: the DSN (or credential fields) in `destination.postgres.credentials`;
- any other dlt SQL destination name (`snowflake`, `bigquery`, `motherduck`, ...): dlt's own SQL client for
  that destination, configured the dlt way (`destination.<name>.credentials`).

Every warehouse offers the same small surface: `query(sql, params) -> list[dict]`, `query_rows` (column
names plus tuples, for hot paths), `execute`, `insert_rows`, `transaction()`, `table_exists`,
`table_columns`. Statements written for this surface use `?` placeholders; each dialect rewrites them to
its driver's paramstyle. SQL written by users (a sync's `query`, `switchboard sql`) is passed through
untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

# the config side lives in warehouse_config; these names are imported from here too
from destinations.warehouse_config import DEFAULT_DUCKDB_FILE as DEFAULT_DUCKDB_FILE
from destinations.warehouse_config import (
    default_destination,
    destination_problem,
    dsn_host,
    existing_duckdb_path,
)
from destinations.warehouse_config import duckdb_path_from_config as duckdb_path_from_config
from destinations.warehouse_config import postgres_dsn_from_config as postgres_dsn_from_config

log = logging.getLogger("switchboard.warehouse")

# Multi-row INSERT statements carry at most this many rows: few round trips, bounded statement size.
INSERT_CHUNK_ROWS = 250


class WarehouseError(Exception):
    """The warehouse could not be opened, or a statement failed. The message names the warehouse."""


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (standard SQL; DuckDB, Postgres and Snowflake all accept it)."""
    return '"' + name.replace('"', '""') + '"'


def strip_statement(sql: str) -> str:
    """A user's query without trailing semicolons, so it can be wrapped as a subquery. It ends in a line
    break: a query whose last line is a `-- comment` would otherwise comment out the closing parenthesis."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text + "\n" if text else ""


class Warehouse:
    """Base of the dialects. Subclasses implement `_cursor_execute`, `_begin`, `_commit`, `_rollback`."""

    dialect = "sql"
    # `?` placeholders become this in the driver's statements
    placeholder = "?"

    def __init__(self, description: str):
        self.description = description
        self._in_transaction = False

    # -- the surface

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run a statement that returns rows; return them as dicts (column order preserved)."""
        columns, rows = self.query_rows(sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def query_rows(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a statement that returns rows; return (column names, row tuples)."""
        return self._run(sql, params, fetch=True)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement for its effect (autocommitted unless inside `transaction()`)."""
        self._run(sql, params, fetch=False)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """INSERT many rows with multi-row VALUES statements (portable and far faster than one per row)."""
        if not rows:
            return
        cols = ", ".join(quote_ident(c) for c in columns)
        one = "(" + ", ".join("?" for _ in columns) + ")"
        for start in range(0, len(rows), INSERT_CHUNK_ROWS):
            chunk = rows[start : start + INSERT_CHUNK_ROWS]
            sql = f"INSERT INTO {table} ({cols}) VALUES " + ", ".join(one for _ in chunk)
            flat = [value for row in chunk for value in row]
            self.execute(sql, flat)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """Statements inside commit together or not at all. Nested use joins the outer transaction."""
        if self._in_transaction:
            yield self
            return
        self._begin()
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            self._rollback()
            raise
        self._in_transaction = False
        self._commit()

    # how many values `in_values` puts in one statement
    max_in_values = 500

    def in_values(self, column_sql: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """(`column IN (...)` condition, its parameters) for a list of text values."""
        return f"{column_sql} IN ({', '.join('?' for _ in values)})", list(values)

    def table_exists(self, schema: str, table: str) -> bool:
        rows = self.query(
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
        return bool(rows and rows[0]["n"])

    def table_columns(self, schema: str, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return [str(r["column_name"]) for r in rows]

    def query_columns(self, sql: str) -> list[str]:
        """The column names a query yields, without reading its rows."""
        columns, _ = self.query_rows(f"SELECT * FROM ({strip_statement(sql)}) AS switchboard_q WHERE 1 = 0")
        return columns

    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dialect hooks

    def text_expr(self, column_sql: str) -> str:
        """An expression that renders any column as text, for row hashing."""
        return f"CAST({column_sql} AS VARCHAR)"

    def md5_expr(self, text_sql: str) -> str:
        """Hex MD5 of a text expression."""
        return f"md5({text_sql})"

    def _translate(self, sql: str, params: Sequence[Any] | None) -> str:
        if params is None or self.placeholder == "?":
            return sql
        # our own statements never hold a literal '?' or '%', so this rewrite is safe for them
        return sql.replace("%", "%%").replace("?", self.placeholder)

    def _run(self, sql: str, params: Sequence[Any] | None, fetch: bool) -> Any:
        raise NotImplementedError

    def _begin(self) -> None:
        self.execute("BEGIN")

    def _commit(self) -> None:
        self.execute("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.execute("ROLLBACK")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: str = DEFAULT_DUCKDB_FILE, *, read_only: bool = False):
        import duckdb

        super().__init__(f"duckdb:{path}")
        self.path = path
        self._types: dict[str, dict[str, str]] = {}
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open DuckDB file {path}: {exc}") from None

    def _run(self, sql: str, params: Sequence[Any] | None, fetch: bool) -> Any:
        import duckdb

        # one connection for everything (temporary tables live per connection); every result is read to
        # the end, since DuckDB 2.0 keeps an unfinished result busy on the connection
        try:
            result = self._con.execute(sql, list(params) if params is not None else None)
            columns = [d[0] for d in (result.description or [])]
            rows = result.fetchall() if result.description else []
        except duckdb.Error as exc:
            raise WarehouseError(f"DuckDB ({self.path}): {exc}") from None
        return (columns, rows) if fetch else None

    max_in_values = 200_000

    def in_values(self, column_sql: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # one list parameter instead of one parameter per value: binding is the slow part in DuckDB
        return f"{column_sql} IN (SELECT UNNEST(?::VARCHAR[]))", [[str(v) for v in values]]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Column lists unnested in one statement: binding one list per column is some 25 times faster
        in DuckDB than multi-row VALUES with a parameter per value."""
        if not rows:
            return
        types = self._column_types(table)
        cols = ", ".join(quote_ident(c) for c in columns)
        selects = ", ".join(f"UNNEST(?::{types[c]}[])" for c in columns)
        data = [list(values) for values in zip(*rows, strict=True)]
        self.execute(f"INSERT INTO {table} ({cols}) SELECT {selects}", data)

    def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            schema, _, name = table.rpartition(".")
            rows = self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? AND (table_schema = ? OR ? = '')",
                [name, schema, schema],
            )
            self._types[table] = {str(r["column_name"]): str(r["data_type"]) for r in rows}
        return self._types[table]

    def _begin(self) -> None:
        self._con.execute("BEGIN TRANSACTION")

    def _commit(self) -> None:
        self._con.execute("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._con.execute("ROLLBACK")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


class PostgresWarehouse(Warehouse):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, dsn: str, *, read_only: bool = False):
        try:
            import psycopg2
        except ImportError:  # pragma: no cover - the postgres extra is missing
            raise WarehouseError("Postgres needs the postgres extra: pip install 'switchboard-etl[postgres]'") from None
        host = dsn_host(dsn)
        super().__init__(f"postgres:{host}")
        try:
            # read-only: every transaction of the session starts READ ONLY (`switchboard sql --read-only`)
            options = {"options": "-c default_transaction_read_only=on"} if read_only else {}
            self._con = psycopg2.connect(dsn, **options)
        except psycopg2.Error as exc:
            raise WarehouseError(f"cannot connect to Postgres at {host}: {first_line(exc)}") from None
        self._con.autocommit = True

    def _run(self, sql: str, params: Sequence[Any] | None, fetch: bool) -> Any:
        import psycopg2

        try:
            with self._con.cursor() as cursor:
                cursor.execute(self._translate(sql, params), list(params) if params is not None else None)
                if not fetch:
                    return None
                columns = [d[0] for d in (cursor.description or [])]
                return columns, cursor.fetchall()
        except psycopg2.Error as exc:
            raise WarehouseError(f"Postgres ({self.description}): {first_line(exc)}") from None

    max_in_values = 200_000

    def in_values(self, column_sql: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # psycopg2 sends a Python list as one array parameter
        return f"{column_sql} = ANY(?)", [[str(v) for v in values]]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        import psycopg2
        from psycopg2.extras import execute_values

        if not rows:
            return
        cols = ", ".join(quote_ident(c) for c in columns)
        try:
            with self._con.cursor() as cursor:
                execute_values(cursor, f"INSERT INTO {table} ({cols}) VALUES %s", [tuple(r) for r in rows], page_size=500)
        except psycopg2.Error as exc:
            raise WarehouseError(f"Postgres ({self.description}): {first_line(exc)}") from None

    def text_expr(self, column_sql: str) -> str:
        return f"CAST({column_sql} AS TEXT)"

    def _begin(self) -> None:
        self._con.autocommit = False

    def _commit(self) -> None:
        self._con.commit()
        self._con.autocommit = True

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._con.rollback()
        self._con.autocommit = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


class DltSqlWarehouse(Warehouse):
    """Any other SQL destination dlt supports, through dlt's own SQL client and its configuration."""

    def __init__(self, destination: str):
        import dlt

        super().__init__(f"dlt:{destination}")
        self.dialect = destination
        try:
            pipeline = dlt.pipeline(
                pipeline_name="switchboard_warehouse", destination=destination, dataset_name="reverse_etl"
            )
            self._client = pipeline.sql_client()
            self._client.open_connection()
        except Exception as exc:
            raise WarehouseError(f"cannot open dlt destination {destination!r}: {first_line(exc)}") from None
        paramstyle = getattr(getattr(self._client, "dbapi", None), "paramstyle", "format")
        self.placeholder = "?" if paramstyle == "qmark" else "%s"

    def _run(self, sql: str, params: Sequence[Any] | None, fetch: bool) -> Any:
        try:
            with self._client.execute_query(self._translate(sql, params), *(params or [])) as cursor:
                if not fetch:
                    return None
                columns = [d[0] for d in (cursor.description or [])]
                return columns, [tuple(r) for r in cursor.fetchall()]
        except Exception as exc:
            raise WarehouseError(f"{self.description}: {first_line(exc)}") from None

    def _begin(self) -> None:
        self._tx = self._client.begin_transaction()
        self._tx.__enter__()

    def _commit(self) -> None:
        self._tx.__exit__(None, None, None)

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            error = RuntimeError("rollback")
            self._tx.__exit__(type(error), error, None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close_connection()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_warehouse(destination: str | None = None, *, read_only: bool = False) -> Warehouse:
    """Open the named warehouse (`duckdb`, `postgres` or another dlt SQL destination); see the module doc.
    A DuckDB file must exist already; `read_only` opens it (or the Postgres session) for reads only."""
    name = (destination or default_destination()).strip().lower()
    if name == "duckdb":
        return DuckDBWarehouse(existing_duckdb_path(), read_only=read_only)
    if name in ("postgres", "postgresql"):
        return PostgresWarehouse(postgres_dsn_from_config(), read_only=read_only)
    problem = destination_problem(name)
    if problem:
        raise WarehouseError(problem)
    return DltSqlWarehouse(name)


def resolve_warehouse(warehouse: Warehouse | str | None) -> tuple[Warehouse, bool]:
    """(warehouse, opened_here): an open Warehouse passes through; a name or None is opened."""
    if isinstance(warehouse, Warehouse):
        return warehouse, False
    return open_warehouse(warehouse), True

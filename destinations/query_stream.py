"""A user's SQL (`switchboard sql`) run on the warehouse, its rows read a batch at a time.

DuckDB gives the last statement's rows as Arrow record batches of a streaming result; Postgres through a
server-side cursor (DECLARE, then FETCH). Memory holds one batch whatever the size of the result, and the
rows left after a preview are counted without being converted (Arrow batch lengths; Postgres `MOVE FORWARD
ALL`). A statement that returns no rows yields its status instead ("CREATE TABLE", "INSERT 0 3 (3 rows
affected)"). Values keep their types: decimals stay `Decimal`, intervals become ISO 8601 durations
(exact: months stay months), JSON columns become JSON values.

Read-only: DuckDB opens the file read-only and runs nothing but SELECT and EXPLAIN statements (checked with
DuckDB's own parser before anything runs); Postgres runs the query in a READ ONLY transaction of a session
whose transactions default to read-only. Other dlt destinations are read whole through dlt's SQL client,
and refuse read-only mode (give the analyst a read-only role there).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from destinations.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    Warehouse,
    WarehouseError,
    first_line,
)

Rows = list[tuple[Any, ...]]
READ_STATEMENTS = ("SELECT", "EXPLAIN")
# DuckDB statements whose only result is a count of changed rows or a success flag
_STATUS_COLUMNS = (["Count"], ["Success"])
_CURSOR = "switchboard_sql"


class QueryResult:
    """The result of the query's last statement: `columns` and `batches()` of row tuples, or a `status`."""

    def __init__(self, columns: list[str], status: str | None = None):
        self.columns = columns
        self.status = status

    def batches(self) -> Iterator[Rows]:
        return iter(())

    def count_rest(self) -> int:
        """How many rows `batches()` has not yielded yet, read to the end without converting them."""
        return 0


class _FetchedRows(QueryResult):
    """Rows already in memory (a client-side result)."""

    def __init__(self, columns: list[str], fetch: Callable[[int], Rows], batch_rows: int):
        super().__init__(columns)
        self._fetch, self._batch_rows = fetch, batch_rows

    def batches(self) -> Iterator[Rows]:
        while rows := self._fetch(self._batch_rows):
            yield rows

    def count_rest(self) -> int:
        return sum(len(rows) for rows in self.batches())


def iso_duration(months: int, days: int, microseconds: int) -> str:
    """An interval as an ISO 8601 duration, e.g. P1M2DT3H4.5S; a negative part keeps its sign."""
    years = int(months / 12)  # toward zero: -14 months is -1 year -2 months, as Postgres writes it
    months -= years * 12
    sign = -1 if microseconds < 0 else 1
    seconds, micros = divmod(abs(microseconds), 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    date = "".join(f"{v}{u}" for v, u in ((years, "Y"), (months, "M"), (days, "D")) if v)
    clock = [(hours * sign, "H"), (minutes * sign, "M")]
    text = "".join(f"{v}{u}" for v, u in clock if v)
    if seconds or micros:
        value = f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") if micros else str(seconds)
        text += ("-" if sign < 0 else "") + value + "S"
    if not date and not text:
        return "PT0S"
    return "P" + date + ("T" + text if text else "")


# ------------------------------------------------------------------------------------------ DuckDB


def _duckdb_converter(type_name: str) -> Callable[[Any], Any] | None:
    if type_name == "JSON":
        return lambda v: None if v is None else json.loads(v, parse_float=Decimal)
    if type_name.startswith("MAP("):
        return lambda v: None if v is None else dict(v)
    if type_name == "INTERVAL":
        return lambda v: None if v is None else iso_duration(v.months, v.days, v.nanoseconds // 1000)
    return None


class _ArrowRows(QueryResult):
    def __init__(self, columns: list[str], types: list[str], reader: Any, where: str):
        super().__init__(columns)
        self._reader, self._where = reader, where
        self._convert = [_duckdb_converter(t) for t in types]

    def _next_batches(self) -> Iterator[Any]:
        try:
            for batch in self._reader:  # noqa: UP028 - `yield from` would close the reader when a preview stops
                yield batch
        except Exception as exc:  # an error while the query runs on (a failed cast, out of memory)
            raise WarehouseError(f"DuckDB ({self._where}): {first_line(exc)}") from None

    def batches(self) -> Iterator[Rows]:
        for batch in self._next_batches():
            columns = []
            for column, convert in zip(batch.columns, self._convert, strict=True):
                values = column.to_pylist()
                columns.append([convert(v) for v in values] if convert else values)
            yield list(zip(*columns, strict=True))

    def count_rest(self) -> int:
        return sum(batch.num_rows for batch in self._next_batches())


def _statement_kind(statement: Any) -> str:
    return str(statement.type).rsplit(".", 1)[-1]


def _run_duckdb(wh: DuckDBWarehouse, sql: str, read_only: bool, batch_rows: int) -> QueryResult:
    import duckdb

    con = wh._con
    try:
        statements = con.extract_statements(sql)
        if not statements:
            raise WarehouseError("the query holds no SQL statement")
        refused = sorted({_statement_kind(s) for s in statements} - set(READ_STATEMENTS))
        if read_only and refused:
            raise WarehouseError(
                f"read-only: refused {', '.join(refused)}; only {' and '.join(READ_STATEMENTS)} statements run "
                "in read-only mode (--read-only, or read_only in the [sql] config section)"
            )
        for statement in statements[:-1]:
            con.execute(statement.query)
            if con.description:
                con.fetchall()  # read to the end: DuckDB keeps an unfinished result busy
        last = statements[-1]
        kind = _statement_kind(last)
        if kind == "SELECT":
            relation = con.sql(last.query)
            reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            return _ArrowRows(
                list(relation.columns), [str(t) for t in relation.types], reader(batch_rows), wh.path
            )
        con.execute(last.query)
        columns = [d[0] for d in con.description or []]
        if columns in _STATUS_COLUMNS or not columns:
            rows = con.fetchall() if columns else []
            counted = columns == ["Count"] and rows and rows[0][0] is not None
            return QueryResult([], kind + (f" ({_rows_text(int(rows[0][0]))} affected)" if counted else ""))
        return _FetchedRows(columns, con.fetchmany, batch_rows)
    except duckdb.Error as exc:
        raise WarehouseError(f"DuckDB ({wh.path}): {first_line(exc)}") from None


# ------------------------------------------------------------------------------------------ Postgres


class _PostgresCursor(QueryResult):
    def __init__(self, columns: list[str], cursor: Any, first: Rows, batch_rows: int, wh: PostgresWarehouse):
        super().__init__(columns)
        self._cursor, self._first, self._batch_rows, self._wh = cursor, first, batch_rows, wh

    def batches(self) -> Iterator[Rows]:
        import psycopg2

        first, self._first = self._first, []
        if first:
            yield first
        while True:
            try:
                rows = self._cursor.fetchmany(self._batch_rows)
            except psycopg2.Error as exc:
                raise _postgres_error(self._wh, exc) from None
            if not rows:
                return
            yield rows

    def count_rest(self) -> int:
        counted = len(self._first)
        self._first = []
        with self._wh._con.cursor() as cursor:
            cursor.execute(f'MOVE FORWARD ALL IN "{_CURSOR}"')
            return counted + int((cursor.statusmessage or "MOVE 0").split()[-1])


def _postgres_error(wh: PostgresWarehouse, exc: Any) -> WarehouseError:
    text = first_line(exc)
    if getattr(exc, "pgcode", None) == "25006":  # read_only_sql_transaction
        return WarehouseError(f"read-only: Postgres refused the statement ({text})")
    if "empty query" in text:
        return WarehouseError("the query holds no SQL statement")
    return WarehouseError(f"Postgres ({wh.description}): {text}")


def _run_postgres(wh: PostgresWarehouse, sql: str, read_only: bool, batch_rows: int) -> QueryResult:
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras

    con = wh._con
    # intervals as ISO 8601 text, kept as text (psycopg2 would turn a month into 30 days)
    with con.cursor() as cursor:
        cursor.execute("SET intervalstyle = 'iso_8601'")
    psycopg2.extensions.register_type(
        psycopg2.extensions.new_type((1186,), "INTERVAL_ISO", lambda value, _cursor: value), con
    )
    # json and jsonb numbers as Decimal, so 1.10 stays 1.10
    exact = functools.partial(json.loads, parse_float=Decimal)
    psycopg2.extras.register_default_json(con, loads=exact)
    psycopg2.extras.register_default_jsonb(con, loads=exact)
    con.set_session(readonly=read_only or None, autocommit=False)
    named = con.cursor(name=_CURSOR)
    try:
        named.execute(sql)  # DECLARE ... CURSOR FOR <sql>: only a query that returns rows can be declared
    except psycopg2.Error:
        con.rollback()
    else:
        try:
            first = named.fetchmany(batch_rows)
        except psycopg2.Error as exc:
            raise _postgres_error(wh, exc) from None
        return _PostgresCursor([d[0] for d in named.description], named, first, batch_rows, wh)
    cursor = con.cursor()
    try:
        cursor.execute(sql)
    except psycopg2.Error as exc:
        raise _postgres_error(wh, exc) from None
    if cursor.description:
        return _FetchedRows([d[0] for d in cursor.description], cursor.fetchmany, batch_rows)
    status = cursor.statusmessage or "ok"
    verb = status.split()[0]
    if cursor.rowcount >= 0 and verb in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "SELECT"):
        status += f" ({_rows_text(cursor.rowcount)} affected)"
    return QueryResult([], status)


# ------------------------------------------------------------------------------------------ entry


@contextlib.contextmanager
def run_query(
    wh: Warehouse, sql: str, *, read_only: bool = False, batch_rows: int = 1000
) -> Iterator[QueryResult]:
    """Run `sql`; the result's batches are read inside the `with` block. On Postgres the transaction
    commits when the block ends and rolls back if it raises."""
    if isinstance(wh, DuckDBWarehouse):
        yield _run_duckdb(wh, sql, read_only, batch_rows)
        return
    if isinstance(wh, PostgresWarehouse):
        try:
            yield _run_postgres(wh, sql, read_only, batch_rows)
        except BaseException:
            with contextlib.suppress(Exception):
                wh._con.rollback()
            raise
        wh._con.commit()
        return
    if read_only:
        raise WarehouseError(
            f"read-only mode works with duckdb and postgres, not {wh.dialect}: connect as a read-only user there"
        )
    columns, rows = wh.query_rows(sql)
    pending = list(rows)

    def take(n: int) -> Rows:
        batch = pending[:n]
        del pending[:n]
        return batch

    yield _FetchedRows(columns, take, batch_rows) if columns else QueryResult([], "ok")


def _rows_text(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"

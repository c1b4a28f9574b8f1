"""Rows as an aligned text table, CSV or JSON: the output of `switchboard sql` and the load summary.

Values keep their meaning in every format: decimals are written exactly as the warehouse holds them (never
through a float), timestamps and dates in ISO 8601, intervals as ISO 8601 durations, UUIDs as text, bytes
as hex. JSON output is typed: numbers are JSON numbers, JSON columns JSON values, lists arrays, structs
objects; NaN and ±Infinity, which JSON cannot hold, are written as null. CSV and JSON stream: rows are
written a batch at a time as the warehouse yields them.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

FORMATS = ("table", "csv", "json")
PREVIEW_ROWS = 1000

Write = Callable[[str], Any]


def _duration(value: dt.timedelta) -> str:
    from destinations.query_stream import iso_duration

    total = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = -1 if total < 0 else 1
    days, micros = divmod(abs(total), 86_400_000_000)
    return iso_duration(0, sign * days, sign * micros)


def _decimal_text(value: decimal.Decimal) -> str:
    return format(value, "f") if value.is_finite() else str(value)


def _text(value: Any) -> str:
    """One scalar as text, exactly (the table and CSV)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, decimal.Decimal):
        return _decimal_text(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json_text(value)
    return str(value)


def json_text(value: Any) -> str:
    """`value` as JSON text, exact: a Decimal becomes a JSON number with all its digits."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else "null"
    if isinstance(value, decimal.Decimal):
        return _decimal_text(value) if value.is_finite() else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {json_text(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    if isinstance(
        value, uuid.UUID | dt.datetime | dt.date | dt.time | dt.timedelta | bytes | bytearray | memoryview
    ):
        return json.dumps(_text(value))
    return json.dumps(str(value), ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    return " ".join(_text(value).split())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _table_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [len(str(c)) for c in columns]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric = [
        bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows) for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(out).rstrip()

    lines = [line([str(c) for c in columns]), "  ".join("-" * w for w in widths)]
    lines.extend(line(row) for row in cells)
    return lines


def _count_note(shown: int, total: int) -> str:
    if total > shown:
        return f"({shown} of {total} rows shown; --format csv or json prints them all)"
    return f"({total} row{'s' if total != 1 else ''})"


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """An aligned table with a header rule; numbers right-aligned, long cells cut with an ellipsis."""
    return "\n".join([*_table_lines(columns, rows, max_width), _count_note(len(rows), len(rows))])


def write_csv(columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]], write: Write) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for rows in batches:
        writer.writerows(["" if v is None else _text(v) for v in row] for row in rows)
        write(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()
    write(buffer.getvalue())


def write_json(columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]], write: Write) -> None:
    """A JSON array of one object per row, written as the rows come."""
    keys = [json.dumps(str(c), ensure_ascii=False) + ": " for c in columns]
    separator = "[\n"
    for rows in batches:
        objects = [
            "  {" + ", ".join(k + json_text(v) for k, v in zip(keys, row, strict=False)) + "}" for row in rows
        ]
        if objects:
            write(separator + ",\n".join(objects))
            separator = ",\n"
    write("[]\n" if separator == "[\n" else "\n]\n")


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out: list[str] = []
    write_csv(columns, [rows], out.append)
    return "".join(out).rstrip("\n")


def render_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out: list[str] = []
    write_json(columns, [rows], out.append)
    return "".join(out).rstrip("\n")


def write_result(
    result: Any, fmt: str, write: Write, flush: Callable[[], Any], preview_rows: int = PREVIEW_ROWS
) -> None:
    """Print a query result (`destinations.query_stream.QueryResult`): its status, all its rows as CSV or
    JSON, or an aligned table of the first `preview_rows` followed by the number of rows in all."""
    if result.status is not None:
        write(result.status + "\n")
        return
    if fmt == "csv":
        write_csv(result.columns, result.batches(), write)
    elif fmt == "json":
        write_json(result.columns, result.batches(), write)
    elif fmt == "table":
        rows: list[Sequence[Any]] = []
        for batch in result.batches():
            rows.extend(batch)
            if len(rows) >= preview_rows:
                break
        shown = rows[:preview_rows]
        write("\n".join(_table_lines(result.columns, shown, 60)) + "\n")
        flush()  # the preview is out before the rest of the rows are counted
        total = len(rows) + (result.count_rest() if len(rows) >= preview_rows else 0)
        write(_count_note(len(shown), total) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")

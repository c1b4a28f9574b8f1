"""`switchboard sql`: run SQL on the warehouse and print the result."""

from __future__ import annotations

import sys

import typer

from pipelines.cli.app import app, handles_errors
from pipelines.errors import CliError


@app.command()
@handles_errors
def sql(
    query: str = typer.Argument(..., help='The SQL to run, e.g. "SELECT * FROM chatwoot.contacts LIMIT 5".'),
    output_format: str = typer.Option(
        "table", "--format", help="table (default: the first 1000 rows and the row count), csv or json (all rows)."
    ),
    destination: str = typer.Option(None, "--destination", help="duckdb (default) or postgres."),
    read_only: bool = typer.Option(
        False, "--read-only", help="Refuse anything but reads (default: read_only in the [sql] config section)."
    ),
) -> None:
    """Run SQL on the configured warehouse and print the result.

    Rows stream: csv and json print every row as the warehouse yields them. Decimals are exact, dates and
    timestamps ISO 8601, intervals ISO 8601 durations; in json, JSON columns are JSON values and NaN or
    Infinity (which JSON cannot hold) are null. A statement without rows prints its status.
    """
    import dlt

    from destinations.query_stream import run_query
    from destinations.warehouse import open_warehouse, strip_statement
    from pipelines.tables import FORMATS, write_result

    if output_format not in FORMATS:
        raise CliError(f"unknown format {output_format!r}: choose {', '.join(FORMATS)}")
    if not strip_statement(query):
        raise CliError('the query is empty: pass the SQL to run, e.g. switchboard sql "SELECT 1"')
    read_only = read_only or bool(dlt.config.get("sql.read_only", bool))
    with open_warehouse(destination, read_only=read_only) as wh, run_query(wh, query, read_only=read_only) as result:
        write_result(result, output_format, sys.stdout.write, sys.stdout.flush)

"""`switchboard check`, `discover` and `load`: what a source offers, and loading it."""

from __future__ import annotations

import json

import typer

from pipelines.cli.app import SOURCES_HELP, app, handles_errors
from pipelines.errors import LoadFailed
from pipelines.source_names import check_source_name


@app.command()
@handles_errors
def check(source: str = typer.Argument(..., help=SOURCES_HELP, metavar="chatwoot|sendblue")) -> None:
    """Make the cheapest authenticated call; print "ok" or exit 1 with the reason."""
    from pipelines.source_names import source_module

    module = source_module(source)
    result = module.check_connection(module.settings_from_config())
    typer.echo(result if isinstance(result, str) and result else "ok")


# ------------------------------------------------------------------------------------------ discover


@app.command()
@handles_errors
def discover(
    source: str = typer.Argument(..., help=SOURCES_HELP, metavar="chatwoot|sendblue"),
    as_json: bool = typer.Option(False, "--json", help="Print the streams as JSON."),
) -> None:
    """List the streams: table, primary key, write disposition, incremental cursor, columns."""
    from pipelines.load import discover_streams
    from sources.common.settings import check_source_keys

    check_source_keys(check_source_name(source))
    streams = discover_streams(source)
    if as_json:
        typer.echo(json.dumps(streams, indent=2, default=str))
        return
    from pipelines.tables import render_table

    for i, stream in enumerate(streams):
        if i:
            typer.echo("")
        key = stream.get("primary_key")
        key_text = ", ".join(key) if isinstance(key, list | tuple) else str(key or "-")
        cursor = stream.get("cursor") or "-"
        typer.echo(
            f"{source}.{stream['table']}  primary key: {key_text}  write: {stream.get('write_disposition', '-')}"
            f"  cursor: {cursor}"
        )
        columns = stream.get("columns") or {}
        if isinstance(columns, dict):
            items = [
                (name, spec.get("data_type") if isinstance(spec, dict) else spec)
                for name, spec in columns.items()
            ]
        else:
            items = [(c.get("name"), c.get("data_type") or c.get("type")) for c in columns]
        typer.echo(render_table(["column", "type"], items).rsplit("\n", 1)[0])


# ------------------------------------------------------------------------------------------ load


@app.command()
@handles_errors
def load(
    source: str = typer.Argument(..., help="chatwoot, sendblue or all", metavar="chatwoot|sendblue|all"),
    resources: str = typer.Option(
        None, "--resources", help="Comma-separated resources to load (default: all)."
    ),
    destination: str = typer.Option(
        "duckdb", "--destination", help="duckdb (default), postgres or any dlt destination name."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="Dataset (schema) name; with 'all' a prefix: NAME_chatwoot, NAME_sendblue."
    ),
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Drop the source's tables and incremental state, then load everything."
    ),
    pipelines_dir: str = typer.Option(
        None,
        "--pipelines-dir",
        help="Where dlt keeps its local working files (default: dlt's, ~/.dlt/pipelines; /var/dlt/pipelines as root).",
    ),
) -> None:
    """Extract and load; progress on stderr, rows per table at the end."""
    from pipelines.load import load as run_load
    from pipelines.load import resolve_targets
    from pipelines.load_report import format_report

    targets = resolve_targets(source)
    from sources.common.settings import check_source_keys

    for target in targets:  # a misspelt key stops the command before anything loads
        check_source_keys(target)
    names = [r.strip() for r in resources.split(",") if r.strip()] if resources else None
    report = run_load(
        targets,
        resources=names,
        destination=destination,
        dataset=dataset,
        full_refresh=full_refresh,
        pipelines_dir=pipelines_dir,
    )
    typer.echo(format_report(report))
    if not report.ok:
        raise LoadFailed(report.failure_message())

"""`switchboard sync`: run or list the reverse-ETL syncs declared under `[syncs.NAME]`."""

from __future__ import annotations

import typer

from pipelines.cli.app import app, handles_errors
from pipelines.errors import CliError, describe, redact


@app.command()
@handles_errors
def sync(
    name: str = typer.Argument(None, help="The sync to run, as named under [syncs.NAME] in config."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and send nothing."),
    list_syncs: bool = typer.Option(False, "--list", help="List the syncs defined in config."),
    destination: str = typer.Option(
        None,
        "--destination",
        help="The warehouse to read (default: the sync's `warehouse` key, else duckdb).",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Rows rejected again unchanged also make the run partial (exit 2)."
    ),
) -> None:
    """Run one reverse-ETL sync (or list them). Exit 0 success, 2 partial (newly rejected or failed rows;
    a dry run whose rejects would do that too), 1 failed. Rows still rejected unchanged since an earlier
    run are reported without failing the run again, unless --strict."""
    from pipelines import sync as sync_engine
    from pipelines.tables import render_table

    if list_syncs:
        # the healthy syncs are listed even when one is broken; each broken one gets an error line and exit 1
        from pipelines.sync.config import survey_syncs

        configs, broken = survey_syncs()
        if not configs and not broken:
            typer.echo("no syncs defined: add a [syncs.NAME] section to .dlt/config.toml")
            return
        if configs:
            rows = [[cfg.name, cfg.target, cfg.mode, cfg.source_description()] for cfg in configs]
            typer.echo(render_table(["name", "target", "mode", "rows from"], rows))
        for problem in broken:
            typer.echo(f"error: {describe(CliError(problem))}", err=True)
        if broken:
            raise typer.Exit(1)
        return
    if not name:
        raise CliError(
            "name a sync to run (switchboard sync NAME), or list them with switchboard sync --list"
        )
    from sources.common.settings import check_source_keys

    config = sync_engine.load_sync_config(name)
    check_source_keys(config.api)  # the target API's section too, dry run or not
    # the plan and progress lines can quote an error (a query's, a warehouse's): scrub them too
    result = sync_engine.run_sync(
        config,
        dry_run=dry_run,
        warehouse=destination,
        out=lambda line: typer.echo(redact(line)),
        strict=strict,
    )
    if not result.ok:
        typer.echo(f"error: {describe(CliError(result.problem()))}", err=True)
        raise typer.Exit(result.exit_code)

"""`switchboard`: the command line (SPEC §4).

Every command ends in one of two ways: exit 0 with its output on stdout (progress goes to stderr), or
exit 1 with one line `error: <cause>` on stderr. Tracebacks appear only with `--debug`. Secrets are
never printed: error lines pass through `pipelines.errors.redact`.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from pipelines.errors import CliError, LoadFailed, describe, redact
from pipelines.source_names import SOURCE_NAMES, check_source_name

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="switchboard",
    help="Load Chatwoot and Sendblue into DuckDB or a warehouse, and sync warehouse rows back.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_options = {"debug": False}
SOURCES_HELP = "chatwoot or sendblue"


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
) -> None:
    _options["debug"] = debug


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def handles_errors(command: F) -> F:
    """Turn any exception into one `error:` line and exit 1 (or the traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # the reader went away (`switchboard sql ... | head`): stop quietly, as other CLI tools do
            _silence_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt as stop:
            # Ctrl-C or SIGTERM (dlt's signal flag during a load): 130 / 143, as a shell reports them
            from pipelines.recovery import exit_code

            typer.echo("error: interrupted", err=True)
            raise typer.Exit(exit_code(stop)) from None
        except Exception as exc:
            if _options["debug"]:
                raise
            raise _fail(describe(exc)) from None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ check


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
    from pipelines.load import format_report, resolve_targets
    from pipelines.load import load as run_load

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


# ------------------------------------------------------------------------------------------ sync


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


# ------------------------------------------------------------------------------------------ sql


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


# ------------------------------------------------------------------------------------------ listen


@app.command()
@handles_errors
def listen(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put TLS in front: README)."),
    port: int = typer.Option(8787, "--port", help="Port to listen on."),
    destination: str = typer.Option(
        "duckdb", "--destination", help="duckdb (default), postgres or any dlt destination name."
    ),
    pipelines_dir: str = typer.Option(None, "--pipelines-dir", help="Where dlt keeps its local working files."),
) -> None:
    """Receive signed Chatwoot and Sendblue webhooks into the warehouse within seconds (SPEC §9)."""
    from pipelines.listen import serve
    from pipelines.load import check_destination

    check_destination(destination)
    serve(host, port, destination=destination, pipelines_dir=pipelines_dir, say=lambda line: typer.echo(line, err=True))


webhooks_app = typer.Typer(help="Register and list the webhooks that feed `switchboard listen`.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("register")
@handles_errors
def webhooks_register(
    source: str = typer.Argument(..., help=SOURCES_HELP, metavar="chatwoot|sendblue"),
    url: str = typer.Option(..., "--url", help="The public URL of the listener's /webhooks/<source> path."),
) -> None:
    """Create or reconcile the subscription (a second call changes nothing)."""
    from pipelines.listen.register import register

    typer.echo(register(check_source_name(source), url))


@webhooks_app.command("list")
@handles_errors
def webhooks_list(
    source: str = typer.Argument(None, help="chatwoot or sendblue (default: both)", metavar="[chatwoot|sendblue]"),
) -> None:
    """The registered webhooks: URL, events, and whether the secret matches the configured one."""
    from pipelines.listen.register import list_webhooks
    from pipelines.tables import render_table

    rows = [r for s in ([check_source_name(source)] if source else SOURCE_NAMES) for r in list_webhooks(s)]
    columns = ["source", "id", "url", "events", "secret"]
    typer.echo(render_table(columns, [[r[c] for c in columns] for r in rows]) if rows else "no webhooks registered")


# ------------------------------------------------------------------------------------------ sandbox


@app.command()
@handles_errors
def sandbox(
    chatwoot_port: int = typer.Option(
        0, "--chatwoot-port", help="Port for the Chatwoot simulator (0: any free)."
    ),
    sendblue_port: int = typer.Option(
        0, "--sendblue-port", help="Port for the Sendblue simulator (0: any free)."
    ),
    size: str = typer.Option("small", "--size", help="small, medium or large generated data."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated data."),
) -> None:
    """Serve both API simulators on loopback in the foreground (Ctrl-C stops them)."""
    if size not in ("small", "medium", "large"):
        raise CliError(f"unknown size {size!r}: choose small, medium or large")
    from pipelines.local_sandbox import start_sandboxes

    boxes = start_sandboxes(size=size, seed=seed, chatwoot_port=chatwoot_port, sendblue_port=sendblue_port)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main_thread = threading.current_thread() is threading.main_thread()
    try:
        if in_main_thread:
            for sig in previous:
                signal.signal(sig, lambda *_: stop.set())
        creds = boxes.credentials
        typer.echo(
            f"Chatwoot sandbox: {boxes.chatwoot.url}  account {creds['chatwoot_account_id']}"
            f"  api_access_token {creds['chatwoot_api_access_token']}"
        )
        typer.echo(
            f"Sendblue sandbox: {boxes.sendblue.url}  api_key_id {creds['sendblue_api_key_id']}"
            f"  api_secret_key {creds['sendblue_api_secret_key']}"
        )
        typer.echo(f"Data: size {size}, seed {seed}. Admin routes under /_sandbox/ on each.")
        typer.echo("")
        typer.echo("Point switchboard at them from another shell:")
        for key, value in boxes.env().items():
            typer.echo(f"  export {key}={value}")
        typer.echo("")
        typer.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        typer.echo("sandbox stopped", err=True)
    finally:
        boxes.stop()
        if in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------ demo


@app.command()
@handles_errors
def demo(
    size: str = typer.Option("small", "--size", help="small, medium or large generated data."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated data."),
) -> None:
    """What `make demo` runs: sandbox, load both sources, a sample sync, example queries."""
    from pipelines.demo import run_demo

    run_demo(size=size, seed=seed, out=typer.echo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

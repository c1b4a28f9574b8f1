"""`switchboard listen` and `switchboard webhooks register|list`: webhooks into the warehouse."""

from __future__ import annotations

import typer

from pipelines.cli.app import SOURCES_HELP, app, handles_errors
from pipelines.source_names import SOURCE_NAMES, check_source_name


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
    """Receive signed Chatwoot and Sendblue webhooks into the warehouse within seconds."""
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

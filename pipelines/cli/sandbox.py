"""`switchboard sandbox` and `switchboard demo`: the API simulators on loopback."""

from __future__ import annotations

import signal
import sys
import threading

import typer

from pipelines.cli.app import app, handles_errors
from pipelines.errors import CliError


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

"""The `switchboard` Typer app, its global `--debug` option and the error handling every command shares:
an exception becomes one `error:` line (redacted by `pipelines.errors.describe`) and exit 1.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from pipelines.errors import describe

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

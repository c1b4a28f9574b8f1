"""`switchboard`: the command line (README, "Command line"; `switchboard --help`).

Every command ends in one of two ways: exit 0 with its output on stdout (progress goes to stderr), or
exit 1 with one line `error: <cause>` on stderr. Tracebacks appear only with `--debug`. Secrets are
never printed: error lines pass through `pipelines.errors.redact`.

app.py holds the Typer app and the shared error handling; each other module registers its commands on it.
"""

from __future__ import annotations

# importing a module registers its commands; `--help` lists them in this order
# isort: off
from pipelines.cli import sources, sync, sql, webhooks, sandbox  # noqa: F401
# isort: on
from pipelines.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""Fixtures for the product tests: both simulators on loopback, the config that points switchboard at
them, and helpers that run the real `switchboard` console script or the typer app in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.local_sandbox import LocalSandboxes, start_sandboxes

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")

# The simulators allow 3000 requests a minute; the source defaults are tuned for hosted services.
FAST_SOURCE_CONFIG = {
    "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
    "SOURCES__CHATWOOT__MAX_RETRIES": "2",
    "SOURCES__CHATWOOT__RETRY_BACKOFF_SECONDS": "0.05",
}


def sandbox_config(boxes: LocalSandboxes, workdir: Path) -> dict[str, str]:
    """Environment (dlt config) for a run against `boxes`, with the warehouse file in `workdir`."""
    return {
        **boxes.env(),
        **FAST_SOURCE_CONFIG,
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "switchboard.duckdb"),
        "RUNTIME__LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[LocalSandboxes]:
    boxes = start_sandboxes(size="small", seed=11)
    yield boxes
    boxes.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def config(sandboxes: LocalSandboxes, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The sandbox config, set in this process's environment (for in-process runs) and returned (for
    subprocesses). The working directory moves to `workdir` so no repo `.dlt/` file takes part."""
    values = sandbox_config(sandboxes, workdir)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(workdir)
    return values


def clean_env(
    extra: dict[str, str] | None = None,
    drop_prefixes: tuple[str, ...] = ("SOURCES__", "DESTINATION__", "SYNCS__"),
) -> dict[str, str]:
    """This process's environment without switchboard config, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.update(extra or {})
    return env


def run_switchboard(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    return subprocess.run(
        [SWITCHBOARD, *args],
        env=clean_env(env),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke(*args: str) -> Any:
    """Run the typer app in-process (faster than a subprocess); stdout and stderr kept apart."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def query(duckdb_file: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def table_names(duckdb_file: Path, schema: str) -> set[str]:
    rows = query(
        duckdb_file,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'",
    )
    return {r[0] for r in rows}


# helpers handed to tests as fixtures (tests cannot import conftest under --import-mode=importlib)


@pytest.fixture
def switchboard() -> Any:
    return run_switchboard


@pytest.fixture
def cli() -> Any:
    return invoke


@pytest.fixture
def db() -> Any:
    class Db:
        query = staticmethod(query)
        tables = staticmethod(table_names)

    return Db


@pytest.fixture
def switchboard_executable() -> str:
    return SWITCHBOARD

"""Fixtures for the sync engine tests: both simulators on loopback over HTTP, a DuckDB warehouse file in
tmp_path holding the desired rows, and the dlt config (env vars) that points a sync at them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sandbox.chatwoot import ACCOUNT_ID, API_TOKEN
from sandbox.chatwoot import create_app as create_chatwoot
from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
from sandbox.sendblue import create_app as create_sendblue
from sandbox.server import RunningServer, serve_in_thread

CONFIG_PREFIXES = ("SOURCES__", "DESTINATION__", "SYNCS__", "REVERSE_ETL__")
SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")


@pytest.fixture
def sendblue_box() -> Iterator[RunningServer]:
    """A small Sendblue simulator (40 contacts, few messages: the sync only touches contacts)."""
    server = serve_in_thread(create_sendblue("small", seed=21, contacts=40, messages=20, groups=1))
    yield server
    server.stop()


@pytest.fixture
def chatwoot_box() -> Iterator[RunningServer]:
    server = serve_in_thread(create_chatwoot("small", seed=21))
    yield server
    server.stop()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def api_env(sendblue: RunningServer | None, chatwoot: RunningServer | None) -> dict[str, str]:
    env = {"RUNTIME__LOG_LEVEL": "WARNING"}
    if sendblue is not None:
        env.update(
            {
                "SOURCES__SENDBLUE__BASE_URL": sendblue.url,
                "SOURCES__SENDBLUE__API_KEY_ID": API_KEY_ID,
                "SOURCES__SENDBLUE__API_SECRET_KEY": API_SECRET_KEY,
                "SOURCES__SENDBLUE__RETRY_BACKOFF_SECONDS": "0.05",
            }
        )
    if chatwoot is not None:
        env.update(
            {
                "SOURCES__CHATWOOT__BASE_URL": chatwoot.url,
                "SOURCES__CHATWOOT__ACCOUNT_ID": str(ACCOUNT_ID),
                "SOURCES__CHATWOOT__API_ACCESS_TOKEN": API_TOKEN,
                # the simulator allows 3000 a minute; the hosted-service default would slow tests down
                "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
                "SOURCES__CHATWOOT__RETRY_BACKOFF_SECONDS": "0.05",
            }
        )
    return env


class SyncEnv:
    """The config of one test: set in this process (in-process runs) and kept for subprocesses."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, base: dict[str, str], workdir: Path):
        self.monkeypatch = monkeypatch
        self.values: dict[str, str] = {}
        self.workdir = workdir
        for key in list(os.environ):
            if key.startswith(CONFIG_PREFIXES):
                monkeypatch.delenv(key)
        self.set(**base)

    def set(self, **values: str) -> None:
        for key, value in values.items():
            self.values[key] = value
            self.monkeypatch.setenv(key, value)

    def sync(self, name: str, **keys: Any) -> str:
        """Declare `[syncs.NAME]` through env vars (the way SYNCS__NAME__KEY works for users)."""
        for key, value in keys.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            self.set(**{f"SYNCS__{name.upper()}__{key.upper()}": text})
        return name

    def drop_sync(self, name: str) -> None:
        prefix = f"SYNCS__{name.upper()}__"
        for key in [k for k in self.values if k.startswith(prefix)]:
            self.values.pop(key)
            self.monkeypatch.delenv(key)

    def subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
        env.update(self.values)
        return env

    def run_module(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`switchboard sync ARGS` in a subprocess."""
        return subprocess.run(
            [SWITCHBOARD, "sync", *args],
            env=self.subprocess_env(),
            cwd=str(self.workdir),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn_module(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [SWITCHBOARD, "sync", *args],
            env=self.subprocess_env(),
            cwd=str(self.workdir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def make_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, warehouse_path: Path) -> Any:
    """make_env(sendblue=box, chatwoot=box) -> SyncEnv; the working directory moves to tmp_path so no
    repository .dlt/ file takes part in subprocess runs."""
    monkeypatch.chdir(tmp_path)

    def make(sendblue: RunningServer | None = None, chatwoot: RunningServer | None = None) -> SyncEnv:
        base = {**api_env(sendblue, chatwoot), "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse_path)}
        return SyncEnv(monkeypatch, base, tmp_path)

    return make


def write_table(path: Path, table: str, columns: dict[str, str], rows: Sequence[Sequence[Any]]) -> None:
    """(Re)create `table` (schema.name) in the DuckDB file with typed columns and rows."""
    schema = table.split(".")[0]
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cols = ", ".join(f'"{name}" {sql_type}' for name, sql_type in columns.items())
        con.execute(f"CREATE OR REPLACE TABLE {table} ({cols})")
        if rows:
            marks = ", ".join("?" for _ in columns)
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", [list(r) for r in rows])


def query(path: Path, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(path)) as con:
        result = con.execute(sql, list(params) if params is not None else None)
        columns = [d[0] for d in result.description or []]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def ledger(path: Path, sync: str) -> dict[str, dict[str, Any]]:
    rows = query(path, "SELECT * FROM reverse_etl.sync_ledger WHERE sync_name = ?", [sync])
    return {r["record_key"]: r for r in rows}


def sync_log(path: Path, sync: str) -> list[dict[str, Any]]:
    return query(path, "SELECT * FROM reverse_etl.sync_log WHERE sync_name = ? ORDER BY logged_at", [sync])


def writes(box: RunningServer) -> list[Any]:
    """Every state-changing request the simulator answered (filter lookups are POSTs but read only)."""
    return [e for e in box.state.log.writes() if not e.path.endswith("/contacts/filter")]


def new_phones(count: int, start: int = 0) -> list[str]:
    """Valid US numbers the seeded simulators never generate (area code 989 is not in their list)."""
    return [f"+1989555{n:04d}" for n in range(start, start + count)]


class Helpers:
    """The helpers above as a fixture: with --import-mode=importlib test modules cannot import conftest."""

    def __init__(self, path: Path):
        self.path = path

    def write_table(self, table: str, columns: dict[str, str], rows: Sequence[Sequence[Any]]) -> None:
        write_table(self.path, table, columns, rows)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return query(self.path, sql, params)

    def ledger(self, sync: str) -> dict[str, dict[str, Any]]:
        return ledger(self.path, sync)

    def sync_log(self, sync: str) -> list[dict[str, Any]]:
        return sync_log(self.path, sync)

    writes = staticmethod(writes)
    new_phones = staticmethod(new_phones)


@pytest.fixture
def h(warehouse_path: Path) -> Helpers:
    return Helpers(warehouse_path)

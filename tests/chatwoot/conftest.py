"""Fixtures for the Chatwoot source tests: sandbox servers, settings, a pipeline into a tmp DuckDB file."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from sandbox.chatwoot import ACCOUNT_ID, API_TOKEN, create_app
from sandbox.server import RunningServer, serve_in_thread
from sources.chatwoot import ChatwootSettings, chatwoot_source

PAGE = 15  # contacts per page on the server


def pages(n: int, size: int = PAGE) -> int:
    return math.ceil(n / size)


def make_settings(base_url: str, **overrides: Any) -> ChatwootSettings:
    """Settings for the sandbox: no client-side throttling and quick retries unless a test asks."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "account_id": ACCOUNT_ID,
        "api_access_token": API_TOKEN,
        "rate_limit_per_minute": 100_000,
        "rate_limit_window_seconds": 1,
        "retry_backoff_seconds": 0.01,
        "timeout": 5,
    }
    values.update(overrides)
    return ChatwootSettings(**values)


@pytest.fixture
def chatwoot_server() -> Iterator[Callable[..., RunningServer]]:
    """Start a Chatwoot sandbox over HTTP on loopback: `chatwoot_server(size="small", seed=0, **overrides)`."""
    running: list[RunningServer] = []

    def start(size: str = "small", seed: int = 0, **overrides: Any) -> RunningServer:
        server = serve_in_thread(create_app(size, seed=seed, **overrides))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


class Warehouse:
    """A dlt pipeline into a DuckDB file under tmp_path, plus SQL on the loaded `chatwoot` dataset."""

    def __init__(self, root: Path, name: str = "chatwoot_test"):
        self.db = root / "warehouse.duckdb"  # not named like the dataset: DuckDB finds that ambiguous
        self.pipeline = dlt.pipeline(
            pipeline_name=name,
            pipelines_dir=str(root / "dlt"),
            destination=dlt.destinations.duckdb(str(self.db)),
            dataset_name="chatwoot",
        )

    def load(self, settings: ChatwootSettings, resources: tuple[str, ...] = (), transport: Any = None) -> Any:
        source = chatwoot_source(settings=settings, transport=transport)
        if resources:
            source = source.with_resources(*resources)
        return self.pipeline.run(source)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()

    def ids(self, table: str) -> set[int]:
        return {row[0] for row in self.rows(f"SELECT id FROM chatwoot.{table}")}

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM chatwoot.{table}")[0][0])

    def state(self, resource: str) -> dict[str, Any]:
        return dict(self.pipeline.state["sources"]["chatwoot"]["resources"][resource])


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)


@pytest.fixture
def settings_for() -> Callable[..., ChatwootSettings]:
    """`settings_for(base_url, **overrides)`: see make_settings."""
    return make_settings


@pytest.fixture
def page_count() -> Callable[..., int]:
    """`page_count(n, size=15)`: requests a count-paged walk over n rows needs."""
    return pages

"""Contacts created and deleted upstream while a full contacts walk pages through them (the sandboxes'
churn knobs, set over their admin route): the next load, with nothing changing, leaves the warehouse
equal to the sandbox's ground truth, for Chatwoot (page numbers: a delete shifts every later row one
place) and Sendblue (created_at windows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import httpx
import pytest

from sandbox.chatwoot import ACCOUNT_ID, API_TOKEN
from sandbox.chatwoot import create_app as create_chatwoot
from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
from sandbox.sendblue import create_app as create_sendblue
from sandbox.server import RunningServer, serve_in_thread
from sources.chatwoot import ChatwootSettings, chatwoot_source
from sources.sendblue import SendblueSettings, sendblue_source

CHURN = {"churn_pages": 4, "churn_new_contacts": 3, "churn_deleted_contacts": 3}


@pytest.fixture
def server() -> Iterator[Any]:
    running: list[RunningServer] = []

    def start(app: Any) -> RunningServer:
        running.append(serve_in_thread(app))
        return running[-1]

    yield start
    for box in running:
        box.stop()


def pipeline(tmp_path: Path, name: str) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name=name,
    )


def loaded(tmp_path: Path, sql: str) -> set[Any]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return {row[0] for row in con.sql(sql).fetchall()}


def churn(box: RunningServer) -> None:
    knobs = httpx.post(f"{box.url}/_sandbox/knobs", json=CHURN).json()["knobs"]
    assert knobs["churn_pages"] == CHURN["churn_pages"]


def test_chatwoot_contacts_converge_after_a_walk_that_raced_creates_and_deletes(server, tmp_path) -> None:
    box = server(create_chatwoot("small", seed=3, contacts=120))  # 8 pages of 15
    settings = ChatwootSettings(
        base_url=box.url, account_id=ACCOUNT_ID, api_access_token=API_TOKEN, rate_limit_per_minute=100_000,
        rate_limit_window_seconds=1, retry_backoff_seconds=0.01,
    )  # fmt: skip
    load = pipeline(tmp_path, "chatwoot")
    before = {c["id"] for c in box.state.visible_contacts()}

    churn(box)
    load.run(chatwoot_source(settings=settings).with_resources("contacts"))
    truth = {c["id"] for c in box.state.visible_contacts()}
    assert box.state.knobs.churn_pages == 0, "every churn happened during the walk"
    assert truth - before and before - truth, "contacts were created and deleted"

    load.run(chatwoot_source(settings=settings).with_resources("contacts"))
    assert loaded(tmp_path, "SELECT id FROM chatwoot.contacts") == truth


def test_sendblue_contacts_converge_after_a_walk_that_raced_creates_and_deletes(server, tmp_path) -> None:
    box = server(create_sendblue("small", seed=3, contacts=120, messages=10, groups=1))
    settings = SendblueSettings(
        base_url=box.url, api_key_id=API_KEY_ID, api_secret_key=API_SECRET_KEY, contacts_page_size=15,
        retry_backoff_seconds=0.01,
    )  # fmt: skip
    load = pipeline(tmp_path, "sendblue")
    before = set(box.state.contacts)

    churn(box)
    load.run(sendblue_source(settings=settings).with_resources("contacts"))
    truth = set(box.state.contacts)
    assert box.state.knobs.churn_pages == 0, "every churn happened during the walk"
    assert truth - before and before - truth, "contacts were created and deleted"

    load.run(sendblue_source(settings=settings).with_resources("contacts"))
    assert loaded(tmp_path, "SELECT phone FROM sendblue.contacts") == truth

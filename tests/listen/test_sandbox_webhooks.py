"""The whole path against the simulators over HTTP: `webhooks register` (idempotent), signed deliveries
when the sandbox's data changes, the listener landing them, then a scheduled load converging the same
tables without duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app as cli
from pipelines.listen.app import create_app
from pipelines.listen.flush import Flusher
from pipelines.listen.settings import listen_settings
from pipelines.listen.spool import Spool
from pipelines.listen.warehouse import WarehouseWriter
from pipelines.load import load
from pipelines.local_sandbox import start_sandboxes
from sandbox.server import serve_in_thread

from .conftest import SENDBLUE_SECRET


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    boxes = start_sandboxes(size="small", seed=5)
    monkeypatch.chdir(tmp_path)
    for key, value in boxes.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE", "2400")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("SOURCES__SENDBLUE__WEBHOOK_SECRET", SENDBLUE_SECRET)
    monkeypatch.setenv("LISTEN__SPOOL_DIR", str(tmp_path / "spool"))
    yield boxes
    boxes.stop()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_registration_is_idempotent(setup: Any) -> None:
    url_cw, url_sb = "http://127.0.0.1:9/webhooks/chatwoot", "http://127.0.0.1:9/webhooks/sendblue"
    assert "created" in invoke("webhooks", "register", "chatwoot", "--url", url_cw)
    assert "nothing changed" in invoke("webhooks", "register", "chatwoot", "--url", url_cw)
    assert "registered" in invoke("webhooks", "register", "sendblue", "--url", url_sb)
    assert "nothing changed" in invoke("webhooks", "register", "sendblue", "--url", url_sb)
    assert len(setup.chatwoot.state.webhooks) == 1
    hooks = setup.sendblue.state.webhooks
    assert hooks["receive"] == hooks["outbound"] == [{"url": url_sb, "secret": SENDBLUE_SECRET}]
    listing = invoke("webhooks", "list")
    assert url_cw in listing and url_sb in listing and "matches webhook_secret" in listing
    assert SENDBLUE_SECRET not in listing and setup.chatwoot.state.webhooks[1]["secret"] not in listing


def test_sandbox_deliveries_land_and_a_later_load_leaves_no_duplicates(
    setup: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = setup
    # the first scheduled load, then the listener takes over between loads
    assert load("all", pipelines_dir=str(tmp_path / "dlt")).ok
    flusher = Flusher(Spool(tmp_path / "spool"), WarehouseWriter("duckdb", str(tmp_path / "dlt")), 3600)
    listener = serve_in_thread(create_app(listen_settings(), flusher))
    try:
        invoke("webhooks", "register", "chatwoot", "--url", f"{listener.url}/webhooks/chatwoot")
        secret = next(iter(boxes.chatwoot.state.webhooks.values()))["secret"]
        monkeypatch.setenv("SOURCES__CHATWOOT__WEBHOOK_SECRET", secret)  # as the user sets it after register
        invoke("webhooks", "register", "sendblue", "--url", f"{listener.url}/webhooks/sendblue")
        cw = boxes.chatwoot.state.mutate(
            new_contacts=2,
            edited_contacts=3,
            deleted_contacts=0,
            new_conversations=2,
            edited_conversations=2,
            new_messages=6,
            seed=3,
        )
        sb = boxes.sendblue.state.mutate(new_messages=5, edited_messages=4, seed=3)
        boxes.chatwoot.state.outbox.drain()
        boxes.sendblue.state.outbox.drain()
        assert {s for _, _, s in boxes.chatwoot.state.outbox.log} == {200}
        assert {s for _, _, s in boxes.sendblue.state.outbox.log} == {200}
        assert flusher.flush() > 0 and flusher.last_error is None, flusher.last_error
    finally:
        listener.stop()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        q = lambda sql: con.sql(sql).fetchall()  # noqa: E731
        expected_cw = (
            len(cw["new_contacts"])
            + len(cw["edited_contacts"])
            + len(cw["new_conversations"])
            + len(cw["edited_conversations"])
            + len(cw["new_messages"])
        )
        assert q("SELECT count(*) FROM chatwoot.webhook_events") == [(expected_cw,)]
        assert q("SELECT count(*) FROM sendblue.webhook_events") == [
            (len(sb["new_messages"]) + len(sb["edited_messages"]),)
        ]
        new_ids = ", ".join(str(i) for i in cw["new_messages"])
        assert q(f"SELECT count(*) FROM chatwoot.messages WHERE id IN ({new_ids})") == [
            (len(cw["new_messages"]),)
        ]
        handles = ", ".join(f"'{h}'" for h in sb["new_messages"])
        assert q(f"SELECT count(*) FROM sendblue.messages WHERE message_handle IN ({handles})") == [
            (len(sb["new_messages"]),)
        ]
    finally:
        con.close()
    # the next scheduled load converges to the APIs' truth, without duplicates
    assert load("all", pipelines_dir=str(tmp_path / "dlt")).ok
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        for table, key in (
            ("chatwoot.contacts", "id"),
            ("chatwoot.conversations", "id"),
            ("chatwoot.messages", "id"),
            ("sendblue.messages", "message_handle"),
        ):
            total, distinct = con.sql(f"SELECT count(*), count(DISTINCT {key}) FROM {table}").fetchall()[0]
            assert total == distinct, table
        truth = boxes.chatwoot.state
        assert con.sql("SELECT count(*) FROM chatwoot.messages").fetchall() == [(truth.message_count(),)]
        assert con.sql("SELECT count(*) FROM chatwoot.conversations").fetchall() == [
            (len(truth.conversations),)
        ]
        assert con.sql("SELECT count(*) FROM sendblue.messages").fetchall() == [
            (len(boxes.sendblue.state.messages),)
        ]
    finally:
        con.close()

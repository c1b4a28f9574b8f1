"""One DuckDB file, two writers: a `switchboard listen` process flushing and a `switchboard load` take
turns on the file (DuckDB allows one writing process); each waits for the other instead of failing, no
acknowledged event is lost, and the tables converge without duplicates."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

from pipelines.listen.flush import WAITING
from pipelines.load import load
from pipelines.load_report import LoadReport

from .conftest import sendblue_delivery, sendblue_message
from .test_listen_process import free_port, start
from .test_sandbox_webhooks import setup  # noqa: F401  (the sandboxes and their env)

HOLD = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


def wait_for(check: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_listener_flush_and_load_share_the_duckdb_file(
    setup: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    # another process holds the file: both writers must wait for it, not fail
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    port = free_port()
    listener = start(tmp_path, port, flush_seconds="0.3")
    base = f"http://127.0.0.1:{port}"
    report: list[LoadReport] = []
    progress = io.StringIO()
    loader = threading.Thread(
        target=lambda: report.append(
            load("all", pipelines_dir=str(tmp_path / "load"), progress_stream=progress)
        )
    )
    try:
        handles = [f"coexist-{i}" for i in range(40)]
        with httpx.Client(base_url=base) as client:
            for handle in handles[:20]:
                delivery = sendblue_delivery(sendblue_message(handle, "SENT", "2026-01-05T10:00:01.000Z"))
                assert (
                    client.post("/webhooks/sendblue", content=delivery[0], headers=delivery[1]).status_code
                    == 200
                )
            wait_for(lambda: client.get("/healthz").json()["last_error"] == WAITING, "the flush never waited")
            assert client.get("/healthz").json()["spool_depth"] == 20
            loader.start()
            wait_for(lambda: "waiting for the DuckDB file" in progress.getvalue(), "the load never waited")
            holder.communicate("", timeout=30)  # released: the listener and the load now contend for the file
            for handle in handles[20:]:
                delivery = sendblue_delivery(
                    sendblue_message(handle, "DELIVERED", "2026-01-05T10:00:02.000Z")
                )
                assert (
                    client.post("/webhooks/sendblue", content=delivery[0], headers=delivery[1]).status_code
                    == 200
                )
            loader.join(timeout=300)
            assert report and report[0].ok, progress.getvalue()
            wait_for(
                lambda: client.get("/healthz").json()["flushed_events"] == 40,
                "the spool never reached the file",
            )
            assert client.get("/healthz").json()["spool_depth"] == 0
    finally:
        if holder.poll() is None:
            holder.kill()
        listener.terminate()
        listener.communicate(timeout=60)
    truth = setup.sendblue.state.messages
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.sql(
            "SELECT count(*), count(DISTINCT delivery_key) FROM sendblue.webhook_events"
        ).fetchall() == [(40, 40)]
        total, distinct = con.sql(
            "SELECT count(*), count(DISTINCT message_handle) FROM sendblue.messages"
        ).fetchall()[0]
        assert total == distinct == len(truth) + 40
        for table in ("contacts", "conversations", "messages"):
            total, distinct = con.sql(
                f"SELECT count(*), count(DISTINCT id) FROM chatwoot.{table}"
            ).fetchall()[0]
            assert total == distinct > 0, table
    finally:
        con.close()

"""`switchboard listen` as a process: what it acknowledged survives a SIGKILL and lands at restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from .conftest import (
    CHATWOOT_SECRET,
    SENDBLUE_SECRET,
    chatwoot_delivery,
    contact_event,
    sendblue_delivery,
    sendblue_message,
)

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(workdir: Path, port: int, flush_seconds: str) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "LISTEN__"))
    }
    env.update(
        {
            "SOURCES__CHATWOOT__WEBHOOK_SECRET": CHATWOOT_SECRET,
            "SOURCES__SENDBLUE__WEBHOOK_SECRET": SENDBLUE_SECRET,
            "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "warehouse.duckdb"),
            "LISTEN__FLUSH_SECONDS": flush_seconds,
            "LISTEN__SPOOL_DIR": str(workdir / "spool"),
        }
    )
    proc = subprocess.Popen(
        [SWITCHBOARD, "listen", "--port", str(port), "--pipelines-dir", str(workdir / "dlt")],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
    raise AssertionError("listener did not start")


def test_sigkill_after_acknowledgement_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port, flush_seconds="3600")  # nothing flushes before the kill
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base) as client:
        for i in range(30):
            body, headers = chatwoot_delivery(contact_event(i + 1, f"Person {i}"), delivery=f"d{i}")
            assert client.post("/webhooks/chatwoot", content=body, headers=headers).status_code == 200
            body, headers = sendblue_delivery(sendblue_message(f"h{i}", "SENT", "2026-01-05T10:00:01.000Z"))
            assert client.post("/webhooks/sendblue", content=body, headers=headers).status_code == 200
        assert client.get("/healthz").json()["spool_depth"] == 60
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    proc = start(tmp_path, port, flush_seconds="0.5")
    try:
        deadline = time.monotonic() + 120
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{base}/healthz").json()
            if health["spool_depth"] == 0 and health["flushed_events"] == 60:
                break
            time.sleep(0.2)
        assert health["spool_depth"] == 0 and health["flushed_events"] == 60, health
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    # uvicorn shuts down gracefully, then re-raises the signal: a shell sees 143
    assert proc.returncode == -signal.SIGTERM, output
    assert CHATWOOT_SECRET not in output and SENDBLUE_SECRET not in output
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        assert con.sql(
            "SELECT count(*), count(DISTINCT delivery_key) FROM chatwoot.webhook_events"
        ).fetchall() == [(30, 30)]
        assert con.sql("SELECT count(*) FROM chatwoot.contacts").fetchall() == [(30,)]
        assert con.sql("SELECT count(*) FROM sendblue.messages").fetchall() == [(30,)]
    finally:
        con.close()

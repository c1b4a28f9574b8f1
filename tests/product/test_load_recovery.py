"""A run that failed in its load step (the warehouse file locked by another process) leaves its package
pending; the next run says what it completed from it, then extracts as usual, so one command brings the
warehouse up to date. Runs the real `switchboard` command against the simulators over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import time

import duckdb

QUIET = {"new_contacts": 0, "edited_contacts": 0, "deleted_contacts": 0, "new_conversations": 0}


def _lock_when_extraction_starts(cw, proc: subprocess.Popen, duckdb_file) -> duckdb.DuckDBPyConnection:
    """Once the command talks to Chatwoot (its state was already read from the warehouse), take the
    warehouse file for this process, so the command's load step finds it locked."""
    while not cw.log.entries:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    for _ in range(500):
        try:
            return duckdb.connect(str(duckdb_file))
        except duckdb.IOException:  # the command still has it open: try again
            time.sleep(0.01)
    raise AssertionError("the warehouse file stayed busy")


def _summary(stdout: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^chatwoot\s+(\w+)\s+(\d+)$", stdout, re.M)}


def test_the_run_after_a_failed_load_step_finishes_it_then_extracts(
    sandboxes, config, switchboard, switchboard_executable, workdir, db
) -> None:
    cw = sandboxes.chatwoot.state
    duckdb_file = workdir / "switchboard.duckdb"
    pipelines = ["--pipelines-dir", str(workdir / "pipelines")]
    first = switchboard("load", "chatwoot", *pipelines, env=config, cwd=workdir)
    assert first.returncode == 0, first.stderr

    cw.mutate(**QUIET, edited_conversations=0, new_messages=7)
    cw.log.clear()
    cw.knobs.latency_ms = 300  # room to take the file while the command extracts
    proc = subprocess.Popen(
        [switchboard_executable, "load", "chatwoot", *pipelines],
        # the load waits for a held DuckDB file (a listener's flush) before failing: not 300 s here
        env={**os.environ, **config, "LOAD__DUCKDB_WAIT_SECONDS": "3"},
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = _lock_when_extraction_starts(cw, proc, duckdb_file)
        cw.knobs.latency_ms = 0
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            lock.close()
    finally:
        cw.knobs.latency_ms = 0
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "load chatwoot failed" in err and "lock" in err.lower()

    # more changes before the next run: it must finish the earlier package and read these too
    cw.mutate(**QUIET, edited_conversations=0, new_messages=5)
    cw.log.clear()
    again = switchboard("load", "chatwoot", *pipelines, env=config, cwd=workdir)
    assert again.returncode == 0, again.stderr
    recovered = re.search(
        r"^chatwoot: completed the load an earlier run left pending \((.*)\)$", again.stdout, re.M
    )
    assert recovered, again.stdout
    assert "messages 7" in recovered.group(1).split(", ")
    assert _summary(again.stdout)["messages"] == 5  # its own extraction
    assert cw.log.entries, "the recovery run made no API request"
    assert "completed the load an earlier run left pending" in again.stderr
    with cw.lock:
        truth = {"messages": cw.message_count(), "conversations": len(cw.conversations)}
    for table, count in truth.items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM chatwoot.{table}") == [(count,)], table

    # and nothing is left pending: the next run reports no recovery
    third = switchboard("load", "chatwoot", *pipelines, env=config, cwd=workdir)
    assert third.returncode == 0, third.stderr
    assert "left pending" not in third.stdout

"""Ctrl-C (SIGINT) or a scheduler's SIGTERM during `switchboard load all` stops the whole command at once:
Sendblue is not started, the line `error: interrupted` ends stderr, the exit status is 130 (143 for
SIGTERM), and the next run loads everything the interrupted one did not, to the simulators' truth."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

LABELS_ROUTE = "/api/v1/accounts/{account_id}/contacts/{id}/labels"
CHATWOOT_CONCURRENCY = 8  # the source's default, which the test config keeps


def _interrupt_during_the_label_fan_out(sandboxes, executable, env, workdir, sig) -> tuple[int, str, int]:
    """Start `load all`, send `sig` once Chatwoot's labels are being read (many requests in flight);
    (exit status, stderr, Chatwoot requests answered after the signal)."""
    cw = sandboxes.chatwoot.state
    cw.log.clear()
    sandboxes.sendblue.state.log.clear()
    cw.knobs.latency_ms = 100
    proc = subprocess.Popen(
        [executable, "load", "all", "--pipelines-dir", str(workdir / "pipelines")],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not cw.log.matching(route=LABELS_ROUTE):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        sent_at = len(cw.log.entries)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err, len(cw.log.entries) - sent_at
    finally:
        cw.knobs.latency_ms = 0
        if proc.poll() is None:
            proc.kill()


def _truth(sandboxes) -> dict[str, int]:
    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state
    with cw.lock, sb.lock:
        return {
            "chatwoot.contacts": len(cw.visible_contacts()),
            "chatwoot.conversations": len(cw.conversations),
            "chatwoot.messages": cw.message_count(),
            "sendblue.contacts": len(sb.contacts),
            "sendblue.messages": len(sb.messages),
        }


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_load_all_and_the_next_run_catches_up(
    sandboxes, config, switchboard, switchboard_executable, workdir, db, sig, status
) -> None:
    env = {**os.environ, **config}
    duckdb_file = workdir / "switchboard.duckdb"
    if sig == signal.SIGINT:  # interrupt an incremental run (SIGTERM: a first run)
        first = switchboard(
            "load", "all", "--pipelines-dir", str(workdir / "pipelines"), env=config, cwd=workdir
        )
        assert first.returncode == 0, first.stderr
        sandboxes.chatwoot.state.mutate(deleted_contacts=2, new_conversations=1, new_messages=9)
        sandboxes.sendblue.state.mutate(new_contacts=2, new_messages=6)

    code, err, after_signal = _interrupt_during_the_label_fan_out(
        sandboxes, switchboard_executable, env, workdir, sig
    )
    assert code == status, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in err and "Task was destroyed" not in err and "sendblue" not in err
    # promptly: only the requests already in flight, not the rest of the fan-outs (hundreds here). The
    # Chatwoot resources run in parallel: fan-outs of `concurrency` each, the page walks and the single
    # tables can all be in flight when the signal lands (25 seen on a loaded machine)
    assert after_signal <= 5 * CHATWOOT_CONCURRENCY, after_signal
    assert not sandboxes.sendblue.state.log.entries, "Sendblue was loaded after the signal"

    # the interrupted run committed nothing and lost nothing: the next run brings both sources to the truth
    again = switchboard("load", "all", "--pipelines-dir", str(workdir / "pipelines"), env=config, cwd=workdir)
    assert again.returncode == 0, again.stderr
    for table, count in _truth(sandboxes).items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {table}") == [(count,)], table

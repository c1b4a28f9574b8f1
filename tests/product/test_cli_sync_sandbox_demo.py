"""`switchboard sync`, `switchboard sandbox` and `switchboard demo` against the simulators."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import time

import httpx
import pytest

from pipelines.load import load
from sandbox.chatwoot import create_sandbox
from sandbox.sendblue import SendblueSandbox


@pytest.fixture
def loaded_sendblue(sandboxes, config, workdir):
    report = load(
        "sendblue", resources=["contacts"], pipelines_dir=str(workdir / "p"), progress_stream=io.StringIO()
    )
    assert report.ok, report.failure_message()
    with sandboxes.sendblue.state.lock:
        return sorted(sandboxes.sendblue.state.contacts)


def _define_sync(monkeypatch, name: str, **keys: str) -> None:
    for key, value in keys.items():
        monkeypatch.setenv(f"SYNCS__{name.upper()}__{key.upper()}", value)


def test_sync_list_dry_run_real_run_and_rerun(sandboxes, loaded_sendblue, cli, monkeypatch) -> None:
    _define_sync(
        monkeypatch, "tag_first_five", target="sendblue.contacts", mode="update_only",
        query="SELECT phone, 'synced-by-test' AS tags FROM sendblue.contacts ORDER BY phone LIMIT 5",
    )  # fmt: skip
    listing = cli("sync", "--list")
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.stdout.splitlines() if line.startswith("tag_first_five"))
    assert row.split()[:4] == ["tag_first_five", "sendblue.contacts", "update_only", "query"]

    state = sandboxes.sendblue.state
    state.log.clear()
    dry = cli("sync", "tag_first_five", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert re.search(r"updates\s+5\b", dry.stdout)
    assert "dry run: nothing sent (5 rows would be sent)" in dry.stdout
    assert state.log.writes() == []

    real = cli("sync", "tag_first_five")
    assert real.exit_code == 0, real.output
    assert re.search(r"sync tag_first_five: success .*updated 5", real.stdout)
    assert len(state.log.writes()) == 5
    with state.lock:
        for phone in loaded_sendblue[:5]:
            assert "synced-by-test" in (state.contacts[phone].get("tags") or [])

    state.log.clear()
    again = cli("sync", "tag_first_five")
    assert again.exit_code == 0, again.output
    assert re.search(r"unchanged\s+5\b", again.stdout)
    assert state.log.writes() == []  # only changes are sent


def test_a_partial_sync_exits_2_with_one_error_line(sandboxes, loaded_sendblue, cli, monkeypatch) -> None:
    _define_sync(
        monkeypatch, "with_a_bad_row", target="sendblue.contacts", mode="update_only",
        query="SELECT 'not a phone' AS phone, 'Bad' AS first_name "
        "UNION ALL SELECT phone, 'Good' AS first_name FROM (SELECT phone FROM sendblue.contacts ORDER BY phone LIMIT 1)",
    )  # fmt: skip
    result = cli("sync", "with_a_bad_row")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: sync with_a_bad_row ended partial (1 rejected); see reverse_etl.sync_log for each row"
    )
    with sandboxes.sendblue.state.lock:
        assert sandboxes.sendblue.state.contacts[loaded_sendblue[0]]["first_name"] == "Good"


def test_unknown_sync_and_missing_name(config, cli) -> None:
    result = cli("sync", "nosuch")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: sync 'nosuch' is not declared")
    result = cli("sync")
    assert result.stderr.strip() == (
        "error: name a sync to run (switchboard sync NAME), or list them with switchboard sync --list"
    )


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in output: {lines}")


def test_sandbox_command_serves_both_apis_until_interrupted(tmp_path, switchboard_executable) -> None:
    from sandbox.server import free_port

    chatwoot_port = free_port()
    proc = subprocess.Popen(
        [switchboard_executable, "sandbox", "--chatwoot-port", str(chatwoot_port), "--seed", "5"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = _read_until(proc, "Press Ctrl-C to stop.")
        text = "\n".join(lines)
        chatwoot_url = re.search(r"Chatwoot sandbox: (http://127\.0\.0\.1:\d+)", text).group(1)
        sendblue_url = re.search(r"Sendblue sandbox: (http://127\.0\.0\.1:\d+)", text).group(1)
        assert chatwoot_url.endswith(f":{chatwoot_port}")
        # the fixed sandbox credentials are printed, with the variables that point switchboard at them
        assert "account 1  api_access_token sandbox-chatwoot-token" in text
        assert "api_key_id sandbox-key-id  api_secret_key sandbox-secret-key" in text
        assert f"export SOURCES__CHATWOOT__BASE_URL={chatwoot_url}" in text
        assert f"export SOURCES__SENDBLUE__BASE_URL={sendblue_url}" in text

        labels = httpx.get(
            f"{chatwoot_url}/api/v1/accounts/1/labels", headers={"api_access_token": "sandbox-chatwoot-token"}
        )
        assert labels.status_code == 200 and labels.json()["payload"]
        count = httpx.get(
            f"{sendblue_url}/api/v2/contacts/count",
            headers={"sb-api-key-id": "sandbox-key-id", "sb-api-secret-key": "sandbox-secret-key"},
        )
        assert count.status_code == 200 and count.json()["count"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{chatwoot_url}/api/v1/accounts/1/labels", timeout=2)


def test_demo_loads_syncs_queries_and_leaves_the_file(tmp_path, switchboard, db) -> None:
    result = switchboard("demo", env={}, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for step in range(1, 6):
        assert f"== {step}. " in out
    assert "dry run: nothing sent (40 rows would be sent)" in out
    assert re.search(r"sync demo_sendblue_to_chatwoot: success .*created 40", out)
    assert sum(line.startswith('switchboard sql "SELECT') for line in out.splitlines()) == 3
    # the people both simulators know (seed 0), and the synced people who now appear in both tools
    chatwoot = create_sandbox("small", 0, conversations=0, messages=0)
    sendblue = SendblueSandbox("small", 0, messages=0).contacts
    shared = {c["phone_number"] for c in chatwoot.visible_contacts()} & set(sendblue)
    opted_out = sum(1 for phone in shared if sendblue[phone].get("opt_out"))
    assert shared and opted_out
    assert re.search(rf"^both\s+{len(shared) + 40}\s+{opted_out}$", out, re.M), out
    duckdb_file = tmp_path / "switchboard.duckdb"
    assert db.query(
        duckdb_file, "SELECT COUNT(*) FROM analytics.contacts_unified WHERE matched_in = 'both'"
    ) == [(len(shared) + 40,)]
    assert db.tables(duckdb_file, "chatwoot") >= {"contacts", "messages", "conversations"}
    assert db.tables(duckdb_file, "sendblue") >= {"contacts", "messages", "conversations"}
    # the simulators were stopped: their ports are closed
    urls = re.findall(r"(http://127\.0\.0\.1:\d+)", out)
    assert len(urls) == 2
    for url in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)

"""The README's "try it locally" Airflow block, run as a user pastes it (each line in one shell, from a
fresh directory, with `airflow` from `.airflow-venv` on the PATH and the sandbox's `export` lines set):
every command succeeds, the DAG run loads both sources, and no dlt folder is left in the temp dir.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = REPO / ".airflow-venv" / "bin"

pytestmark = pytest.mark.airflow


def readme_airflow_block() -> str:
    blocks = re.findall(r"^```sh[ \t]+tested-on-sandbox[ \t]*\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    [block] = [b for b in blocks if "airflow dags test" in b]
    return block


@pytest.fixture(scope="module")
def airflow_bin() -> Path:
    if not (AIRFLOW_BIN / "airflow").exists():
        message = f"the airflow extra is not installed in {AIRFLOW_BIN.parent.name} (run make test or make airflow-venv)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AIRFLOW_BIN


def test_the_readme_block_runs_as_pasted_and_leaves_no_dlt_folder(sandboxes, tmp_path, airflow_bin, db) -> None:
    block = readme_airflow_block()
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "SYNCS__", "AIRFLOW", "SWITCHBOARD_"))
    }
    env.update(
        {
            **sandboxes.env(),  # what pasting the `export` lines of `switchboard sandbox` sets
            "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
            "SWITCHBOARD_TASK_RETRIES": "0",
            "PATH": f"{airflow_bin}{os.pathsep}{env.get('PATH', '')}",
            "TMPDIR": str(tmp),  # mktemp -d and dlt's local folders land here
        }
    )

    # -e: a line that fails stops the block, as a user would stop at the first error
    result = subprocess.run(
        ["bash", "-e", "-c", block], env=env, cwd=str(work), capture_output=True, text=True, timeout=900
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Database migration required" not in output
    assert "DagRun Finished: dag_id=switchboard" in output and "state=success" in output
    with sandboxes.chatwoot.state.lock, sandboxes.sendblue.state.lock:
        expected = {
            "chatwoot.contacts": len(sandboxes.chatwoot.state.visible_contacts()),
            "sendblue.contacts": len(sandboxes.sendblue.state.contacts),
        }
    duckdb_file = work / "switchboard.duckdb"
    for table, count in expected.items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {table}") == [(count,)], table
    # every task (and the DAG's parse) removed its local dlt folder
    left = sorted(str(p.relative_to(tmp)) for p in tmp.glob("dlt_*/**/*") if p.is_file())
    assert left == []
    assert sorted(p.name for p in tmp.glob("dlt_*")) == []

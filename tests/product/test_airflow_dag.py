"""The Airflow DAG, run by the real `airflow` CLI from `.airflow-venv` (made by `make test`) against the
simulators: both sources load, the views and a sync run; a second run on a fresh worker is incremental.

Follows NOTES.md: AIRFLOW_HOME and the DAGs folder in temp dirs, `airflow db migrate`, `airflow dags
reserialize`, then `airflow dags test`. Fails (not skips) when CI is set and the venv is missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".airflow-venv" / "bin" / "airflow"

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def airflow_cli() -> Path:
    if not AIRFLOW.exists():
        message = f"the airflow extra is not installed in {AIRFLOW.parent.parent.name} (run make test or make airflow-venv)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AIRFLOW


def _airflow(airflow: Path, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(airflow), *args], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def test_dag_loads_both_sources_then_runs_the_syncs(sandboxes, tmp_path, airflow_cli, db) -> None:
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    (dags / "switchboard_dag.py").write_text("from pipelines.airflow_dag import dag  # noqa: F401\n")
    duckdb_file = tmp_path / "warehouse.duckdb"
    sync = "SYNCS__DAG_TAGS__"
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "SYNCS__"))
    }
    env = {
        **base_env,
        **sandboxes.env(),
        "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
        "DESTINATION__DUCKDB__CREDENTIALS": str(duckdb_file),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SWITCHBOARD_TASK_RETRIES": "0",
        sync + "TARGET": "sendblue.contacts",
        sync + "MODE": "update_only",
        sync + "QUERY": "SELECT phone, 'from-airflow' AS tags FROM sendblue.contacts ORDER BY phone LIMIT 3",
    }
    _airflow(airflow_cli, "db", "migrate", env=env, cwd=tmp_path)
    _airflow(airflow_cli, "dags", "reserialize", env=env, cwd=tmp_path)
    first = _airflow(airflow_cli, "dags", "test", "switchboard", env=env, cwd=tmp_path)
    output = first.stdout + first.stderr
    # one task group (and pipeline) per source, then the views, then the configured sync
    for task in (
        "load_chatwoot.switchboard_chatwoot",
        "load_sendblue.switchboard_sendblue",
        "analytics_views",
        "sync_dag_tags",
    ):
        assert f"task_id={task}" in output, task
    assert "DagRun Finished: dag_id=switchboard" in output and "state=success" in output

    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state

    def truth() -> dict[str, int]:
        with cw.lock, sb.lock:
            return {
                "chatwoot.contacts": len(cw.visible_contacts()),
                "chatwoot.contact_labels": len(cw.contact_labels()),
                "chatwoot.conversations": len(cw.conversations),
                "chatwoot.messages": cw.message_count(),
                "sendblue.contacts": len(sb.contacts),
                "sendblue.messages": len(sb.messages),
                "sendblue.conversations": len(sb.conversations()),
            }

    for table, count in truth().items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {table}") == [(count,)], table
    assert db.tables(duckdb_file, "analytics") == {"contacts_unified", "conversation_activity"}
    # the configured sync ran after the loads and reached the API
    assert db.query(duckdb_file, "SELECT sync_name, status FROM reverse_etl.sync_runs") == [
        ("dag_tags", "success")
    ]
    with sb.lock:
        first_three = sorted(sb.contacts)[:3]
        assert all("from-airflow" in (sb.contacts[p].get("tags") or []) for p in first_three)

    # every task wipes its local dlt folder, so the second run is a fresh worker: state comes back
    # from the warehouse and only changes are read
    cw.mutate(
        new_contacts=0,
        edited_contacts=0,
        deleted_contacts=0,
        new_conversations=1,
        edited_conversations=2,
        new_messages=8,
    )
    sb.mutate(new_contacts=0, edited_contacts=0, deleted_contacts=0, new_messages=6, edited_messages=2)
    cw.log.clear()
    sb.log.clear()
    _airflow(airflow_cli, "dags", "test", "switchboard", env=env, cwd=tmp_path)
    listings = cw.log.matching(route="/api/v1/accounts/{account_id}/conversations", method="GET")
    assert listings and all(entry.param("updated_within") for entry in listings)
    walk = [
        e
        for e in sb.log.matching(route="/api/v2/messages", method="GET")
        if not (e.param("number") or e.param("group_id"))
    ]
    assert walk and all(entry.param("updated_at_gte") for entry in walk)
    for table, count in truth().items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {table}") == [(count,)], table
    # the sync found nothing new to send on the second run
    assert db.query(duckdb_file, "SELECT COUNT(*) FROM reverse_etl.sync_runs WHERE status = 'success'") == [
        (2,)
    ]

"""Airflow DAG `switchboard`: load Chatwoot and Sendblue, refresh the analytics views, run the syncs.

Put a one-line file in your DAGs folder (`from pipelines.airflow_dag import dag  # noqa: F401`) with
`pip install "switchboard-etl[airflow]"` on the workers, and configure through environment variables
(or a `.dlt/` folder inside the DAGs folder: dlt's Airflow helper makes the DAGs folder the project dir):
`SOURCES__CHATWOOT__*`, `SOURCES__SENDBLUE__*`, `DESTINATION__POSTGRES__CREDENTIALS` and so on, plus

- `SWITCHBOARD_DESTINATION`: `duckdb` (default), `postgres` or another dlt destination name;
- `SWITCHBOARD_SCHEDULE`: a cron expression or preset (default `@daily`);
- `SWITCHBOARD_SYNCS`: comma-separated sync names to run after the loads (default: every `[syncs.*]`);
- `SWITCHBOARD_TASK_RETRIES`: Airflow retries per task (default 1, five minutes apart).

Each source is its own dlt `PipelineTasksGroup`, so the two pipelines keep separate state. The groups
wipe their local working folder after every task (`wipe_local_data=True`), and the random folder dlt
makes for it (`<tmp>/dlt_<id>`) is removed whole: after the DAG is parsed (creating the pipeline writes
its state there) and when each task ends. The views and sync tasks give dlt a scratch folder of their
own, removed when they end, so nothing is left in the temp dir. Every run starts as on an
ephemeral worker and dlt restores the incremental state from the destination, which works because the
pipeline names and datasets are stable: a pipeline is named after its (account, warehouse, dataset) pair
(`pipelines.identity`), the same name `switchboard load` uses, so the task ids end in the pair's hash and
the source settings are read when the DAG is parsed (only their non-secret part, or a hash, is shown).

DuckDB is one file with a single writer, so with DuckDB the Sendblue load waits for the Chatwoot load;
with Postgres or a cloud warehouse the two groups run in parallel. A relative DuckDB path would land in
the helper's throw-away data folder, so it is made absolute against the DAGs folder here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import dlt
from airflow.sdk import dag as airflow_dag
from airflow.sdk import task
from dlt.common.known_env import DLT_DATA_DIR
from dlt.helpers.airflow_helper import PipelineTasksGroup

from pipelines.load import (
    SOURCE_NAMES,
    build_pipeline,
    build_source,
    loader_file_format_for,
    pair_for,
    refresh_views,
)

DAG_ID = "switchboard"
DEFAULT_SCHEDULE = "@daily"


def configured_destination() -> str:
    return os.environ.get("SWITCHBOARD_DESTINATION", "duckdb").strip() or "duckdb"


def pin_duckdb_path(dags_folder: str) -> str:
    """Make the DuckDB file path absolute for every task (dlt, the views and the sync engine)."""
    path = os.environ.get("DESTINATION__DUCKDB__CREDENTIALS") or dlt.config.get(
        "destination.duckdb.credentials"
    )
    path = str(path or "switchboard.duckdb")
    if "://" not in path and not os.path.isabs(path) and not path.startswith(":"):
        path = os.path.join(dags_folder, path)
    os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = path
    return path


def configured_syncs() -> list[str]:
    names = os.environ.get("SWITCHBOARD_SYNCS")
    if names is not None:
        return [n.strip() for n in names.split(",") if n.strip()]
    try:
        from pipelines.sync import list_syncs

        return [str(getattr(cfg, "name", cfg)) for cfg in list_syncs()]
    except Exception:  # no sync config at parse time: the DAG still loads
        return []


class LoadTasksGroup(PipelineTasksGroup):
    """dlt's task group, whose random local folder (`<tmp>/dlt_<id>`, set for this process when the group
    is made) is removed whole, not only the pipeline's working folder inside it: by `remove_local_folder`
    once the DAG is built, and when each of its tasks ends."""

    def __init__(self, group_name: str, **kwargs: Any) -> None:
        super().__init__(group_name, **kwargs)
        self.local_folder = os.environ[DLT_DATA_DIR]

    def remove_local_folder(self) -> None:
        shutil.rmtree(self.local_folder, ignore_errors=True)

    # the body of each of the group's tasks; `wraps` gives it dlt's signature, which Airflow reads to
    # decide what to pass (a bare **kwargs would be handed the task context)
    @functools.wraps(PipelineTasksGroup._run)
    def _run(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]  # dlt's parameters
        try:
            super()._run(*args, **kwargs)
        finally:
            if self.wipe_local_data:
                self.remove_local_folder()


@contextlib.contextmanager
def scratch_dlt_folder() -> Iterator[str]:
    """A fresh local dlt folder for one task (the views' and the warehouse's dlt pipelines write their
    state there), removed when the task ends."""
    saved = os.environ.get(DLT_DATA_DIR)
    with tempfile.TemporaryDirectory(prefix="dlt_") as folder:
        os.environ[DLT_DATA_DIR] = folder
        try:
            yield folder
        finally:
            if saved is None:
                os.environ.pop(DLT_DATA_DIR, None)
            else:
                os.environ[DLT_DATA_DIR] = saved


def _refresh_views(destination: str) -> list[str]:
    from pipelines.load_report import SourceLoad

    anchor = SourceLoad("chatwoot", "switchboard_views", "chatwoot", destination)
    with scratch_dlt_folder():
        result = refresh_views(anchor, destination=destination)
    if result is not None and result.note:
        print(result.note)
    return result.created if result is not None else []


def _run_sync(name: str) -> dict[str, Any]:
    from pipelines.sync import run_sync

    with scratch_dlt_folder():
        result = run_sync(name, out=print)
    status = str(getattr(result, "status", "success"))
    if status not in ("success", "ok"):
        raise RuntimeError(f"sync {name} ended {status}")
    counts = getattr(result, "counts", None)
    return dict(counts) if isinstance(counts, dict) else {"status": status}


@airflow_dag(
    dag_id=DAG_ID,
    schedule=os.environ.get("SWITCHBOARD_SCHEDULE", DEFAULT_SCHEDULE),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": int(os.environ.get("SWITCHBOARD_TASK_RETRIES", "1")),
        "retry_delay": timedelta(minutes=5),
    },
    tags=["switchboard", "dlt"],
)
def switchboard() -> None:
    from airflow.configuration import conf

    destination = configured_destination()
    if destination == "duckdb":
        pin_duckdb_path(conf.get("core", "dags_folder"))

    last_tasks: list[Any] = []
    previous_group: Any = None
    for source in SOURCE_NAMES:
        # the group must exist before its pipeline: it points dlt at a fresh data folder
        group = LoadTasksGroup(
            f"load_{source}", use_data_folder=False, wipe_local_data=True, log_progress_period=30.0
        )
        pair = pair_for(source, destination, source)
        pipeline = build_pipeline(pair, destination=destination)
        # the source itself is built inside the task, on the worker
        tasks = group.add_run(
            pipeline,
            functools.partial(build_source, source),
            decompose="none",
            loader_file_format=loader_file_format_for(destination),
            on_before_run=functools.partial(print, pair.describe()),
        )
        group.remove_local_folder()  # the state dlt.pipeline wrote while the DAG was parsed
        if destination == "duckdb" and previous_group is not None:
            previous_group >> group
        previous_group = group
        last_tasks.append(tasks[-1])

    views = task(task_id="analytics_views")(_refresh_views)(destination)
    last_tasks >> views
    for name in configured_syncs():
        sync_task = task(task_id=f"sync_{name}")(_run_sync)(name)
        views >> sync_task


dag = switchboard()

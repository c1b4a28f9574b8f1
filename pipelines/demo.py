"""`switchboard demo` / `make demo`: the whole product in a few minutes, with nothing but loopback.

1. Start both API simulators on 127.0.0.1 with generated data.
2. Load Chatwoot and Sendblue into `switchboard.duckdb` (a full refresh: the demo's data replaces
   whatever the `chatwoot` and `sendblue` datasets in that file held) and create the analytics views.
3. Run the sample reverse-ETL sync `demo_sendblue_to_chatwoot` (the first 40 Sendblue contacts, by
   phone, that are not opted out and not in Chatwoot yet become Chatwoot contacts labelled `sendblue`):
   a dry run, then for real.
4. Reload Chatwoot contacts, print a summary and three example queries with their results.
5. Stop the simulators. The DuckDB file stays for the user to query.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from pipelines.errors import CliError

DUCKDB_FILE = "switchboard.duckdb"
DEMO_SYNC = "demo_sendblue_to_chatwoot"
DEMO_SYNC_ROWS = 40

# Sendblue keys contacts by E.164 phone, which Chatwoot accepts as phone_number; Chatwoot has one
# name where Sendblue has two.
DEMO_SYNC_QUERY = f"""
SELECT s.phone AS phone_number,
       NULLIF(TRIM(CONCAT_WS(' ', s.first_name, s.last_name)), '') AS name,
       'sendblue' AS labels
FROM sendblue.contacts s
LEFT JOIN chatwoot.contacts c ON c.phone_number = s.phone
WHERE c.id IS NULL AND NOT COALESCE(s.opt_out, FALSE)
ORDER BY s.phone
LIMIT {DEMO_SYNC_ROWS}
""".strip()

# The simulators allow 3000 requests a minute; the defaults are tuned for the hosted services.
DEMO_SPEED = {
    "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
}

EXAMPLE_QUERIES = [
    (
        "People across both tools (analytics.contacts_unified)",
        "SELECT matched_in, COUNT(*) AS people, SUM(CASE WHEN opted_out THEN 1 ELSE 0 END) AS opted_out "
        "FROM analytics.contacts_unified GROUP BY matched_in ORDER BY matched_in",
    ),
    (
        "The five busiest days (analytics.conversation_activity)",
        "SELECT day, source, conversations, messages, inbound, outbound FROM analytics.conversation_activity "
        "ORDER BY messages DESC, day DESC, source LIMIT 5",
    ),
    (
        "Chatwoot conversations by status",
        "SELECT status, COUNT(*) AS conversations, COUNT(DISTINCT contact_id) AS contacts "
        "FROM chatwoot.conversations GROUP BY status ORDER BY conversations DESC, status",
    ),
]


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (dlt config) for the demo only, restoring the previous values after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_sync_env() -> dict[str, str]:
    prefix = f"SYNCS__{DEMO_SYNC.upper()}__"
    return {
        prefix + "TARGET": "chatwoot.contacts",
        prefix + "QUERY": DEMO_SYNC_QUERY,
        prefix + "MODE": "create_only",
        prefix + "MATCH_ON": "phone_number",
        prefix + "RATE_LIMIT_PER_MINUTE": "1200",
        prefix + "CONCURRENCY": "8",
    }


def forget_demo_sync(duckdb_path: str) -> None:
    """The sandbox starts from scratch each time, so the demo sync's ledger rows from an earlier demo
    would claim contacts that no longer exist: drop them so every demo shows the same plan."""
    from destinations.warehouse import DuckDBWarehouse

    with DuckDBWarehouse(duckdb_path) as wh:
        for table in ("sync_ledger", "sync_log", "sync_runs"):
            if not wh.table_exists("reverse_etl", table):
                continue
            column = next(
                (c for c in ("sync_name", "sync", "name") if c in wh.table_columns("reverse_etl", table)),
                None,
            )
            if column:
                wh.execute(f'DELETE FROM reverse_etl.{table} WHERE "{column}" = ?', [DEMO_SYNC])


def run_query(sql: str, duckdb_path: str) -> tuple[list[str], list[list[Any]]]:
    from destinations.warehouse import DuckDBWarehouse

    with DuckDBWarehouse(duckdb_path, read_only=True) as wh:
        columns, rows = wh.query_rows(sql)
    return columns, [list(r) for r in rows]


def run_demo(
    size: str = "small",
    seed: int = 0,
    out: Callable[[str], Any] = print,
    directory: str = ".",
    progress_stream: Any = None,
) -> dict[str, Any]:
    """Run the demo in `directory` (the DuckDB file lands there); return the figures it printed."""
    from pipelines.load import load
    from pipelines.load_report import format_report
    from pipelines.local_sandbox import start_sandboxes
    from pipelines.sync import run_sync
    from pipelines.tables import render_table

    if size not in ("small", "medium", "large"):
        raise CliError(f"unknown size {size!r}: choose small, medium or large")
    started = time.monotonic()
    duckdb_path = os.path.abspath(os.path.join(directory, DUCKDB_FILE))
    pipelines_dir = tempfile.mkdtemp(prefix="switchboard-demo-")
    progress_stream = progress_stream or sys.stderr
    figures: dict[str, Any] = {"duckdb": duckdb_path}

    out(f"== 1. Starting the Chatwoot and Sendblue simulators on loopback ({size} data, seed {seed})")
    boxes = start_sandboxes(size=size, seed=seed)
    try:
        out(f"   Chatwoot {boxes.chatwoot.url}   Sendblue {boxes.sendblue.url}")
        env = {
            **boxes.env(),
            **DEMO_SPEED,
            **demo_sync_env(),
            "DESTINATION__DUCKDB__CREDENTIALS": duckdb_path,
        }
        with patched_environ(env):
            out(f"== 2. Loading both sources into {duckdb_path}")
            report = load(
                "all", full_refresh=True, pipelines_dir=pipelines_dir, progress_stream=progress_stream
            )
            out(format_report(report))
            if not report.ok:
                raise CliError(report.failure_message())
            figures["rows"] = {load.source: load.rows for load in report.loads}

            out("")
            out(f"== 3. Reverse ETL: sync {DEMO_SYNC} (Sendblue contacts -> new Chatwoot contacts, labelled)")
            forget_demo_sync(duckdb_path)
            out("-- dry run (plans, sends nothing):")
            dry = run_sync(DEMO_SYNC, dry_run=True, out=out)
            out("-- real run:")
            real = run_sync(DEMO_SYNC, out=out)
            figures["sync_status"] = str(getattr(real, "status", ""))
            figures["sync_dry_status"] = str(getattr(dry, "status", ""))

            out("")
            out("== 4. Reloading Chatwoot contacts to see the synced ones, then example queries")
            reload = load(
                "chatwoot",
                resources=["contacts", "contact_labels"],
                pipelines_dir=pipelines_dir,
                progress_stream=progress_stream,
            )
            if not reload.ok:
                raise CliError(reload.failure_message())
            figures["queries"] = {}
            for title, sql in EXAMPLE_QUERIES:
                columns, rows = run_query(sql, duckdb_path)
                figures["queries"][title] = rows
                out("")
                out(f"-- {title}")
                out(f'switchboard sql "{sql}"')
                out(render_table(columns, rows))
    finally:
        boxes.stop()
        shutil.rmtree(pipelines_dir, ignore_errors=True)
    out("")
    out(f"== 5. Simulators stopped. Demo finished in {time.monotonic() - started:.0f}s.")
    out(f"The data stays in {duckdb_path}; try:")
    out('   .venv/bin/switchboard sql "SELECT * FROM analytics.contacts_unified LIMIT 10"')
    out("It holds sandbox data: delete the file before loading your own Chatwoot and Sendblue.")
    return figures

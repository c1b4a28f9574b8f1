"""Reverse-ETL planning benchmark: a sync of N unchanged rows (default 100,000) is planned (query, validate,
diff against the ledger) without sending anything, side by side with DuckDB alone reading and hashing the
same query result.

    .venv/bin/python benchmarks/bench_sync_plan.py
    .venv/bin/python benchmarks/bench_sync_plan.py --rows 100000 --repeat 3

The ledger is filled honestly first: one real run creates every contact in the Sendblue simulator over
loopback HTTP. Then, best of `--repeat`:
- baseline: `SELECT md5(every column as text) FROM (query)`, every hash fetched into Python;
- plan: `run_sync(config, dry_run=True, warehouse=open_file)`, which must find every row unchanged and
  send nothing (opening the file and resolving the config are left out, as for the baseline).
Prints both figures and their ratio; exits non-zero when the plan takes more than 3x the baseline or
more than 10 seconds, or sends anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import duckdb

from destinations.warehouse import DuckDBWarehouse
from pipelines.sync import load_sync_config, run_sync
from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
from sandbox.sendblue import create_app as create_sendblue
from sandbox.server import serve_in_thread

QUERY = "SELECT phone, first_name, last_name, company_name, tags, custom_variables FROM crm.audience"


def baseline_seconds(path: str) -> float:
    """DuckDB alone: read the query result and hash every row (the same MD5 over every column as text)."""
    with duckdb.connect(path, read_only=True) as con:
        columns = [d[0] for d in con.execute(f"SELECT * FROM ({QUERY}) q LIMIT 0").description]
        text = " || CHR(31) || ".join(f'COALESCE(CAST(q."{c}" AS VARCHAR), CHR(30))' for c in columns)
        started = time.perf_counter()
        hashes = con.execute(f"SELECT md5({text}) FROM ({QUERY}) q").fetchall()
        elapsed = time.perf_counter() - started
    assert hashes
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    server = serve_in_thread(create_sendblue("small", seed=2, contacts=50, messages=10, groups=1))
    workdir = tempfile.mkdtemp(prefix="bench_plan_")
    path = os.path.join(workdir, "warehouse.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute(
            f"""CREATE TABLE crm.audience AS
            SELECT '+1989' || CAST(300 + i // 10000 AS VARCHAR) || LPAD(CAST(i % 10000 AS VARCHAR), 4, '0') AS phone,
                   'First' || i AS first_name, 'Last' || (i % 97) AS last_name,
                   CASE WHEN i % 3 = 0 THEN 'Acme' END AS company_name,
                   ['audience', 'seg' || (i % 7)] AS tags,
                   MAP {{'Plan': 'P' || (i % 5), 'Region': 'R' || (i % 11)}} AS custom_variables
            FROM range({args.rows}) t(i)"""
        )
    os.environ.update(
        {
            "SOURCES__SENDBLUE__BASE_URL": server.url,
            "SOURCES__SENDBLUE__API_KEY_ID": API_KEY_ID,
            "SOURCES__SENDBLUE__API_SECRET_KEY": API_SECRET_KEY,
            "SOURCES__SENDBLUE__RATE_LIMIT_PER_MINUTE": "0",
            "DESTINATION__DUCKDB__CREDENTIALS": path,
            "SYNCS__BENCH_PLAN__TARGET": "sendblue.contacts",
            "SYNCS__BENCH_PLAN__QUERY": QUERY,
        }
    )
    failures = []
    try:
        started = time.monotonic()
        filled = run_sync("bench_plan", out=lambda _: None)
        print(f"ledger filled by a real run: {filled.status}, {filled.counts.get('created', 0)} created "
              f"in {time.monotonic() - started:.1f}s")
        if filled.counts.get("created") != args.rows:
            failures.append("the first run did not create every row")
        server.state.log.clear()
        baseline, plan = [], []
        config = load_sync_config("bench_plan")
        for _ in range(args.repeat):
            baseline.append(baseline_seconds(path))
            # like the baseline, the figure leaves out opening the file and resolving the config
            with DuckDBWarehouse(path) as warehouse:
                began = time.perf_counter()
                result = run_sync(config, dry_run=True, warehouse=warehouse, out=lambda _: None)
                plan.append(time.perf_counter() - began)
            if result.counts.get("unchanged") != args.rows or result.plan is None or result.plan.sends:
                failures.append(f"the plan was not all unchanged: {result.counts}")
        best_base, best_plan = min(baseline), min(plan)
        print(f"DuckDB alone, read and hash {args.rows:,} rows: {best_base:.3f}s")
        print(f"plan of {args.rows:,} unchanged rows (query, validate, diff): {best_plan:.3f}s "
              f"= {best_plan / best_base:.2f}x the baseline")
        print(f"requests sent while planning: {len(server.state.log.entries)}")
        if best_plan > 3 * best_base:
            failures.append(f"planning took {best_plan / best_base:.2f}x the baseline (at most 3x)")
        if best_plan > 10:
            failures.append(f"planning took {best_plan:.1f}s (at most 10s)")
        if server.state.log.entries:
            failures.append("planning sent requests")
    finally:
        server.stop()
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

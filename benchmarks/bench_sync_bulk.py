"""Reverse-ETL bulk benchmark: N new Sendblue contacts (default 10,000) from a DuckDB table into the Sendblue
simulator over loopback HTTP, with the figures printed.

    .venv/bin/python benchmarks/bench_sync_bulk.py
    .venv/bin/python benchmarks/bench_sync_bulk.py --rows 10000 --batch-size 500 --latency-ms 30

Prints the write requests the simulator received against the budget ceil(rows / batch_size) + 5 (the
bulk requests a perfect client needs, plus five), the rows per second, and the same for a second run of
the same sync, which must send nothing. Exits non-zero when a budget is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import duckdb

from pipelines.sync import run_sync
from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
from sandbox.sendblue import create_app as create_sendblue
from sandbox.server import serve_in_thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated network latency per request")
    args = parser.parse_args()

    server = serve_in_thread(create_sendblue("small", seed=1, contacts=50, messages=10, groups=1))
    server.state.knobs.latency_ms = args.latency_ms
    workdir = tempfile.mkdtemp(prefix="bench_sync_")
    path = os.path.join(workdir, "warehouse.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA crm")
        # valid numbers in an area code the simulator never generates, so every row is a create
        con.execute(
            f"""CREATE TABLE crm.leads AS
            SELECT '+1989' || CAST(300 + i // 10000 AS VARCHAR) || LPAD(CAST(i % 10000 AS VARCHAR), 4, '0') AS phone,
                   'Lead' || i AS first_name, 'Bench' AS last_name,
                   ['bench', 'lead'] AS tags,
                   MAP {{'Lead Source': 'Benchmark', 'Batch': CAST(i // 1000 AS VARCHAR)}} AS custom_variables
            FROM range({args.rows}) t(i)"""
        )
    os.environ.update(
        {
            "SOURCES__SENDBLUE__BASE_URL": server.url,
            "SOURCES__SENDBLUE__API_KEY_ID": API_KEY_ID,
            "SOURCES__SENDBLUE__API_SECRET_KEY": API_SECRET_KEY,
            "DESTINATION__DUCKDB__CREDENTIALS": path,
            "SYNCS__BENCH_BULK__TARGET": "sendblue.contacts",
            "SYNCS__BENCH_BULK__TABLE": "crm.leads",
            "SYNCS__BENCH_BULK__BATCH_SIZE": str(args.batch_size),
            "SYNCS__BENCH_BULK__CONCURRENCY": str(args.concurrency),
        }
    )
    budget = math.ceil(args.rows / args.batch_size) + 5
    failures = []
    try:
        for label in ("first run (all creates)", "second run (unchanged)"):
            server.state.log.clear()
            started = time.monotonic()
            result = run_sync("bench_bulk", out=lambda _: None)
            elapsed = time.monotonic() - started
            writes = server.state.log.writes()
            requests = len(server.state.log.entries)
            print(f"{label}: status {result.status}, {result.counts.get('created', 0)} created, "
                  f"{result.counts.get('unchanged', 0)} unchanged")
            print(f"  write requests {len(writes)} (budget {budget if 'first' in label else 0}), "
                  f"all requests {requests}, {elapsed:.2f}s, {args.rows / elapsed:,.0f} rows/s")
            if "first" in label:
                if len(writes) > budget or result.counts.get("created") != args.rows:
                    failures.append(f"{len(writes)} write requests for {args.rows} creates (budget {budget})")
                if len(server.state.contacts) < args.rows:
                    failures.append("not every contact exists")
            elif writes:
                failures.append(f"the unchanged run sent {len(writes)} write requests")
    finally:
        server.stop()
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Load benchmark: both sources from the simulators into a fresh DuckDB file, with the figures printed.

    .venv/bin/python benchmarks/bench_load.py --size medium --latency-ms 20
    .venv/bin/python benchmarks/bench_load.py --size large --source sendblue

The simulators run in a child process on loopback (with the given per-request latency), so the memory
figure is the loader's alone. Printed per source: rows per table, requests sent against the fewest the
API's fixed page sizes allow, 429s and 5xx, time spent extracting versus normalising and loading, rows
per second, requests per second against the API's own limit (which is what bounds a real run: Chatwoot's
per-minute budget, Sendblue's 100 message-list requests per 10 seconds), and the loader's peak memory.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import duckdb
import httpx


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(args: argparse.Namespace) -> None:
    """Child process: serve both simulators, print their env as one JSON line, stop when stdin closes."""
    from pipelines.local_sandbox import start_sandboxes

    knobs = {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms}
    boxes = start_sandboxes(
        size=args.size,
        seed=args.seed,
        chatwoot_overrides={**knobs, "rate_limit_per_minute": args.chatwoot_limit},
        sendblue_overrides=knobs,
    )
    with boxes:
        print(json.dumps({"env": boxes.env(), "chatwoot": boxes.chatwoot.url, "sendblue": boxes.sendblue.url}),
              flush=True)
        sys.stdin.read()


def admin(url: str, path: str) -> Any:
    return httpx.get(f"{url}/_sandbox/{path}", timeout=60).json()


def fewest_requests(source: str, truth: dict[str, Any], labelled: int) -> int:
    """Requests a perfect client needs for a first full load, from the API's fixed page sizes."""
    if source == "chatwoot":
        return (
            math.ceil(truth["visible_contacts"] / 15)
            + math.ceil(truth["conversations"] / truth.get("page_size", 25))
            + truth["conversations"]  # at least one messages call per conversation (after=0)
            + 2  # labels, inboxes
            + math.ceil(labelled / 15)  # exact label mode: the labels is_present filter pages
            + labelled  # and one labels read per labelled contact
        )
    return math.ceil(truth["contacts"] / 1000) + math.ceil(truth["messages"] / 100) + 1  # + count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--source", default="all", choices=["chatwoot", "sendblue", "all"])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated network latency per request")
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument(
        "--chatwoot-limit", type=int, default=3000, help="requests per minute: sandbox budget and client limit"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    from pipelines.load import load_source, loader_file_format_for

    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", *sys.argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    info = json.loads(child.stdout.readline())
    print(f"simulators ({args.size}) generated and serving in {time.monotonic() - started:.1f}s")
    sources = ["chatwoot", "sendblue"] if args.source == "all" else [args.source]
    try:
        with tempfile.TemporaryDirectory() as work:
            os.environ.update(info["env"])
            os.environ["SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE"] = str(args.chatwoot_limit)
            os.environ["SOURCES__CHATWOOT__CONCURRENCY"] = str(args.concurrency)
            os.environ["SOURCES__SENDBLUE__CONCURRENCY"] = str(args.concurrency)
            db_path = os.path.join(work, "bench.duckdb")
            os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = db_path
            for source in sources:
                url = info[source]
                truth = admin(url, "truth")
                httpx.post(f"{url}/_sandbox/requests/clear")
                progress = io.StringIO()
                result = load_source(source, pipelines_dir=os.path.join(work, "pipelines"), interactive=False,
                                     log_every=3600.0, progress_stream=progress)
                if not result.ok:
                    print(f"{source}: FAILED: {result.error}")
                    continue
                extract_s = _step_seconds(progress.getvalue(), source, "extract")
                statuses = {int(k): v for k, v in admin(url, "requests")["statuses"].items()}
                requests = sum(statuses.values())
                labelled = 0
                if source == "chatwoot":
                    with duckdb.connect(db_path, read_only=True) as con:
                        labelled = con.sql(
                            "SELECT count(DISTINCT contact_id) FROM chatwoot.contact_labels"
                        ).fetchall()[0][0]
                rows = sum(result.rows.values())
                budget = (f"{args.chatwoot_limit / 60:.1f} req/s budget" if source == "chatwoot"
                          else "messages budget 10 req/s")
                print(f"\n== {source} ({args.size}, latency {args.latency_ms:.0f}±{args.jitter_ms:.0f} ms, "
                      f"file format {loader_file_format_for('duckdb') or 'default'})")
                for table, count in sorted(result.rows.items()):
                    print(f"  {table:<24} {count:>9,} rows")
                print(f"  requests {requests:,} (fewest possible {fewest_requests(source, truth, labelled):,}); "
                      f"429s {statuses.get(429, 0)}; 5xx {sum(v for k, v in statuses.items() if k >= 500)}")
                print(f"  elapsed {result.elapsed:.1f}s: extract {extract_s:.1f}s "
                      f"({requests / max(extract_s, 1e-9):.1f} req/s against the {budget}), "
                      f"normalize+load {result.elapsed - extract_s:.1f}s")
                print(f"  {rows / result.elapsed:,.0f} rows/s overall; loader peak RSS {peak_rss_mib():.0f} MiB")
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def _step_seconds(progress: str, source: str, step: str) -> float:
    """The last elapsed figure the progress log printed for a step ("chatwoot extract 81s | ...")."""
    seconds = 0.0
    for line in progress.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == source and parts[1] == step and parts[2].endswith("s"):
            seconds = float(parts[2][:-1])
    return seconds


if __name__ == "__main__":
    main()

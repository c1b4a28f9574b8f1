"""Load benchmark: both sources from the sandbox into a fresh DuckDB file, with the figures printed.

    .venv/bin/python benchmarks/bench_load.py --size medium --latency-ms 20
    .venv/bin/python benchmarks/bench_load.py --size large --source sendblue

What it prints per source: rows per table, requests sent (and the fewest the API's page sizes allow),
retries and 429s, elapsed seconds, rows per second, requests per second against the API's own limit,
and the process's peak resident memory. The simulators run in this process on loopback with the
given per-request latency, so the figures say how close the source gets to each API's rate limit,
which is what bounds a real run: Chatwoot by the per-minute budget, Sendblue's messages by 100 requests
per 10 seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time

from pipelines.load import load_source
from pipelines.local_sandbox import start_sandboxes


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fewest_requests(source: str, truth: dict[str, int]) -> int:
    """Requests a perfect client needs for a first full load, from the API's fixed page sizes."""
    if source == "chatwoot":
        return (
            math.ceil(truth["contacts"] / 15)
            + math.ceil(truth["conversations"] / 25)
            + truth["conversations"]  # at least one messages call per conversation (after=0)
            + 2  # labels, inboxes
            + math.ceil(truth["labelled"] / 15)  # exact label mode: the is_present filter pages
            + truth["labelled"]  # and one labels read per labelled contact
        )
    return math.ceil(truth["contacts"] / 1000) + math.ceil(truth["messages"] / 100) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--source", default="all", choices=["chatwoot", "sendblue", "all"])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated network latency per request")
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument(
        "--chatwoot-limit", type=int, default=3000, help="requests per minute, sandbox budget and client limit"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    knobs = {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms}
    started = time.monotonic()
    sandboxes = start_sandboxes(
        size=args.size,
        seed=args.seed,
        chatwoot_overrides={**knobs, "rate_limit_per_minute": args.chatwoot_limit},
        sendblue_overrides=knobs,
    )
    print(f"sandboxes ({args.size}) generated and serving in {time.monotonic() - started:.1f}s; "
          f"peak RSS so far {peak_rss_mib():.0f} MiB")
    sources = ["chatwoot", "sendblue"] if args.source == "all" else [args.source]
    with sandboxes, tempfile.TemporaryDirectory() as work:
        os.environ.update(sandboxes.env())
        os.environ["SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE"] = str(args.chatwoot_limit)
        os.environ["SOURCES__CHATWOOT__CONCURRENCY"] = str(args.concurrency)
        os.environ["SOURCES__SENDBLUE__CONCURRENCY"] = str(args.concurrency)
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = os.path.join(work, "bench.duckdb")
        for source in sources:
            server = sandboxes.chatwoot if source == "chatwoot" else sandboxes.sendblue
            state = server.state
            with state.lock:
                summary = state.truth_summary()
            truth = {
                "contacts": len(state.visible_contacts()) if source == "chatwoot" else len(state.contacts),
                "conversations": len(state.conversations) if source == "chatwoot" else 0,
                "messages": state.message_count() if source == "chatwoot" else len(state.messages),
                "labelled": len({c for c, _ in state.contact_labels()}) if source == "chatwoot" else 0,
            }
            state.log.clear()
            result = load_source(source, pipelines_dir=os.path.join(work, "pipelines"), interactive=False,
                                 log_every=30.0, progress_stream=sys.stderr)
            if not result.ok:
                print(f"{source}: FAILED: {result.error}")
                continue
            statuses = state.log.status_counts()
            requests = len(state.log.entries)
            rows = sum(result.rows.values())
            limit = (
                f"{args.chatwoot_limit / 60:.1f} req/s budget"
                if source == "chatwoot"
                else "messages 10 req/s budget"
            )
            print(f"\n== {source} ({args.size}, latency {args.latency_ms:.0f}±{args.jitter_ms:.0f} ms)")
            print(f"truth: {summary if len(str(summary)) < 300 else truth}")
            for table, count in sorted(result.rows.items()):
                print(f"  {table:<24} {count:>9,} rows")
            print(f"  requests {requests:,} (fewest possible {fewest_requests(source, truth):,}); "
                  f"429s {statuses.get(429, 0)}; 5xx {sum(v for k, v in statuses.items() if k >= 500)}")
            print(f"  elapsed {result.elapsed:.1f}s; {rows / result.elapsed:,.0f} rows/s; "
                  f"{requests / result.elapsed:.1f} req/s ({limit}); peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()

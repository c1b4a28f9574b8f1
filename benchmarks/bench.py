"""`make bench`: switchboard against the least time the APIs allow, and beside the alternatives.

    .venv/bin/python benchmarks/bench.py                       # medium, 40 +-10 ms, Chatwoot 3000/min
    .venv/bin/python benchmarks/bench.py --size large --memory-only   # `make bench-large`

Both simulators run in a child process on loopback over real HTTP, with a fixed seed, a per-request
latency and the APIs' real budgets (Chatwoot: fixed one-minute windows, `--chatwoot-budget`; Sendblue:
100 message-list requests per 10 s). Each workload runs in its own process, so its peak memory is its own;
requests and 429s are the simulator's counts.

The bound of a workload is the least time the API allows: max(requests / allowed rate, requests x
latency / concurrency), with `requests` the fewest the page sizes and endpoints allow for the data (from
the simulators' ground truth, not counted from our run). Our extract time is printed as a ratio to it.
Peers (Chatwoot contacts+labels only): dlt's `rest_api` source and a sequential httpx loop
(benchmarks/peers.py). Targets and every figure go to benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_report import print_table, targets, write_results  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------ simulators


def serve(args: argparse.Namespace) -> None:
    """Child process: serve both simulators, print their env and ground truth as one JSON line."""
    from pipelines.local_sandbox import start_sandboxes

    knobs = {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms}
    boxes = start_sandboxes(
        size=args.size, seed=args.seed,
        chatwoot_overrides={**knobs, "rate_limit_per_minute": args.chatwoot_budget},
        sendblue_overrides={**knobs, "messages_rate_limit": 100, "messages_rate_window_seconds": 10},
    )
    with boxes:
        cw, sb = boxes.chatwoot.state, boxes.sendblue.state
        with cw.lock:
            pairs = cw.contact_labels()
            truth = {
                "visible_contacts": len(cw.visible_contacts()),
                "labelled_contacts": len({contact for contact, _ in pairs}),
                "contact_label_pairs": len(pairs),
                "conversations": len(cw.conversations),
                "messages": cw.message_count(),
                "page_size": cw.page_size,
                # `after=<id>` pages hold 100 messages and a walk ends on a short page
                "message_pages": sum(len(m) // 100 + 1 for m in cw.messages_by_conversation.values()),
            }
        summary = sb.truth_summary()
        truth.update(sendblue_contacts=summary["contacts"], sendblue_messages=summary["messages"])
        print(json.dumps({"env": boxes.env(), "chatwoot": boxes.chatwoot.url, "sendblue": boxes.sendblue.url,
                          "truth": truth}), flush=True)
        sys.stdin.read()


def admin(url: str, path: str, **params: Any) -> Any:
    return httpx.get(f"{url}/_sandbox/{path}", params=params, timeout=60).json()


def requests_seen(url: str, latency_s: float, window: float | None = None) -> dict[str, Any]:
    """Requests and 429s the simulator received, and the API time: from the first request to the last
    answer (the part of a run the API's limits decide; the simulator logs a request after its latency).
    With `window`, also the most requests in one full window after the run's third (Chatwoot)."""
    log = admin(url, "requests", entries="1")
    statuses = {int(k): v for k, v in log["statuses"].items()}
    seen: dict[str, Any] = {"requests": sum(statuses.values()), "429": statuses.get(429, 0)}
    stamps = [e["ts"] for e in log["entries"]]
    if stamps:
        seen["api_s"] = max(stamps) - min(stamps) + latency_s
    if window:
        per_window = collections.Counter(int(e["ts"] // window) for e in log["entries"])
        if per_window:
            first, last = min(per_window), max(per_window)
            seen["max_per_window_after_third"] = max(
                [per_window[i] for i in range(first + 3, last)], default=None
            )
    return seen


# ------------------------------------------------------------------------------------------ workers


def _step_seconds(progress: str, source: str, step: str) -> float:
    seconds = 0.0
    for line in progress.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == source and parts[1] == step and parts[2].endswith("s"):
            seconds = float(parts[2][:-1])
    return seconds


def work_load(source: str, resources: list[str], work: str) -> dict[str, Any]:
    from pipelines.load import load_source

    progress = io.StringIO()
    started = time.monotonic()
    result = load_source(source, resources=resources, pipelines_dir=os.path.join(work, "pipelines"),
                         interactive=False, log_every=3600.0, progress_stream=progress)
    wall = time.monotonic() - started
    if not result.ok:
        return {"error": str(result.error)}
    return {"wall_s": wall, "extract_s": _step_seconds(progress.getvalue(), source, "extract"),
            "rows": dict(result.rows)}


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def work_sync(kind: str, work: str, latency_ms: float, rows: int, batch_size: int) -> dict[str, Any]:
    """Reverse ETL into an in-process Sendblue simulator: `bulk` creates `rows` new contacts; `plan` plans
    `rows` unchanged ones (after a real run filled the ledger) beside DuckDB's own read-and-hash."""
    import duckdb

    from destinations.warehouse import DuckDBWarehouse
    from pipelines.sync import load_sync_config, run_sync
    from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY
    from sandbox.sendblue import create_app as create_sendblue
    from sandbox.server import serve_in_thread

    server = serve_in_thread(create_sendblue("small", seed=1, contacts=50, messages=10, groups=1))
    server.state.knobs.latency_ms = latency_ms
    path = os.path.join(work, "warehouse.duckdb")
    plan_module = _module("bench_sync_plan")
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute(
            f"""CREATE TABLE crm.audience AS
            SELECT '+1989' || CAST(300 + i // 10000 AS VARCHAR) || LPAD(CAST(i % 10000 AS VARCHAR), 4, '0') AS phone,
                   'First' || i AS first_name, 'Last' || (i % 97) AS last_name,
                   CASE WHEN i % 3 = 0 THEN 'Acme' END AS company_name,
                   ['audience', 'seg' || (i % 7)] AS tags,
                   MAP {{'Plan': 'P' || (i % 5), 'Region': 'R' || (i % 11)}} AS custom_variables
            FROM range({rows}) t(i)"""
        )
    os.environ.update({
        "SOURCES__SENDBLUE__BASE_URL": server.url, "SOURCES__SENDBLUE__API_KEY_ID": API_KEY_ID,
        "SOURCES__SENDBLUE__API_SECRET_KEY": API_SECRET_KEY, "SOURCES__SENDBLUE__RATE_LIMIT_PER_MINUTE": "0",
        "DESTINATION__DUCKDB__CREDENTIALS": path, "SYNCS__BENCH__TARGET": "sendblue.contacts",
        "SYNCS__BENCH__QUERY": plan_module.QUERY, "SYNCS__BENCH__BATCH_SIZE": str(batch_size),
    })
    try:
        started = time.monotonic()
        first = run_sync("bench", out=lambda _: None)
        wall = time.monotonic() - started
        writes = len(server.state.log.writes())
        out: dict[str, Any] = {"created": first.counts.get("created", 0), "write_requests": writes,
                               "requests": len(server.state.log.entries), "wall_s": wall}
        if kind == "plan":
            server.state.log.clear()
            config = load_sync_config("bench")
            baseline, plan, unchanged = [], [], 0
            for _ in range(3):
                baseline.append(plan_module.baseline_seconds(path))
                with DuckDBWarehouse(path) as warehouse:
                    began = time.perf_counter()
                    result = run_sync(config, dry_run=True, warehouse=warehouse, out=lambda _: None)
                    plan.append(time.perf_counter() - began)
                unchanged = result.counts.get("unchanged", 0)
            out = {"unchanged": unchanged, "requests": len(server.state.log.entries),
                   "wall_s": min(plan), "duckdb_read_and_hash_s": min(baseline)}
        return out
    finally:
        server.stop()


def worker(args: argparse.Namespace) -> None:
    """Child process: one workload; prints its figures as the last line of JSON."""
    from peers import httpx_loop_peer, rest_api_peer

    with tempfile.TemporaryDirectory() as work:
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = os.path.join(work, "bench.duckdb")
        os.environ.setdefault("DLT_DATA_DIR", os.path.join(work, "dlt_data"))
        name = args.worker
        started = time.monotonic()
        out: dict[str, Any]
        if name == "chatwoot_contacts_labels":
            out = work_load("chatwoot", ["contacts", "contact_labels"], work)
        elif name == "chatwoot_conversations_messages":
            out = work_load("chatwoot", ["conversations", "messages"], work)
        elif name == "sendblue_contacts_messages":
            out = work_load("sendblue", ["contacts", "messages"], work)
        elif name in ("peer_rest_api", "peer_httpx_loop"):
            url, token = os.environ["SOURCES__CHATWOOT__BASE_URL"], os.environ["SOURCES__CHATWOOT__API_ACCESS_TOKEN"]
            db = os.path.join(work, "peer_warehouse.duckdb")  # not named like the dataset (DuckDB finds it ambiguous)
            try:
                found = (rest_api_peer(url, 1, token, db, os.path.join(work, "p")) if name == "peer_rest_api"
                         else httpx_loop_peer(url, 1, token, db))
                out = {"contacts": len(found["contacts"]), "pairs": len(found["pairs"]),
                       "label_rows": found["label_rows"], "labels_keyed": found["labels_keyed"]}
            except Exception as exc:  # a peer that gives up is a result too
                cause: BaseException = exc
                while cause.__cause__ is not None or cause.__context__ is not None:
                    cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
                out = {"error": f"{type(cause).__name__}: {' '.join(str(cause).split())[:300]}"}
            out.setdefault("wall_s", time.monotonic() - started)
            out["extract_s"] = out["wall_s"]
        elif name in ("sync_bulk", "sync_plan"):
            out = work_sync(name[5:], work, args.latency_ms, args.sync_rows if name == "sync_bulk" else 100_000,
                            args.batch_size)
        else:
            raise SystemExit(f"unknown workload {name}")
        out["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(out), flush=True)


def run_worker(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--latency-ms", str(args.latency_ms),
           "--batch-size", str(args.batch_size), "--sync-rows", str(args.sync_rows)]
    done = subprocess.run(cmd, env={**os.environ, **env, "PYTHONPATH": str(HERE.parent)},
                          capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------ the harness


def wait_for_a_fresh_window(window: float = 60.0) -> None:
    """Chatwoot counts per fixed minute: a run that starts in a minute the previous one used shares its
    budget, so each Chatwoot workload starts in a window of its own, as separate runs would."""
    time.sleep(window - time.time() % window + 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--chatwoot-budget", type=int, default=3000, help="the simulator's requests per minute")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--sync-rows", type=int, default=10_000)
    parser.add_argument("--memory-only", action="store_true", help="extract workloads only, for the memory target")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--only", default="", help="run only the workloads whose name contains this text")
    parser.add_argument("--no-window-wait", action="store_true", help=argparse.SUPPRESS)  # smoke runs only
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.worker:
        worker(args)
        return 0

    began = time.monotonic()
    child = subprocess.Popen([sys.executable, __file__, "--serve", *sys.argv[1:]], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert child.stdout is not None and child.stdin is not None
    info = json.loads(child.stdout.readline())
    truth = info["truth"]
    print(f"simulators ({args.size}, seed {args.seed}, latency {args.latency_ms:.0f}+-{args.jitter_ms:.0f} ms, "
          f"Chatwoot {args.chatwoot_budget}/min, Sendblue messages 100/10 s) ready in {time.monotonic() - began:.0f}s")
    latency, conc = args.latency_ms / 1000, args.concurrency
    cw_rate = args.chatwoot_budget / 60

    def bound(requests: int, rated: int, rate: float) -> float:
        return max(rated / rate, requests * latency / conc)

    cl_req = math.ceil(truth["visible_contacts"] / 15) + math.ceil(truth["labelled_contacts"] / 15) + truth["labelled_contacts"]
    cm_req = math.ceil(truth["conversations"] / truth["page_size"]) + truth["message_pages"]
    sb_msg = math.ceil(truth["sendblue_messages"] / 100)
    sb_req = math.ceil(truth["sendblue_contacts"] / 1000) + sb_msg
    base_env = {**info["env"], "SOURCES__CHATWOOT__CONCURRENCY": str(conc), "SOURCES__SENDBLUE__CONCURRENCY": str(conc)}
    results: dict[str, dict[str, Any]] = {}

    def run(key: str, worker_name: str, url: str | None, env: dict[str, str], least: int | None,
            rated: int | None, rate: float | None, window: float | None = None) -> None:
        """One workload; `url` the simulator whose log counts its requests (None: the worker counts them)."""
        if args.only not in key:
            return
        if args.only and url == cw and not args.no_window_wait:
            wait_for_a_fresh_window()
        if url:
            httpx.post(f"{url}/_sandbox/requests/clear", timeout=30)
        figures = run_worker(worker_name, {**base_env, **env}, args)
        if url:
            figures.update(requests_seen(url, latency, window))
        if least is not None and rated is not None and rate is not None:
            figures["least_requests"] = least
            figures["bound_s"] = bound(least, rated, rate)
            if "api_s" in figures:
                figures["ratio"] = figures["api_s"] / figures["bound_s"]
        results[key] = figures
        print(f"  {key}: {compact(figures)}", flush=True)

    cw, sb = info["chatwoot"], info["sendblue"]
    pinned = {"SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": str(args.chatwoot_budget)}

    def auto() -> dict[str, str]:  # a first run: nothing learned yet
        return {"SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "auto", "DLT_DATA_DIR": tempfile.mkdtemp(prefix="bench_dlt_")}

    try:
        if not args.memory_only:
            import threading

            # the sequential loop peer is latency-bound: it runs beside the Sendblue and reverse-ETL workloads
            loop_peer: dict[str, Any] = {}
            peer_thread = None
            if not args.skip_peers and args.only in "peer: httpx loop":
                def loop() -> None:
                    httpx.post(f"{cw}/_sandbox/requests/clear", timeout=30)
                    figures = run_worker("peer_httpx_loop", dict(base_env), args)
                    figures.update(requests_seen(cw, latency))
                    loop_peer.update(figures)
                peer_thread = threading.Thread(target=loop)
                peer_thread.start()
            run("sendblue contacts+messages", "sendblue_contacts_messages", sb, {}, sb_req, sb_msg, 10.0)
            # against a simulator of their own in the worker, which counts their requests
            run("reverse ETL bulk create", "sync_bulk", None, {}, None, None, None)
            run("reverse ETL plan, 100k unchanged", "sync_plan", None, {}, None, None, None)
            if peer_thread is not None:
                peer_thread.join()
                results["peer: httpx loop"] = loop_peer
                print(f"  peer: httpx loop: {compact(loop_peer)}", flush=True)
        else:
            run("sendblue contacts+messages", "sendblue_contacts_messages", sb, {}, sb_req, sb_msg, 10.0)
        for key, name, least, env in [
            ("chatwoot contacts+labels, pinned", "chatwoot_contacts_labels", cl_req, pinned),
            ("chatwoot conversations+messages, pinned", "chatwoot_conversations_messages", cm_req, pinned),
            ("chatwoot contacts+labels, auto", "chatwoot_contacts_labels", cl_req, None),
            ("chatwoot conversations+messages, auto", "chatwoot_conversations_messages", cm_req, None),
        ]:
            if args.memory_only and "auto" in key:
                continue
            if not args.no_window_wait and not args.only:
                wait_for_a_fresh_window()
            run(key, name, cw, env or auto(), least, least, cw_rate, window=60.0)
        if not args.memory_only and not args.skip_peers:
            if not args.no_window_wait and not args.only:
                wait_for_a_fresh_window()
            run("peer: dlt rest_api", "peer_rest_api", cw, {}, None, None, None)
            # with dlt's defaults its retries give up on a 429 before Chatwoot's window reopens; a user who
            # meets that raises the attempts (backoff 1, 2, 4, ... s then outlasts the minute)
            if not args.no_window_wait and not args.only:
                wait_for_a_fresh_window()
            run("peer: dlt rest_api, 10 attempts", "peer_rest_api", cw, {"RUNTIME__REQUEST_MAX_ATTEMPTS": "10"},
                None, None, None)
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    report = targets(results, truth, args)
    print_table(results, report, truth, args)
    if not args.only:  # a partial run leaves results.json as the last full run wrote it
        write_results(report, results, truth, args)
    print(f"total {time.monotonic() - began:.0f}s")
    return 0


def compact(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items() if k != "rows")


if __name__ == "__main__":
    sys.exit(main())

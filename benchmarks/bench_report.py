"""Targets, the printed table and benchmarks/results.json for `benchmarks/bench.py`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
EXTRACTS = ("chatwoot contacts+labels", "chatwoot conversations+messages", "sendblue contacts+messages")


def _target(name: str, value: float | None, goal: str, unit: str, met: bool) -> dict[str, Any]:
    return {"name": name, "value": None if value is None else round(value, 3), "goal": goal, "unit": unit,
            "met": bool(met and value is not None)}


def targets(results: dict[str, dict[str, Any]], truth: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, figures in results.items():
        if not key.startswith(EXTRACTS) or "ratio" not in figures:
            continue
        auto = key.endswith("auto")
        limit, most_429 = (1.5, 5) if auto else (1.2, 0)
        out.append(_target(f"{key}: API time / bound", figures["ratio"], f"<= {limit}", "x",
                           figures["ratio"] <= limit))
        out.append(_target(f"{key}: responses 429", figures["429"], f"<= {most_429}", "responses",
                           figures["429"] <= most_429))
        if auto and figures.get("max_per_window_after_third") is not None:
            most = figures["max_per_window_after_third"]
            out.append(_target(f"{key}: most requests in a full window after the third", most,
                               f"<= {args.chatwoot_budget}", "requests", most <= args.chatwoot_budget))
    ours = results.get("chatwoot contacts+labels, auto", {})
    peers = [results.get(k, {}) for k in ("peer: dlt rest_api", "peer: dlt rest_api, 10 attempts")]
    peer = next((p for p in peers if p and "error" not in p), {})
    if ours.get("wall_s") and peer.get("wall_s"):
        rows = ours.get("rows", {})
        exact = (rows.get("contacts") == truth["visible_contacts"]
                 and rows.get("contact_labels") == truth["contact_label_pairs"])
        speedup = peer["wall_s"] / ours["wall_s"]
        out.append(_target("chatwoot contacts+labels: speed-up over dlt rest_api that completed (auto, exact rows)",
                           speedup, ">= 5", "x", speedup >= 5 and exact))
    elif ours.get("wall_s") and any(peers):
        out.append(_target("chatwoot contacts+labels: speed-up over dlt rest_api (no rest_api run completed)",
                           None, ">= 5", "x", False))
    bulk = results.get("reverse ETL bulk create", {})
    if "write_requests" in bulk:
        budget = math.ceil(args.sync_rows / args.batch_size) + 5
        out.append(_target(f"reverse ETL: write requests for {args.sync_rows:,} creates", bulk["write_requests"],
                           f"<= {budget}", "requests",
                           bulk["write_requests"] <= budget and bulk.get("created") == args.sync_rows))
    plan = results.get("reverse ETL plan, 100k unchanged", {})
    if "duckdb_read_and_hash_s" in plan:
        out.append(_target("reverse ETL plan of 100,000 unchanged rows: requests", plan["requests"], "0",
                           "requests", plan["requests"] == 0 and plan.get("unchanged") == 100_000))
        ratio = plan["wall_s"] / plan["duckdb_read_and_hash_s"]
        out.append(_target("reverse ETL plan: time / DuckDB read-and-hash", ratio, "<= 3", "x", ratio <= 3))
    return out


def memory_target(results: dict[str, dict[str, Any]], medium: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Peak memory at large against medium, workload by workload; the worst ratio counts."""
    ratios = [results[k]["peak_rss_mib"] / medium[k]["peak_rss_mib"] for k in results
              if k in medium and results[k].get("peak_rss_mib") and medium[k].get("peak_rss_mib")]
    worst = max(ratios) if ratios else None
    return _target("peak memory at large / at medium (worst extract workload)", worst, "<= 1.5", "x",
                   worst is not None and worst <= 1.5)


def print_table(results: dict[str, dict[str, Any]], report: list[dict[str, Any]], truth: dict[str, Any],
                args: argparse.Namespace) -> None:
    print(f"\nswitchboard bench: {args.size}, latency {args.latency_ms:.0f}+-{args.jitter_ms:.0f} ms, Chatwoot "
          f"{args.chatwoot_budget}/min, Sendblue messages 100/10 s, concurrency {args.concurrency}")
    head = f"{'workload':<42} {'wall s':>7} {'API s':>7} {'bound':>7} {'ratio':>6} {'requests':>9} {'least':>6} " \
           f"{'429':>4} {'rows/s':>8} {'MiB':>5}"
    print(head)
    print("-" * len(head))
    for key, f in results.items():
        if "error" in f and "wall_s" not in f:
            print(f"{key:<42} FAILED: {f['error']}")
            continue
        rows = sum(f.get("rows", {}).values()) or f.get("created") or f.get("unchanged") or f.get("contacts") or 0
        wall = f.get("wall_s", 0.0)

        def num(value: Any, fmt: str) -> str:
            return format(value, fmt) if isinstance(value, (int, float)) else "-"

        print(f"{key:<42} {num(wall, '7.1f')} {num(f.get('api_s'), '7.1f')} {num(f.get('bound_s'), '7.1f')} "
              f"{num(f.get('ratio'), '6.2f')} {num(f.get('requests'), '9d')} {num(f.get('least_requests'), '6d')} "
              f"{num(f.get('429'), '4d')} {num(rows / wall if wall else None, '8.0f')} "
              f"{num(f.get('peak_rss_mib'), '5.0f')}")
    for key, f in results.items():
        if key.startswith("peer"):
            keyed = "labels carry the contact id" if f.get("labels_keyed") else "labels LACK the contact id"
            print(f"  {key}: contacts {f.get('contacts')} of {truth['visible_contacts']}, label rows "
                  f"{f.get('label_rows')} of {truth['contact_label_pairs']} pairs ({keyed})"
                  + (f"; error: {f['error']}" if "error" in f else ""))
    ours = results.get("chatwoot contacts+labels, auto", {}).get("wall_s")
    for key, f in results.items():
        if key.startswith("peer") and ours and f.get("wall_s"):
            print(f"  speed-up of switchboard (contacts+labels, auto) over {key[6:]}: {f['wall_s'] / ours:.1f}x")
    print("\ntargets")
    print("  (API time: the first request to the last answer, as the simulator logged them; wall: the whole\n"
          "   load in its own process, with dlt's normalize and load steps)")
    for t in report:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['name']}: {t['value']} {t['unit']} (goal {t['goal']})")


def write_results(report: list[dict[str, Any]], results: dict[str, dict[str, Any]], truth: dict[str, Any],
                  args: argparse.Namespace) -> None:
    settings = {"size": args.size, "seed": args.seed, "latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms,
                "chatwoot_budget_per_minute": args.chatwoot_budget, "concurrency": args.concurrency}
    if args.memory_only:  # `make bench-large`: add to the medium results
        try:
            data = json.loads(RESULTS.read_text())
        except (OSError, ValueError):
            data = {"targets": [], "raw": {}}
        medium = data.get("raw", {}).get("workloads", {})
        target = memory_target(results, medium)
        data["targets"] = [t for t in data.get("targets", []) if not t["name"].startswith("peak memory")] + [target]
        data.setdefault("raw", {})[args.size] = {"settings": settings, "truth": truth, "workloads": results}
        print(f"  [{'met' if target['met'] else 'MISSED'}] {target['name']}: {target['value']} (goal {target['goal']})")
    else:
        data = {"targets": report, "raw": {"settings": settings, "truth": truth, "workloads": results}}
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    print(f"wrote {RESULTS.name}")

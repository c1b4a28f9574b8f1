"""One run of a sync: query -> validate -> diff -> plan -> (dry run stops) -> send -> record.

The target account's identity (`pipelines.identity`) picks the ledger rows that count: a sync pointed at
another account reads that account's remote state instead of trusting what it sent to the first one.
Sending and the crash protocol are in send.py.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from destinations.targets import Target
from destinations.warehouse import Warehouse, WarehouseError, resolve_warehouse
from pipelines.identity import account_fingerprint
from pipelines.sync.config import SyncConfig, load_sync_config
from pipelines.sync.diff import build_plan
from pipelines.sync.ledger import (
    Ledger,
    LogEntry,
    RunRecord,
    Tables,
    ensure_tables,
    finish_run,
    start_run,
    tables_exist,
    utcnow,
)
from pipelines.sync.plan import Plan
from pipelines.sync.send import ApiUnreachable, Out, Tally, send_plan, skip_entry

EXIT_CODES = {"success": 0, "dry_run": 0, "failed": 1, "partial": 2}


@dataclass
class SyncResult:
    """What a run did. `status`: success, partial (new rejects, new row errors or unknown outcomes),
    failed (the run stopped), or dry_run. `counts` holds the sync_runs counters plus `still_rejected`
    (rejects of rows unchanged since the last run rejected them) and `still_failed` (rows the API refused
    again, unchanged, with the same answer), which make a run partial only when `strict`; `plan` the diff
    it sent. A dry run whose rejects would make the real run partial exits 2 as well."""

    name: str
    run_id: str
    status: str
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    rejects_partial: bool = False  # a dry run: the real run would end partial because of its rejects

    @property
    def exit_code(self) -> int:
        if self.status == "dry_run" and self.rejects_partial:
            return EXIT_CODES["partial"]
        return EXIT_CODES.get(self.status, 1)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def problem(self) -> str:
        """One line saying why the run is not ok (empty when it is)."""
        if self.ok:
            return ""
        if self.error:
            return f"sync {self.name} failed: {self.error}"
        counts = dict(self.counts)
        counts["rejected"] = counts.get("rejected", 0) - counts.get("still_rejected", 0)
        counts["failed"] = counts.get("failed", 0) - counts.get("still_failed", 0)
        problems = ", ".join(
            f"{counts[key]} {key.replace('_', ' ')}"
            for key in ("rejected", "still_rejected", "failed", "still_failed", "unknown")
            if counts.get(key)
        )
        if self.dry_run:
            return f"dry run of sync {self.name}: the run would end partial ({problems}); the plan shows the reasons"
        return f"sync {self.name} ended {self.status} ({problems}); see reverse_etl.sync_log for each row"


def run_sync(
    name: str | SyncConfig,
    *,
    dry_run: bool = False,
    warehouse: Warehouse | str | None = None,
    out: Out = print,
    writer: Target | None = None,
    strict: bool = False,
) -> SyncResult:
    """Run the sync declared as `[syncs.NAME]` (or given as a SyncConfig) once.

    `warehouse`: an open Warehouse, a destination name (`duckdb`, `postgres`, ...), or None for the sync's
    `warehouse` key (default duckdb). `out` receives the plan and progress lines. With `dry_run` the plan
    is printed and nothing is sent or written. `writer` replaces the target (tests, embedding).
    Rows rejected again unchanged since the last run ("still rejected"), and rows the API refuses again
    unchanged with the same answer ("still failed", retried every run), leave the run `success` unless
    `strict`, which makes every reject and failure count.
    """
    config = name if isinstance(name, SyncConfig) else load_sync_config(name)
    run_id = uuid.uuid4().hex
    started = time.monotonic()
    result = SyncResult(config.name, run_id, "failed", dry_run)
    record = RunRecord(run_id, config.name, config.target, utcnow())
    recording, opened = False, False
    wh: Warehouse | None = None
    try:
        wh, opened = resolve_warehouse(warehouse if warehouse is not None else config.warehouse)
        _, account = account_fingerprint(config.api)
        tables = Tables.from_config()
        if dry_run:
            ledger_exists = tables_exist(wh, tables)
        else:
            ensure_tables(wh, tables)
            start_run(wh, tables, record)
            recording, ledger_exists = True, True
        ledger = Ledger(wh, tables, config.name, run_id, account)
        plan, index = build_plan(wh, config, ledger, ledger_exists)
        result.plan = plan
        out(plan.render())
        counts: dict[str, int] = {
            "rows_read": plan.rows_read,
            "rejected": len(plan.rejects),
            "still_rejected": len(plan.still_rejected),
            "unchanged": plan.unchanged,
        }
        partial_rejects = plan.partial_rejects(strict)
        if dry_run:
            result.status, result.counts = "dry_run", {**counts, **plan.counts()}
            result.rejects_partial = bool(partial_rejects)
            out(f"dry run: nothing sent ({plan.sends} rows would be sent)")
            return result

        ledger.write(
            entries=plan.refresh
            + [skip_entry(s.row, plan.entries.get(s.row.key), s.reason, s.remote_id) for s in plan.skips],
            logs=[LogEntry(r.key, "validate", "rejected", None, r.reason) for r in plan.rejects]
            + [LogEntry(s.row.key, "skip", "skipped", None, s.reason) for s in plan.skips],
            rejects=[(r.source_hash, r.key, r.reason) for r in plan.rejects if r.source_hash]
            if plan.rejects or plan.previous_rejects
            else None,
        )
        tally, requests, write_requests = Tally(skipped=len(plan.skips)), 0, 0
        if plan.sends:
            target = writer or config.target_class.open(config, plan.match_on, index)
            tally, requests, write_requests = send_plan(plan, target, ledger, out)
            tally.skipped += len(plan.skips)
        counts.update(
            created=tally.created,
            updated=tally.updated,
            opted_out=tally.opted_out,
            opted_in=tally.opted_in,
            labels_changed=tally.labels_changed,
            failed=tally.failed,
            still_failed=tally.still_failed,
            unknown=tally.unknown,
            requests=requests,
            write_requests=write_requests,
        )
        result.counts = counts
        if tally.still_failed:
            out(
                f"  still failed ({tally.still_failed}): unchanged rows the API refused again with the same "
                "answer (see reverse_etl.sync_log)"
            )
        new_failures = tally.failed - (0 if strict else tally.still_failed)
        result.status = "partial" if (partial_rejects or new_failures or tally.unknown) else "success"
    except (ValueError, WarehouseError, ApiUnreachable) as exc:
        # ValueError: the sync's or a source's configuration (SyncConfigError, QueryShapeError,
        # the clients' config errors), phrased for a person
        result.error = str(exc)
    except Exception as exc:
        from sources.common.errors import ApiError

        if not isinstance(exc, ApiError):
            raise
        result.error = str(exc)  # credentials refused, API down: the run stops here
    finally:
        result.duration_seconds = time.monotonic() - started
        if recording and wh is not None:
            record.status, record.counts, record.error = result.status, result.counts, result.error
            try:
                finish_run(wh, tables, record)
            except WarehouseError:
                pass
        if opened and wh is not None:
            wh.close()
    if result.error:
        out(f"sync {config.name} failed: {result.error}")
    else:
        figures = ", ".join(f"{k} {v}" for k, v in result.counts.items() if v)
        out(f"sync {config.name}: {result.status} in {result.duration_seconds:.1f}s ({figures or 'nothing to do'})")
    return result


"""One run of a sync: query -> validate -> diff -> plan -> (dry run stops) -> send -> record.

The crash protocol, which makes a run killed at any point safe to run again:
1. Before a batch is sent, its keys are written to `sync_ledger` as `pending` with the hash being sent,
   and committed.
2. The batch is sent; confirmed rows become `synced` (hash and remote id), refused rows `failed`, and
   every outcome lands in `sync_log`: one commit per batch.
3. A row whose request may have taken effect without an answer (timeout, dropped connection, 5xx after a
   create) stays `pending`. It is reconciled by reading the remote state, once more at the end of the
   run and at the start of every later run, before anything is sent for it again.
So no key is ever sent twice without the remote state being read in between, and none is skipped: a key
is only `synced` once the API confirmed it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from destinations.reverse_etl import ERROR, OK, UNKNOWN, RowResult, WorkItem, Writer
from destinations.reverse_etl import SKIPPED as SKIPPED_OUTCOME
from destinations.warehouse import Warehouse, WarehouseError, quote_ident, resolve_warehouse
from pipelines.sync.config import SyncConfig, load_sync_config
from pipelines.sync.desired import HASH_COLUMN, DesiredRows, QueryShapeError, infer_match_on
from pipelines.sync.ledger import (
    FAILED,
    PENDING,
    SETTLED,
    SKIPPED,
    SYNCED,
    Ledger,
    LedgerEntry,
    LogEntry,
    RunRecord,
    Tables,
    ensure_tables,
    finish_run,
    start_run,
    tables_exist,
    utcnow,
)
from pipelines.sync.plan import Plan, classify
from pipelines.sync.rows import DesiredRow, Reject, RowValidator, model_fields, reject_duplicates, row_hash

Out = Callable[[str], Any]
EXIT_CODES = {"success": 0, "dry_run": 0, "failed": 1, "partial": 2}
# a run stops when this many batches in a row got no answer at all from the API
UNREACHABLE_BATCHES = 3


@dataclass
class SyncResult:
    """What a run did. `status`: success, partial (new rejects, row errors or unknown outcomes), failed
    (the run stopped), or dry_run. `counts` holds the sync_runs counters (plus `still_rejected`: rejects
    of rows unchanged since the last run rejected them, which make a run partial only when `strict`);
    `plan` the diff it sent. A dry run whose rejects would make the real run partial exits 2 as well."""

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
        still = counts.get("still_rejected", 0)
        counts["rejected"] = counts.get("rejected", 0) - still
        problems = ", ".join(
            f"{counts[key]} {key.replace('_', ' ')}"
            for key in ("rejected", "still_rejected", "failed", "unknown")
            if counts.get(key)
        )
        if self.dry_run:
            return f"dry run of sync {self.name}: the run would end partial ({problems}); the plan shows the reasons"
        return f"sync {self.name} ended {self.status} ({problems}); see reverse_etl.sync_log for each row"


class ApiUnreachable(Exception):
    """Batch after batch got no answer: stop the run instead of timing out on every row."""


# --------------------------------------------------------------------------- planning


def _remote_index(wh: Warehouse, config: SyncConfig, match_on: str | None, keys: Sequence[str]) -> dict[str, str | None] | None:
    """Ids of the records these keys match in the loaded source table (`sendblue.contacts` or
    `chatwoot.contacts`), or None when that table is not in the warehouse. Tombstoned rows are ignored."""
    if config.target == "sendblue.opt_outs":
        return None
    schema, column, id_column = ("sendblue", "phone", "contact_id") if config.api == "sendblue" else ("chatwoot", match_on, "id")
    if column is None or not wh.table_exists(schema, "contacts"):
        return None
    columns = set(wh.table_columns(schema, "contacts"))
    if column not in columns:
        return None
    id_sql = quote_ident(id_column) if id_column in columns else quote_ident(column)
    live = ' AND ("_deleted" IS NULL OR NOT "_deleted")' if "_deleted" in columns else ""
    match_sql = f"LOWER({quote_ident(column)})" if column == "email" else quote_ident(column)
    index: dict[str, str | None] = {}
    wanted = sorted(set(keys))
    step = wh.max_in_values
    for start in range(0, len(wanted), step):
        condition, params = wh.in_values(match_sql, wanted[start : start + step])
        rows = wh.query(
            f"SELECT {id_sql} AS remote_id, {match_sql} AS match_key FROM {schema}.contacts WHERE {condition}{live}",
            params,
        )
        for row in rows:
            index[str(row["match_key"])] = None if row["remote_id"] is None else str(row["remote_id"])
    return index


def build_plan(
    wh: Warehouse, config: SyncConfig, run_id: str, tables: Tables, ledger_exists: bool
) -> tuple[Plan, dict[str, str | None] | None]:
    """The diff of this run, and the remote index (loaded-table ids) the writer may use."""
    columns = wh.query_columns(config.source_sql())
    match_on = config.match_on or (infer_match_on(columns) if config.api == "chatwoot" else None)
    if config.api == "chatwoot" and match_on is None:
        raise QueryShapeError(
            f"sync {config.name!r}: set match_on (identifier, email or phone_number); the query has none of those columns"
        )
    plan = Plan(config=config, match_on=match_on)
    ledger = Ledger(wh, tables, config.name, run_id)
    desired = DesiredRows(wh, config, columns, match_on, tables.ledger if ledger_exists else None)
    plan.rows_read = desired.count()
    candidates = desired.candidates()
    known = set(model_fields(config.target)) | {match_on or ""}
    plan.ignored_columns = [c for c in desired.columns if c not in known]

    if ledger_exists:
        plan.previous_rejects = ledger.previous_rejects()
    validator = RowValidator(config.target, match_on, config.default_region, config.phone_validation)
    valid: list[DesiredRow] = []
    for raw in candidates:
        outcome = validator.validate(raw, str(raw[HASH_COLUMN]))
        if isinstance(outcome, Reject):
            plan.rejects.append(outcome)
        else:
            valid.append(outcome)
    valid, duplicates = reject_duplicates(valid)
    plan.rejects.extend(duplicates)
    entries = ledger.entries(row.key for row in valid) if ledger_exists else {}

    # the same key as a row the warehouse already proved unchanged (written differently, e.g. a phone
    # with and without spaces): both rows are duplicates
    fast_unchanged = plan.rows_read - len(candidates)
    suspects = {
        row.key: entry.source_hash
        for row in valid
        if (entry := entries.get(row.key)) is not None
        and entry.status in SETTLED
        and entry.source_hash
        and entry.source_hash != row.source_hash
    }
    clashing = set()
    if suspects:
        present = desired.hashes_present(h for h in suspects.values() if h)
        clashing = {key for key, source_hash in suspects.items() if source_hash in present}
    if clashing:
        by_key = {row.key: row for row in valid}
        for key in sorted(clashing):
            reason = f"duplicate key: 2 rows share {key}"
            plan.rejects.extend([Reject(key, reason, by_key[key].source_hash), Reject(key, reason, suspects[key])])
        fast_unchanged -= len(clashing)
        valid = [row for row in valid if row.key not in clashing]
    plan.unchanged = fast_unchanged

    unknown_remotely = [
        str(row.fields.get("contact_key", row.key))
        for row in valid
        if (entry := entries.get(row.key)) is None or (entry.status not in SETTLED and not entry.remote_id)
    ]
    index = _remote_index(wh, config, match_on, unknown_remotely) if unknown_remotely else None
    classify(plan, valid, entries, index if config.target != "chatwoot.contact_labels" else None)

    if config.target == "chatwoot.contact_labels" and config.remove:
        rejected = {r.key for r in plan.rejects}
        for gone in desired.vanished_ledger_entries():
            key = str(gone["record_key"])
            if key in plan.rows or key in rejected:
                continue
            payload = json.loads(gone["payload"]) if gone.get("payload") else None
            if not payload:
                continue
            plan.removes.append(WorkItem(key, payload, "remove", payload, gone.get("remote_id")))
    return plan, index


# --------------------------------------------------------------------------- sending


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    opted_out: int = 0
    opted_in: int = 0
    labels_changed: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0

    def add(self, result: RowResult) -> None:
        effects = set(result.effects)
        self.created += "created" in effects
        self.updated += "updated" in effects and "created" not in effects
        self.opted_out += "opted_out" in effects
        self.opted_in += "opted_in" in effects
        self.labels_changed += "labels" in effects
        self.failed += result.outcome == ERROR
        self.unknown += result.outcome == UNKNOWN
        self.skipped += result.outcome == SKIPPED_OUTCOME


class Sender:
    """Sends a plan's work batch by batch, following the crash protocol (see the module doc)."""

    def __init__(self, plan: Plan, writer: Writer, ledger: Ledger, out: Out):
        self.plan = plan
        self.writer = writer
        self.ledger = ledger
        self.out = out
        self.tally = Tally()
        self.unanswered_batches = 0
        self.entries: dict[str, LedgerEntry] = dict(plan.entries)

    async def send(self) -> None:
        batch = self.plan.config.effective_batch_size
        phases = (
            ("reconcile", self.plan.checks),
            ("create", self.plan.creates),
            ("update", self.plan.updates),
            ("remove", self.plan.removes),
        )
        unknown: list[WorkItem] = []
        for phase, items in phases:
            if not items:
                continue
            done = 0
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                results = await self._batch(chunk)
                unknown.extend(i for i, r in zip(chunk, results, strict=True) if r.outcome == UNKNOWN)
                done += len(chunk)
            self.out(f"  {phase}: {done} rows sent")
        if unknown:
            # the outcome of these requests is unknown: give them a moment to land, then read the remote
            # state and finish them
            self.out(f"  reconciling {len(unknown)} rows whose outcome was unknown")
            await asyncio.sleep(self.plan.config.reconcile_delay_seconds)
            retry = [WorkItem(i.key, i.fields, "check", i.previous, i.remote_id) for i in unknown]
            self.tally.unknown -= len(retry)
            for start in range(0, len(retry), batch):
                await self._batch(retry[start : start + batch])

    async def _batch(self, chunk: list[WorkItem]) -> list[RowResult]:
        rows = self.plan.rows
        pending = []
        for item in chunk:
            if item.action == "remove":
                continue
            row = rows[item.key]
            before = self.entries.get(item.key)
            pending.append(
                LedgerEntry(
                    key=item.key,
                    status=PENDING,
                    row_hash=row.row_hash,
                    source_hash=row.source_hash,
                    payload=before.payload if before else None,
                    remote_id=item.remote_id or (before.remote_id if before else None),
                    attempts=before.attempts if before else 0,
                    last_error=before.last_error if before else None,
                )
            )
        self.ledger.write(pending)  # intent is durable before anything is sent
        results = await self.writer.apply(chunk)
        entries, logs, deletes = [], [], []
        for item, result in zip(chunk, results, strict=True):
            if item.action == "remove":
                if result.outcome == OK or result.http_status == 404:
                    deletes.append(item.key)
                logs.append(_log(result, "remove"))
                self.tally.add(result)
                continue
            entry = self._after(item, result)
            self.entries[item.key] = entry
            entries.append(entry)
            logs.append(_log(result, item.action))
            self.tally.add(result)
        self.ledger.write(entries, logs, deletes)
        unanswered = all(r.outcome == UNKNOWN or (r.outcome == ERROR and r.http_status is None) for r in results)
        self.unanswered_batches = self.unanswered_batches + 1 if unanswered and results else 0
        if self.unanswered_batches >= UNREACHABLE_BATCHES:
            raise ApiUnreachable(f"{UNREACHABLE_BATCHES} batches in a row got no answer: {results[-1].message}")
        return results

    def _after(self, item: WorkItem, result: RowResult) -> LedgerEntry:
        """The ledger entry after a result: only what the API confirmed it holds is recorded as held."""
        row = self.plan.rows[item.key]
        before = self.entries.get(item.key)
        remote_id = result.remote_id or item.remote_id or (before.remote_id if before else None)
        if result.outcome in (OK, SKIPPED_OUTCOME):
            status = SYNCED if result.outcome == OK else SKIPPED
            if result.held:
                held = {**row.fields, **result.held}
                return LedgerEntry(item.key, status, row_hash(held), row.source_hash, held, remote_id, 0, result.message)
            if result.outcome == OK:
                return LedgerEntry(item.key, SYNCED, row.row_hash, row.source_hash, row.fields, remote_id, 0, None)
            # nothing was sent: the ledger keeps what the API held before, under the row's source hash
            return _skip_entry(row, before, result.message or "skipped", remote_id)
        status = PENDING if result.outcome == UNKNOWN else FAILED
        attempts = (before.attempts if before else 0) + 1
        return LedgerEntry(
            item.key,
            status,
            row.row_hash,
            row.source_hash,
            before.payload if before else None,
            remote_id,
            attempts,
            result.message,
        )


def _log(result: RowResult, action: str) -> LogEntry:
    return LogEntry(result.key, result.label if result.effects else action, result.outcome, result.http_status, result.message, result.remote_id)


def make_writer(config: SyncConfig, match_on: str | None, index: dict[str, str | None] | None) -> Writer:
    """The writer of the sync's target, on a fresh client of the same kind the source uses."""
    # the sync's rate_limit_per_minute (when set) becomes the client's shared limiter
    overrides: dict[str, Any] = {}
    if config.rate_limit_per_minute:
        overrides["rate_limit_per_minute"] = config.rate_limit_per_minute
    if config.api == "sendblue":
        from destinations import sendblue

        client = sendblue.open_client(**overrides)
        if config.target == "sendblue.opt_outs":
            return sendblue.SendblueOptOutsWriter(
                client, concurrency=config.concurrency, allow_opt_in=config.allow_opt_in
            )
        return sendblue.SendblueContactsWriter(
            client,
            mode=config.mode,
            concurrency=config.concurrency,
            nulls_erase=config.nulls_erase,
            allow_opt_in=config.allow_opt_in,
        )
    from destinations import chatwoot

    assert match_on is not None
    cw_client = chatwoot.open_client(**overrides)
    if config.target == "chatwoot.contact_labels":
        return chatwoot.ChatwootContactLabelsWriter(
            cw_client, match_on=match_on, concurrency=config.concurrency, index=index
        )
    return chatwoot.ChatwootContactsWriter(
        cw_client,
        match_on=match_on,
        mode=config.mode,
        concurrency=config.concurrency,
        nulls_erase=config.nulls_erase,
        labels_mode=config.labels_mode,
        index=index,
    )


def _run_async(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from inside an event loop (a notebook, an async scheduler): use a private loop thread
    from sources.common.http import LoopThread

    loop = LoopThread()
    try:
        return loop.run(coro)
    finally:
        loop.close()


async def _send(plan: Plan, writer: Writer, ledger: Ledger, out: Out) -> tuple[Tally, int, int]:
    sender = Sender(plan, writer, ledger, out)
    try:
        await sender.send()
    finally:
        await writer.aclose()
    return sender.tally, writer.request_count(), writer.write_requests


# --------------------------------------------------------------------------- the public entry point


def run_sync(
    name: str | SyncConfig,
    *,
    dry_run: bool = False,
    warehouse: Warehouse | str | None = None,
    out: Out = print,
    writer: Writer | None = None,
    strict: bool = False,
) -> SyncResult:
    """Run the sync declared as `[syncs.NAME]` (or given as a SyncConfig) once.

    `warehouse`: an open Warehouse, a destination name (`duckdb`, `postgres`, ...), or None for the sync's
    `warehouse` key (default duckdb). `out` receives the plan and progress lines. With `dry_run` the plan
    is printed and nothing is sent or written. `writer` replaces the target's writer (tests, embedding).
    Rows rejected again unchanged since the last run ("still rejected") leave the run `success` unless
    `strict`, which makes every reject count as today's.
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
        tables = Tables.from_config()
        if dry_run:
            ledger_exists = tables_exist(wh, tables)
        else:
            ensure_tables(wh, tables)
            start_run(wh, tables, record)
            recording, ledger_exists = True, True
        plan, index = build_plan(wh, config, run_id, tables, ledger_exists)
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

        ledger = Ledger(wh, tables, config.name, run_id)
        ledger.write(
            entries=plan.refresh
            + [_skip_entry(s.row, plan.entries.get(s.row.key), s.reason, s.remote_id) for s in plan.skips],
            logs=[LogEntry(r.key, "validate", "rejected", None, r.reason) for r in plan.rejects]
            + [LogEntry(s.row.key, "skip", "skipped", None, s.reason) for s in plan.skips],
            rejects=[(r.source_hash, r.key, r.reason) for r in plan.rejects if r.source_hash]
            if plan.rejects or plan.previous_rejects
            else None,
        )
        tally, requests, write_requests = Tally(skipped=len(plan.skips)), 0, 0
        if plan.sends:
            active = writer or make_writer(config, plan.match_on, index)
            tally, requests, write_requests = _run_async(_send(plan, active, ledger, out))
            tally.skipped += len(plan.skips)
        counts.update(
            created=tally.created,
            updated=tally.updated,
            opted_out=tally.opted_out,
            opted_in=tally.opted_in,
            labels_changed=tally.labels_changed,
            failed=tally.failed,
            unknown=tally.unknown,
            requests=requests,
            write_requests=write_requests,
        )
        result.counts = counts
        result.status = "partial" if (partial_rejects or tally.failed or tally.unknown) else "success"
    except (ValueError, WarehouseError, ApiUnreachable) as exc:
        # ValueError: the sync's or a source's configuration (SyncConfigError, QueryShapeError,
        # the clients' config errors), phrased for a person
        result.error = str(exc)
    except Exception as exc:
        from sources.common.http import ApiError

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


def _skip_entry(row: DesiredRow, before: LedgerEntry | None, reason: str, remote_id: str | None = None) -> LedgerEntry:
    """A row skipped by the sync's settings: it keeps the payload the API was last confirmed to hold (or
    none), never the skipped row's, and takes the row's source hash, so it stays quiet until the row or
    the settings change (the source hash covers both) and is then reconsidered."""
    payload = before.payload if before is not None else None
    return LedgerEntry(
        row.key,
        SKIPPED,
        None if payload is None else row_hash(payload),
        row.source_hash,
        payload,
        remote_id or (before.remote_id if before else None),
        0,
        reason,
    )

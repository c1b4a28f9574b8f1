"""Sending a plan, batch by batch, following the crash protocol that makes a run killed at any point
safe to run again:
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from destinations.targets import Outcome, RowResult, Target, WorkItem
from pipelines.sync.ledger import FAILED, PENDING, SKIPPED, SYNCED, Ledger, LedgerEntry, LogEntry
from pipelines.sync.plan import Plan
from pipelines.sync.rows import DesiredRow, row_hash
from sources.common.runtime import run_sync

Out = Callable[[str], Any]
# a run stops when this many batches in a row got no answer at all from the API
UNREACHABLE_BATCHES = 3


class ApiUnreachable(Exception):
    """Batch after batch got no answer: stop the run instead of timing out on every row."""


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
    still_failed: int = 0  # of `failed`: unchanged rows the API refused again with the same answer

    def add(self, result: RowResult) -> None:
        effects = set(result.effects)
        self.created += "created" in effects
        self.updated += "updated" in effects and "created" not in effects
        self.opted_out += "opted_out" in effects
        self.opted_in += "opted_in" in effects
        self.labels_changed += "labels" in effects
        self.failed += result.outcome == Outcome.ERROR
        self.unknown += result.outcome == Outcome.UNKNOWN
        self.skipped += result.outcome == Outcome.SKIPPED


class Sender:
    """Sends a plan's work batch by batch, following the crash protocol (see the module doc)."""

    def __init__(self, plan: Plan, target: Target, ledger: Ledger, out: Out):
        self.plan = plan
        self.target = target
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
                unknown.extend(i for i, r in zip(chunk, results, strict=True) if r.outcome == Outcome.UNKNOWN)
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
        results = await self.target.apply(chunk)
        entries, logs, deletes = [], [], []
        for item, result in zip(chunk, results, strict=True):
            if item.action == "remove":
                if result.outcome == Outcome.OK or result.http_status == 404:
                    deletes.append(item.key)
                logs.append(_log(result, "remove"))
                self.tally.add(result)
                continue
            if result.outcome == Outcome.ERROR and _fails_again(self.plan, item.key, result):
                self.tally.still_failed += 1
            entry = self._after(item, result)
            self.entries[item.key] = entry
            entries.append(entry)
            logs.append(_log(result, item.action))
            self.tally.add(result)
        self.ledger.write(entries, logs, deletes)
        unanswered = all(r.outcome == Outcome.UNKNOWN or (r.outcome == Outcome.ERROR and r.http_status is None) for r in results)
        self.unanswered_batches = self.unanswered_batches + 1 if unanswered and results else 0
        if self.unanswered_batches >= UNREACHABLE_BATCHES:
            raise ApiUnreachable(f"{UNREACHABLE_BATCHES} batches in a row got no answer: {results[-1].message}")
        return results

    def _after(self, item: WorkItem, result: RowResult) -> LedgerEntry:
        """The ledger entry after a result: only what the API confirmed it holds is recorded as held."""
        row = self.plan.rows[item.key]
        before = self.entries.get(item.key)
        remote_id = result.remote_id or item.remote_id or (before.remote_id if before else None)
        if result.outcome in (Outcome.OK, Outcome.SKIPPED):
            status = SYNCED if result.outcome == Outcome.OK else SKIPPED
            if result.held:
                held = {**row.fields, **result.held}
                return LedgerEntry(item.key, status, row_hash(held), row.source_hash, held, remote_id, 0, result.message)
            if result.outcome == Outcome.OK:
                return LedgerEntry(item.key, SYNCED, row.row_hash, row.source_hash, row.fields, remote_id, 0, None)
            # nothing was sent: the ledger keeps what the API held before, under the row's source hash
            return skip_entry(row, before, result.message or "skipped", remote_id)
        status = PENDING if result.outcome == Outcome.UNKNOWN else FAILED
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


def _fails_again(plan: Plan, key: str, result: RowResult) -> bool:
    """The row failed on the last attempt too, unchanged (same source hash), with the same answer."""
    before = plan.entries.get(key)
    message = None if result.message is None else result.message[:2000]  # as the ledger keeps it
    return (
        before is not None
        and before.status == FAILED
        and before.source_hash == plan.rows[key].source_hash
        and before.last_error == message
    )


def _log(result: RowResult, action: str) -> LogEntry:
    return LogEntry(result.key, result.label if result.effects else action, result.outcome, result.http_status, result.message, result.remote_id)


async def _send(plan: Plan, target: Target, ledger: Ledger, out: Out) -> tuple[Tally, int, int]:
    sender = Sender(plan, target, ledger, out)
    try:
        await sender.send()
    finally:
        await target.aclose()
    return sender.tally, target.request_count(), target.write_requests


def send_plan(plan: Plan, target: Target, ledger: Ledger, out: Out) -> tuple[Tally, int, int]:
    """Send the plan's work through `target` (closed after): (tally, requests, write requests)."""
    return run_sync(_send(plan, target, ledger, out))


def skip_entry(row: DesiredRow, before: LedgerEntry | None, reason: str, remote_id: str | None = None) -> LedgerEntry:
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

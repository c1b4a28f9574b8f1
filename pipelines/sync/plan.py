"""The diff: valid desired rows against the ledger, into the work a run will send, and its printout.

Rows reach this module only when the warehouse could not prove them unchanged (see desired.py). Here the
normalised row's hash is compared with the hash last sent: equal means unchanged (the ledger's source
hash is refreshed, nothing is sent); different means an update; no ledger entry means a create; a
`pending` entry means an earlier send has an unknown outcome and the remote state must be read first. A
`skipped` entry records what the API held when the row was skipped, never the skipped row, so it is
decided afresh whenever it reaches this module (its row or the sync's settings changed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from destinations.reverse_etl import WorkItem
from pipelines.sync.config import SyncConfig
from pipelines.sync.ledger import FAILED, PENDING, SETTLED, SYNCED, LedgerEntry
from pipelines.sync.rows import DesiredRow, Reject

SAMPLE_KEYS = 3


@dataclass
class Skip:
    """A row the sync's settings keep from being sent (create_only on an existing record, an opt-in
    without allow_opt_in). Not settled: reconsidered when the row or the settings change."""

    row: DesiredRow
    reason: str
    remote_id: str | None = None


@dataclass
class Plan:
    config: SyncConfig
    match_on: str | None = None
    rows_read: int = 0
    unchanged: int = 0
    rejects: list[Reject] = field(default_factory=list)
    creates: list[WorkItem] = field(default_factory=list)
    updates: list[WorkItem] = field(default_factory=list)
    checks: list[WorkItem] = field(default_factory=list)
    removes: list[WorkItem] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    refresh: list[LedgerEntry] = field(default_factory=list)
    opt_outs: list[str] = field(default_factory=list)
    opt_ins: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rows: dict[str, DesiredRow] = field(default_factory=dict)
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    previous_rejects: set[str] = field(default_factory=set)  # source hashes the last run rejected

    @property
    def still_rejected(self) -> list[Reject]:
        """Rejects of rows unchanged since the last run rejected them (same source hash)."""
        return [r for r in self.rejects if r.source_hash is not None and r.source_hash in self.previous_rejects]

    @property
    def new_rejects(self) -> list[Reject]:
        return [r for r in self.rejects if r.source_hash is None or r.source_hash not in self.previous_rejects]

    def partial_rejects(self, strict: bool = False) -> list[Reject]:
        """The rejects that make a run partial: the new ones, or all of them when `strict`."""
        return list(self.rejects) if strict else self.new_rejects

    @property
    def sends(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.checks) + len(self.removes)

    def counts(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "creates": len(self.creates),
            "updates": len(self.updates),
            "opt_outs": len(self.opt_outs),
            "opt_ins": len(self.opt_ins),
            "reconcile": len(self.checks),
            "removes": len(self.removes),
            "skipped": len(self.skips),
            "rejects": len(self.rejects),
            "still_rejected": len(self.still_rejected),
            "unchanged": self.unchanged,
        }

    def render(self) -> str:
        c = self.config
        head = f"sync {c.name}: {c.source_description()} -> {c.target} (mode {c.mode}"
        if self.match_on:
            head += f", match on {self.match_on}"
        lines = [head + ")"]

        def line(label: str, keys: Iterable[str | None], count: int | None = None, note: str = "") -> None:
            keys = list(keys)
            n = len(keys) if count is None else count
            sample = ", ".join(sorted({str(k) for k in keys})[:SAMPLE_KEYS])
            more = f"  e.g. {sample}" if sample else ""
            lines.append(f"  {label:<10} {n:>8}{more}{note}")

        def rejects(label: str, rejected: list[Reject]) -> None:
            # the sampled keys, then each of them with its reason
            reasons: dict[str, str] = {}
            for r in rejected:
                reasons.setdefault(str(r.key), r.reason)
            sample = sorted(reasons)[:SAMPLE_KEYS]
            lines.append(f"  {label}{'  e.g. ' + ', '.join(sample) if sample else ''}")
            lines.extend(f"               {key}: {reasons[key]}" for key in sample)

        lines.append(f"  {'rows read':<10} {self.rows_read:>8}")
        line("creates", (w.key for w in self.creates))
        line("updates", (w.key for w in self.updates))
        if c.target.startswith("sendblue."):
            line("opt-outs", self.opt_outs)
            if self.opt_ins:
                line("opt-ins", self.opt_ins)
        line("reconcile", (w.key for w in self.checks), note="  (unknown outcome of an earlier send)" if self.checks else "")
        if c.target == "chatwoot.contact_labels":
            line("removes", (w.key for w in self.removes))
        if self.skips:
            line("skipped", (s.row.key for s in self.skips))
        rejects(f"{'rejects':<10} {len(self.new_rejects):>8}", self.new_rejects)
        if self.still_rejected:
            # unchanged since the last run rejected them: reported, and the run is not partial for them
            rejects(f"still rejected ({len(self.still_rejected)})", self.still_rejected)
        line("unchanged", [], count=self.unchanged)
        if self.ignored_columns:
            lines.append(f"  ignored columns (not fields of {c.target}): {', '.join(self.ignored_columns)}")
        return "\n".join(lines)


def _opt_state(fields: dict[str, Any] | None, name: str) -> bool | None:
    return None if fields is None else fields.get(name)


def classify(
    plan: Plan,
    rows: list[DesiredRow],
    entries: dict[str, LedgerEntry],
    remote_index: dict[str, str | None] | None,
) -> None:
    """Sort valid rows into creates, updates, checks, skips and unchanged (with ledger refreshes).

    `remote_index` maps keys to remote ids for records known to exist remotely (from the loaded source
    tables): a key without a ledger entry but present there is updated instead of created.
    """
    config = plan.config
    # opt-outs and single labels have no create/update distinction: every mode sends them
    mode = "upsert" if config.target in ("sendblue.opt_outs", "chatwoot.contact_labels") else config.mode
    plan.entries.update(entries)
    for row in rows:
        plan.rows[row.key] = row
        entry = entries.get(row.key)
        previous = entry.payload if entry else None

        if config.target == "sendblue.opt_outs" and not row.fields["opted_out"] and not config.allow_opt_in:
            if entry is not None and entry.status == SYNCED and entry.row_hash == row.row_hash:
                plan.unchanged += 1  # the number was opted in before this sync stopped allowing it
                if entry.source_hash != row.source_hash:
                    plan.refresh.append(_refreshed(entry, row))
            else:
                plan.skips.append(Skip(row, "opt-in not sent: the sync does not set allow_opt_in"))
            continue

        if entry is not None and entry.status == PENDING:
            plan.checks.append(WorkItem(row.key, row.fields, "check", previous, entry.remote_id))
            _count_opt(plan, row, None)
            continue

        # only a synced entry says the API holds this row; a skipped one holds what the API had before
        # the skip, so the row is decided afresh (the settings may have changed since)
        if entry is not None and entry.status == SYNCED and entry.row_hash == row.row_hash:
            plan.unchanged += 1
            if entry.source_hash != row.source_hash:
                plan.refresh.append(_refreshed(entry, row))
            continue

        exists_remotely = entry is not None and (entry.status in SETTLED or entry.remote_id is not None)
        if entry is not None and entry.status == FAILED and entry.remote_id is None:
            exists_remotely = False
        remote_id = entry.remote_id if entry else None
        if not exists_remotely and remote_index is not None and row.key in remote_index:
            exists_remotely, remote_id, previous = True, remote_index[row.key], None

        if exists_remotely:
            if mode == "create_only":
                plan.skips.append(Skip(row, "exists already; create_only sends no updates", remote_id))
                continue
            plan.updates.append(WorkItem(row.key, row.fields, "update", previous, remote_id))
            _count_opt(plan, row, previous)
        elif mode == "update_only":
            # nothing known remotely: the writer looks the record up and reports 404 when it is absent
            plan.updates.append(WorkItem(row.key, row.fields, "update", None, None))
            _count_opt(plan, row, None)
        else:
            plan.creates.append(WorkItem(row.key, row.fields, "create", None, None))
            _count_opt(plan, row, None)


def _count_opt(plan: Plan, row: DesiredRow, previous: dict[str, Any] | None) -> None:
    target = plan.config.target
    if target == "sendblue.contacts":
        wanted = row.fields.get("opt_out")
        before = _opt_state(previous, "opt_out")
        if wanted is True and before is not True:
            plan.opt_outs.append(row.key)
        elif wanted is False and before is True and plan.config.allow_opt_in:
            plan.opt_ins.append(row.key)
    elif target == "sendblue.opt_outs":
        (plan.opt_outs if row.fields["opted_out"] else plan.opt_ins).append(row.key)


def _refreshed(entry: LedgerEntry, row: DesiredRow) -> LedgerEntry:
    """The same (synced) ledger entry under the row's current source hash."""
    return LedgerEntry(
        key=entry.key,
        status=entry.status,
        row_hash=row.row_hash,
        source_hash=row.source_hash,
        payload=row.fields,
        remote_id=entry.remote_id,
        attempts=entry.attempts,
        last_error=entry.last_error,
    )

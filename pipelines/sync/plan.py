"""The plan of a run: the work it will send (made by diff.py), what it leaves alone, and its printout."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from destinations.targets import WorkItem
from pipelines.sync.config import SyncConfig
from pipelines.sync.ledger import LedgerEntry
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
        if c.target_class.opts:
            line("opt-outs", self.opt_outs)
            if self.opt_ins:
                line("opt-ins", self.opt_ins)
        line("reconcile", (w.key for w in self.checks), note="  (unknown outcome of an earlier send)" if self.checks else "")
        if c.target_class.removes:
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

"""The diff: the desired rows against the ledger (and the target's loaded table), into a run's plan.

Rows reach Python only when the warehouse could not prove them unchanged (see desired.py). Here the
normalised row's hash is compared with the hash last sent: equal means unchanged (the ledger's source
hash is refreshed, nothing is sent); different means an update; no ledger entry means a create, or an
update when the loaded table knows the record; a `pending` entry means an earlier send has an unknown
outcome and the remote state must be read first. A `skipped` entry records what the API held when the
row was skipped, never the skipped row, so it is decided afresh whenever it reaches this module (its row
or the sync's settings changed).
"""

from __future__ import annotations

import json

from destinations.targets import WorkItem
from destinations.warehouse import Warehouse
from pipelines.sync.config import SyncConfig
from pipelines.sync.desired import HASH_COLUMN, DesiredRows, match_on_for, remote_index
from pipelines.sync.ledger import FAILED, PENDING, SETTLED, SYNCED, Ledger, LedgerEntry
from pipelines.sync.plan import Plan, Skip
from pipelines.sync.rows import DesiredRow, Reject, RowValidator, reject_duplicates


def build_plan(
    wh: Warehouse, config: SyncConfig, ledger: Ledger, ledger_exists: bool
) -> tuple[Plan, dict[str, str | None] | None]:
    """The diff of this run, and the remote index (loaded-table ids) the target may use."""
    target = config.target_class
    columns = wh.query_columns(config.source_sql())
    match_on = match_on_for(config, columns)
    plan = Plan(config=config, match_on=match_on)
    desired = DesiredRows(wh, config, columns, match_on, ledger.tables.ledger if ledger_exists else None, ledger.account)
    plan.rows_read = desired.count()
    candidates = desired.candidates()
    known = set(target.row_model.model_fields) | {match_on or ""}
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
        target.remote_key(row.fields, row.key)
        for row in valid
        if (entry := entries.get(row.key)) is None or (entry.status not in SETTLED and not entry.remote_id)
    ]
    index = remote_index(wh, config, match_on, unknown_remotely) if unknown_remotely else None
    classify(plan, valid, entries, index if target.index_finds_rows else None)

    if target.removes and config.remove:
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
    target = config.target_class
    mode = config.mode if target.modes else "upsert"
    plan.entries.update(entries)
    for row in rows:
        plan.rows[row.key] = row
        entry = entries.get(row.key)
        previous = entry.payload if entry else None

        reason = target.settings_skip(row.fields, config)
        if reason is not None:
            if entry is not None and entry.status == SYNCED and entry.row_hash == row.row_hash:
                plan.unchanged += 1  # sent before the settings stopped allowing it
                if entry.source_hash != row.source_hash:
                    plan.refresh.append(_refreshed(entry, row))
            else:
                plan.skips.append(Skip(row, reason))
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
            # nothing known remotely: the target looks the record up and reports 404 when it is absent
            plan.updates.append(WorkItem(row.key, row.fields, "update", None, None))
            _count_opt(plan, row, None)
        else:
            plan.creates.append(WorkItem(row.key, row.fields, "create", None, None))
            _count_opt(plan, row, None)


def _count_opt(plan: Plan, row: DesiredRow, previous: dict[str, object] | None) -> None:
    opted = plan.config.target_class.opt_change(row.fields, previous, plan.config.allow_opt_in)
    if opted is not None:
        (plan.opt_outs if opted else plan.opt_ins).append(row.key)


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

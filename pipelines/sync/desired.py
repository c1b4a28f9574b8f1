"""The SQL side of a sync: hash every desired row in the warehouse and hand Python only the rows that may
need work; and read the target's loaded table for which keys exist remotely.

Each row of the sync's query gets `_sb_source_hash`: an MD5 of the sync's fingerprint, the column names
and every column as text. The candidates are the rows whose hash matches no settled (`synced`/`skipped`)
ledger entry of the sync, plus rows whose hash occurs more than once (identical duplicate rows, which
would otherwise both pass as unchanged). Everything else is unchanged and never leaves the database, so
a run over unchanged data costs about one scan and hash of the query result.

Duplicates that are not identical cannot both match the ledger (it holds one hash per key), so at least
one of them reaches Python, where the key is normalised and the clash found (see diff.build_plan).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from destinations.warehouse import Warehouse, quote_ident, strip_statement
from pipelines.sync.config import SyncConfig
from pipelines.sync.ledger import SETTLED, SYNCED

HASH_COLUMN = "_sb_source_hash"


class QueryShapeError(ValueError):
    """The sync's query lacks a column the target needs (its key)."""


def match_on_for(config: SyncConfig, columns: Iterable[str]) -> str | None:
    """The sync's match_on, or the first of the target's match columns the query yields."""
    choices = config.target_class.match_columns
    if config.match_on or not choices:
        return config.match_on
    present = set(columns)
    inferred = next((name for name in choices if name in present), None)
    if inferred is None:
        raise QueryShapeError(
            f"sync {config.name!r}: set match_on ({', '.join(choices)}); the query has none of those columns"
        )
    return inferred


class DesiredRows:
    """One run's view of the desired rows: counts, candidates, and the lookups the diff needs."""

    def __init__(
        self,
        wh: Warehouse,
        config: SyncConfig,
        columns: list[str],
        match_on: str | None,
        ledger_table: str | None,
        account: str,
    ):
        """`columns`: what the query yields; `ledger_table`: the sync_ledger table, or None when it does
        not exist yet (a first dry run); `account`: whose ledger rows count."""
        self.wh = wh
        self.config = config
        self.sql = strip_statement(config.source_sql())
        self.columns = columns
        self.match_on = match_on
        self.account = account
        missing = [c for c in config.target_class.key_columns(match_on) if c not in self.columns]
        if missing:
            raise QueryShapeError(
                f"the query of sync {config.name!r} has no column {', '.join(missing)} "
                f"(it yields: {', '.join(self.columns) or 'no columns'})"
            )
        self.ledger_table = ledger_table
        self.relation = f"(SELECT q.*, {self._hash_expr()} AS {HASH_COLUMN} FROM ({self.sql}) AS q)"

    def _hash_expr(self) -> str:
        # column names are part of the hash prefix, so renaming or adding a column re-evaluates every row
        prefix = hashlib.sha256(
            (self.config.fingerprint() + "\x1f" + "\x1f".join(self.columns)).encode()
        ).hexdigest()[:16]
        parts = [f"'{prefix}'"]
        for column in self.columns:
            parts.append(f"COALESCE({self.wh.text_expr('q.' + quote_ident(column))}, CHR(30))")
        return self.wh.md5_expr(" || CHR(31) || ".join(parts))

    def _settled(self) -> str:
        statuses = ", ".join(f"'{status}'" for status in SETTLED)
        return (
            f"SELECT l.source_hash FROM {self.ledger_table} AS l "
            f"WHERE l.sync_name = ? AND l.account = ? AND l.status IN ({statuses})"
        )

    # -- reads

    def count(self) -> int:
        rows = self.wh.query(f"SELECT COUNT(*) AS n FROM ({self.sql}) AS q")
        return int(rows[0]["n"])

    def candidates(self) -> list[dict[str, Any]]:
        """Rows that may need work: a hash the ledger has not settled, or one seen more than once.

        First only the hashes are aggregated (no row is carried through the plan, so an unchanged run
        costs about one scan and hash of the query result); rows are fetched only for candidate hashes."""
        if not self.ledger_table:
            return self._rows(f"SELECT d.* FROM {self.relation} AS d", None)
        hashes = self.wh.query(
            f"SELECT d.h FROM (SELECT {self._hash_expr()} AS h FROM ({self.sql}) AS q) AS d GROUP BY d.h "
            f"HAVING COUNT(*) > 1 OR NOT EXISTS ({self._settled()} AND l.source_hash = d.h)",
            [self.config.name, self.account],
        )
        wanted = [str(r["h"]) for r in hashes]
        if not wanted:
            return []
        if len(wanted) > self.wh.max_in_values:
            # many rows changed: one scan, filtered here, beats many IN-list statements
            keep = set(wanted)
            return [r for r in self._rows(f"SELECT d.* FROM {self.relation} AS d", None) if r[HASH_COLUMN] in keep]
        condition, params = self.wh.in_values(f"d.{HASH_COLUMN}", wanted)
        return self._rows(f"SELECT d.* FROM {self.relation} AS d WHERE {condition}", params)

    def _rows(self, sql: str, params: list[Any] | None) -> list[dict[str, Any]]:
        columns, rows = self.wh.query_rows(sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def hashes_present(self, hashes: Iterable[str]) -> set[str]:
        """Which of these source hashes belong to rows of this run."""
        wanted = sorted({h for h in hashes if h})
        present: set[str] = set()
        step = self.wh.max_in_values
        for start in range(0, len(wanted), step):
            condition, params = self.wh.in_values(f"d.{HASH_COLUMN}", wanted[start : start + step])
            rows = self.wh.query(f"SELECT DISTINCT d.{HASH_COLUMN} AS h FROM {self.relation} AS d WHERE {condition}", params)
            present.update(str(r["h"]) for r in rows)
        return present

    def vanished_ledger_entries(self) -> list[dict[str, Any]]:
        """Synced ledger entries whose row is no longer in the query (for `remove = true`)."""
        if not self.ledger_table:
            return []
        return self.wh.query(
            f"SELECT l.record_key, l.payload, l.remote_id FROM {self.ledger_table} AS l WHERE l.sync_name = ? "
            f"AND l.account = ? AND l.status = '{SYNCED}' AND NOT EXISTS "
            f"(SELECT 1 FROM {self.relation} AS d WHERE d.{HASH_COLUMN} = l.source_hash)",
            [self.config.name, self.account],
        )


def remote_index(
    wh: Warehouse, config: SyncConfig, match_on: str | None, keys: Sequence[str]
) -> dict[str, str | None] | None:
    """Ids of the records these keys match in the target's loaded table (in the sync's loaded dataset),
    or None when the target has none or it is not in the warehouse. Tombstoned rows are ignored."""
    remote = config.target_class.remote_table
    column = (remote.key_column or match_on) if remote else None
    if remote is None or column is None or not wh.table_exists(config.dataset, remote.table):
        return None
    columns = set(wh.table_columns(config.dataset, remote.table))
    if column not in columns:
        return None
    id_sql = quote_ident(remote.id_column) if remote.id_column in columns else quote_ident(column)
    live = ' AND ("_deleted" IS NULL OR NOT "_deleted")' if "_deleted" in columns else ""
    # keys are normalised as the row models do: emails lower-case
    match_sql = f"LOWER({quote_ident(column)})" if column == "email" else quote_ident(column)
    table = f"{config.dataset}.{remote.table}"
    index: dict[str, str | None] = {}
    wanted = sorted(set(keys))
    step = wh.max_in_values
    for start in range(0, len(wanted), step):
        condition, params = wh.in_values(match_sql, wanted[start : start + step])
        rows = wh.query(f"SELECT {id_sql} AS remote_id, {match_sql} AS match_key FROM {table} WHERE {condition}{live}", params)
        for row in rows:
            index[str(row["match_key"])] = None if row["remote_id"] is None else str(row["remote_id"])
    return index

"""The SQL side of a sync: run its query once, hash every row in the warehouse, and hand Python only the
rows that may need work.

The query result goes into a temporary table (one scan of the user's query) with two extra columns:
`_sb_source_hash`, an MD5 of the sync's fingerprint and every column as text, and `_sb_raw_key`, the
row's key roughly normalised in SQL (digits of a phone, lower-cased email) so that most duplicate keys are
caught without leaving the database. A row whose source hash matches a `synced` ledger entry is unchanged
and never reaches Python; rows with a new or changed hash, a missing key or a duplicated key do. Warehouses
without temporary tables get the same statements over a subquery instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from destinations.warehouse import Warehouse, quote_ident, strip_statement
from pipelines.sync.config import SyncConfig
from pipelines.sync.ledger import SETTLED, SYNCED
from pipelines.sync.rows import key_columns

HASH_COLUMN = "_sb_source_hash"
KEY_COLUMN = "_sb_raw_key"
CHUNK = 500


class QueryShapeError(ValueError):
    """The sync's query lacks a column the target needs (its key)."""


def infer_match_on(columns: Iterable[str]) -> str | None:
    present = set(columns)
    for name in ("identifier", "email", "phone_number"):
        if name in present:
            return name
    return None


class DesiredRows:
    """One run's view of the desired rows. Use as a context manager; the temporary table is dropped after."""

    def __init__(
        self,
        wh: Warehouse,
        config: SyncConfig,
        match_on: str | None,
        run_id: str,
        ledger_table: str | None,
    ):
        """`ledger_table`: the sync_ledger table, or None when it does not exist yet (a first dry run)."""
        self.wh = wh
        self.config = config
        self.sql = strip_statement(config.source_sql())
        self.columns = wh.query_columns(self.sql)
        self.match_on = match_on
        missing = [c for c in key_columns(config.target, match_on) if c not in self.columns]
        if missing:
            raise QueryShapeError(
                f"the query of sync {config.name!r} has no column {', '.join(missing)} "
                f"(it yields: {', '.join(self.columns) or 'no columns'})"
            )
        self.ledger_table = ledger_table
        self.temp_table = f"switchboard_desired_{run_id.replace('-', '')[:16]}"
        self.use_temp = wh.dialect in ("duckdb", "postgres")
        self._relation = ""

    # -- SQL pieces

    def _hash_expr(self) -> str:
        # column names are part of the hash prefix, so renaming or adding a column re-evaluates every row
        prefix = hashlib.sha256(
            (self.config.fingerprint() + "\x1f" + "\x1f".join(self.columns)).encode()
        ).hexdigest()[:16]
        parts = [f"'{prefix}'"]
        for column in self.columns:
            parts.append(f"COALESCE({self.wh.text_expr('q.' + quote_ident(column))}, CHR(30))")
        return self.wh.md5_expr(" || CHR(31) || ".join(parts))

    def _key_part(self, column: str) -> str:
        text = f"TRIM({self.wh.text_expr('q.' + quote_ident(column))})"
        if self.wh.dialect in ("duckdb", "postgres"):
            if column in ("phone", "phone_number"):
                return f"NULLIF(REGEXP_REPLACE({text}, '[^0-9]', '', 'g'), '')"
            if column in ("email", "label"):
                return f"NULLIF(LOWER({text}), '')"
        return f"NULLIF({text}, '')"

    def _key_expr(self) -> str:
        parts = [self._key_part(c) for c in key_columns(self.config.target, self.match_on)]
        return " || CHR(31) || ".join(parts)

    def _select(self) -> str:
        return (
            f"SELECT q.*, {self._hash_expr()} AS {HASH_COLUMN}, {self._key_expr()} AS {KEY_COLUMN} "
            f"FROM ({self.sql}) AS q"
        )

    # -- lifecycle

    def __enter__(self) -> DesiredRows:
        if self.use_temp:
            self.wh.execute(f"DROP TABLE IF EXISTS {self.temp_table}")
            self.wh.execute(f"CREATE TEMPORARY TABLE {self.temp_table} AS {self._select()}")
            self._relation = self.temp_table
        else:
            self._relation = f"({self._select()})"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.use_temp:
            try:
                self.wh.execute(f"DROP TABLE IF EXISTS {self.temp_table}")
            except Exception:  # the connection may be gone after a failure; the table dies with it
                pass

    # -- reads

    def count(self) -> int:
        rows = self.wh.query(f"SELECT COUNT(*) AS n FROM {self._relation} AS d")
        return int(rows[0]["n"])

    def candidates(self) -> list[dict[str, Any]]:
        """Rows that may need work: new or changed hash, missing key, or a key seen more than once."""
        conditions = [
            f"d.{KEY_COLUMN} IS NULL",
            f"d.{KEY_COLUMN} IN (SELECT x.{KEY_COLUMN} FROM {self._relation} AS x "
            f"GROUP BY x.{KEY_COLUMN} HAVING COUNT(*) > 1)",
        ]
        params: list[Any] = []
        if self.ledger_table:
            settled = "(" + ", ".join(f"'{status}'" for status in SETTLED) + ")"
            conditions.append(
                f"NOT EXISTS (SELECT 1 FROM {self.ledger_table} AS l WHERE l.sync_name = ? AND l.status IN {settled} "
                f"AND l.source_hash = d.{HASH_COLUMN})"
            )
            params.append(self.config.name)
        else:
            conditions.append("1 = 1")
        columns, rows = self.wh.query_rows(
            f"SELECT d.* FROM {self._relation} AS d WHERE " + " OR ".join(conditions), params or None
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def hashes_present(self, hashes: Iterable[str]) -> set[str]:
        """Which of these source hashes belong to rows of this run."""
        wanted = sorted({h for h in hashes if h})
        present: set[str] = set()
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = self.wh.query(
                f"SELECT DISTINCT d.{HASH_COLUMN} AS h FROM {self._relation} AS d WHERE d.{HASH_COLUMN} IN ({marks})",
                chunk,
            )
            present.update(str(r["h"]) for r in rows)
        return present

    def vanished_ledger_entries(self) -> list[dict[str, Any]]:
        """Synced ledger entries whose row is no longer in the query (for `remove = true`)."""
        if not self.ledger_table:
            return []
        return self.wh.query(
            f"SELECT l.record_key, l.payload, l.remote_id FROM {self.ledger_table} AS l WHERE l.sync_name = ? "
            f"AND l.status = '{SYNCED}' AND NOT EXISTS "
            f"(SELECT 1 FROM {self._relation} AS d WHERE d.{HASH_COLUMN} = l.source_hash)",
            [self.config.name],
        )

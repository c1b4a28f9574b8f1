"""The reverse_etl tables: `sync_ledger` (per sync, target account and key: what was last sent, and
whether it is confirmed), `sync_log` (every outcome of every run, rejected rows included), `sync_runs`
(one row per run) and `sync_rejects` (the rows the last run rejected, by source hash: a row rejected
again unchanged is "still rejected" and does not make a run partial again).

Created with portable SQL (DuckDB, Postgres and other SQL warehouses). The ledger has no unique
constraint: one process owns a sync's rows while it runs, and every write replaces a key's row inside one
transaction (DELETE then INSERT), which also avoids DuckDB's eager unique-index checks on re-inserted keys.

A ledger row belongs to the account it was sent to (`account`: a digest of the target's base URL and
account id or key id, `pipelines.identity`): pointed at another account, a sync finds no ledger rows
there and reads the remote state again, and its rows for the first account stay for when it returns.
Rows written before the ledger kept accounts have none and are never trusted.

Ledger statuses:
- `pending`: the row is about to be sent or its send's outcome is unknown (the process died, or a timeout
  hit after the request left). The next run reads the remote state before deciding anything.
- `synced`: the API confirmed the row as hashed in `row_hash`.
- `skipped`: nothing sent because of the sync's settings (create_only on an existing record, an opt-in
  without allow_opt_in). `row_hash`/`payload` keep what the API was last confirmed to hold (or null),
  never the skipped row; the row is reconsidered when it or the settings change (its source hash).
- `failed`: the API refused the row (422/404/409...); it is retried on the next run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from destinations.warehouse import Warehouse, WarehouseError
from pipelines.sync.config import SyncConfigError

DEFAULT_SCHEMA = "reverse_etl"

PENDING, SYNCED, SKIPPED, FAILED = "pending", "synced", "skipped", "failed"
# rows whose ledger entry has one of these statuses and an unchanged source hash (which covers the
# sync's settings) are never re-read
SETTLED = (SYNCED, SKIPPED)

LEDGER_COLUMNS = (
    "sync_name",
    "account",
    "record_key",
    "status",
    "row_hash",
    "source_hash",
    "payload",
    "remote_id",
    "attempts",
    "last_error",
    "run_id",
    "updated_at",
)
LOG_COLUMNS = (
    "run_id",
    "sync_name",
    "logged_at",
    "record_key",
    "action",
    "outcome",
    "http_status",
    "message",
    "remote_id",
)
REJECT_COLUMNS = ("sync_name", "source_hash", "record_key", "reason", "run_id", "updated_at")
RUN_COUNTS = (
    "rows_read",
    "rejected",
    "unchanged",
    "created",
    "updated",
    "opted_out",
    "opted_in",
    "labels_changed",
    "failed",
    "unknown",
    "requests",
    "write_requests",
)


@dataclass(frozen=True)
class Tables:
    """The reverse_etl tables of one schema: `reverse_etl` unless `[reverse_etl] schema` says otherwise
    (env REVERSE_ETL__SCHEMA), so a test or a second environment can keep its own."""

    schema: str = DEFAULT_SCHEMA

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.schema):
            raise SyncConfigError(f"reverse_etl.schema must be a plain schema name, got {self.schema!r}")

    @classmethod
    def from_config(cls) -> Tables:
        import dlt

        return cls(str(dlt.config.get("reverse_etl.schema") or DEFAULT_SCHEMA))

    @property
    def ledger(self) -> str:
        return f"{self.schema}.sync_ledger"

    @property
    def log(self) -> str:
        return f"{self.schema}.sync_log"

    @property
    def runs(self) -> str:
        return f"{self.schema}.sync_runs"

    @property
    def rejects(self) -> str:
        return f"{self.schema}.sync_rejects"

    def ddl(self) -> list[str]:
        return [
            f"CREATE SCHEMA IF NOT EXISTS {self.schema}",
            f"""CREATE TABLE IF NOT EXISTS {self.ledger} (
                sync_name VARCHAR NOT NULL,
                account VARCHAR,
                record_key VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                row_hash VARCHAR,
                source_hash VARCHAR,
                payload VARCHAR,
                remote_id VARCHAR,
                attempts INTEGER,
                last_error VARCHAR,
                run_id VARCHAR,
                updated_at TIMESTAMP
            )""",
            f"ALTER TABLE {self.ledger} ADD COLUMN IF NOT EXISTS account VARCHAR",  # ledgers older than it
            f"""CREATE TABLE IF NOT EXISTS {self.log} (
                run_id VARCHAR NOT NULL,
                sync_name VARCHAR NOT NULL,
                logged_at TIMESTAMP,
                record_key VARCHAR,
                action VARCHAR,
                outcome VARCHAR,
                http_status INTEGER,
                message VARCHAR,
                remote_id VARCHAR
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.runs} (
                run_id VARCHAR NOT NULL,
                sync_name VARCHAR NOT NULL,
                target VARCHAR,
                status VARCHAR,
                started_at TIMESTAMP,
                finished_at TIMESTAMP,
                duration_seconds DOUBLE PRECISION,
                {", ".join(f"{name} BIGINT" for name in RUN_COUNTS)},
                error VARCHAR
            )""",
            f"""CREATE TABLE IF NOT EXISTS {self.rejects} (
                sync_name VARCHAR NOT NULL,
                source_hash VARCHAR NOT NULL,
                record_key VARCHAR,
                reason VARCHAR,
                run_id VARCHAR,
                updated_at TIMESTAMP
            )""",
        ]

    def postgres_indexes(self) -> list[str]:
        # Postgres plans the fast-path anti-join and key lookups with these; DuckDB's hash joins need none
        return [
            f"CREATE INDEX IF NOT EXISTS sync_ledger_key ON {self.ledger} (sync_name, record_key)",
            f"CREATE INDEX IF NOT EXISTS sync_ledger_source_hash ON {self.ledger} (sync_name, source_hash)",
        ]




def utcnow() -> datetime:
    """UTC wall time as a naive timestamp (the TIMESTAMP columns hold UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class LedgerEntry:
    key: str
    status: str
    row_hash: str | None = None
    source_hash: str | None = None
    payload: dict[str, Any] | None = None
    remote_id: str | None = None
    attempts: int = 0
    last_error: str | None = None


@dataclass
class LogEntry:
    key: str | None
    action: str
    outcome: str
    http_status: int | None = None
    message: str | None = None
    remote_id: str | None = None


@dataclass
class RunRecord:
    run_id: str
    sync_name: str
    target: str
    started_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def ensure_tables(wh: Warehouse, tables: Tables) -> None:
    for statement in tables.ddl():
        wh.execute(statement)
    if wh.dialect == "postgres":
        for statement in tables.postgres_indexes():
            wh.execute(statement)


def tables_exist(wh: Warehouse, tables: Tables) -> bool:
    # a probe instead of information_schema, which DuckDB answers far more slowly than a no-row select;
    # a ledger without the account column holds no row any account may trust
    try:
        wh.query(f"SELECT account FROM {tables.ledger} WHERE 1 = 0")
    except WarehouseError:
        return False
    return True


class Ledger:
    """Reads and writes one sync's ledger rows for one target account, and its log lines; every write is
    one transaction."""

    def __init__(self, wh: Warehouse, tables: Tables, sync_name: str, run_id: str, account: str):
        self.wh = wh
        self.tables = tables
        self.sync_name = sync_name
        self.run_id = run_id
        self.account = account

    # -- reads

    def entries(self, keys: Iterable[str]) -> dict[str, LedgerEntry]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, LedgerEntry] = {}
        step = self.wh.max_in_values
        for start in range(0, len(keys), step):
            condition, params = self.wh.in_values("record_key", keys[start : start + step])
            rows = self.wh.query(
                f"SELECT * FROM {self.tables.ledger} WHERE sync_name = ? AND account = ? AND {condition}",
                [self.sync_name, self.account, *params],
            )
            for row in rows:
                entry = _entry(row)
                found[entry.key] = entry
        return found

    def previous_rejects(self) -> set[str]:
        """Source hashes of the rows the sync's last run rejected (none before the table exists)."""
        try:
            rows = self.wh.query(
                f"SELECT source_hash FROM {self.tables.rejects} WHERE sync_name = ?", [self.sync_name]
            )
        except WarehouseError:
            return set()
        return {str(row["source_hash"]) for row in rows}

    # -- writes

    def write(
        self,
        entries: Sequence[LedgerEntry] = (),
        logs: Sequence[LogEntry] = (),
        deletes: Sequence[str] = (),
        rejects: Sequence[tuple[str, str | None, str]] | None = None,
    ) -> None:
        """Replace the ledger rows of `entries`, drop the keys in `deletes` and append `logs`, in one
        committed transaction. `rejects` ((source hash, key, reason) of this run's rejected rows), when
        given, replaces the sync's rows of `sync_rejects`."""
        if not entries and not logs and not deletes and rejects is None:
            return
        now = utcnow()
        with self.wh.transaction():
            if rejects is not None:
                self.wh.execute(f"DELETE FROM {self.tables.rejects} WHERE sync_name = ?", [self.sync_name])
                self.wh.insert_rows(
                    self.tables.rejects,
                    REJECT_COLUMNS,
                    [
                        (self.sync_name, source_hash, key, reason[:2000], self.run_id, now)
                        for source_hash, key, reason in dict.fromkeys(rejects)
                    ],
                )
            keys = [e.key for e in entries] + list(deletes)
            step = self.wh.max_in_values
            for start in range(0, len(keys), step):
                condition, params = self.wh.in_values("record_key", keys[start : start + step])
                self.wh.execute(
                    f"DELETE FROM {self.tables.ledger} WHERE sync_name = ? AND account = ? AND {condition}",
                    [self.sync_name, self.account, *params],
                )
            self.wh.insert_rows(
                self.tables.ledger,
                LEDGER_COLUMNS,
                [
                    (
                        self.sync_name,
                        self.account,
                        e.key,
                        e.status,
                        e.row_hash,
                        e.source_hash,
                        None if e.payload is None else json.dumps(e.payload, sort_keys=True, default=str),
                        e.remote_id,
                        e.attempts,
                        None if e.last_error is None else e.last_error[:2000],
                        self.run_id,
                        now,
                    )
                    for e in entries
                ],
            )
            self.wh.insert_rows(
                self.tables.log,
                LOG_COLUMNS,
                [
                    (
                        self.run_id,
                        self.sync_name,
                        now,
                        entry.key,
                        entry.action,
                        entry.outcome,
                        entry.http_status,
                        None if entry.message is None else entry.message[:2000],
                        entry.remote_id,
                    )
                    for entry in logs
                ],
            )


def _entry(row: dict[str, Any]) -> LedgerEntry:
    payload = row.get("payload")
    return LedgerEntry(
        key=str(row["record_key"]),
        status=str(row["status"]),
        row_hash=row.get("row_hash"),
        source_hash=row.get("source_hash"),
        payload=json.loads(payload) if payload else None,
        remote_id=row.get("remote_id"),
        attempts=int(row.get("attempts") or 0),
        last_error=row.get("last_error"),
    )


# --------------------------------------------------------------------------- run history


def start_run(wh: Warehouse, tables: Tables, record: RunRecord) -> None:
    """Close runs of this sync that never finished (their process died) and open this one."""
    with wh.transaction():
        wh.execute(
            f"UPDATE {tables.runs} SET status = 'failed', error = 'interrupted: the process ended before the run finished' "
            "WHERE sync_name = ? AND status = 'running'",
            [record.sync_name],
        )
        wh.insert_rows(
            tables.runs,
            ("run_id", "sync_name", "target", "status", "started_at"),
            [(record.run_id, record.sync_name, record.target, record.status, record.started_at)],
        )


def finish_run(wh: Warehouse, tables: Tables, record: RunRecord) -> None:
    finished = record.finished_at or utcnow()
    duration = (finished - record.started_at).total_seconds()
    sets = ", ".join(f"{name} = ?" for name in RUN_COUNTS)
    wh.execute(
        f"UPDATE {tables.runs} SET status = ?, finished_at = ?, duration_seconds = ?, error = ?, {sets} WHERE run_id = ?",
        [
            record.status,
            finished,
            duration,
            record.error,
            *(int(record.counts.get(name, 0)) for name in RUN_COUNTS),
            record.run_id,
        ],
    )

"""Spooled events -> the warehouse, through one dlt pipeline per (source, account).

Each pipeline is named from `pipelines.identity` (the warehouse, the dataset and a listener account key),
so it writes into the same dataset as `switchboard load` (`chatwoot`, `sendblue`, `chatwoot_NAME`) yet
never shares the load's incremental state; its merge staging dataset is its own too, so a load and a flush
may run at once on Postgres. One `pipeline.run` per flush carries the raw `webhook_events` and the merged
loaded-table rows, so both land together or are retried together.

Merging: deliveries already in `webhook_events` are skipped (dedup across restarts, no time window). The
rows of the touched keys are read from the table first and the event's fields laid over them, so a merge
never blanks a column the payload lacks; where the payload carries a time (conversation `updated_at`,
Sendblue `date_updated`), an older state never replaces a newer one, whatever the arrival order.
"""

from __future__ import annotations

import importlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
import duckdb

from destinations.warehouse import duckdb_path_from_config
from pipelines.identity import StatePair, warehouse_identity
from pipelines.listen.rows import UPDATE_ONLY, table_rows
from pipelines.load import DEFAULT_DESTINATION, explicit_duckdb, loader_file_format_for
from pipelines.recovery import finish_pending

RAW_TABLE = "webhook_events"
RAW_COLUMNS: dict[str, Any] = {
    "delivery_key": {"data_type": "text", "nullable": False},
    "event": {"data_type": "text", "nullable": True},
    "received_at": {"data_type": "timestamp", "nullable": False},
    "account": {"data_type": "text", "nullable": True},
    "payload": {"data_type": "json", "nullable": True},
}
STAGING_LAYOUT = "%s_listen_staging"


@dataclass(frozen=True)
class Target:
    primary_key: tuple[str, ...]
    newer_by: str | None = None  # the column whose larger value wins


TARGETS: dict[str, dict[str, Target]] = {
    "chatwoot": {
        "contacts": Target(("id",)),
        "conversations": Target(("id",), "updated_at"),
        "messages": Target(("id",)),
    },
    "sendblue": {
        "messages": Target(("message_handle",), "date_updated"),
        "contacts": Target(("phone",)),
    },
}


def column_hints(source: str, table: str) -> dict[str, Any]:
    """The REST load's own column hints, so webhook rows get the same columns and types."""
    streams = importlib.import_module(f"sources.{source}.endpoints").STREAMS
    return dict(streams[table].column_hints())


def _listener_pair(source: str, account: str, dataset: str, destination: Any) -> StatePair:
    warehouse, warehouse_key = warehouse_identity(destination)
    return StatePair(
        source,
        f"webhooks of {source} account {account}",
        f"listen|{account}",
        warehouse,
        warehouse_key,
        dataset,
    )


def _key(row: dict[str, Any], primary_key: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(column) for column in primary_key)


def _newer(candidate: Any, current: Any) -> bool:
    """False only when both are set and `candidate` is older (ties: the later delivery wins)."""
    if candidate is None or current is None:
        return True
    try:
        return bool(candidate >= current)
    except TypeError:
        return True


def fold(
    rows: Iterable[dict[str, Any]], existing: dict[tuple[Any, ...], dict[str, Any]], target: Target
) -> list[dict[str, Any]]:
    """Lay each partial row over the stored row (or the batch's previous one), in arrival order."""
    result: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        row = dict(row)
        update_only = bool(row.pop(UPDATE_ONLY, False))
        key = _key(row, target.primary_key)
        if any(part is None for part in key):
            continue
        base = result.get(key) or existing.get(key)
        if base is None and update_only:
            continue
        if (
            base is not None
            and target.newer_by
            and not _newer(row.get(target.newer_by), base.get(target.newer_by))
        ):
            continue
        result[key] = {**(base or {}), **row}
    return list(result.values())


class WarehouseWriter:
    """Loads batches of spool records; `destination` is what `switchboard load --destination` takes."""

    def __init__(self, destination: Any = DEFAULT_DESTINATION, pipelines_dir: str | None = None):
        self.destination = destination
        self.pipelines_dir = pipelines_dir
        self._pipelines: dict[tuple[str, str, str], dlt.Pipeline] = {}
        self._conn: Any = None  # DuckDB: one connection for a whole flush, closed after it

    def _destination(self) -> Any:
        if self._conn is not None:
            return dlt.destinations.duckdb(credentials=self._conn, staging_dataset_name_layout=STAGING_LAYOUT)
        dest = explicit_duckdb(self.destination)
        if isinstance(dest, str):
            from dlt.common.destination.reference import Destination

            return Destination.from_reference(dest, staging_dataset_name_layout=STAGING_LAYOUT)
        return type(dest)(
            credentials=dest.config_params.get("credentials"), staging_dataset_name_layout=STAGING_LAYOUT
        )

    def pipeline(self, source: str, account: str, dataset: str) -> dlt.Pipeline:
        if (source, account, dataset) not in self._pipelines:
            destination = self._destination()
            named_by = explicit_duckdb(self.destination) if self._conn is not None else destination
            pair = _listener_pair(source, account, dataset, named_by)  # the file's path, not the connection
            options: dict[str, Any] = {"pipelines_dir": self.pipelines_dir} if self.pipelines_dir else {}
            self._pipelines[(source, account, dataset)] = dlt.pipeline(
                pipeline_name=pair.pipeline_name, destination=destination, dataset_name=dataset, **options
            )
        return self._pipelines[(source, account, dataset)]

    def __call__(self, records: Sequence[dict[str, Any]]) -> None:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            groups[(record["source"], record["account"])].append(record)
        duckdb_file = self.destination == DEFAULT_DESTINATION and not duckdb_path_from_config().startswith(":")
        if duckdb_file:
            # opening the file is most of a small flush's cost if dlt does it per step and per job; the file
            # is held for the flush only, so a `switchboard load` gets it between flushes
            self._conn = duckdb.connect(os.path.abspath(duckdb_path_from_config()))
            self._pipelines.clear()
        try:
            for (source, account), group in groups.items():
                dataset = source if account == "default" else f"{source}_{account}"
                self.load_group(self.pipeline(source, account, dataset), source, group)
        finally:
            if duckdb_file:
                self._pipelines.clear()
                self._conn.close()
                self._conn = None

    def load_group(self, pipeline: dlt.Pipeline, source: str, records: list[dict[str, Any]]) -> None:
        if pipeline.has_pending_data:  # a flush killed mid-load: its package goes first
            finish_pending(pipeline)
        known = self._stored(pipeline, RAW_TABLE, ("delivery_key",), [(r["key"],) for r in records])
        fresh: dict[str, dict[str, Any]] = {}
        for record in records:
            if (record["key"],) not in known and record["key"] not in fresh:
                fresh[record["key"]] = record
        if not fresh:
            return
        partial: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in fresh.values():
            for table, rows in table_rows(source, record["payload"]).items():
                partial[table].extend(rows)
        resources = [
            dlt.resource(
                [
                    {
                        "delivery_key": r["key"],
                        "event": r["event"],
                        "received_at": r["received_at"],
                        "account": r["account"],
                        "payload": r["payload"],
                    }
                    for r in fresh.values()
                ],
                name=RAW_TABLE,
                primary_key="delivery_key",
                write_disposition="merge",
                columns=RAW_COLUMNS,
            )
        ]
        for table, rows in partial.items():
            target = TARGETS[source][table]
            keys = [_key(row, target.primary_key) for row in rows]
            existing = self._stored(pipeline, table, target.primary_key, keys, whole_rows=True, source=source)
            merged = fold(rows, existing, target)
            if merged:
                resources.append(
                    dlt.resource(
                        merged,
                        name=table,
                        primary_key=list(target.primary_key),
                        write_disposition="merge",
                        columns=column_hints(source, table),
                    )
                )
        pipeline.run(
            resources,
            schema=dlt.Schema(f"{source}_webhooks"),
            loader_file_format=loader_file_format_for(self.destination),
        )

    def _stored(
        self,
        pipeline: dlt.Pipeline,
        table: str,
        primary_key: tuple[str, ...],
        keys: list[tuple[Any, ...]],
        *,
        whole_rows: bool = False,
        source: str = "",
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The rows of `table` under `keys` (empty when the table does not exist yet)."""
        wanted = sorted({k for k in keys if all(part is not None for part in k)}, key=repr)
        if not wanted:
            return {}
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        json_columns = (
            {c for c, hint in column_hints(source, table).items() if hint.get("data_type") == "json"}
            if whole_rows
            else set()
        )
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                return {}
            qualified = client.make_qualified_table_name(table)
            if not _table_exists(client, table):
                return {}
            columns = "*" if whole_rows else ", ".join(client.escape_column_name(c) for c in primary_key)
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                if len(primary_key) == 1:
                    where = (
                        f"{client.escape_column_name(primary_key[0])} IN ({', '.join(['%s'] * len(chunk))})"
                    )
                    args = [k[0] for k in chunk]
                else:  # no composite keys are merged today
                    raise NotImplementedError(table)
                with client.execute_query(
                    f"SELECT {columns} FROM {qualified} WHERE {where}", *args
                ) as cursor:
                    names = [d[0] for d in cursor.description]
                    for values in cursor.fetchall():
                        row = {n: v for n, v in zip(names, values, strict=True) if not n.startswith("_")}
                        for column in json_columns & row.keys():
                            if isinstance(row[column], str):
                                row[column] = json.loads(row[column])
                        found[_key(row, primary_key)] = row
        return found


def _table_exists(client: Any, table: str) -> bool:
    try:
        with client.execute_query(f"SELECT 1 FROM {client.make_qualified_table_name(table)} WHERE 1 = 0"):
            return True
    except Exception:
        return False

"""Incremental `conversations` rows rebuilt from the warehouse instead of from the API.

The `messages` table holds every message of every thread (merged on `message_handle`), so a thread touched
by new or edited messages is rebuilt from its stored messages with this run's walk laid over them (the walk
is newer, and this run's merge has not happened yet: dlt loads after extracting). The rows are folded by the
same `fold` a full load uses, so they come out exactly as a full load would make them, and dlt still merges
them into `conversations`.

One thing the warehouse lacks is creation order, which settles which of two messages sent in the same
millisecond came last. A tie is settled from the thread's previous row when every message in it was already
accounted for by the run that wrote that row; otherwise by one list request per tied millisecond
(`sent_at_gte` = `sent_at_lte` = that time, `order_by=createdAt`), never by a per-thread request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sources.sendblue.conversations import ConversationBuilder, finished_row, fold, sent_at, take_last
from sources.sendblue.models import parse_timestamp, to_api_timestamp

log = logging.getLogger("switchboard.sendblue")

# what `fold` reads of a message
MESSAGE_COLUMNS = (
    "message_handle",
    "conversation_id",
    "content",
    "is_outbound",
    "status",
    "date_sent",
    "date_updated",
    "group_id",
    "group_display_name",
    "participants",
    "number",
    "sendblue_number",
    "from_number",
    "to_number",
)
CHUNK = 500  # conversation ids per IN (...) list


class WarehouseThreads:
    """Reads of the pipeline's destination: the stored messages of some threads and their previous rows."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    @classmethod
    def of_current_pipeline(cls) -> WarehouseThreads | None:
        """The running pipeline's warehouse, if it has a `messages` table to read; None otherwise (no
        pipeline or destination, a first run, a dropped table), and the caller re-reads from the API."""
        try:
            import dlt

            pipeline = dlt.current.pipeline()
            if pipeline is None or pipeline.destination is None:
                return None
            store = cls(pipeline)
            store._select("messages", ("message_handle", "conversation_id"), "1 = 0", [])
            return store
        except Exception as exc:  # no pipeline context, destination unreachable, table missing
            log.info("Sendblue conversations: the warehouse cannot be read (%s); re-reading threads", exc)
            return None

    def _select(
        self, table: str, columns: Iterable[str], where: str, args: list[Any]
    ) -> list[dict[str, Any]]:
        with self.pipeline.sql_client() as client:
            names = list(columns)
            cols = ", ".join(client.escape_column_name(c) for c in names)
            sql = f"SELECT {cols} FROM {client.make_qualified_table_name(table)} WHERE {where}"
            rows = client.execute_sql(sql, *args) or []
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _by_ids(self, table: str, columns: Iterable[str], ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            where = f"conversation_id IN ({', '.join(['%s'] * len(chunk))})"
            out.extend(self._select(table, columns, where, chunk))
        return out

    def messages_of(self, conversation_ids: list[str]) -> list[dict[str, Any]]:
        """Every stored message of these threads, shaped as the walk yields them."""
        return [_as_walked(m) for m in self._by_ids("messages", MESSAGE_COLUMNS, conversation_ids)]

    def previous_last(self, conversation_ids: list[str]) -> dict[str, tuple[datetime | None, str | None]]:
        """(last_message_at, last_message_handle) of these threads' stored rows; {} before any."""
        try:
            rows = self._by_ids(
                "conversations",
                ("conversation_id", "last_message_at", "last_message_handle"),
                conversation_ids,
            )
        except Exception:  # no conversations table yet
            return {}
        return {
            r["conversation_id"]: (parse_timestamp(r["last_message_at"]), r["last_message_handle"])
            for r in rows
        }


def _as_walked(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the client yields it: UTC datetimes, participants a list (DuckDB returns JSON
    as text, Postgres as a decoded value)."""
    row["date_sent"] = parse_timestamp(row["date_sent"])
    row["date_updated"] = parse_timestamp(row["date_updated"])
    if isinstance(row["participants"], str):
        row["participants"] = json.loads(row["participants"])
    return row


CreationOrder = Callable[[datetime], list[str]]


def rebuild_touched(
    builder: ConversationBuilder, store: WarehouseThreads, creation_order: CreationOrder
) -> list[dict[str, Any]]:
    """The rows of the threads `builder`'s incremental walk touched: stored messages, this walk's copies laid
    over them, folded; ties on the last `date_sent` settled as the module docstring says."""
    ids = sorted(builder.touched)
    stored = {m["message_handle"]: m for m in store.messages_of(ids)}
    merged = dict(stored)
    for handle, m in builder.walked.items():
        if m["conversation_id"] in builder.touched:
            merged[handle] = m
    # the full walk's order (date_updated ascending), so order-dependent fields come out the same
    ordered = sorted(merged.values(), key=lambda m: (m["date_updated"] is not None, m["date_updated"] or 0))
    rows_by_id: dict[str, dict[str, Any]] = {}
    fold(rows_by_id, ordered, in_creation_order=False)
    tied = {cid: row for cid, row in rows_by_id.items() if row["_tied"]}
    if tied:
        builder.tie_requests += _settle_ties(builder, tied, ordered, stored, store, creation_order)
    builder.threads_rebuilt += len(rows_by_id)
    return [finished_row(row) for row in rows_by_id.values()]


def _settle_ties(
    builder: ConversationBuilder,
    tied: dict[str, dict[str, Any]],
    messages: list[dict[str, Any]],
    stored: dict[str, dict[str, Any]],
    store: WarehouseThreads,
    creation_order: CreationOrder,
) -> int:
    """Make the latest-created of each tied thread's last messages its last message; returns the number of
    tied milliseconds that needed a request."""
    members: dict[str, list[dict[str, Any]]] = {cid: [] for cid in tied}
    for m in messages:
        row = tied.get(m["conversation_id"])
        if row is not None and sent_at(m) == row["last_message_at"]:
            members[m["conversation_id"]].append(m)
    previous = store.previous_last(list(tied))

    def accounted(m: dict[str, Any]) -> bool:
        """Was this message, at this send time, part of the thread when its previous row was written?"""
        handle = m["message_handle"]
        if handle not in builder.walked:
            return True  # older than this walk's start, which is no later than the cursor
        old = stored.get(handle)
        if old is None or sent_at(old) != sent_at(m) or builder.cursor is None or old["date_updated"] is None:
            return False
        return bool(
            old["date_updated"] < builder.cursor
            or (old["date_updated"] == builder.cursor and handle in builder.edge_handles)
        )

    unsettled: dict[datetime, list[str]] = {}
    for cid, row in tied.items():
        last_at, last_handle = previous.get(cid, (None, None))
        winner = next((m for m in members[cid] if m["message_handle"] == last_handle), None)
        if last_at == row["last_message_at"] and winner and all(accounted(m) for m in members[cid]):
            take_last(row, winner)
        elif all(m.get("date_sent") is not None for m in members[cid]):
            unsettled.setdefault(row["last_message_at"], []).append(cid)
    for stamp, cids in unsettled.items():
        rank = {handle: i for i, handle in enumerate(creation_order(stamp))}
        for cid in cids:
            ranked = [m for m in members[cid] if m["message_handle"] in rank]
            if ranked:
                take_last(tied[cid], max(ranked, key=lambda m: rank[m["message_handle"]]))
    return len(unsettled)


def creation_order_from(client: Any) -> CreationOrder:
    """The handles of the messages sent at one time, oldest created first (a `SendblueClient`'s list)."""

    def order(stamp: datetime) -> list[str]:
        bound = to_api_timestamp(stamp)
        pages = client.iter_thread_messages(sent_at_gte=bound, sent_at_lte=bound)
        return [str(m.get("message_handle")) for page in pages for m in page]

    return order


def walk_start_over_warehouse(
    cursor: datetime, messages_state: dict[str, Any], lag_seconds: float
) -> tuple[WarehouseThreads | None, datetime]:
    """Where `conversations`, walking on its own, starts so that the stored messages and its walk together
    hold every message of the threads it touches: its cursor, or earlier when `messages` is behind it.
    Without a `messages` table to read (never loaded, or dropped) the threads are re-read from the API."""
    last = (messages_state.get("incremental") or {}).get("date_updated", {}).get("last_value")
    if last is None:
        return None, cursor
    store = WarehouseThreads.of_current_pipeline()
    if store is None:
        return None, cursor
    covered = parse_timestamp(last)
    assert covered is not None
    return store, min(cursor, covered - timedelta(seconds=lag_seconds))

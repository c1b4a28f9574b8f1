"""The `conversations` table: one row per thread, derived from messages (the v2 API has no such resource).

A 1:1 thread is the messages sharing (line, counterpart) = (`sendblue_number`, `number`); a group thread is
the messages sharing `group_id`. Each row carries counts (all, inbound, outbound), first and last message
times (by `date_sent`) and the last message's handle, text (`last_message_preview`), direction and status.

How the rows stay right across incremental runs: a row is an aggregate over the whole thread, so a run that
sees only the new and edited messages cannot update it by addition (an edit changes no count but may change
the last message's status). So:
- a walk over all messages from the beginning folds every message into per-thread accumulators (one pass,
  no extra requests), and every thread is emitted;
- an incremental walk records which threads the new and edited messages touch (and keeps those messages);
  each touched thread is then rebuilt from the warehouse's `messages` table, which holds every message of
  every thread, with this walk's messages laid over it (see `warehouse.py`): no request per thread;
- where the warehouse cannot stand in (no destination, no `messages` table, or `messages_start_date` set,
  so the table lacks older history) each touched thread is re-read in full through the list's own thread
  filters (`group_id=`, or `number=` plus `sendblue_number=`), in creation order, and rebuilt from that.
The builder remembers the newest `date_updated` it has seen (and the handles carrying it) as its cursor, so it
knows which messages at the boundary it has already accounted for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from sources.common.runtime import gather_limited
from sources.sendblue.models import parse_timestamp


class ThreadReader(Protocol):
    def iter_thread_messages(self, **filters: Any) -> AsyncIterator[list[dict[str, Any]]]: ...


def thread_of(message: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(conversation_id, kind, line, counterpart) of a normalised message.

    The line is `sendblue_number`; the counterpart is `number` (to_number when outbound, from_number when
    inbound). Both fall back to from/to when a payload leaves them empty, which the spec allows.
    """
    group_id = message.get("group_id")
    outbound = bool(message.get("is_outbound"))
    line = message.get("sendblue_number") or (
        message.get("from_number") if outbound else message.get("to_number")
    )
    if group_id:
        return str(group_id), "group", line, None
    counterpart = message.get("number") or (
        message.get("to_number") if outbound else message.get("from_number")
    )
    return f"{line or ''}:{counterpart or ''}", "direct", line, counterpart


def conversation_id_of(message: dict[str, Any]) -> str:
    return thread_of(message)[0]


def _new_row(message: dict[str, Any]) -> dict[str, Any]:
    conversation_id, kind, line, counterpart = thread_of(message)
    return {
        "conversation_id": conversation_id,
        "kind": kind,
        "sendblue_number": line,
        "number": counterpart,
        "group_id": message.get("group_id") if kind == "group" else None,
        "group_display_name": None,
        "participants": [counterpart] if kind == "direct" and counterpart else None,
        "message_count": 0,
        "inbound_count": 0,
        "outbound_count": 0,
        "first_message_at": None,
        "last_message_at": None,
        "last_message_handle": None,
        "last_message_preview": None,
        "last_message_is_outbound": None,
        "last_message_status": None,
        "last_updated_at": None,
        "_tied": False,  # another message shares the last date_sent: creation order must decide
    }


def fold(
    rows_by_id: dict[str, dict[str, Any]], messages: list[dict[str, Any]], *, in_creation_order: bool
) -> None:
    """Add each message to its thread's accumulator (plain dicts: this runs once per message).

    The last message is the one with the latest `date_sent`; between messages sent in the same
    millisecond, the one created last. Creation time is not in the payload, only in the list's
    `order_by=createdAt` ordering: folding in that order settles ties as they come, otherwise a tie is
    flagged (`_tied`) so the thread is re-read in creation order.
    """
    for m in messages:
        conversation_id = thread_of(m)[0]
        row = rows_by_id.get(conversation_id)
        if row is None:
            row = rows_by_id[conversation_id] = _new_row(m)
        row["message_count"] += 1
        outbound = m.get("is_outbound")
        if outbound is True:
            row["outbound_count"] += 1
        elif outbound is False:
            row["inbound_count"] += 1
        sent = sent_at(m)
        updated = m.get("date_updated")
        if updated is not None and (row["last_updated_at"] is None or updated > row["last_updated_at"]):
            row["last_updated_at"] = updated
        if row["kind"] == "group" and row["participants"] is None and m.get("participants"):
            row["participants"] = list(m["participants"])
        if sent is None:
            continue
        if row["first_message_at"] is None or sent < row["first_message_at"]:
            row["first_message_at"] = sent
        last = row["last_message_at"]
        if last is not None and sent == last and not in_creation_order:
            row["_tied"] = True
        if last is None or sent > last or (sent == last and in_creation_order):
            if last is None or sent > last:
                row["_tied"] = False
            row["last_message_at"] = sent
            take_last(row, m)


def sent_at(m: dict[str, Any]) -> Any:
    """The time that orders a thread: `date_sent`, or `date_updated` when a payload lacks it."""
    return m.get("date_sent") or m.get("date_updated")


def take_last(row: dict[str, Any], m: dict[str, Any]) -> None:
    """Make `m` the thread's last message (its time is already `last_message_at`)."""
    row["last_message_handle"] = m.get("message_handle")
    row["last_message_preview"] = m.get("content")
    row["last_message_is_outbound"] = m.get("is_outbound")
    row["last_message_status"] = m.get("status")
    if row["kind"] == "group":
        # the newest message names the group as it is now
        row["group_display_name"] = m.get("group_display_name")
        if m.get("participants"):
            row["participants"] = list(m["participants"])


def finished_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def thread_filters(row: dict[str, Any]) -> dict[str, Any]:
    """The messages-list filters that return a thread (and possibly more: number= also matches groups)."""
    if row["kind"] == "group":
        return {"group_id": row["group_id"]}
    return {"number": row["number"] or None, "sendblue_number": row["sendblue_number"] or None}


class ConversationBuilder:
    """Folds or collects the messages of one walk, then produces the conversation rows to merge.

    `cursor` / `edge_handles` are what a previous run accounted for (None on a first run); `full=True`
    means the walk starts at the beginning of history, so folding alone gives complete threads.
    """

    def __init__(self, *, full: bool, cursor: datetime | None = None, edge_handles: list[str] | None = None):
        self.full = full
        # a walk from the beginning recounts everything, so it owes nothing to an earlier cursor
        self.cursor = None if full else cursor
        self.edge_handles = set() if full else set(edge_handles or ())
        self.rows_by_id: dict[str, dict[str, Any]] = {}
        self.touched: dict[str, dict[str, Any]] = {}  # conversation_id -> its key row (for the filters)
        self.walked: dict[str, dict[str, Any]] = {}  # incremental: this walk's messages by handle
        self.seen_max: datetime | None = self.cursor
        self.seen_max_handles: set[str] = set(self.edge_handles)
        self.messages_seen = 0
        self.threads_reread = 0  # re-read from the API
        self.threads_rebuilt = 0  # rebuilt from the warehouse
        self.tie_requests = 0

    def observe(self, page: list[dict[str, Any]]) -> None:
        fresh = []
        for m in page:
            updated = m.get("date_updated")
            handle = m.get("message_handle")
            if not self.full and updated == self.cursor and handle in self.edge_handles:
                continue  # accounted for by the previous run
            fresh.append(m)
            if updated is not None:
                if self.seen_max is None or updated > self.seen_max:
                    self.seen_max, self.seen_max_handles = updated, {handle} if handle else set()
                elif updated == self.seen_max and handle:
                    self.seen_max_handles.add(handle)
        self.messages_seen += len(fresh)
        if self.full:
            fold(self.rows_by_id, fresh, in_creation_order=False)
        else:
            for m in page:
                if m.get("message_handle"):
                    m.setdefault("conversation_id", conversation_id_of(m))
                    self.walked[m["message_handle"]] = m
            for m in fresh:
                conversation_id = conversation_id_of(m)
                if conversation_id not in self.touched:
                    self.touched[conversation_id] = _new_row(m)

    async def rows(self, client: ThreadReader, concurrency: int) -> list[dict[str, Any]]:
        """The finished rows: folded ones, plus the threads that need a re-read (touched by an
        incremental walk, or with a tie on the last date_sent) rebuilt from all their messages."""
        out: list[dict[str, Any]] = []
        if self.full:
            targets = {cid: row for cid, row in self.rows_by_id.items() if row["_tied"]}
            out = [finished_row(row) for cid, row in self.rows_by_id.items() if cid not in targets]
        else:
            targets = self.touched

        async def reread(item: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
            conversation_id, key_row = item
            acc: dict[str, dict[str, Any]] = {}
            async for page in client.iter_thread_messages(**thread_filters(key_row)):
                fold(
                    acc, [m for m in page if conversation_id_of(m) == conversation_id], in_creation_order=True
                )
            row = acc.get(conversation_id)
            return finished_row(row) if row else None

        async for _item, result in gather_limited(list(targets.items()), reread, concurrency):
            if isinstance(result, BaseException):
                raise result
            self.threads_reread += 1
            if result is not None:
                out.append(result)
        return out

    def state(self) -> dict[str, Any]:
        """The cursor to store for the next run."""
        return {
            "cursor": self.seen_max.isoformat() if self.seen_max else None,
            "edge_handles": sorted(self.seen_max_handles),
        }

    @staticmethod
    def from_state(state: dict[str, Any], *, full: bool) -> ConversationBuilder:
        cursor = parse_timestamp(state.get("cursor")) if state.get("cursor") else None
        return ConversationBuilder(
            full=full, cursor=cursor, edge_handles=list(state.get("edge_handles") or ())
        )

"""Incremental Sendblue runs cost what changed: the conversations of touched threads are rebuilt from the
warehouse's messages table, never re-read thread by thread, and come out exactly as a full load's."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import dlt
import pytest

from sandbox.sendblue.timestamps import iso_ms

MESSAGES = "/api/v2/messages"
POSTGRES_DSN = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES_DSN", "postgresql://postgres:trust@127.0.0.1:5432/test"
)


class Destination:
    """One dataset on DuckDB (a file under tmp_path) or on the Postgres test server; fresh per name."""

    def __init__(self, kind: str, root: Path):
        self.kind = kind
        self.root = root
        self.datasets: list[str] = []

    def pipeline(self, name: str) -> dlt.Pipeline:
        if self.kind == "duckdb":
            destination: Any = dlt.destinations.duckdb(str(self.root / f"{name}.duckdb"))
            dataset = "sendblue"
        else:
            destination = dlt.destinations.postgres(POSTGRES_DSN)
            dataset = f"sbinc_{uuid.uuid4().hex[:8]}_{name}"
        self.datasets.append(dataset)
        return dlt.pipeline(
            pipeline_name=f"sendblue_{name}",
            destination=destination,
            dataset_name=dataset,
            pipelines_dir=str(self.root / "pipelines"),
        )

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        import psycopg2

        with psycopg2.connect(POSTGRES_DSN, connect_timeout=5) as con, con.cursor() as cur:
            for dataset in self.datasets:
                cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE')


def conversation_rows(pipeline: dlt.Pipeline) -> dict[str, dict[str, Any]]:
    """Every row of `conversations` without dlt's bookkeeping columns, by conversation_id."""
    with pipeline.sql_client() as client:
        with client.execute_query(
            f"SELECT * FROM {client.make_qualified_table_name('conversations')}"
        ) as cur:
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {r["conversation_id"]: {k: v for k, v in r.items() if not k.startswith("_dlt")} for r in rows}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def destination(request: Any, tmp_path: Path) -> Any:
    if request.param == "postgres":
        try:
            import psycopg2

            psycopg2.connect(POSTGRES_DSN, connect_timeout=5).close()
        except Exception as exc:
            message = f"Postgres at 127.0.0.1:5432 is unreachable ({type(exc).__name__})"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    dest = Destination(request.param, tmp_path)
    yield dest
    dest.drop()


def thread_key(m: dict[str, Any]) -> str:
    return m["group_id"] if m["message_type"] == "group" else f"{m['sendblue_number']}:{m['number']}"


def per_thread(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.param("number") or r.param("group_id")]


def test_incremental_run_reads_only_what_changed_and_equals_a_full_load(
    sandbox_factory: Any, destination: Any
) -> None:
    sandbox = sandbox_factory("small", seed=2)
    state = sandbox.state
    a = destination.pipeline("a")
    a.run(sandbox.source().with_resources("messages", "conversations"))

    change = state.mutate(new_messages=150, edited_messages=80, seed=5)
    changed = set(change["new_messages"]) | set(change["edited_messages"])
    with state.lock:
        threads = {thread_key(state.messages[h]) for h in changed}
    state.log.clear()
    a.run(sandbox.source().with_resources("messages", "conversations"))
    asked = sandbox.requests(MESSAGES)
    assert len(changed) == 230 and len(threads) > 50
    assert len(asked) <= math.ceil(len(changed) / 100) + 2
    assert not per_thread(asked)

    b = destination.pipeline("b")
    b.run(sandbox.source().with_resources("messages", "conversations"))
    incremental, full = conversation_rows(a), conversation_rows(b)
    assert len(full) == len(state.conversations())
    assert incremental == full


def edit_message(state: Any, handle: str, **fields: Any) -> None:
    """Change a served message as Sendblue does: date_updated moves to now."""
    with state.lock:
        message = state.messages[handle]
        message.update(fields)
        message["date_updated"] = iso_ms(state._now_ms())
        state._messages_version += 1  # the simulator caches its sorted views per version


def tie_pair(state: Any, thread: str) -> tuple[str, str, str]:
    """(last, earlier, other): the thread's last message, one created before it, and a third message."""
    with state.lock:
        handles = sorted(
            (h for h, m in state.messages.items() if thread_key(m) == thread),
            key=lambda h: state.message_created[h],
        )
        last = next(
            h
            for key, t in state.conversations().items()
            if (key if isinstance(key, str) else f"{key[0]}:{key[1]}") == thread
            for h in [t["last_message_handle"]]
        )
    earlier = [h for h in handles if state.message_created[h] < state.message_created[last]]
    return last, earlier[-1], earlier[0]


def test_ties_on_the_last_message_are_settled_without_thread_requests(
    sandbox_factory: Any, warehouse: Any, truth: Any, tmp_path: Path
) -> None:
    """Two messages of a thread sent in the same millisecond: the one created last is the thread's last
    message. A tie the previous run settled is kept without a request; a tie among messages this run
    brought costs one request for that millisecond, not a thread re-read."""
    sandbox = sandbox_factory("small", seed=3, messages=600)
    state = sandbox.state
    with state.lock:
        sizes: dict[str, int] = {}
        for m in state.messages.values():
            if m["message_type"] == "message":
                sizes[thread_key(m)] = sizes.get(thread_key(m), 0) + 1
    t1, t2 = [t for t, n in sorted(sizes.items()) if n >= 4][:2]

    # before the first load: in t1, an earlier message is sent in the same millisecond as the last one,
    # and the last one is edited after it, so a walk by date_updated meets the wrong one first
    last1, earlier1, other1 = tie_pair(state, t1)
    edit_message(state, earlier1, date_sent=state.messages[last1]["date_sent"])
    edit_message(state, last1, status="DELIVERED")
    warehouse.run(sandbox.source().with_resources("messages", "conversations"))
    truth.conversations(sandbox, warehouse)

    # t1 is touched by an unrelated edit (its tie is the one already settled); t2 gets a fresh tie
    edit_message(state, other1, status="DELIVERED")
    last2, earlier2, _ = tie_pair(state, t2)
    stamp = state.messages[last2]["date_sent"]
    edit_message(state, earlier2, date_sent=stamp)
    edit_message(state, last2, status="DELIVERED")
    state.log.clear()
    warehouse.run(sandbox.source().with_resources("messages", "conversations"))

    truth.messages(sandbox, warehouse)
    truth.conversations(sandbox, warehouse)
    asked = sandbox.requests(MESSAGES)
    assert not per_thread(asked)
    ties = [r for r in asked if r.param("sent_at_gte")]
    assert [(r.param("sent_at_gte"), r.param("sent_at_lte"), r.param("order_by")) for r in ties] == [
        (stamp, stamp, "createdAt")
    ]
    assert len(asked) <= math.ceil(4 / 100) + 2

    (tmp_path / "full").mkdir()
    fresh = type(warehouse)(tmp_path / "full")
    fresh.run(sandbox.source().with_resources("messages", "conversations"))
    assert conversation_rows(warehouse.pipeline) == conversation_rows(fresh.pipeline)


def test_conversations_alone_catch_up_over_a_messages_table_behind_them(
    sandbox_factory: Any, warehouse: Any, truth: Any
) -> None:
    """`--resources conversations` runs while `messages` stays behind: each walks from the older of the
    two cursors, so the stored messages and the walk together still hold every message of a thread."""
    sandbox = sandbox_factory("small", seed=5, messages=800)
    state = sandbox.state
    warehouse.run(sandbox.source().with_resources("messages", "conversations"))
    for seed in (1, 2):
        state.mutate(new_messages=30, edited_messages=15, seed=seed)
        state.log.clear()
        warehouse.run(sandbox.source().with_resources("conversations"))
        truth.conversations(sandbox, warehouse)
        assert not per_thread(sandbox.requests(MESSAGES))
    state.mutate(new_messages=20, edited_messages=10, seed=3)
    warehouse.run(sandbox.source().with_resources("messages"))
    state.mutate(new_messages=20, edited_messages=10, seed=4)
    state.log.clear()
    warehouse.run(sandbox.source().with_resources("conversations"))
    truth.conversations(sandbox, warehouse)
    assert not per_thread(sandbox.requests(MESSAGES))


def test_full_refresh_of_conversations_alone_rebuilds_them_from_one_walk(
    sandbox_factory: Any, warehouse: Any, truth: Any
) -> None:
    sandbox = sandbox_factory("small", seed=6, messages=500)
    state = sandbox.state
    warehouse.run(sandbox.source().with_resources("messages", "conversations"))
    state.mutate(new_messages=25, edited_messages=10, seed=1)
    state.log.clear()
    warehouse.pipeline.run(sandbox.source().with_resources("conversations"), refresh="drop_resources")
    truth.conversations(sandbox, warehouse)
    walk = sandbox.requests(MESSAGES)
    assert walk[0].param("updated_at_gte") is None  # from the beginning, as a first run
    assert not per_thread(walk)

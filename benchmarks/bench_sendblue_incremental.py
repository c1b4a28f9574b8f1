"""What an incremental Sendblue run costs: a full load, a batch of changes, then the incremental load.

    .venv/bin/python benchmarks/bench_sendblue_incremental.py --size medium --new 500 --edited 250

The simulator runs in-process (httpx.ASGITransport, no rate limit on either side, so nothing waits) and
its request log gives the counts: message-list requests of the full load, then of the incremental run,
split into the walk over what changed (`updated_at_gte`), per-thread reads (`number=` / `group_id=`) and
tie reads (`sent_at_gte`), against the target of ceil(N/100) + 2 for N changed messages. With --verify the
incremental `conversations` table is compared row by row with a fresh full load's.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import dlt
import duckdb
import httpx

from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY, create_app
from sources.sendblue import SendblueSettings, sendblue_source

MESSAGES = "/api/v2/messages"
UNLIMITED = 1_000_000


def thread_of(m: dict[str, Any]) -> str:
    return m["group_id"] if m["message_type"] == "group" else f"{m['sendblue_number']}:{m['number']}"


def conversations(path: Path) -> dict[str, tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute("SELECT * FROM sendblue.conversations")
        names = [d[0] for d in cur.description]
        keep = [i for i, n in enumerate(names) if not n.startswith("_dlt")]
        return {row[names.index("conversation_id")]: tuple(row[i] for i in keep) for row in cur.fetchall()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new", type=int, default=500, help="new messages between the two runs")
    parser.add_argument("--edited", type=int, default=250, help="edited messages between the two runs")
    parser.add_argument("--verify", action="store_true", help="compare with a fresh full load")
    args = parser.parse_args()

    started = time.monotonic()
    app = create_app(args.size, args.seed, messages_rate_limit=UNLIMITED)
    state = app.state.sandbox
    transport = httpx.ASGITransport(app=app)
    settings = SendblueSettings(
        base_url="http://127.0.0.1",
        api_key_id=API_KEY_ID,
        api_secret_key=API_SECRET_KEY,
        messages_rate_limit=UNLIMITED,
        rate_limit_per_minute=0,
        concurrency=8,
    )
    print(f"simulator ({args.size}, {len(state.messages):,} messages) ready in {time.monotonic() - started:.1f}s")

    def run(work: Path, name: str) -> tuple[int, float]:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{name}",
            destination=dlt.destinations.duckdb(str(work / f"{name}.duckdb")),
            dataset_name="sendblue",
            pipelines_dir=str(work / "pipelines"),
        )
        state.log.clear()
        began = time.monotonic()
        source = sendblue_source(settings=settings, transport=transport)
        pipeline.run(source.with_resources("messages", "conversations"), loader_file_format="parquet")
        return len(state.log.matching(route=MESSAGES, method="GET")), time.monotonic() - began

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        full, full_s = run(work, "a")
        print(f"full load: {full} message-list requests ({full_s:.1f}s)")

        change = state.mutate(new_messages=args.new, edited_messages=args.edited, seed=args.seed)
        changed = set(change["new_messages"]) | set(change["edited_messages"])
        with state.lock:
            threads = {thread_of(state.messages[h]) for h in changed}
        incremental, inc_s = run(work, "a")
        asked = state.log.matching(route=MESSAGES, method="GET")
        per_thread = [r for r in asked if r.param("number") or r.param("group_id")]
        ties = [r for r in asked if r.param("sent_at_gte")]
        walk = len(asked) - len(per_thread) - len(ties)
        print(
            f"incremental after {len(changed)} changed messages in {len(threads)} threads: {incremental} "
            f"message-list requests ({walk} walk, {len(per_thread)} per-thread, {len(ties)} tie reads; "
            f"target <= {math.ceil(len(changed) / 100) + 2}) ({inc_s:.1f}s)"
        )
        if args.verify:
            run(work, "b")
            same = conversations(work / "a.duckdb") == conversations(work / "b.duckdb")
            print(f"conversations after the incremental run equal a fresh full load's: {same}")


if __name__ == "__main__":
    main()

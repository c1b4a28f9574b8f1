"""Incremental state survives an ephemeral worker: with the local pipelines dir deleted, the next run
restores the state from the destination (stable pipeline names and datasets) and reads only changes."""

from __future__ import annotations

import io
import re
import shutil

from pipelines.load import load


def test_state_is_restored_from_the_warehouse_after_the_pipelines_dir_is_lost(
    sandboxes, config, workdir, db
) -> None:
    pipelines_dir = workdir / "pipelines"
    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state
    first = load("all", pipelines_dir=str(pipelines_dir), progress_stream=io.StringIO())
    assert first.ok, first.failure_message()
    conversations_before = len(cw.conversations)

    shutil.rmtree(pipelines_dir)  # the worker is gone; only the warehouse remains
    cw_changes = cw.mutate(
        new_contacts=0, edited_contacts=0, deleted_contacts=0, new_conversations=2, edited_conversations=3,
        new_messages=15,
    )  # fmt: skip
    sb_changes = sb.mutate(
        new_contacts=0, edited_contacts=0, deleted_contacts=0, new_messages=12, edited_messages=4
    )
    cw.log.clear()
    sb.log.clear()

    second = load("all", pipelines_dir=str(pipelines_dir), progress_stream=io.StringIO())
    assert second.ok, second.failure_message()

    # Chatwoot: conversations from an updated_within window (no fresh full walk), messages read after the
    # last id loaded, only for the conversations that changed
    listings = cw.log.matching(route="/api/v1/accounts/{account_id}/conversations", method="GET")
    assert listings and all(entry.param("updated_within") for entry in listings)
    message_reads = cw.log.matching(route="/api/v1/accounts/{account_id}/conversations/{id}/messages")
    read_conversations = {int(re.search(r"/conversations/(\d+)/", e.path).group(1)) for e in message_reads}
    touched = set(cw_changes["touched_conversations"]) | set(cw_changes["new_conversations"])
    assert read_conversations and read_conversations <= touched
    assert len(read_conversations) < conversations_before
    for entry in message_reads:
        conversation = int(re.search(r"/conversations/(\d+)/", entry.path).group(1))
        if conversation not in cw_changes["new_conversations"]:
            assert int(entry.param("after") or 0) > 0, "message cursor not restored"

    # Sendblue: messages read from the restored date_updated cursor, not from the beginning
    # (requests filtered by `number` or `group_id` re-read the touched threads for their counts)
    message_lists = sb.log.matching(route="/api/v2/messages", method="GET")
    walk = [e for e in message_lists if not (e.param("number") or e.param("group_id"))]
    assert walk and all(entry.param("updated_at_gte") for entry in walk)
    assert second.loads[1].rows["messages"] == len(
        set(sb_changes["new_messages"]) | set(sb_changes["edited_messages"])
    )

    # and the warehouse now equals the simulators
    duckdb_file = workdir / "switchboard.duckdb"
    with cw.lock, sb.lock:
        expected = {
            "chatwoot.messages": cw.message_count(),
            "chatwoot.conversations": len(cw.conversations),
            "sendblue.messages": len(sb.messages),
            "sendblue.conversations": len(sb.conversations()),
        }
    for table, count in expected.items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {table}") == [(count,)], table

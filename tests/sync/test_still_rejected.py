"""Rows rejected again without having changed are "still rejected", and rows the API refuses again
unchanged with the same answer "still failed": reported every run (a failed row is retried every run),
but they make a run partial only the first time (or always with --strict); a dry run's exit status says
the same as the real run's would; the plan prints each sampled rejected key next to its own reason."""

from __future__ import annotations

import re

from pipelines.sync import run_sync

COLUMNS = {"phone": "VARCHAR", "first_name": "VARCHAR"}
# rejected for reasons that name them, in an order that is not their sorted order
BAD = [("zz-not-a-phone", "Z"), ("555-0199", "Local"), ("12345", "Short"), ("+1", "Bare"), ("000", "Zeros")]


# possible (a US number of the right length) but in an area code no carrier is assigned: the simulator
# refuses it with 400 "Invalid phone number", as Sendblue does
UNASSIGNED = "+19995551234"


def rejects_block(printed: str, label: str) -> tuple[list[str], list[str]]:
    """(the sampled keys after `e.g.`, the keys of the reason lines that follow) of one rejects line."""
    lines = printed.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(label))
    sample = lines[at].split("e.g. ", 1)[1].split(", ") if "e.g. " in lines[at] else []
    reasons = []
    for line in lines[at + 1 :]:
        if not line.startswith("               "):
            break
        reasons.append(line.strip().split(": ", 1)[0])
    return sample, reasons


def test_rows_rejected_again_unchanged_do_not_make_the_run_partial_again(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    good = h.new_phones(2, start=700)
    h.write_table("crm.people", COLUMNS, [(good[0], "Ok"), *BAD[:3], (good[1], "Ok")])
    env.sync("people", target="sendblue.contacts", table="crm.people")

    first = run_sync("people", out=lambda _: None)
    assert (first.status, first.exit_code) == ("partial", 2)
    assert first.counts["rejected"] == 3 and first.counts["still_rejected"] == 0 and first.counts["created"] == 2
    sent = len(h.writes(sendblue_box))

    printed: list[str] = []
    second = run_sync("people", out=printed.append)
    assert (second.status, second.exit_code) == ("success", 0), "\n".join(printed)
    assert second.counts["rejected"] == 3 and second.counts["still_rejected"] == 3
    text = "\n".join(printed)
    assert re.search(r"rejects\s+0\n", text) and "still rejected (3)" in text
    # every run still logs each reject with its reason
    runs = h.query("SELECT run_id, status, rejected FROM reverse_etl.sync_runs ORDER BY started_at")
    assert [(r["status"], r["rejected"]) for r in runs] == [("partial", 3), ("success", 3)]
    logged = [r for r in h.sync_log("people") if r["run_id"] == runs[1]["run_id"] and r["outcome"] == "rejected"]
    assert sorted(r["record_key"] for r in logged) == sorted(key for key, _ in BAD[:3])

    # one bad row changes (still bad), one new bad row: those two are new rejects, the run is partial
    h.write_table(
        "crm.people", COLUMNS, [(good[0], "Ok"), BAD[0], BAD[1], ("12345", "Short, renamed"), BAD[3], (good[1], "Ok")]
    )
    printed.clear()
    third = run_sync("people", out=printed.append)
    assert (third.status, third.exit_code) == ("partial", 2)
    assert third.counts["rejected"] == 4 and third.counts["still_rejected"] == 2
    assert re.search(r"rejects\s+2  e\.g\. \+1, 12345\n", "\n".join(printed))
    assert "still rejected (2)  e.g. 555-0199, zz-not-a-phone" in "\n".join(printed)

    # unchanged again: exit 0 from the command line; --strict keeps every reject a failure
    cli = env.run_module("people")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "still rejected (4)" in cli.stdout and cli.stderr == ""
    strict = env.run_module("people", "--strict")
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert strict.stderr.strip() == (
        "error: sync people ended partial (4 still rejected); see reverse_etl.sync_log for each row"
    )
    assert len(h.writes(sendblue_box)) == sent, "nothing was sent after the first run"


def test_a_dry_run_with_rejects_exits_as_the_real_run_would(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    [good] = h.new_phones(1, start=720)
    h.write_table("crm.dry", COLUMNS, [(good, "Ok"), BAD[2]])
    env.sync("dry", target="sendblue.contacts", table="crm.dry")

    dry = run_sync("dry", dry_run=True, out=lambda _: None)
    assert (dry.status, dry.exit_code) == ("dry_run", 2)
    cli = env.run_module("dry", "--dry-run")
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert cli.stderr.strip() == (
        "error: dry run of sync dry: the run would end partial (1 rejected); the plan shows the reasons"
    )
    assert "dry run: nothing sent (1 rows would be sent)" in cli.stdout
    assert h.writes(sendblue_box) == []

    assert run_sync("dry", out=lambda _: None).exit_code == 2  # the real run: partial, as announced
    again = env.run_module("dry", "--dry-run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "still rejected (1)" in again.stdout
    assert env.run_module("dry", "--dry-run", "--strict").returncode == 2
    # no rejects at all: a dry run exits 0
    h.write_table("crm.dry", COLUMNS, [(good, "Ok")])
    assert run_sync("dry", dry_run=True, out=lambda _: None).exit_code == 0


def test_the_plan_pairs_each_sampled_rejected_key_with_its_reason(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    dup = h.new_phones(1, start=740)[0]
    h.write_table("crm.many", COLUMNS, [*BAD, (dup, "One"), (dup, "Two")])
    env.sync("many", target="sendblue.contacts", table="crm.many")

    printed: list[str] = []
    result = run_sync("many", dry_run=True, out=printed.append)

    text = "\n".join(printed)
    sample, reasons = rejects_block(text, "rejects")
    assert len(sample) == 3 and sample == sorted(sample)
    assert reasons == sample, text
    for key in sample:
        [line] = [line for line in text.splitlines() if line.strip().startswith(f"{key}: ")]
        reason = line.strip().split(": ", 1)[1]
        expected = {r.reason for r in result.plan.rejects if r.key == key} if result.plan else set()
        assert reason in expected, (key, reason, expected)


def test_rows_the_api_refuses_again_unchanged_do_not_make_the_run_partial_again(sendblue_box, make_env, h) -> None:
    env = make_env(sendblue=sendblue_box)
    [good] = h.new_phones(1, start=760)
    h.write_table("crm.refused", COLUMNS, [(good, "Ok"), (UNASSIGNED, "New area code")])
    env.sync("refused", target="sendblue.contacts", table="crm.refused")

    first = env.run_module("refused")
    assert first.returncode == 2, first.stdout + first.stderr
    assert first.stderr.strip() == "error: sync refused ended partial (1 failed); see reverse_etl.sync_log for each row"

    # retried (a failed row always is), refused again with the same answer: still failed, exit 0
    sendblue_box.state.log.clear()
    second = env.run_module("refused")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "still failed (1)" in second.stdout and second.stderr == ""
    assert any(UNASSIGNED in str(e.body) for e in h.writes(sendblue_box)), "the failed row was sent again"
    strict = env.run_module("refused", "--strict")
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert "(1 still failed)" in strict.stderr

    # the row changes and is refused again: a new failure
    h.write_table("crm.refused", COLUMNS, [(good, "Ok"), (UNASSIGNED, "Renamed")])
    assert env.run_module("refused").returncode == 2

"""`switchboard load` and `switchboard sql` against both simulators, into a DuckDB file in tmp."""

from __future__ import annotations

import json
import re

import duckdb

from sandbox.chatwoot import views as chatwoot_views

CHATWOOT_TABLES = {
    "contacts", "contact_labels", "labels", "inboxes", "agents", "teams", "conversations", "messages"
}
SENDBLUE_TABLES = {"contacts", "contact_tags", "messages", "conversations"}


def _truth(sandboxes) -> dict[tuple[str, str], int]:
    cw, sb = sandboxes.chatwoot.state, sandboxes.sendblue.state
    with cw.lock, sb.lock:
        return {
            ("chatwoot", "contacts"): len(cw.visible_contacts()),
            ("chatwoot", "contact_labels"): len(cw.contact_labels()),
            ("chatwoot", "labels"): len(cw.account_labels()),
            ("chatwoot", "inboxes"): len(cw.inboxes),
            ("chatwoot", "agents"): len(cw.agents),
            ("chatwoot", "teams"): len(chatwoot_views.TEAMS),
            ("chatwoot", "conversations"): len(cw.conversations),
            ("chatwoot", "messages"): cw.message_count(),
            ("sendblue", "contacts"): len(sb.contacts),
            ("sendblue", "contact_tags"): len(sb.contact_tags()),
            ("sendblue", "messages"): len(sb.messages),
            ("sendblue", "conversations"): len(sb.conversations()),
        }


def _summary_rows(stdout: str) -> dict[tuple[str, str], int]:
    """(source, table) -> rows loaded, read from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(chatwoot|sendblue)\s+(\w+)\s+(\d+)", line.strip())
        if match:
            rows[(match.group(1), match.group(2))] = int(match.group(3))
    return rows


def test_load_all_prints_progress_and_a_summary_equal_to_the_data(
    sandboxes, config, switchboard, workdir, db
) -> None:
    duckdb_file = workdir / "switchboard.duckdb"
    result = switchboard(
        "load", "all", "--pipelines-dir", str(workdir / "pipelines"), env=config, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    truth = _truth(sandboxes)
    assert _summary_rows(result.stdout) == truth
    # where the data is, the views, the time
    # the pipeline (the key of the incremental state) is named after the (account, warehouse, dataset) pair
    assert re.search(
        rf"data in DuckDB file {re.escape(str(duckdb_file))}, dataset chatwoot \(pipeline switchboard_chatwoot_[0-9a-f]{{8}}\)",
        result.stdout,
    )
    assert re.search(r"dataset sendblue \(pipeline switchboard_sendblue_[0-9a-f]{8}\)", result.stdout)
    assert "views: analytics.contacts_unified, analytics.conversation_activity" in result.stdout
    assert re.search(r"^elapsed: \d+\.\d+s$", result.stdout, re.M)
    assert re.search(r"^chatwoot: [\d.]+s, \d+ Chatwoot requests;", result.stdout, re.M)
    # stderr is not a terminal: plain lines (no redraws), one per step and source, with pages/rows
    assert "\r" not in result.stderr
    # each source starts with the pair it serves (account -> warehouse, dataset), then one line per step
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        f"chatwoot: account 1 at {sandboxes.chatwoot.url} -> DuckDB file {duckdb_file}, dataset chatwoot"
    )
    assert re.fullmatch(
        rf"sendblue: API key #[0-9a-f]{{8}} at {sandboxes.sendblue.url} -> DuckDB file {re.escape(str(duckdb_file))}, dataset sendblue",
        lines[4],
    )
    assert sandboxes.credentials["sendblue_api_key_id"] not in result.stderr + result.stdout
    progress = lines[1:4] + lines[5:]
    assert [line.split()[:2] for line in progress] == [
        [source, step] for source in ("chatwoot", "sendblue") for step in ("extract", "normalize", "load")
    ]
    assert f"contacts 13p/{truth[('chatwoot', 'contacts')]}r" in progress[0]
    assert re.search(r"Chatwoot \d+ requests", progress[0])
    # the warehouse holds exactly that
    for (source, table), count in truth.items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {source}.{table}") == [(count,)], (source, table)
    assert db.tables(duckdb_file, "analytics") == {"contacts_unified", "conversation_activity"}

    # a second run: incremental tables bring nothing new, full-walk tables reload their rows
    again = switchboard("load", "all", "--pipelines-dir", str(workdir / "pipelines"), env=config, cwd=workdir)
    assert again.returncode == 0, again.stderr
    second = _summary_rows(again.stdout)
    assert second[("chatwoot", "messages")] == 0 and second[("sendblue", "messages")] == 0
    assert second[("chatwoot", "conversations")] == 0
    assert second[("chatwoot", "contacts")] == truth[("chatwoot", "contacts")]
    for (source, table), count in truth.items():
        assert db.query(duckdb_file, f"SELECT COUNT(*) FROM {source}.{table}") == [(count,)], (source, table)


def test_resources_limit_what_is_loaded(sandboxes, config, cli, workdir, db) -> None:
    result = cli("load", "chatwoot", "--resources", "labels,inboxes", "--pipelines-dir", str(workdir / "p"))
    assert result.exit_code == 0, result.output
    assert db.tables(workdir / "switchboard.duckdb", "chatwoot") == {"labels", "inboxes"}
    assert set(_summary_rows(result.stdout)) == {("chatwoot", "labels"), ("chatwoot", "inboxes")}
    # only one source's tables are there, so no views
    assert (
        "analytics views need both sources loaded; missing chatwoot.contacts, sendblue.contacts"
        in result.stdout
    )


def test_resources_across_both_sources_and_a_dataset_prefix(sandboxes, config, cli, workdir, db) -> None:
    result = cli(
        "load", "all", "--resources", "contacts,contact_labels,contact_tags", "--dataset", "crm",
        "--pipelines-dir", str(workdir / "p"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    duckdb_file = workdir / "switchboard.duckdb"
    assert db.tables(duckdb_file, "crm_chatwoot") == {"contacts", "contact_labels"}
    assert db.tables(duckdb_file, "crm_sendblue") == {"contacts", "contact_tags"}
    assert db.tables(duckdb_file, "crm_analytics") == {"contacts_unified"}
    assert re.search(r"dataset crm_chatwoot \(pipeline switchboard_chatwoot_[0-9a-f]{8}\)", result.stdout)
    truth = _truth(sandboxes)
    with sandboxes.chatwoot.state.lock, sandboxes.sendblue.state.lock:
        chatwoot_phones = {c.get("phone_number") for c in sandboxes.chatwoot.state.visible_contacts()}
        in_both = len(chatwoot_phones & set(sandboxes.sendblue.state.contacts))
    assert in_both > 0  # the sandbox's people in both APIs
    # one row per person: a phone in both APIs is one row
    people = truth[("chatwoot", "contacts")] + truth[("sendblue", "contacts")] - in_both
    assert db.query(duckdb_file, "SELECT COUNT(*) FROM crm_analytics.contacts_unified") == [(people,)]


def test_unknown_resource_and_destination_are_one_line_errors(config, cli) -> None:
    result = cli("load", "chatwoot", "--resources", "tickets")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: chatwoot has no resource tickets; its resources are "
        "agents, contact_labels, contacts, conversations, inboxes, labels, messages, teams"
    )
    result = cli("load", "all", "--resources", "tickets")
    assert result.stderr.strip() == "error: no source has a resource named tickets"
    result = cli("load", "sendblue", "--destination", "nosuchwarehouse")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unknown destination 'nosuchwarehouse': use duckdb (the default), postgres, or another dlt "
        "destination such as bigquery, snowflake or motherduck"
    )


def test_a_failing_resource_is_named_and_exits_1(sandboxes, config, cli, workdir, monkeypatch) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__MAX_RETRIES", "0")
    state = sandboxes.chatwoot.state
    state.schedule("500", path_contains="/messages", count=10_000)
    try:
        result = cli(
            "load", "chatwoot", "--resources", "conversations,messages", "--pipelines-dir", str(workdir / "p")
        )
    finally:
        with state.lock:
            state.scheduled.clear()
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: load chatwoot failed (resource messages): ")
    assert "500" in error
    assert "chatwoot: FAILED in resource messages" in result.stdout


def test_full_refresh_reloads_everything_once(sandboxes, config, cli, workdir, db) -> None:
    args = [
        "load",
        "chatwoot",
        "--resources",
        "conversations,messages",
        "--pipelines-dir",
        str(workdir / "p"),
    ]
    assert cli(*args).exit_code == 0
    second = cli(*args)
    assert _summary_rows(second.stdout)[("chatwoot", "messages")] == 0
    refreshed = cli(*args, "--full-refresh")
    assert refreshed.exit_code == 0, refreshed.output
    truth = _truth(sandboxes)
    assert _summary_rows(refreshed.stdout)[("chatwoot", "messages")] == truth[("chatwoot", "messages")]
    duckdb_file = workdir / "switchboard.duckdb"
    assert db.query(duckdb_file, "SELECT COUNT(*) FROM chatwoot.messages") == [
        (truth[("chatwoot", "messages")],)
    ]


def test_sql_prints_table_csv_and_json(sandboxes, config, cli, workdir) -> None:
    assert (
        cli("load", "chatwoot", "--resources", "labels", "--pipelines-dir", str(workdir / "p")).exit_code == 0
    )
    titles = sorted(label["title"] for label in sandboxes.chatwoot.state.account_labels())
    sql = "SELECT title, show_on_sidebar FROM chatwoot.labels ORDER BY title"

    table = cli("sql", sql)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["title", "show_on_sidebar"]
    assert [line.split()[0] for line in lines[2:-1]] == titles
    assert lines[-1] == f"({len(titles)} rows)"

    csv_out = cli("sql", sql, "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "title,show_on_sidebar"
    assert [line.split(",")[0] for line in csv_out[1:]] == titles

    rows = json.loads(cli("sql", sql, "--format", "json").stdout)
    assert [r["title"] for r in rows] == titles
    assert all(isinstance(r["show_on_sidebar"], bool) for r in rows)


def test_sql_errors_are_one_line(config, cli, workdir) -> None:
    duckdb.connect(str(workdir / "switchboard.duckdb")).close()  # `sql` never creates the warehouse
    result = cli("sql", "SELECT * FROM chatwoot.nothing_here")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nothing_here" in lines[0]
    result = cli("sql", "SELECT 1", "--format", "xml")
    assert result.stderr.strip() == "error: unknown format 'xml': choose table, csv, json"


def test_without_configured_path_the_data_lands_in_switchboard_duckdb_of_the_working_dir(
    sandboxes, config, switchboard, workdir, db
) -> None:
    """No `.dlt/` and no DESTINATION__DUCKDB__CREDENTIALS: SPEC's default file in the working directory,
    even when a pipeline of the same name last ran from another directory (its path is remembered)."""
    env = {k: v for k, v in config.items() if k != "DESTINATION__DUCKDB__CREDENTIALS"}
    pipelines = str(workdir / "pipelines")
    elsewhere, here = workdir / "elsewhere", workdir / "here"
    elsewhere.mkdir()
    here.mkdir()
    first = switchboard("load", "sendblue", "--pipelines-dir", pipelines, env=env, cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in elsewhere.glob("*.duckdb")) == ["switchboard.duckdb"]

    second = switchboard("load", "sendblue", "--full-refresh", "--pipelines-dir", pipelines, env=env, cwd=here)
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in here.glob("*.duckdb")) == ["switchboard.duckdb"]
    assert f"data in DuckDB file {here / 'switchboard.duckdb'}" in second.stdout
    contacts = len(sandboxes.sendblue.state.contacts)
    assert db.query(here / "switchboard.duckdb", "SELECT COUNT(*) FROM sendblue.contacts") == [(contacts,)]

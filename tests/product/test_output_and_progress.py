"""Table rendering, progress lines and error wording, exercised through real dlt runs (no sandbox needed)."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import dlt
import pytest

from pipelines.errors import CliError, describe, redact
from pipelines.progress import LoadProgress
from pipelines.tables import render_csv, render_json, render_table


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = render_table(["name", "rows"], [["contacts", 190], ["contact_labels", 7]])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "rows"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    # numbers end in the same column, names start in the same column
    assert lines[2].index("190") + 3 == lines[3].index("7") + 1
    assert lines[2].startswith("contacts ") and lines[3].startswith("contact_labels")
    assert lines[-1] == "(2 rows)"


def test_table_shows_nulls_lists_and_cuts_long_cells() -> None:
    text = render_table(["a", "b", "c"], [[None, ["x", "y"], "z" * 100]])
    row = text.splitlines()[2]
    assert "NULL" in row and '["x", "y"]' in row
    assert "…" in row and "z" * 100 not in row


def test_csv_and_json_keep_types_readable() -> None:
    when = dt.datetime(2026, 11, 1, 12, 30, tzinfo=dt.UTC)
    rows = [[1, when, Decimal("2.50"), None, True, ["a"]]]
    columns = ["id", "at", "amount", "missing", "flag", "tags"]
    csv_text = render_csv(columns, rows)
    assert csv_text.splitlines() == [
        "id,at,amount,missing,flag,tags",
        '1,2026-11-01T12:30:00+00:00,2.50,,true,"[""a""]"',  # a decimal as exact as it came
    ]
    parsed = json.loads(render_json(columns, rows))
    assert parsed == [
        {
            "id": 1,
            "at": "2026-11-01T12:30:00+00:00",
            "amount": 2.5,
            "missing": None,
            "flag": True,
            "tags": ["a"],
        }
    ]


def _run_with_progress(tmp_path, progress: LoadProgress) -> None:
    @dlt.resource(name="items", primary_key="id", write_disposition="merge")
    def items():
        yield [{"id": 1}, {"id": 2}]
        yield [{"id": 3}]

    pipeline = dlt.pipeline(
        "progress_test",
        destination=dlt.destinations.duckdb(str(tmp_path / "p.duckdb")),
        dataset_name="progress_data",
        pipelines_dir=str(tmp_path / "pipelines"),
        progress=progress,
    )
    pipeline.run(items())


def test_progress_off_a_terminal_writes_plain_lines_with_pages_and_rows(tmp_path) -> None:
    stream = io.StringIO()
    progress = LoadProgress("demo", stream, interactive=False, log_every=3600)
    _run_with_progress(tmp_path, progress)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # one line per step (the periodic ones are an hour apart here), each naming the source
    assert [line.split()[1] for line in lines] == ["extract", "normalize", "load"]
    assert "items 2p/3r" in lines[0]
    assert all(line.startswith("demo ") for line in lines)


def test_progress_on_a_terminal_redraws_one_line(tmp_path) -> None:
    stream = io.StringIO()
    progress = LoadProgress("demo", stream, interactive=True, redraw_every=0.01)
    _run_with_progress(tmp_path, progress)
    text = stream.getvalue()
    assert text.count("\r\x1b[K") >= 3
    assert "items 2p/3r" in text


def test_describe_gives_one_line_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__CHATWOOT__API_ACCESS_TOKEN", "tok-very-secret")
    error = RuntimeError("request failed\nwith header api_access_token: tok-very-secret\nand more")
    line = describe(error)
    assert "\n" not in line and "tok-very-secret" not in line and "***" in line
    assert line.startswith("RuntimeError: request failed")


def test_redact_masks_dsn_passwords() -> None:
    assert (
        redact("cannot reach postgresql://loader:hunter22@db:5432/x")
        == "cannot reach postgresql://loader:***@db:5432/x"
    )


def test_cli_errors_pass_through_verbatim() -> None:
    assert describe(CliError("unknown source 'x': choose chatwoot, sendblue or all")) == (
        "unknown source 'x': choose chatwoot, sendblue or all"
    )

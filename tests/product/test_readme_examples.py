"""The documented examples, read out of the docs themselves (the SQL examples in README.md, the worked sync
examples in docs/reverse-etl.md), run on the data `make demo` loads: every SQL
example returns rows, and every worked sync example's dry run reads rows and would send some. So the
docs and the sandbox cannot drift apart.

Examples are the fenced blocks whose info string carries `tested-on-sandbox` (```` ```sql tested-on-sandbox ````,
```` ```toml tested-on-sandbox ````), in README.md or any docs/*.md page it links to.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pipelines.load import load
from pipelines.local_sandbox import LocalSandboxes, start_sandboxes

ROOT = Path(__file__).resolve().parents[2]
MARKER = "tested-on-sandbox"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def examples(language: str) -> list[str]:
    """The bodies of the marked `language` blocks, README first, then docs/ pages in name order."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [
        body
        for page in pages
        if page.exists()
        for lang, info, body in FENCE.findall(page.read_text())
        if lang == language and MARKER in info.split()
    ]


def sql_statements() -> list[str]:
    statements = []
    for block in examples("sql"):
        statements += [part.strip() for part in re.split(r";[ \t]*$", block, flags=re.M) if part.strip()]
    return statements


def sync_examples() -> dict[str, str]:
    """Sync name -> the TOML block that declares it."""
    found = {}
    for block in examples("toml"):
        for name in tomllib.loads(block).get("syncs", {}):
            found[name] = block
    return found


def title(statement: str) -> str:
    first = statement.splitlines()[0]
    return first.removeprefix("--").strip() if first.startswith("--") else first[:60]


SQL = sql_statements()
SYNCS = sync_examples()


def test_the_readme_marks_its_examples() -> None:
    assert len(SQL) >= 5, f"the README's SQL examples are fenced as ```sql {MARKER}"
    assert len(SYNCS) >= 2, f"the worked sync examples (docs/reverse-etl.md) are fenced as ```toml {MARKER}"
    assert {"optouts_to_chatwoot", "chatwoot_phones_to_sendblue"} <= set(SYNCS)
    assert any("matched_in = 'both' AND opted_out" in s for s in SQL)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both simulators with the demo's data (small, seed 0), both sources and the views loaded into a
    DuckDB file; yields (sandboxes, the directory holding the file)."""
    workdir = tmp_path_factory.mktemp("readme")
    boxes: LocalSandboxes = start_sandboxes(size="small", seed=0)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in {
                **boxes.env(),
                "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": "2400",
                "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "switchboard.duckdb"),
            }.items():
                mp.setenv(key, value)
            report = load("all", pipelines_dir=str(workdir / "pipelines"), progress_stream=io.StringIO())
        assert report.ok, report.failure_message()
        yield boxes, workdir
    finally:
        boxes.stop()


@pytest.mark.parametrize("statement", SQL, ids=[title(s) for s in SQL])
def test_each_sql_example_returns_rows(statement: str, demo_data: Any, cli: Any, monkeypatch: Any) -> None:
    _, workdir = demo_data
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(workdir / "switchboard.duckdb"))
    monkeypatch.chdir(workdir)
    result = cli("sql", "--format", "json", "--", statement)  # "--": the statement starts with a comment
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) >= 1, f"no rows on the sandbox's data:\n{statement}"


@pytest.mark.parametrize("name", sorted(SYNCS))
def test_each_worked_sync_example_reads_rows_in_a_dry_run(
    name: str, demo_data: Any, switchboard: Any, tmp_path: Path
) -> None:
    boxes, workdir = demo_data
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(SYNCS[name])  # the docs' text, as a user pastes it
    env = {**boxes.env(), "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "switchboard.duckdb")}

    result = switchboard("sync", name, "--dry-run", env=env, cwd=tmp_path)

    assert result.returncode in (0, 2), result.stdout + result.stderr  # 2: rows the real run would reject
    read = re.search(r"rows read\s+(\d+)", result.stdout)
    sent = re.search(r"dry run: nothing sent \((\d+) rows would be sent\)", result.stdout)
    assert read and int(read.group(1)) >= 1, result.stdout
    assert sent and int(sent.group(1)) >= 1, result.stdout

"""A misspelt `[sources.chatwoot|sendblue]` key, in config.toml, secrets.toml or an env var, stops `load`,
`check`, `discover` and `sync` with one line naming it and the nearest valid key (dlt itself drops keys
nothing asks for). Run as a user would: the console script in a directory holding `.dlt/`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local_sandbox import LocalSandboxes, start_sandboxes
from sources.chatwoot import ChatwootSettings
from sources.common.settings import UnknownConfigKey, check_source_keys
from sources.sendblue import SendblueSettings

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")
CONFIG_PREFIXES = ("SOURCES__", "DESTINATION__", "SYNCS__")


@pytest.fixture(scope="module")
def boxes() -> Iterator[LocalSandboxes]:
    boxes = start_sandboxes(size="small", seed=5)
    yield boxes
    boxes.stop()


@pytest.fixture
def run(boxes: LocalSandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """run(*args, env={...}) -> the finished `switchboard` process in tmp_path (its .dlt/ is the test's);
    the sandboxes' request logs start empty."""
    (tmp_path / ".dlt").mkdir()
    for key in list(os.environ):
        if key.startswith(CONFIG_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for box in (boxes.chatwoot, boxes.sendblue):
        box.state.log.clear()

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
        full.update(boxes.env(), DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "w.duckdb"), **(env or {}))
        return subprocess.run(
            [SWITCHBOARD, *args], env=full, cwd=str(tmp_path), capture_output=True, text=True, timeout=300
        )

    return run


def requests(boxes: LocalSandboxes) -> int:
    return len(boxes.chatwoot.state.log.entries) + len(boxes.sendblue.state.log.entries)


def test_a_misspelt_env_var_stops_load_before_any_request(run, boxes) -> None:
    # before: the limit silently stayed at its default and the load ran
    result = run("load", "chatwoot", env={"SOURCES__CHATWOOT__RATE_LIMT_PER_MINUTE": "30"})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: unknown key sources.chatwoot.rate_limt_per_minute in environment variable "
        "SOURCES__CHATWOOT__RATE_LIMT_PER_MINUTE (did you mean rate_limit_per_minute?)"
    ]
    assert requests(boxes) == 0


def test_a_misspelt_key_in_secrets_toml_stops_load_all_before_either_source(run, boxes, tmp_path) -> None:
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.sendblue]\napi_secret_kye = "s3cr3t-value"\n')
    result = run("load", "all")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: unknown key sources.sendblue.api_secret_kye in secrets.toml (did you mean api_secret_key?)"
    ]
    assert "s3cr3t-value" not in result.stdout + result.stderr
    assert requests(boxes) == 0, "chatwoot was not loaded either"


def test_check_and_discover_refuse_a_misspelt_key_in_config_toml(run, boxes, tmp_path) -> None:
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.sendblue]\ncontacts_page_sise = 50\n")
    expected = [
        "error: unknown key sources.sendblue.contacts_page_sise in config.toml (did you mean contacts_page_size?)"
    ]
    for args in (("check", "sendblue"), ("discover", "sendblue")):
        result = run(*args)
        assert (result.returncode, result.stderr.splitlines()) == (1, expected), args
    assert requests(boxes) == 0
    assert run("check", "chatwoot").stdout.strip() == "ok", "the other source's section is not involved"


def test_named_accounts_take_the_same_keys(run, tmp_path) -> None:
    # SPEC §8 declares [sources.X.accounts.NAME] with the single-account keys: those pass, typos do not
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[sources.chatwoot.accounts.eu]\naccount_id = 2\nbase_url = "https://eu.example.com"\n'
    )
    assert run("check", "chatwoot").stdout.strip() == "ok"
    result = run("check", "chatwoot", env={"SOURCES__CHATWOOT__ACCOUNTS__EU__ACOUNT_ID": "3"})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: unknown key sources.chatwoot.accounts.eu.acount_id in environment variable "
        "SOURCES__CHATWOOT__ACCOUNTS__EU__ACOUNT_ID (did you mean account_id?)"
    ]


@pytest.mark.parametrize(
    ("source", "model"), [("chatwoot", ChatwootSettings), ("sendblue", SendblueSettings)]
)
def test_the_known_keys_are_the_settings_models_fields(
    source: str, model: type, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # derived from the model, so a field added there is a valid key with nothing else to update
    monkeypatch.chdir(tmp_path)
    for field in model.model_fields:
        monkeypatch.setenv(f"SOURCES__{source.upper()}__{field.upper()}", "1")
    check_source_keys(source)
    monkeypatch.setenv(f"SOURCES__{source.upper()}__NOT_A_KEY", "1")
    with pytest.raises(UnknownConfigKey, match=rf"unknown key sources\.{source}\.not_a_key "):
        check_source_keys(source)

"""A misspelt `[syncs.NAME]` key (config file or env var) stops the sync with one line naming it and the
nearest valid key, before anything is sent; `sync --list` still lists the healthy syncs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.sync import SyncConfigError, load_sync_config
from pipelines.sync.config import SyncConfig, sync_keys

SWITCHBOARD = str(Path(sys.executable).parent / "switchboard")
COLUMNS = {"phone": "VARCHAR", "first_name": "VARCHAR"}


def switchboard(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHBOARD, *args],
        env=env.subprocess_env(),
        cwd=str(env.workdir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_misspelt_mode_in_config_toml_stops_the_sync_before_any_request(sendblue_box, make_env, h) -> None:
    # before: `mdoe` was dropped by dlt and the sync ran as an upsert, rewriting an existing contact
    env = make_env(sendblue=sendblue_box)
    existing = sorted(sendblue_box.state.contacts)[0]
    h.write_table("crm.people", COLUMNS, [(existing, "Renamed"), (h.new_phones(1)[0], "New")])
    (env.workdir / ".dlt").mkdir()
    (env.workdir / ".dlt" / "config.toml").write_text(
        '[syncs.people]\ntarget = "sendblue.contacts"\ntable = "crm.people"\nmdoe = "create_only"\n'
    )
    sendblue_box.state.log.clear()

    result = switchboard(env, "sync", "people")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: unknown key syncs.people.mdoe in config.toml (did you mean mode?)"
    ]
    assert sendblue_box.state.log.entries == [], "nothing was sent"
    assert sendblue_box.state.contacts[existing].get("first_name") != "Renamed"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("MDOE", "mode"), ("ALLOW_OPTIN", "allow_opt_in"), ("NULL_ERASE", "nulls_erase"), ("REMVOE", "remove")],
)
def test_a_misspelt_key_in_an_env_var_names_the_key_and_the_nearest_one(
    make_env, typo: str, meant: str
) -> None:
    env = make_env()
    env.sync("tags", target="chatwoot.contact_labels", table="crm.labels")
    env.set(**{f"SYNCS__TAGS__{typo}": "true"})
    with pytest.raises(SyncConfigError) as caught:
        load_sync_config("tags")
    assert str(caught.value) == (
        f"unknown key syncs.tags.{typo.lower()} in environment variable SYNCS__TAGS__{typo} (did you mean {meant}?)"
    )


def test_the_known_keys_are_the_sync_models_fields(make_env) -> None:
    # no second list to keep in step: every SyncConfig field is accepted, as a file key or an env var
    assert set(sync_keys()) == set(SyncConfig.model_fields) - {"name"}
    env = make_env()
    env.sync(
        "all_keys",
        target="chatwoot.contacts",
        table="crm.c",
        match_on="email",
        mode="update_only",
        batch_size=7,
        allow_opt_in=True,
        nulls_erase=True,
        labels_mode="replace",
        default_region="us",
    )
    config = load_sync_config("all_keys")
    assert (config.mode, config.batch_size, config.allow_opt_in, config.nulls_erase) == (
        "update_only",
        7,
        True,
        True,
    )
    assert config.default_region == "US"


def test_a_stray_top_level_key_does_not_leak_into_every_sync(make_env) -> None:
    # dlt's section fallback read MODE (or SYNCS__MODE) for syncs.NAME.mode: only syncs.NAME.* counts
    env = make_env()
    env.sync("plain", target="sendblue.opt_outs", table="crm.x")
    env.set(MODE="create_only", SYNCS__NULLS_ERASE="true")
    config = load_sync_config("plain")
    assert (config.mode, config.nulls_erase) == ("upsert", False)


def test_sync_list_lists_the_healthy_syncs_and_names_the_broken_one(make_env) -> None:
    env = make_env()
    env.sync("good", target="sendblue.opt_outs", table="crm.x")
    env.sync("typo", target="sendblue.contacts", table="crm.y", nulls_erse=True)
    (env.workdir / ".dlt").mkdir()
    (env.workdir / ".dlt" / "config.toml").write_text(
        '[syncs.filed]\ntarget = "chatwoot.contacts"\ntable = "crm.z"\nmatch_on = "email"\n'
    )

    result = switchboard(env, "sync", "--list")

    assert result.returncode == 1, "a broken sync makes the listing fail, as config errors do"
    listed = [line.split()[0] for line in result.stdout.splitlines()[2:-1]]
    assert listed == ["filed", "good"]
    assert result.stderr.splitlines() == [
        "error: unknown key syncs.typo.nulls_erse in environment variable SYNCS__TYPO__NULLS_ERSE "
        "(did you mean nulls_erase?)"
    ]

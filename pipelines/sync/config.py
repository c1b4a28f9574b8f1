"""A sync as declared under `[syncs.NAME]` (env `SYNCS__NAME__KEY`), resolved through dlt's config providers."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Literal

import dlt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from destinations.targets import TARGETS, Target
from sources.common.settings import set_keys, unknown_keys

Mode = Literal["upsert", "update_only", "create_only"]

DEFAULT_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 4
# bump when the meaning of a ledger hash changes, so every row is re-evaluated once
# (2: Chatwoot attributes keep their JSON types; a skipped entry records what the API holds)
LEDGER_FORMAT = 2


class SyncConfigError(ValueError):
    """A sync that is not declared, or declared with keys that do not fit."""


class SyncConfig(BaseModel):
    """One reverse-ETL sync. See docs/configuration.md and docs/reverse-etl.md for what each key does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    target: str
    query: str | None = None
    table: str | None = None
    mode: Mode = "upsert"
    match_on: str | None = None
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    rate_limit_per_minute: int | None = Field(None, ge=0)
    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1, le=64)
    allow_opt_in: bool = False
    nulls_erase: bool = False
    labels_mode: Literal["union", "replace"] = "union"
    remove: bool = False
    default_region: str | None = None
    # possible: reject only what cannot be a phone; strict: also numbers outside assigned ranges
    phone_validation: Literal["possible", "strict"] = "possible"
    warehouse: str | None = None
    # where `switchboard load` put the target API's tables (its `--dataset`); default: the API's name
    loaded_dataset: str | None = None
    # a request that timed out may still be landing server-side: wait this long before reading it back
    reconcile_delay_seconds: float = Field(2.0, ge=0)

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in TARGETS:
            raise ValueError(f"unknown target {value!r}: choose {', '.join(TARGETS)}")
        return value

    @field_validator("table")
    @classmethod
    def _plain_table_name(cls, value: str | None) -> str | None:
        # a table name is spliced into SQL, so it must be an identifier path, not a statement
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*){0,2}", value):
            raise ValueError("table must be a table name such as sendblue.contacts (use query for SQL)")
        return value

    @field_validator("loaded_dataset")
    @classmethod
    def _plain_dataset_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("loaded_dataset must be a dataset (schema) name such as chatwoot")
        return value

    @field_validator("default_region")
    @classmethod
    def _region_upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    @model_validator(mode="after")
    def _one_source(self) -> SyncConfig:
        if bool(self.query) == bool(self.table):
            raise ValueError("set exactly one of query or table")
        choices = self.target_class.match_columns
        if self.match_on is not None and self.match_on not in choices:
            if not choices:
                raise ValueError(f"match_on does not apply to {self.target} (its rows are keyed by {self.target_class.key_field})")
            raise ValueError(f"match_on must be one of {', '.join(choices)}")
        return self

    @property
    def target_class(self) -> type[Target]:
        return TARGETS[self.target]

    @property
    def api(self) -> str:
        return self.target_class.api

    @property
    def dataset(self) -> str:
        """The dataset holding the target API's loaded tables."""
        return self.loaded_dataset or self.api

    @property
    def effective_batch_size(self) -> int:
        """batch_size, capped at what the target's write requests take."""
        cap = self.target_class.batch_max
        return min(self.batch_size, cap) if cap else self.batch_size

    def source_sql(self) -> str:
        """The SQL that yields the desired rows."""
        if self.query:
            return self.query
        return f"SELECT * FROM {self.table}"

    def source_description(self) -> str:
        if self.table:
            return f"table {self.table}"
        text = " ".join((self.query or "").split())
        return "query " + (text if len(text) <= 60 else text[:57] + "...")

    def fingerprint(self) -> str:
        """Hash of every key that changes what a row means; part of each row's ledger hash, so changing
        one of them makes the next run re-evaluate every row (and send only what really differs)."""
        meaning = {
            "format": LEDGER_FORMAT,
            "target": self.target,
            "mode": self.mode,
            "match_on": self.match_on,
            "allow_opt_in": self.allow_opt_in,
            "nulls_erase": self.nulls_erase,
            "labels_mode": self.labels_mode,
            "remove": self.remove,
            "default_region": self.default_region,
            "phone_validation": self.phone_validation,
        }
        return hashlib.sha256(json.dumps(meaning, sort_keys=True).encode()).hexdigest()[:16]


def sync_keys() -> list[str]:
    """The keys a `[syncs.NAME]` section may set: SyncConfig's fields (its name is the section's)."""
    return [key for key in SyncConfig.model_fields if key != "name"]


def _names_from_env() -> set[str]:
    names = set()
    for key in os.environ:
        parts = key.split("__")
        if len(parts) >= 3 and parts[0] == "SYNCS" and parts[1]:
            names.add(parts[1].lower())
    return names


def _names_from_files() -> set[str]:
    # every file dlt reads (config.toml and secrets.toml), not only the first that has a [syncs] table
    return {parts[0] for parts, where in set_keys("syncs") if parts and not where.startswith("in environment")}


def sync_names() -> list[str]:
    """Names of every declared sync: `[syncs.*]` sections in config files plus `SYNCS__NAME__*` env vars."""
    return sorted(_names_from_files() | _names_from_env())


def canonical_name(name: str) -> str:
    """The declared spelling of a sync name: `SYNCS__T1__*` and `--name t1` are the same sync, and its
    ledger rows must not split by letter case. Config-file sections keep their own spelling."""
    names = sync_names()
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else name


def load_sync_config(name: str) -> SyncConfig:
    """Resolve `[syncs.NAME]` from every dlt provider (env vars win over files) and validate it. A key
    SyncConfig does not have (a typo such as `mdoe`) is an error naming the nearest valid key."""
    name = canonical_name(name.strip())
    problems = unknown_keys(("syncs", name), sync_keys())
    if problems:
        raise SyncConfigError("; ".join(problems))
    # exactly syncs.NAME.KEY: dlt's section fallback would let a stray MODE or SYNCS__MODE apply to every sync
    read: dict[str, Any] = {key: dlt.config.get(f"syncs.{name}.{key}") for key in sync_keys()}
    values = {key: value for key, value in read.items() if value is not None}
    if "target" not in values:
        known = ", ".join(sync_names()) or "none"
        raise SyncConfigError(f"sync {name!r} is not declared (no syncs.{name}.target); declared syncs: {known}")
    try:
        return SyncConfig(name=name, **values)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'sync'}: {err['msg']}" for err in exc.errors()
        ]
        raise SyncConfigError(f"sync {name!r} is misconfigured: {'; '.join(problems)}") from None


def survey_syncs() -> tuple[list[SyncConfig], list[str]]:
    """(every declared sync that validates, one line per sync that does not)."""
    configs, problems = [], []
    for name in sync_names():
        try:
            configs.append(load_sync_config(name))
        except SyncConfigError as exc:
            problems.append(str(exc))
    return configs, problems


def list_syncs() -> list[SyncConfig]:
    """Every declared sync, validated. Misconfigured ones raise one SyncConfigError naming each of them."""
    configs, problems = survey_syncs()
    if problems:
        raise SyncConfigError("; ".join(problems))
    return configs

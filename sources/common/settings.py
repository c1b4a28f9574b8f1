"""Resolving a source's pydantic settings from dlt's config providers, with one-line config errors.

dlt resolves only the keys it is asked for and ignores the rest, so a misspelt key would be dropped
without a word. `unknown_keys` lists every key actually set under a config table (in each TOML file
dlt reads and in the environment) that is not in the known set, with the nearest valid spelling.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import dlt
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

M = TypeVar("M", bound=BaseModel)

# `[sources.X.accounts.NAME]`: each named account takes the same keys as the source's section
ACCOUNTS = "accounts"


class UnknownConfigKey(ValueError):
    """A key set in config that nothing reads (a typo): the message names it and the nearest valid key."""


def _file_providers() -> list[Any]:
    from dlt.common.configuration.providers import EnvironProvider

    return [p for p in dlt.config.config_providers if not isinstance(p, EnvironProvider)]


def _leaves(node: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix


def set_keys(*path: str) -> list[tuple[tuple[str, ...], str]]:
    """Every key set under the config table `path` (e.g. "sources", "chatwoot"), as (key path relative to
    the table, where it was set): each file provider (config.toml, secrets.toml) and the environment
    (PATH__KEY, upper case). Only the key names are read out, never a value."""
    found: list[tuple[tuple[str, ...], str]] = []
    for provider in _file_providers():
        table, _ = provider.get_value(path[-1], Any, None, *path[:-1])
        if isinstance(table, Mapping):
            found.extend((leaf, f"in {provider.name}") for leaf in _leaves(table, ()))
    prefix = "__".join(part.upper() for part in path) + "__"
    for name in sorted(os.environ):
        if name.startswith(prefix) and name != prefix:
            parts = tuple(part.lower() for part in name[len(prefix) :].split("__"))
            found.append((parts, f"in environment variable {name}"))
    return found


def unknown_keys(path: Collection[str], known: Collection[str], *, accounts: bool = False) -> list[str]:
    """One message per key set under `path` that is not in `known` (with `accounts`, keys inside
    `accounts.NAME` tables are checked against `known` too), e.g.
    `unknown key syncs.x.mdoe in config.toml (did you mean mode?)`."""
    base = ".".join(path)
    problems: dict[str, str] = {}
    for parts, where in set_keys(*path):
        if accounts and parts[:1] == (ACCOUNTS,):
            # accounts.NAME.KEY; the shape of the accounts themselves is the accounts code's to judge
            if len(parts) <= 2 or (len(parts) == 3 and parts[2] in known):
                continue
            bad, choices = parts[:3], list(known)
        else:
            if not parts or (len(parts) == 1 and parts[0] in known):
                continue
            bad, choices = parts[:1], [*known, ACCOUNTS] if accounts else list(known)
        key = ".".join((base, *bad))
        if bad[-1] in choices:  # a known key given as a table (`[sources.chatwoot.base_url]`)
            key, hint = ".".join((base, *parts)), f"{bad[-1]} takes a plain value"
        else:
            near = difflib.get_close_matches(bad[-1], choices, n=1)
            hint = f"did you mean {near[0]}?" if near else f"valid keys: {', '.join(sorted(choices))}"
        problems.setdefault(key, f"unknown key {key} {where} ({hint})")
    return list(problems.values())


def check_keys(
    path: Collection[str],
    known: Collection[str],
    error: Callable[[str], Exception] = UnknownConfigKey,
    *,
    accounts: bool = False,
) -> None:
    """Raise `error` with one line naming every unknown key under `path` (see `unknown_keys`)."""
    problems = unknown_keys(path, known, accounts=accounts)
    if problems:
        raise error("; ".join(problems))


def check_source_keys(source: str) -> None:
    """Refuse a misspelt key in `[sources.<source>]` (files or env vars): the known keys are the fields of
    the source's settings model (`sources.<source>.<Source>Settings`)."""
    model = getattr(importlib.import_module(f"sources.{source}"), f"{source.capitalize()}Settings")
    check_keys(("sources", source), model.model_fields, accounts=True)


def config_values(model: type[M], section: str, secret_keys: Collection[str], **overrides: Any) -> dict[str, Any]:
    """Every field of `model` read as `sources.<section>.<field>` (config.toml, secrets.toml, env vars);
    secrets only from the secret providers. Overrides that are not None win."""
    values: dict[str, Any] = {}
    for key in model.model_fields:
        provider = dlt.secrets if key in secret_keys else dlt.config
        values[key] = provider.get(f"sources.{section}.{key}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def build_settings(
    model: type[M],
    section: str,
    values: Mapping[str, Any],
    *,
    required: Iterable[str],
    secret_keys: Collection[str],
    error: Callable[[str], Exception],
) -> M:
    """`model` from config values, where None or "" means not set (the default applies), or `error` with
    one line naming the key and its environment variable. Never echoes a value: it could be a secret.
    A key set in config that the model does not have (a typo) is an error too."""
    check_keys(("sources", section), model.model_fields, error, accounts=True)
    given = {k: v for k, v in values.items() if v is not None and v != ""}
    for key in required:
        if key not in given:
            where = "secrets" if key in secret_keys else "config"
            raise error(
                f"sources.{section}.{key} is not set (in .dlt/{where}.toml or the "
                f"SOURCES__{section.upper()}__{key.upper()} environment variable)"
            )
    try:
        return model(**given)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise error(f"sources.{section}.{key}: {first['msg']}") from None

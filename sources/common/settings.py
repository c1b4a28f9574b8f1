"""Resolving a source's pydantic settings from dlt's config providers, with one-line config errors."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

import dlt
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

M = TypeVar("M", bound=BaseModel)


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
    error: type[Exception],
) -> M:
    """`model` from config values, where None or "" means not set (the default applies), or `error` with
    one line naming the key and its environment variable. Never echoes a value: it could be a secret."""
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

"""What the listener reads from config: `[listen]` and each source's webhook secret.

`[listen]` (env `LISTEN__FLUSH_SECONDS`, ...) is a small pydantic model resolved through dlt's providers;
the secrets stay in the source sections (`sources.<api>.webhook_secret`, and
`sources.<api>.accounts.NAME.webhook_secret` for a named account), read as secrets and never shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dlt
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError

from pipelines.errors import CliError
from pipelines.source_names import SOURCE_NAMES
from sources.common.settings import ACCOUNTS, check_keys

DEFAULT_ACCOUNT = "default"  # the unnamed account, as the analytics views call it
ACCOUNT_NAME = re.compile(r"[a-z0-9_]+")


class ListenSettings(BaseModel):
    """`[listen]`: when the spool is flushed, where it lives, the largest body accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flush_seconds: float = Field(5.0, gt=0)
    flush_events: int = Field(500, ge=1)
    spool_dir: str = ".switchboard/spool"
    max_body_bytes: int = Field(1_048_576, ge=1)


def listen_settings(**overrides: Any) -> ListenSettings:
    """`[listen]` from config.toml, secrets.toml or LISTEN__* env vars; a misspelt key is an error."""
    check_keys(("listen",), ListenSettings.model_fields, CliError)
    values: dict[str, Any] = {key: dlt.config.get(f"listen.{key}") for key in ListenSettings.model_fields}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ListenSettings(**{k: v for k, v in values.items() if v is not None and v != ""})
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"listen.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


@dataclass(frozen=True)
class Endpoint:
    """One webhook URL: a source and an account, its dataset, and how its deliveries are checked."""

    source: str
    account: str
    dataset: str
    secret: SecretStr | None
    allow_unsigned: bool

    @property
    def path(self) -> str:
        return f"/webhooks/{self.source}" + ("" if self.account == DEFAULT_ACCOUNT else f"/{self.account}")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def endpoint(source: str, account: str = DEFAULT_ACCOUNT) -> Endpoint | None:
    """The endpoint of (source, account) from config, or None for an account config does not declare."""
    if source not in SOURCE_NAMES:
        return None
    section = f"sources.{source}"
    unsigned: Any = dlt.config.get(f"{section}.allow_unsigned_webhooks")
    if account == DEFAULT_ACCOUNT:
        secret: Any = dlt.secrets.get(f"{section}.webhook_secret")
        dataset = source
    else:
        if not ACCOUNT_NAME.fullmatch(account):
            return None
        named = f"{section}.{ACCOUNTS}.{account}"
        secret = dlt.secrets.get(f"{named}.webhook_secret")
        own_unsigned: Any = dlt.config.get(f"{named}.allow_unsigned_webhooks")
        if secret is None and own_unsigned is None:
            return None  # nothing declares this account's webhooks: its path is unknown
        unsigned = own_unsigned if own_unsigned is not None else unsigned
        dataset = f"{source}_{account}"
    text = str(secret).strip() if secret is not None else ""
    return Endpoint(source, account, dataset, SecretStr(text) if text else None, _truthy(unsigned))

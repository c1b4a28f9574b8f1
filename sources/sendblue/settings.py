"""Sendblue's settings model, the one place each default is written.

Keys match `[sources.sendblue]` in `.dlt/config.toml` (which shows them commented out); the API facts the
defaults come from, and the endpoint and stream tables, are in `endpoints.py`.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from sources.sendblue.endpoints import (
    CONTACTS_PAGE_MAX,
    DEFAULT_BASE_URL,
    MESSAGES_PAGE_DEFAULT,
    MESSAGES_PAGE_MAX,
    MESSAGES_RATE_LIMIT,
    MESSAGES_RATE_WINDOW_SECONDS,
    OTHER_RATE_LIMIT_PER_MINUTE,
)
from sources.sendblue.models import to_utc

API_NAME = "Sendblue"


class SendblueSettings(BaseModel):
    """Everything the client needs; filled from `sources.sendblue.*` (config.toml, secrets.toml, env vars)."""

    model_config = ConfigDict(extra="ignore")

    base_url: str = DEFAULT_BASE_URL
    api_key_id: SecretStr
    api_secret_key: SecretStr
    messages_rate_limit: int = Field(default=MESSAGES_RATE_LIMIT, ge=1)
    messages_rate_window_seconds: float = Field(default=MESSAGES_RATE_WINDOW_SECONDS, gt=0)
    rate_limit_per_minute: int = Field(default=OTHER_RATE_LIMIT_PER_MINUTE, ge=0)  # 0: no client-side limit
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    retry_backoff_seconds: float = Field(default=0.5, gt=0)
    contacts_page_size: int = Field(default=CONTACTS_PAGE_MAX, ge=1, le=CONTACTS_PAGE_MAX)
    messages_page_size: int = Field(default=MESSAGES_PAGE_DEFAULT, ge=1, le=MESSAGES_PAGE_MAX)
    messages_lag_seconds: float = Field(default=0.0, ge=0)
    messages_start_date: datetime | None = None  # first-run lower bound on date_updated; None: all history
    # `switchboard listen`: the secret Sendblue sends in `sb-signing-secret`, and whether
    # deliveries without it are accepted
    webhook_secret: SecretStr | None = None
    allow_unsigned_webhooks: bool = False

    @model_validator(mode="after")
    def _normalise(self) -> SendblueSettings:
        # the API root (`.../api/v2`) is accepted as the host, as Chatwoot's `/api/v1` is
        self.base_url = re.sub(r"/api(/v2)?$", "", self.base_url.strip().rstrip("/"), flags=re.IGNORECASE)
        # a pasted key often brings a line break or spaces; HTTP headers cannot carry them
        for name in ("api_key_id", "api_secret_key"):
            key = getattr(self, name).get_secret_value().strip()
            if not key:
                raise ValueError(f"{name} is empty")
            setattr(self, name, SecretStr(key))
        if self.messages_start_date is not None:
            self.messages_start_date = to_utc(self.messages_start_date)
        return self

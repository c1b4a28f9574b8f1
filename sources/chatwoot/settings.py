"""Chatwoot's settings model, the one place each default is written, and the constants the client names.

Keys match `[sources.chatwoot]` in `.dlt/config.toml` (which shows them commented out); the endpoint and
stream tables are in `endpoints.py`.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

API_NAME = "Chatwoot"

# "auto" rate limiting starts at 120/min (2 requests a second, under any server's budget) and learns up.
AUTO_RATE_LIMIT_START = 120


class ChatwootSettings(BaseModel):
    """Everything the client and the source need. Keys match `[sources.chatwoot]` in `.dlt/config.toml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://app.chatwoot.com"
    account_id: int = Field(gt=0)
    api_access_token: SecretStr
    # Requests per rate_limit_window_seconds (a minute on a real server) to this server, shared by every
    # request and account of a run. rack-attack throttles per client IP in fixed one-minute windows; its
    # code default is 3000/min, `.env.example` suggests 300 and Chatwoot Cloud's is unpublished, so "auto"
    # learns the server's budget; a number pins it; 0 turns the client-side limit off (as on Sendblue).
    rate_limit_per_minute: int | Literal["auto"] = "auto"
    rate_limit_window_seconds: float = Field(60.0, gt=0)
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(6, ge=0)
    retry_backoff_seconds: float = Field(0.5, ge=0)
    # Safety valve against a server that never ends a walk: pages per listing and per message history.
    page_cap: int = Field(100_000, ge=1)
    contact_labels_mode: Literal["exact", "fast"] = "exact"
    # `updated_within` is relative to the server's clock and the window is measured on ours: the margin
    # absorbs request latency and a run that started while an earlier one was still writing.
    conversations_safety_margin_seconds: int = Field(300, ge=0)
    # `updated_within` answers in one unpaginated response; past three days the full walk is safer.
    conversations_max_updated_within_seconds: int = Field(3 * 24 * 3600, ge=1)
    # `switchboard listen`: the account webhook's secret (Chatwoot generates it; see `webhooks
    # list`), and whether deliveries without a signature (servers before 4.12) are accepted
    webhook_secret: SecretStr | None = None
    allow_unsigned_webhooks: bool = False

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        # users paste the API root as often as the host; every path is built from the host
        value = re.sub(r"/api(/v1)?$", "", value.strip().rstrip("/"), flags=re.IGNORECASE)
        parts = urlsplit(value)
        if re.match(r"/app(/|$)", parts.path):  # a page of the web app, copied from the browser
            account = re.match(r"/app/accounts/(\d+)", parts.path)
            raise ValueError(
                f"{value} is a page of the Chatwoot app (path {parts.path}): set base_url to the host only, "
                f"{parts.scheme}://{parts.netloc}"
                + (f", and account_id to {account.group(1)}" if account else "")
            )
        return value

    @field_validator("rate_limit_per_minute", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError('must be a number of requests (0: no client-side limit), or "auto"')
        return value

    @field_validator("api_access_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()  # a pasted token often brings a line break or spaces
        if not token:
            raise ValueError("api_access_token is empty")
        return SecretStr(token)

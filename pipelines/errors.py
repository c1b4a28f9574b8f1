"""One-line, secret-free descriptions of whatever went wrong, for the CLI, the demo and load reports.

Users read these in cron mail and CI logs, so each names the cause and what to set, never a
traceback (the CLI prints one only with `--debug`) and never a token: every line passes through
`redact`, which blanks the configured secret values even if some library quoted them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from sources.common.http import ApiError

# env vars (dlt's names for the secret config keys) whose values must never be printed
SECRET_ENV_VARS = (
    "SOURCES__CHATWOOT__API_ACCESS_TOKEN",
    "SOURCES__SENDBLUE__API_KEY_ID",
    "SOURCES__SENDBLUE__API_SECRET_KEY",
    "DESTINATION__POSTGRES__CREDENTIALS",
    "DESTINATION__CREDENTIALS",
)
SECRET_CONFIG_KEYS = (
    "sources.chatwoot.api_access_token",
    "sources.sendblue.api_key_id",
    "sources.sendblue.api_secret_key",
)
_DSN_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)(?=@)", re.I)


class CliError(Exception):
    """A failure whose message is already the one line the user should read."""


class LoadFailed(CliError):
    """One or more sources failed to load (the message names each failing source and resource)."""


def _secret_values() -> Iterator[str]:
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value:
            yield value
    try:
        import dlt

        for key in SECRET_CONFIG_KEYS:
            try:
                value = dlt.secrets.get(key)
            except Exception:  # an unreadable secrets.toml must not hide the real error
                value = None
            if isinstance(value, str) and value:
                yield value
    except ImportError:  # pragma: no cover - dlt is a hard dependency
        return


def redact(text: str) -> str:
    """Blank configured secrets and DSN passwords out of `text`."""
    text = _DSN_PASSWORD.sub(lambda m: m.group("scheme") + "***", text)
    for secret in sorted(set(_secret_values()), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it wraps (dlt keeps the original in `.exception`), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "exception", None)
        if isinstance(wrapped, BaseException):
            current = wrapped
        elif current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:  # `raise ... from None` means the context is noise
            current = current.__context__
        else:
            current = None


def failing_resource(exc: BaseException) -> str | None:
    """The dlt resource whose extraction raised, when dlt says so."""
    from dlt.extract.exceptions import PipeException

    for link in _chain(exc):
        if isinstance(link, PipeException) and getattr(link, "pipe_name", None):
            return str(link.pipe_name)
    return None


def _config_key(field_name: str, traces: list[Any]) -> str:
    """The dotted config key a missing field is read from, e.g. `destination.postgres.credentials`."""
    first = traces[0] if traces else None
    nested = getattr(first, "traces", None)
    if isinstance(nested, dict) and nested:
        # a whole configuration (credentials) is missing: name it, not each of its fields
        inner = next(iter(nested.values()))
        sections = list(getattr(inner[0], "sections", None) or []) if inner else []
        return ".".join(_dedupe(sections)) or field_name
    sections = list(getattr(first, "sections", None) or [])
    return ".".join(_dedupe([*sections, field_name]))


def _dedupe(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if not out or out[-1] != part:
            out.append(part)
    return out


def _missing_config(exc: BaseException) -> str | None:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    for link in _chain(exc):
        if isinstance(link, ConfigFieldMissingException):
            keys = list(
                dict.fromkeys(_config_key(name, list(traces)) for name, traces in link.traces.items())
            )
            envs = [k.upper().replace(".", "__") for k in keys]
            return (
                f"missing configuration {', '.join(keys)}: set it in .dlt/secrets.toml or .dlt/config.toml, "
                f"or as the environment variable {', '.join(envs)}"
            )
    return None


def describe(exc: BaseException) -> str:
    """The innermost meaningful message in one line: an API's own error first, then config, then dlt's."""
    if isinstance(exc, CliError):
        return redact(" ".join(str(exc).split()))
    missing = _missing_config(exc)
    if missing:
        return redact(missing)
    chain = list(_chain(exc))
    api_error = next((link for link in chain if isinstance(link, ApiError)), None)
    if api_error is not None:
        message = str(api_error)
    else:
        innermost = chain[-1]
        message = str(innermost).strip() or type(innermost).__name__
        # dlt prefixes its own wording ("extraction of resource `x` in `generator` ... caused an exception:")
        if "caused an exception:" in message:
            message = message.split("caused an exception:", 1)[1]
        if type(innermost).__module__.split(".")[0] not in ("pipelines", "sources", "destinations"):
            message = f"{type(innermost).__name__}: {message.strip()}"
    first_lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return redact(" ".join(first_lines[:3]))[:500]

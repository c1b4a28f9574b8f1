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

from sources.common.errors import ApiError

# Environment variables whose values are secrets: destination credentials (a DSN, or its password as
# DESTINATION__X__CREDENTIALS__PASSWORD) and anything named like a token, secret, password or key id,
# named accounts' (SOURCES__X__ACCOUNTS__NAME__API_ACCESS_TOKEN) and webhook secrets included.
_SECRET_ENV = re.compile(r"^DESTINATION__.*CREDENTIALS|PASSWORD|TOKEN|SECRET|KEY_ID|PRIVATE_KEY", re.I)
# Config keys named like secrets, wherever they are set (a token put in config.toml is still a token).
_SECRET_KEY = re.compile(r"credentials|password|token|secret|key_id|private_key", re.I)
# DuckDB's "credentials" are a file path, not a secret.
# Keys of secrets.toml that say where, not who: blanking "localhost" or "postgres" from every line would
# hide what went wrong. Every other secrets.toml value is treated as a secret.
_NOT_SECRET = {"host", "port", "database", "username", "drivername", "base_url", "account_id"}
# user:password@ in a DSN, with or without a scheme (`postgres//u:p@h`, `postgresql:/u:p@h` are typos
# that libraries quote back in full); the user part stays, the password goes.
_USERINFO = re.compile(r"(?P<keep>(?:[a-z][a-z0-9+.-]*://)?[^\s:/@'\"]+:)(?!//)(?P<password>[^\s@'\"]+)@", re.I)
_TOO_COMMON = {"true", "false", "none", "null"}


class CliError(Exception):
    """A failure whose message is already the one line the user should read."""


class LoadFailed(CliError):
    """One or more sources failed to load (the message names each failing source and resource)."""


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


def _file_secrets() -> Iterator[str]:
    """Every secret value in the TOML files dlt reads: all of secrets.toml (but the where-keys), and
    secret-named keys in any other file."""
    import tomllib

    import dlt

    for provider in dlt.config.config_providers:
        to_toml = getattr(provider, "to_toml", None)
        if not callable(to_toml):
            continue  # environment variables are handled by name
        try:
            doc = tomllib.loads(to_toml())
        except Exception:  # an unreadable file must not hide the real error
            continue
        for path, value in _leaves(doc):
            key = path[-1] if path else ""
            if path[:2] == ("destination", "duckdb"):
                continue  # a file path
            if _SECRET_KEY.search(key) or (
                provider.supports_secrets and isinstance(value, str) and key not in _NOT_SECRET
            ):
                yield str(value)


def _password_of(value: str) -> str | None:
    """The password part of a DSN-like value (`scheme://user:password@host`, also without the scheme)."""
    if "@" not in value:
        return None
    userinfo = re.sub(r"^[a-z][a-z0-9+.-]*:/*|^[^:@]*//", "", value.rpartition("@")[0], flags=re.I)
    return userinfo.partition(":")[2] or None


def secret_values() -> set[str]:
    """The configured secrets (env vars named like secrets, secrets.toml values), and the password inside
    each DSN among them."""
    values = {
        value
        for name, value in os.environ.items()
        if value and _SECRET_ENV.search(name) and not name.startswith("DESTINATION__DUCKDB__")  # a file path
    }
    try:
        values.update(_file_secrets())
    except Exception:  # never let the scrubbing itself replace the error being reported
        pass
    values.update(filter(None, (_password_of(value) for value in list(values))))
    return {v for v in values if len(v) >= 4 and v.lower() not in _TOO_COMMON}


def redact(text: str) -> str:
    """Blank configured secrets and DSN passwords (`user:password@`, with or without a scheme) out of
    `text`."""
    text = _USERINFO.sub(lambda m: m.group("keep") + "***@", text)
    for secret in sorted(secret_values(), key=len, reverse=True):
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
    text = redact(" ".join(first_lines[:3]))
    if len(first_lines) <= 3 and len(text) <= 500:
        return text
    if len(text) > 500:
        text = text[:500].rsplit(" ", 1)[0]  # never half a word
    return text.rstrip(" :,;") + " …"  # the cut shows

"""The fields of sync rows: normalisers the targets' pydantic row models use, and their base class.

A valid row becomes a plain dict of the target's fields, normalised: phones in E.164, emails lower-case,
tags and labels as lists, Sendblue custom variables as text maps, Chatwoot attributes as JSON objects whose
values keep their JSON type, blank strings as null. Columns a target does not know are ignored.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import phonenumbers
from pydantic import BaseModel, ConfigDict

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# normalised before the model sees them: they need the sync's default_region and phone_validation
PHONE_FIELDS = ("phone", "phone_number", "sendblue_number")


class Row(BaseModel):
    """Base of the targets' row models."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def normalize_phone(value: Any, region: str | None, *, strict: bool = False) -> str | None:
    """E.164 via phonenumbers; numbers without a country code need `default_region`. A number must be
    parseable and *possible* for its country (its length fits). Whether it lies in an assigned range
    (`is_valid_number`, whose metadata lags new area codes) is the API's call, unless `strict`
    (`phone_validation = "strict"`) asks for that check here as well."""
    value = blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = ("+" if region is None else "") + str(value)
    if not isinstance(value, str):
        raise ValueError(f"a phone number must be text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > 64:
        raise ValueError(f"not a phone number: {text[:20]!r}... is {len(text)} characters long")
    if not text.startswith("+") and region is None:
        raise ValueError(f"not an E.164 phone number: {text!r} has no country code (or set default_region)")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {text!r} ({exc._msg.rstrip('.')})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"not a possible phone number: {text!r}")
    if strict and not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a valid phone number: {text!r} (phone_validation = \"strict\")")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: Any) -> str | None:
    value = blank_to_none(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"an email must be text, got {type(value).__name__}")
    text = value.strip().lower()
    if not EMAIL_RE.match(text):
        raise ValueError(f"not an email address: {value!r}")
    return text


def normalize_text(value: Any) -> str | None:
    value = blank_to_none(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {type(value).__name__}")
    return value.strip()


def normalize_list(value: Any, *, lower: bool = False) -> list[str] | None:
    """A list of strings from a list/array column, a JSON array, or comma-separated text; order kept,
    duplicates dropped."""
    value = blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                raise ValueError(f"not a JSON array: {text[:60]!r}") from None
        else:
            value = text.split(",")
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of text, got {type(value).__name__}")
    items: list[str] = []
    for item in value:
        if item is None:
            continue
        if not isinstance(item, str):
            raise ValueError(f"list items must be text, got {type(item).__name__} {item!r}"[:200])
        text = item.strip().lower() if lower else item.strip()
        if text and text not in items:
            items.append(text)
    return items


def _map_items(value: Any, what: str) -> dict[str, Any] | None:
    """The (key, value) pairs of a struct/map/JSON column or a JSON object string, keys checked."""
    value = blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValueError(f"not a JSON object: {value[:60]!r}") from None
    if (
        isinstance(value, list)
        and all(isinstance(p, dict) and set(p) == {"key", "value"} for p in value)
    ):
        value = [(p["key"], p["value"]) for p in value]  # a MAP some drivers hand over as key/value pairs
    elif isinstance(value, dict):
        value = list(value.items())
    else:
        raise ValueError(f"must be {what}, got {type(value).__name__}")
    result: dict[str, Any] = {}
    for key, item in value:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"map keys must be non-empty text, got {key!r}"[:200])
        result[key] = item
    return result


def _finite_number(value: float | Decimal, key: str) -> None:
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    if not finite:
        raise ValueError(f"{value} is not a number JSON can carry, for {key!r}")


def chatwoot_time(value: date) -> str:
    """A date or timestamp as Chatwoot's own UI stores a date attribute: ISO 8601 in UTC with
    milliseconds (`2024-05-01T00:00:00.000Z`, JavaScript's toISOString). Naive timestamps count as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        moment = value
    else:
        moment = datetime(value.year, value.month, value.day)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def json_value(value: Any, key: str) -> Any:
    """A value as the JSON type it is: text, booleans, numbers (DECIMAL too), lists and objects keep
    their type; dates and timestamps become Chatwoot's ISO strings; anything else is refused."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | Decimal):
        _finite_number(value, key)
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value
    if isinstance(value, date):
        return chatwoot_time(value)
    if isinstance(value, time | UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(item, key) for item in value]
    if isinstance(value, dict):
        nested = _map_items(value, "an object")
        assert nested is not None
        return {k: json_value(v, key) for k, v in nested.items()}
    raise ValueError(f"not a JSON value: {type(value).__name__} for {key!r}")


def text_value(value: Any, key: str) -> str | None:
    """A value in its text form (Sendblue types custom variables as strings): numbers as written
    (DECIMAL without exponent), booleans as true/false, dates and timestamps in ISO 8601."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        _finite_number(value, key)
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, date | time | UUID):
        return value.isoformat() if not isinstance(value, UUID) else str(value)
    raise ValueError(f"values must be text, numbers, booleans or dates, got {type(value).__name__} for {key!r}")


def normalize_json_map(value: Any) -> dict[str, Any] | None:
    """A JSON object (Chatwoot stores attributes as JSONB) from a struct/map/JSON column or JSON text:
    every value keeps its JSON type. A null value stays null (it erases only with nulls_erase)."""
    items = _map_items(value, "a JSON object")
    if items is None:
        return None
    try:
        return {key: json_value(item, key) for key, item in items.items()}
    except RecursionError:
        raise ValueError("a JSON object nested too deeply") from None


def normalize_text_map(value: Any) -> dict[str, str | None] | None:
    """A map of text to text from a struct/map/JSON column or JSON text: numbers, booleans and dates
    become text; nested values are refused. A null value stays null (it erases only with nulls_erase)."""
    items = _map_items(value, "a map of text to text")
    if items is None:
        return None
    return {key: text_value(item, key) for key, item in items.items()}


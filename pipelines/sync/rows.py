"""Validation of the desired rows a sync's query yields: pydantic models at the edge, one per target.

Each valid row becomes a plain dict of the target's fields (normalised: phones in E.164, emails lower-case,
tags and labels as lists, Sendblue custom variables as text maps, Chatwoot attributes as JSON objects whose
values keep their JSON type, blank strings as null) plus its key. Each invalid row becomes a `Reject` with a reason a person can act on. Columns a target does not know
are ignored (the plan names them).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import phonenumbers
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True)
class Reject:
    key: str | None
    reason: str
    source_hash: str | None = None  # the raw row's (see desired.py): an unchanged row rejected again is known


@dataclass
class DesiredRow:
    """A validated row: its key, the normalised fields, and the hash of those fields."""

    key: str
    fields: dict[str, Any]
    row_hash: str
    source_hash: str


def row_hash(fields: dict[str, Any]) -> str:
    """Stable hash of a normalised row (what the ledger records as last sent)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- field normalisers


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


# --------------------------------------------------------------------------- row models


class _Row(BaseModel):
    """Base of the per-target row models. `key_field` names the field that keys the ledger."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    key_field: ClassVar[str]
    region: ClassVar[str | None] = None

    def key(self) -> str:
        return str(getattr(self, self.key_field))


class SendblueContactRow(_Row):
    key_field: ClassVar[str] = "phone"

    phone: str
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    assigned_to_email: str | None = None
    sendblue_number: str | None = None
    tags: list[str] | None = None
    custom_variables: dict[str, str | None] | None = None
    opt_out: bool | None = None

    _text = field_validator("first_name", "last_name", "company_name", mode="before")(
        lambda v: normalize_text(v)
    )
    _email = field_validator("assigned_to_email", mode="before")(lambda v: normalize_email(v))
    _tags = field_validator("tags", mode="before")(lambda v: normalize_list(v))
    _vars = field_validator("custom_variables", mode="before")(lambda v: normalize_text_map(v))
    _optout = field_validator("opt_out", mode="before")(blank_to_none)


class SendblueOptOutRow(_Row):
    key_field: ClassVar[str] = "phone"

    phone: str
    # a row without an opted_out column (or a null) means "opt this number out"
    opted_out: bool = True

    @field_validator("opted_out", mode="before")
    @classmethod
    def _default_true(cls, value: Any) -> Any:
        value = blank_to_none(value)
        return True if value is None else value


class ChatwootContactRow(_Row):
    key_field: ClassVar[str] = "email"

    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    custom_attributes: dict[str, Any] | None = None
    additional_attributes: dict[str, Any] | None = None
    labels: list[str] | None = None

    _text = field_validator("name", mode="before")(lambda v: normalize_text(v))
    _email = field_validator("email", mode="before")(lambda v: normalize_email(v))
    _maps = field_validator("custom_attributes", "additional_attributes", mode="before")(
        lambda v: normalize_json_map(v)
    )
    # Chatwoot lower-cases account labels, so labels are compared and sent lower-case
    _labels = field_validator("labels", mode="before")(lambda v: normalize_list(v, lower=True))

    @field_validator("identifier", mode="before")
    @classmethod
    def _identifier_text(cls, value: Any) -> Any:
        value = blank_to_none(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # numeric external ids are ids, not numbers
        return normalize_text(value)


class ChatwootLabelRow(_Row):
    key_field: ClassVar[str] = "email"

    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    label: str

    _email = field_validator("email", mode="before")(lambda v: normalize_email(v))

    @field_validator("identifier", mode="before")
    @classmethod
    def _identifier_text(cls, value: Any) -> Any:
        return ChatwootContactRow._identifier_text(value)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        value = normalize_text(value)
        if value is None:
            raise ValueError("missing label")
        return value.lower()

    def key(self) -> str:
        return f"{getattr(self, self.key_field)}|{self.label}"


ROW_MODELS: dict[str, type[_Row]] = {
    "sendblue.contacts": SendblueContactRow,
    "sendblue.opt_outs": SendblueOptOutRow,
    "chatwoot.contacts": ChatwootContactRow,
    "chatwoot.contact_labels": ChatwootLabelRow,
}

PHONE_FIELDS = {"phone", "phone_number", "sendblue_number"}


def model_fields(target: str) -> list[str]:
    return list(ROW_MODELS[target].model_fields)


def key_columns(target: str, match_on: str | None) -> list[str]:
    """The input columns a row's key is made of."""
    if target.startswith("sendblue."):
        return ["phone"]
    assert match_on is not None
    return [match_on, "label"] if target == "chatwoot.contact_labels" else [match_on]


class RowValidator:
    """Validates raw rows for one sync. Phones are normalised before the model sees them (they need the
    sync's default_region and phone_validation), and the key field follows the sync's match_on."""

    def __init__(
        self, target: str, match_on: str | None, default_region: str | None, phone_validation: str = "possible"
    ):
        self.target = target
        self.model = ROW_MODELS[target]
        self.key_field = "phone" if target.startswith("sendblue.") else str(match_on)
        self.region = default_region
        self.fields = model_fields(target)
        self.phone_fields = [f for f in self.fields if f in PHONE_FIELDS]
        self.strict_phones = phone_validation == "strict"

    def raw_key(self, raw: dict[str, Any]) -> str | None:
        value = raw.get(self.key_field)
        if self.target == "chatwoot.contact_labels":
            return f"{value}|{raw.get('label')}" if value is not None else None
        return None if value is None else str(value)

    def validate(self, raw: dict[str, Any], source_hash: str) -> DesiredRow | Reject:
        data = {name: raw.get(name) for name in self.fields if name in raw}
        problems: list[str] = []
        for name in self.phone_fields:
            if name in data:
                try:
                    data[name] = normalize_phone(data[name], self.region, strict=self.strict_phones)
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
        key_value = blank_to_none(raw.get(self.key_field))
        if key_value is None:
            problems.insert(0, f"missing key: {self.key_field} is empty")
        try:
            row = self.model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                message = str(err["msg"]).removeprefix("Value error, ")
                if field == self.key_field and key_value is None:
                    continue  # already reported as the missing key
                if not any(p.startswith(f"{field}:") for p in problems):
                    problems.append(f"{field}: {message}")
            row = None
        if problems or row is None:
            reason = "; ".join(p if len(p) <= 300 else p[:297] + "..." for p in problems)
            return Reject(self.raw_key(raw), reason, source_hash)
        fields = row.model_dump()
        if self.target == "chatwoot.contact_labels":
            key = f"{fields[self.key_field]}|{fields['label']}"
            fields = {"contact_key": fields[self.key_field], "label": fields["label"]}
        else:
            key = str(fields[self.key_field])
        return DesiredRow(key, fields, row_hash(fields), source_hash)


def reject_duplicates(rows: Iterable[DesiredRow]) -> tuple[list[DesiredRow], list[Reject]]:
    """Every row whose key appears more than once in the run is rejected, all copies: a query without an
    ORDER BY has no "first" row, so picking one would make the outcome depend on scan order."""
    by_key: dict[str, list[DesiredRow]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    kept: list[DesiredRow] = []
    rejects: list[Reject] = []
    for key, group in by_key.items():
        if len(group) == 1:
            kept.append(group[0])
        else:
            rejects.extend(Reject(key, f"duplicate key: {len(group)} rows share {key}", row.source_hash) for row in group)
    return kept, rejects

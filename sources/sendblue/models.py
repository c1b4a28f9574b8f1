"""Pydantic models at the Sendblue edge: what comes back from the API, normalised to snake_case rows.

Sendblue has served both key casings (spec revisions up to 2025-12 and the hand-written docs use camelCase:
`firstName`, `customVariables`, `sendblueNumber`; later revisions use snake_case), so every field accepts
its snake_case name and its camelCase twin and is dumped in snake_case. `custom_variables` keys are free
text ("Lead Source") and stay data inside one JSON value, never columns.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(key: str) -> str:
    """`accountEmail` -> `account_email`; already snake_case keys are unchanged."""
    return _CAMEL_BOUNDARY.sub("_", key).lower()


def _both_casings(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name))


def to_utc(value: datetime) -> datetime:
    """Aware datetimes in UTC; a naive one is taken as UTC (Sendblue's strings end in Z)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    return to_utc(datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")))


def to_api_timestamp(value: datetime | str) -> str:
    """An ISO-8601 UTC string for a `*_gte` / `*_lte` query bound, at the precision the value carries.

    Sendblue's own strings have millisecond precision; microseconds are kept only when present, so a bound
    made from a value the API sent compares exactly against what the API stored.
    """
    moment = parse_timestamp(value)
    if moment is None:
        raise ValueError("a timestamp bound cannot be empty")
    if moment.microsecond % 1000 == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SendblueModel(BaseModel):
    """Accepts snake_case and camelCase keys; unknown fields are dropped, as Chatwoot's models drop them
    (a loaded table has the declared columns only: see docs/architecture.md)."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_both_casings),
        populate_by_name=True,
        extra="ignore",
    )

    def row(self) -> dict[str, Any]:
        """The snake_case dict that becomes a table row."""
        return self.model_dump()


class Contact(SendblueModel):
    """A contact as GET /api/v2/contacts(/{phone}) returns it. All fields are optional in the spec."""

    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    assigned_to_email: str | None = None
    sendblue_number: str | None = None
    tags: list[str] | None = None
    custom_variables: dict[str, Any] | None = None
    opt_out: bool | None = None
    verified: bool | None = None
    created_at: datetime | None = None
    # "immutable contact identity", newest spec only; older payloads call it `cid`
    contact_id: str | None = Field(
        default=None, validation_alias=AliasChoices("contact_id", "contactId", "cid")
    )

    @field_validator("created_at", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime | None:
        return parse_timestamp(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        # a comma-separated string has been seen in older payloads; a list is the documented shape
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value


class Message(SendblueModel):
    """A message from GET /api/v2/messages. The docs show `""` where the spec shows null: both become None."""

    message_handle: str | None = None
    account_email: str | None = None  # served as `accountEmail` even in the current spec
    content: str | None = None
    media_url: str | None = None
    is_outbound: bool | None = None
    status: str | None = None
    service: str | None = None
    message_type: str | None = None
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    from_number: str | None = None
    to_number: str | None = None
    number: str | None = None
    sendblue_number: str | None = None
    group_id: str | None = None
    group_display_name: str | None = None
    participants: list[str] | None = None
    was_downgraded: bool | None = None
    opted_out: bool | None = None
    error_code: int | None = None
    error_message: str | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    send_style: str | None = None
    plan: str | None = None
    seat_id: str | None = None
    sender_email: str | None = None
    reply_to: dict[str, Any] | None = None
    thread_originator: dict[str, Any] | None = None
    location: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_strings_are_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (None if v == "" else v) for k, v in data.items()}
        return data

    @field_validator("date_sent", "date_updated", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime | None:
        return parse_timestamp(value)


class Pagination(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    has_more: bool | None = Field(default=None, validation_alias=AliasChoices("hasMore", "has_more"))
    limit: int | None = None
    offset: int | None = None
    total: int | None = None


class MessagesPage(BaseModel):
    """The messages list envelope: `{"status":"OK","data":[...],"pagination":{...}}`."""

    model_config = ConfigDict(extra="allow")

    data: list[dict[str, Any]] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class ContactTag(BaseModel):
    phone: str
    tag: str


class Conversation(BaseModel):
    """One thread, derived from its messages (the v2 API has no conversation resource)."""

    conversation_id: str  # "<sendblue_number>:<number>" for a 1:1 thread, "group:<group_id>" for a group
    kind: str  # "direct" or "group"
    sendblue_number: str | None = None
    number: str | None = None
    group_id: str | None = None
    group_display_name: str | None = None
    participants: list[str] | None = None
    message_count: int
    inbound_count: int
    outbound_count: int
    first_message_at: datetime | None = None
    last_message_at: datetime | None = None
    last_message_handle: str | None = None
    last_message_preview: str | None = None
    last_message_is_outbound: bool | None = None
    last_message_status: str | None = None
    last_updated_at: datetime | None = None  # the newest date_updated among the thread's messages


_CONTACTS = TypeAdapter(list[Contact])
_MESSAGES = TypeAdapter(list[Message])


def normalise_contacts(raw: list[Any]) -> list[dict[str, Any]]:
    return [c.row() for c in _CONTACTS.validate_python(raw)]


def normalise_contact(raw: Any) -> dict[str, Any]:
    return Contact.model_validate(raw).row()


def normalise_messages(raw: list[Any]) -> list[dict[str, Any]]:
    return [m.row() for m in _MESSAGES.validate_python(raw)]


def normalise_message(raw: Any) -> dict[str, Any]:
    return Message.model_validate(raw).row()


# --------------------------------------------------------------------------- write payloads

# Request bodies use snake_case (the camelCase spellings are deprecated aliases on the server).
# POST /api/v2/contacts: `number` is the key; company_name and opt_out are not in the create schema.
CREATE_FIELDS = frozenset(
    {"first_name", "last_name", "assigned_to_email", "sendblue_number", "tags", "custom_variables"}
)
# PUT /api/v2/contacts/{phone}: partial; custom_variables are merged into the stored map server-side.
UPDATE_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "company_name",
        "assigned_to_email",
        "sendblue_number",
        "tags",
        "custom_variables",
        "opt_out",
    }
)
# POST /api/v2/contacts/bulk items: `phone` is the key; no assigned_to_email, sendblue_number or opt_out.
BULK_FIELDS = frozenset({"first_name", "last_name", "company_name", "tags", "custom_variables"})
_PHONE_KEYS = ("phone", "number", "phone_number", "phoneNumber")


def write_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Caller fields in either casing -> snake_case, the phone keys left out."""
    return {snake_case(k): v for k, v in fields.items() if k not in _PHONE_KEYS}


def phone_of(fields: dict[str, Any]) -> str:
    for key in _PHONE_KEYS:
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ValueError("a Sendblue contact needs a phone number (E.164) under `phone`")



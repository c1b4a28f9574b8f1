"""Pydantic models of Chatwoot's JSON, accepting every shape the real server sends, and their table rows.

Chatwoot mixes timestamp encodings in one payload: epoch ints (contacts, conversations), a float epoch for
conversation `updated_at` (since v4.0), ISO strings (`snoozed_until`, messages embedded in conversations),
and `0` standing for "never" (the conversation view calls `.to_i` on nulls). `UtcTimestamp` turns all of
them into timezone-aware UTC datetimes or None.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator

# message_type is an integer enum in REST responses (the messages index renders the raw column).
MESSAGE_TYPE_NAMES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}


def to_utc_datetime(value: Any) -> datetime | None:
    """Epoch seconds (int, float or numeric string), ISO-8601 string or datetime -> aware UTC datetime.

    0 and empty values mean "not set": Chatwoot renders null timestamps of conversations as 0.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return _from_epoch(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _from_epoch(number)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def _from_epoch(number: float) -> datetime | None:
    if number == 0:
        return None
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):  # NaN, infinite, or past what the platform's time_t holds
        raise ValueError(f"not a timestamp: {number!r}") from None


def _dict_or_empty(value: Any) -> Any:
    return {} if value is None else value


UtcTimestamp = Annotated[datetime | None, BeforeValidator(to_utc_datetime)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_dict_or_empty)]


class _Model(BaseModel):
    # Unknown keys are ignored: the loaded tables are a public interface and must not grow columns (or,
    # worse, secrets such as inbox provider configs) because the server added a field.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------------------- envelopes


class PageMeta(_Model):
    """`meta` of the contacts list, filter and search: `current_page` echoes the query param, so it may be
    a string; `count` is the total (list, filter) or the rows on this page (search since v4.11)."""

    count: int | None = None
    current_page: int | None = None
    has_more: bool | None = None

    @field_validator("current_page", "count", mode="before")
    @classmethod
    def _int_or_none(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):  # a list, a word, NaN or infinity: not a count
            raise ValueError(f"not a whole number: {value!r}") from None


# --------------------------------------------------------------------------------------- entities


class Contact(_Model):
    id: int
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    blocked: bool | None = None
    thumbnail: str | None = None
    availability_status: str | None = None
    company_id: int | None = None
    additional_attributes: JsonObject = Field(default_factory=dict)
    custom_attributes: JsonObject = Field(default_factory=dict)
    created_at: UtcTimestamp = None
    # The key is omitted entirely (not null) when the contact never sent a message (_contact.json.jbuilder).
    last_activity_at: UtcTimestamp = None


class Label(_Model):
    id: int
    title: str
    description: str | None = None
    color: str | None = None
    show_on_sidebar: bool | None = None


class ContactLabel(_Model):
    contact_id: int
    label: str


class Agent(_Model):
    """`GET /agents` items (the `_agent` partial)."""

    id: int
    account_id: int | None = None
    name: str | None = None
    available_name: str | None = None
    email: str | None = None
    role: str | None = None  # agent or administrator
    availability_status: str | None = None  # online, busy or offline
    auto_offline: bool | None = None
    confirmed: bool | None = None
    thumbnail: str | None = None
    custom_role_id: int | None = None


class Team(_Model):
    """`GET /teams` items (the `_team` partial)."""

    id: int
    account_id: int | None = None
    name: str | None = None
    description: str | None = None
    allow_auto_assign: bool | None = None
    is_member: bool | None = None  # whether the token's user is in the team


class Inbox(_Model):
    id: int
    name: str | None = None
    channel_type: str | None = None
    channel_id: int | None = None
    avatar_url: str | None = None
    website_url: str | None = None
    phone_number: str | None = None
    enable_auto_assignment: bool | None = None
    greeting_enabled: bool | None = None
    working_hours_enabled: bool | None = None
    enable_email_collect: bool | None = None
    csat_survey_enabled: bool | None = None
    allow_messages_after_resolved: bool | None = None
    timezone: str | None = None


class _Ref(_Model):
    id: int | None = None
    type: str | None = None


class ConversationMeta(_Model):
    sender: _Ref | None = None
    assignee: _Ref | None = None
    assignee_type: str | None = None
    team: _Ref | None = None
    channel: str | None = None


class Conversation(_Model):
    id: int  # the per-account display_id; every conversation URL uses it
    uuid: str | None = None
    account_id: int | None = None
    inbox_id: int | None = None
    status: str | None = None
    priority: str | None = None
    labels: list[str] = Field(default_factory=list)
    meta: ConversationMeta = Field(default_factory=ConversationMeta)
    additional_attributes: JsonObject = Field(default_factory=dict)
    custom_attributes: JsonObject = Field(default_factory=dict)
    can_reply: bool | None = None
    muted: bool | None = None
    unread_count: int | None = None
    sla_policy_id: int | None = None
    created_at: UtcTimestamp = None
    updated_at: UtcTimestamp = None
    last_activity_at: UtcTimestamp = None
    agent_last_seen_at: UtcTimestamp = None
    assignee_last_seen_at: UtcTimestamp = None
    contact_last_seen_at: UtcTimestamp = None
    first_reply_created_at: UtcTimestamp = None
    waiting_since: UtcTimestamp = None
    snoozed_until: UtcTimestamp = None  # an ISO string, not the epoch the OpenAPI spec says

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("meta", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> Any:
        return {} if value is None else value

    def to_row(self) -> dict[str, Any]:
        row = self.model_dump(exclude={"meta"})
        meta = self.meta
        row["contact_id"] = meta.sender.id if meta.sender else None
        row["assignee_id"] = meta.assignee.id if meta.assignee else None
        row["assignee_type"] = meta.assignee_type if meta.assignee else None
        row["team_id"] = meta.team.id if meta.team else None
        row["channel"] = meta.channel
        return row


class Message(_Model):
    id: int
    conversation_id: int | None = None
    inbox_id: int | None = None
    content: str | None = None
    message_type: int | None = None
    content_type: str | None = None
    status: str | None = None
    private: bool | None = None
    source_id: str | None = None
    sender: _Ref | None = None
    sender_type: str | None = None
    content_attributes: JsonObject = Field(default_factory=dict)
    attachments: list[dict[str, Any]] | None = None  # present only when there are attachments
    created_at: UtcTimestamp = None

    @field_validator("message_type", mode="before")
    @classmethod
    def _message_type(cls, value: Any) -> Any:
        # webhook payloads (and push_event_data) carry the enum's name instead of its number
        if isinstance(value, str) and not value.isdigit():
            for number, name in MESSAGE_TYPE_NAMES.items():
                if name == value:
                    return number
        return value

    def to_row(self, conversation_id: int) -> dict[str, Any]:
        row = self.model_dump(exclude={"sender", "sender_type"})
        row["conversation_id"] = self.conversation_id if self.conversation_id is not None else conversation_id
        row["message_type_name"] = (
            MESSAGE_TYPE_NAMES.get(self.message_type) if self.message_type is not None else None
        )
        row["sender_id"] = self.sender.id if self.sender else None
        # the sender partial says "contact" in `type`; users and bots carry their own shapes, and the raw
        # column sender_type ("User", "Contact", "AgentBot") is there when the partial has no type
        sender_type = (self.sender.type if self.sender else None) or self.sender_type
        row["sender_type"] = sender_type.lower() if sender_type else None
        return row


# --------------------------------------------------------------------------------------- row helpers

_contacts = TypeAdapter(list[Contact])
_conversations = TypeAdapter(list[Conversation])
_messages = TypeAdapter(list[Message])


def model_rows(model: type[BaseModel], items: list[Any]) -> list[dict[str, Any]]:
    """Rows of a plain list endpoint: the model's fields, unknown keys dropped."""
    adapter: TypeAdapter[list[BaseModel]] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return [item.model_dump() for item in adapter.validate_python(items)]


def contact_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c.model_dump() for c in _contacts.validate_python(items)]


def conversation_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c.to_row() for c in _conversations.validate_python(items)]


def message_rows(items: list[dict[str, Any]], conversation_id: int) -> list[dict[str, Any]]:
    return [m.to_row(conversation_id) for m in _messages.validate_python(items)]

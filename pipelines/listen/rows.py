"""Webhook payloads -> the delivery key, the event name, and rows of the loaded tables.

Rows are made by the sources' own models, so they have the REST loads' columns and types, and
hold only the fields the payload carries: an event never blanks a column its payload lacks (Chatwoot
contact payloads carry no timestamps, message payloads no status). Shapes that differ from REST are named
where they are handled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from pipelines.listen.keys import event_name
from sources.chatwoot import models as cw
from sources.sendblue import models as sb
from sources.sendblue.conversations import conversation_id_of

# a row holding this key only updates a row the table already has (never creates one)
UPDATE_ONLY = "__update_only"
Rows = dict[str, list[dict[str, Any]]]


def _carried(model: BaseModel, row: dict[str, Any], derived: dict[str, Iterable[str]]) -> dict[str, Any]:
    """`row` narrowed to the fields the payload set, plus the columns derived from them."""
    keep = set(model.model_fields_set) & set(type(model).model_fields)
    for source_field, columns in derived.items():
        if source_field in model.model_fields_set:
            keep.update(columns)
    return {k: v for k, v in row.items() if k in keep}


def _ref_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else None


def chatwoot_conversation_row(payload: dict[str, Any]) -> dict[str, Any]:
    data = dict(payload)
    # webhook form: `channel` top-level (REST: meta.channel), `account{id}` (REST: account_id)
    if "channel" in data and isinstance(data.get("meta"), dict):
        data["meta"] = {"channel": data["channel"], **data["meta"]}
    if "account_id" not in data and _ref_id(data.get("account")) is not None:
        data["account_id"] = _ref_id(data["account"])
    model = cw.Conversation.model_validate(data)
    meta_columns = ("contact_id", "assignee_id", "assignee_type", "team_id", "channel")
    return _carried(model, model.to_row(), {"meta": meta_columns})


def chatwoot_message_row(payload: dict[str, Any]) -> dict[str, Any]:
    data = dict(payload)
    conversation: dict[str, Any] = data["conversation"] if isinstance(data.get("conversation"), dict) else {}
    # webhook form: conversation{id} and inbox{id} (REST: conversation_id, inbox_id); no status, unless
    # the conversation's last message is this one (it is then in conversation.messages[0])
    if "conversation_id" not in data and conversation.get("id") is not None:
        data["conversation_id"] = conversation["id"]
    if "inbox_id" not in data and _ref_id(data.get("inbox")) is not None:
        data["inbox_id"] = _ref_id(data["inbox"])
    last = (conversation.get("messages") or [None])[0]
    if isinstance(last, dict) and last.get("id") == data.get("id") and last.get("status"):
        data["status"] = last["status"]
    model = cw.Message.model_validate(data)
    row = model.to_row(int(data.get("conversation_id") or 0))
    return _carried(
        model, row, {"message_type": ["message_type_name"], "sender": ["sender_id", "sender_type"]}
    )


def chatwoot_rows(payload: Any) -> Rows:
    if not isinstance(payload, dict):
        return {}
    event = str(payload.get("event") or "")
    if event in ("contact_created", "contact_updated"):
        model = cw.Contact.model_validate(payload)
        return {"contacts": [_carried(model, model.model_dump(), {})]}
    if event in ("conversation_created", "conversation_updated", "conversation_status_changed"):
        return {"conversations": [chatwoot_conversation_row(payload)]}
    if event in ("message_created", "message_updated"):
        rows: Rows = {"messages": [chatwoot_message_row(payload)]}
        conversation = payload.get("conversation")
        if isinstance(conversation, dict) and conversation.get("id") is not None:
            rows["conversations"] = [chatwoot_conversation_row(conversation)]
        return rows
    return {}  # typing, inbox and widget events: kept in webhook_events only


def sendblue_rows(payload: Any) -> Rows:
    if not isinstance(payload, dict):
        return {}
    if payload.get("message_handle"):
        model = sb.Message.model_validate(payload)
        row = _carried(model, model.row(), {})
        row["conversation_id"] = conversation_id_of(model.row())
        rows: Rows = {"messages": [row]}
        number = payload.get("number")
        if isinstance(payload.get("opted_out"), bool) and isinstance(number, str) and number:
            # an opt-out lands on the contact at once, if the contacts table has it (a message may come
            # from a number that is no contact: the scheduled load decides what contacts exist)
            rows["contacts"] = [{"phone": number, "opt_out": payload["opted_out"], UPDATE_ONLY: True}]
        return rows
    if event_name("sendblue", payload) == "contact_created":
        data = dict(payload)
        data.setdefault("phone", data.get("phone_number"))
        contact = sb.Contact.model_validate(data)
        return {"contacts": [_carried(contact, contact.row(), {})]}
    return {}


def table_rows(source: str, payload: Any) -> Rows:
    """The table rows one payload carries; a payload the models refuse lands in webhook_events only."""
    try:
        return chatwoot_rows(payload) if source == "chatwoot" else sendblue_rows(payload)
    except (ValidationError, ValueError, TypeError):
        return {}

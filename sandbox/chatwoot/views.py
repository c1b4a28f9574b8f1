"""JSON shapes of the Chatwoot API (the jbuilder views), built from the sandbox's plain records.

Call these with `state.lock` held: they read the live data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.chatwoot.data import ACCOUNT_ID, USER_ID, MessageRow, iso

if TYPE_CHECKING:
    from sandbox.chatwoot.state import ChatwootSandbox

PUBLIC_CONTACT_FIELDS = (
    "additional_attributes",
    "availability_status",
    "email",
    "id",
    "name",
    "phone_number",
    "identifier",
    "blocked",
    "thumbnail",
    "custom_attributes",
)


def inbox_slim(inbox: dict[str, Any]) -> dict[str, Any]:
    """`_inbox_slim`: what a contact's `contact_inboxes` items carry."""
    return {
        "id": inbox["id"],
        "avatar_url": inbox["avatar_url"],
        "channel_id": inbox["channel_id"],
        "name": inbox["name"],
        "channel_type": inbox["channel_type"],
        "provider": inbox["provider"],
    }


def inbox_full(inbox: dict[str, Any]) -> dict[str, Any]:
    """`GET /inboxes` items."""
    return {
        "id": inbox["id"],
        "avatar_url": inbox["avatar_url"],
        "channel_id": inbox["channel_id"],
        "name": inbox["name"],
        "channel_type": inbox["channel_type"],
        "greeting_enabled": inbox["greeting_enabled"],
        "greeting_message": inbox["greeting_message"],
        "working_hours_enabled": inbox["working_hours_enabled"],
        "enable_email_collect": inbox["enable_email_collect"],
        "csat_survey_enabled": inbox["csat_survey_enabled"],
        "enable_auto_assignment": inbox["enable_auto_assignment"],
        "auto_assignment_config": {},
        "out_of_office_message": None,
        "working_hours": [],
        "timezone": inbox["timezone"],
        "callback_webhook_url": None,
        "allow_messages_after_resolved": inbox["allow_messages_after_resolved"],
        "lock_to_single_conversation": inbox["lock_to_single_conversation"],
        "sender_name_type": "friendly",
        "business_name": None,
        "website_url": inbox["website_url"],
        "phone_number": inbox["phone_number"],
        "email": inbox["email_address"],
        "provider": inbox["provider"],
    }


def inbox_record(inbox: dict[str, Any]) -> dict[str, Any]:
    """The raw inbox row: what `POST /contacts` puts in `contact_inbox.inbox`."""
    return {
        "id": inbox["id"],
        "channel_id": inbox["channel_id"],
        "account_id": inbox["account_id"],
        "name": inbox["name"],
        "created_at": iso(inbox["created_at"]),
        "updated_at": iso(inbox["created_at"]),
        "channel_type": inbox["channel_type"],
        "enable_auto_assignment": inbox["enable_auto_assignment"],
        "greeting_enabled": inbox["greeting_enabled"],
        "greeting_message": inbox["greeting_message"],
        "email_address": inbox["email_address"],
        "enable_email_collect": inbox["enable_email_collect"],
        "csat_survey_enabled": inbox["csat_survey_enabled"],
        "allow_messages_after_resolved": inbox["allow_messages_after_resolved"],
        "auto_assignment_config": {},
        "lock_to_single_conversation": inbox["lock_to_single_conversation"],
        "portal_id": None,
        "sender_name_type": "friendly",
        "business_name": None,
    }


def contact_json(
    state: ChatwootSandbox, contact: dict[str, Any], with_contact_inboxes: bool
) -> dict[str, Any]:
    """`_contact.json.jbuilder`: no updated_at; last_activity_at left out entirely when null."""
    out = {name: contact[name] for name in PUBLIC_CONTACT_FIELDS}
    if contact["last_activity_at"] is not None:
        out["last_activity_at"] = int(contact["last_activity_at"])
    out["created_at"] = int(contact["created_at"])
    if with_contact_inboxes:
        inboxes = state.data.inboxes
        out["contact_inboxes"] = [
            {"source_id": source_id, "inbox": inbox_slim(inboxes[inbox_id])}
            for inbox_id, source_id in contact["contact_inboxes"]
            if inbox_id in inboxes
        ]
    return out


def contact_push(contact: dict[str, Any]) -> dict[str, Any]:
    """`Contact#push_event_data`: a message's sender and the messages index `meta.contact`."""
    return {
        "additional_attributes": contact["additional_attributes"],
        "custom_attributes": contact["custom_attributes"],
        "email": contact["email"],
        "id": contact["id"],
        "identifier": contact["identifier"],
        "name": contact["name"],
        "phone_number": contact["phone_number"],
        "thumbnail": contact["thumbnail"],
        "blocked": contact["blocked"],
        "type": "contact",
    }


def agent_push(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": agent["id"],
        "name": agent["name"],
        "available_name": agent["available_name"],
        "avatar_url": "",
        "type": "user",
        "availability_status": agent["availability_status"],
        "thumbnail": "",
    }


def agent_json(agent: dict[str, Any]) -> dict[str, Any]:
    """`_agent.json.jbuilder`: `meta.assignee` of a conversation."""
    return {
        "id": agent["id"],
        "account_id": ACCOUNT_ID,
        "availability_status": agent["availability_status"],
        "auto_offline": True,
        "confirmed": agent["confirmed"],
        "email": agent["email"],
        "available_name": agent["available_name"],
        "name": agent["name"],
        "role": agent["role"],
        "thumbnail": "",
        "custom_role_id": None,
    }


# The account's teams (`GET /teams` renders `json.array!` of `_team.json.jbuilder`; names are lower-cased
# on save). `members` are agent ids; `is_member` says whether the token's user is one.
TEAMS: list[dict[str, Any]] = [
    {"id": 1, "name": "support", "description": "First line", "allow_auto_assign": True, "members": {1, 2, 3}},
    {"id": 2, "name": "success", "description": None, "allow_auto_assign": False, "members": {4}},
]


def team_json(team: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": team["id"],
        "name": team["name"],
        "description": team["description"],
        "allow_auto_assign": team["allow_auto_assign"],
        "account_id": ACCOUNT_ID,
        "is_member": USER_ID in team["members"],
    }


def _sender(state: ChatwootSandbox, message: MessageRow) -> dict[str, Any] | None:
    if message.sender_type == "Contact":
        contact = state.data.contacts.get(message.sender_id or 0)
        return contact_push(contact) if contact else None
    if message.sender_type == "User":
        agent = state.data.agents.get(message.sender_id or 0)
        return agent_push(agent) if agent else None
    return None


def _attachments(message: MessageRow) -> list[dict[str, Any]]:
    return [
        {
            "id": message.id * 10,
            "message_id": message.id,
            "file_type": "image",
            "account_id": ACCOUNT_ID,
            "extension": "png",
            "data_url": f"https://sandbox.chatwoot.test/rails/active_storage/blobs/{message.id}/image.png",
            "thumb_url": f"https://sandbox.chatwoot.test/rails/active_storage/blobs/{message.id}/thumb.png",
            "file_size": 20_480 + message.id % 1000,
            "width": 640,
            "height": 480,
        }
    ]


def message_json(state: ChatwootSandbox, message: MessageRow, inbox_id: int) -> dict[str, Any]:
    """`_message.json.jbuilder`: the messages index items."""
    out: dict[str, Any] = {
        "id": message.id,
        "content": message.content,
        "inbox_id": inbox_id,
        "conversation_id": message.conversation_id,
        "message_type": message.message_type,
        "content_type": "text",
        "status": message.status,
        "content_attributes": {},
        "created_at": message.created_at,
        "private": message.private,
        "source_id": None,
    }
    sender = _sender(state, message)
    if sender is not None:
        out["sender"] = sender
    if message.has_attachment:
        out["attachments"] = _attachments(message)
    return out


def message_push(state: ChatwootSandbox, message: MessageRow, conversation: dict[str, Any]) -> dict[str, Any]:
    """`Message#push_event_data`: raw columns, so updated_at is an ISO string while created_at is an int."""
    out: dict[str, Any] = {
        "id": message.id,
        "content": message.content,
        "account_id": ACCOUNT_ID,
        "inbox_id": conversation["inbox_id"],
        "conversation_id": message.conversation_id,
        "message_type": message.message_type,
        "created_at": message.created_at,
        "updated_at": iso(message.created_at),
        "private": message.private,
        "status": message.status,
        "source_id": None,
        "content_type": "text",
        "content_attributes": {},
        "sender_type": message.sender_type,
        "sender_id": message.sender_id,
        "external_source_ids": {},
        "additional_attributes": {},
        "processed_message_content": message.content,
        "sentiment": {},
        "conversation": {
            "assignee_id": conversation["assignee_id"],
            "unread_count": unread_count(state, conversation),
            "last_activity_at": conversation["last_activity_at"],
            "contact_inbox": {"source_id": _source_id(state, conversation)},
        },
    }
    sender = _sender(state, message)
    if sender is not None:
        out["sender"] = sender
    if message.has_attachment:
        out["attachments"] = _attachments(message)
    return out


def _source_id(state: ChatwootSandbox, conversation: dict[str, Any]) -> str | None:
    contact = state.data.contacts.get(conversation["contact_id"])
    if contact is None:
        return None
    for inbox_id, source_id in contact["contact_inboxes"]:
        if inbox_id == conversation["inbox_id"]:
            return str(source_id)
    return None


def unread_count(state: ChatwootSandbox, conversation: dict[str, Any]) -> int:
    seen = conversation["agent_last_seen_at"] or 0
    count = 0
    for message in reversed(state.data.messages.get(conversation["id"], [])):
        if message.created_at <= seen:
            break
        if message.message_type == 0:
            count += 1
    return count


def _epoch_or_zero(value: Any) -> int:
    return int(value) if value is not None else 0  # the view calls `.to_i`, so null becomes 0


def conversation_json(state: ChatwootSandbox, conversation: dict[str, Any]) -> dict[str, Any]:
    """`_conversation.json.jbuilder`: id is the display id, float updated_at, ISO snoozed_until."""
    data = state.data
    contact = data.contacts.get(conversation["contact_id"])
    inbox = data.inboxes.get(conversation["inbox_id"])
    meta: dict[str, Any] = {
        "sender": contact_json(state, contact, with_contact_inboxes=False) if contact else {},
        "channel": inbox["channel_type"] if inbox else None,
    }
    assignee = data.agents.get(conversation["assignee_id"] or 0)
    if assignee is not None:
        meta["assignee"] = agent_json(assignee)
        meta["assignee_type"] = "User"
    meta["hmac_verified"] = False
    messages = data.messages.get(conversation["id"], [])
    last = messages[-1] if messages else None
    last_non_activity = next((m for m in reversed(messages) if m.message_type != 2), None)
    return {
        "meta": meta,
        "id": conversation["id"],
        "messages": [message_push(state, last, conversation)] if last else [],
        "account_id": ACCOUNT_ID,
        "uuid": conversation["uuid"],
        "additional_attributes": conversation["additional_attributes"],
        "agent_last_seen_at": _epoch_or_zero(conversation["agent_last_seen_at"]),
        "assignee_last_seen_at": _epoch_or_zero(conversation["assignee_last_seen_at"]),
        "can_reply": conversation["can_reply"],
        "contact_last_seen_at": _epoch_or_zero(conversation["contact_last_seen_at"]),
        "custom_attributes": conversation["custom_attributes"],
        "inbox_id": conversation["inbox_id"],
        "labels": list(conversation["labels"]),
        "muted": conversation["muted"],
        "snoozed_until": conversation["snoozed_until"],
        "status": conversation["status"],
        "created_at": int(conversation["created_at"]),
        "updated_at": float(conversation["updated_at"]),
        "timestamp": int(conversation["last_activity_at"]),
        "first_reply_created_at": _epoch_or_zero(conversation["first_reply_created_at"]),
        "unread_count": unread_count(state, conversation),
        "last_non_activity_message": message_push(state, last_non_activity, conversation)
        if last_non_activity
        else None,
        "last_activity_at": int(conversation["last_activity_at"]),
        "priority": conversation["priority"],
        "waiting_since": _epoch_or_zero(conversation["waiting_since"]),
        "sla_policy_id": None,
    }


def messages_meta(state: ChatwootSandbox, conversation: dict[str, Any]) -> dict[str, Any]:
    """The messages index `meta`: the seen-at times are raw ISO strings here, not epochs."""
    data = state.data
    contact = data.contacts.get(conversation["contact_id"])
    meta: dict[str, Any] = {
        "labels": list(conversation["labels"]),
        "additional_attributes": conversation["additional_attributes"],
        "contact": contact_push(contact) if contact else None,
    }
    assignee = data.agents.get(conversation["assignee_id"] or 0)
    if assignee is not None:
        meta["assignee"] = agent_push(assignee)
    seen = conversation["agent_last_seen_at"]
    meta["agent_last_seen_at"] = iso(seen) if seen is not None else None
    assignee_seen = conversation["assignee_last_seen_at"]
    meta["assignee_last_seen_at"] = iso(assignee_seen) if assignee_seen is not None else None
    return meta


def label_json(label: dict[str, Any]) -> dict[str, Any]:
    return {k: label[k] for k in ("id", "title", "description", "color", "show_on_sidebar")}


def profile_json(state: ChatwootSandbox, token: str) -> dict[str, Any]:
    """`GET /api/v1/profile`: the token's user with the accounts it belongs to."""
    user = state.data.agents[USER_ID]
    accounts = [
        {
            "id": account["id"],
            "name": account["name"],
            "status": "active",
            "active_at": None,
            "role": "administrator",
            "permissions": ["administrator"],
            "availability": "online",
            "availability_status": "online",
            "auto_offline": True,
            "custom_role_id": None,
        }
        for account in state.data.accounts.values()
        if account["member"]
    ]
    return {
        "id": user["id"],
        "access_token": token,  # the real profile echoes the caller's token
        "account_id": ACCOUNT_ID,
        "available_name": user["available_name"],
        "avatar_url": "",
        "confirmed": True,
        "display_name": None,
        "message_signature": None,
        "email": user["email"],
        "name": user["name"],
        "provider": "email",
        "role": user["role"],
        "ui_settings": {},
        "uid": user["email"],
        "type": None,
        "accounts": accounts,
    }

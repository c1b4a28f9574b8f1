"""Chatwoot account webhooks: `/api/v1/accounts/{id}/webhooks` and signed deliveries when data changes.

Shapes as Chatwoot answers: `W = {id, name, url, account_id, subscriptions, secret}` (the secret is
server-generated and cannot be set), 422 for unknown events or a URL the account already has. Deliveries
carry X-Chatwoot-Delivery, X-Chatwoot-Timestamp and X-Chatwoot-Signature (sha256= hex HMAC over
"<timestamp>.<body>"); payloads are model data plus `event`, no envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.chatwoot import views
from sandbox.chatwoot.state import ChatwootSandbox, NotFound, Unprocessable
from sandbox.webhooks import Outbox

EVENTS = {
    "conversation_status_changed", "conversation_updated", "conversation_created", "contact_created",
    "contact_updated", "message_created", "message_updated", "webwidget_triggered", "inbox_created",
    "inbox_updated", "conversation_typing_on", "conversation_typing_off",
}  # fmt: skip
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
CONTACT_KEYS = ("id", "name", "email", "phone_number", "identifier", "thumbnail", "blocked",
                "additional_attributes", "custom_attributes")  # fmt: skip


def registry(state: ChatwootSandbox) -> dict[int, dict[str, Any]]:
    if not hasattr(state, "webhooks"):
        state.webhooks = {}  # type: ignore[attr-defined]
        state.outbox = Outbox("chatwoot")  # type: ignore[attr-defined]
    return state.webhooks  # type: ignore[attr-defined,no-any-return]


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("webhook") if isinstance(body.get("webhook"), dict) else body  # type: ignore[return-value]


def _check(state: ChatwootSandbox, fields: dict[str, Any], own_id: int | None) -> None:
    subscriptions = fields.get("subscriptions")
    if subscriptions is not None and (
        not isinstance(subscriptions, list) or not subscriptions or not set(subscriptions) <= EVENTS
    ):
        raise Unprocessable({"message": "Subscriptions Invalid events", "attributes": ["subscriptions"]})
    url = fields.get("url")
    if url is not None and any(w["url"] == url and w["id"] != own_id for w in registry(state).values()):
        raise Unprocessable({"message": "Url has already been taken", "attributes": ["url"]})


async def list_webhooks(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    return JSONResponse({"payload": {"webhooks": list(registry(state).values())}})


async def create_webhook(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    fields = _fields(body)
    if not fields.get("url"):
        raise Unprocessable({"message": "Url can't be blank", "attributes": ["url"]})
    fields.setdefault("subscriptions", ["conversation_created"])
    _check(state, fields, None)
    hooks = registry(state)
    webhook_id = max(hooks, default=0) + 1
    hooks[webhook_id] = {
        "id": webhook_id,
        "name": fields.get("name"),
        "url": fields["url"],
        "account_id": int(request.path_params["account_id"]),
        "subscriptions": list(fields["subscriptions"]),
        "secret": secrets.token_urlsafe(24),
    }
    return JSONResponse({"payload": {"webhook": hooks[webhook_id]}})


def _webhook(request: Request, state: ChatwootSandbox) -> dict[str, Any]:
    raw = request.path_params["id"]
    hook = registry(state).get(int(raw)) if raw.isdigit() else None
    if hook is None:
        raise NotFound()
    return hook


async def update_webhook(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    hook = _webhook(request, state)
    fields = _fields(body)
    _check(state, fields, hook["id"])
    hook.update({k: fields[k] for k in ("url", "name", "subscriptions") if k in fields})
    return JSONResponse({"payload": {"webhook": hook}})


async def delete_webhook(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    registry(state).pop(_webhook(request, state)["id"])
    return Response(status_code=200)


ROUTES = [
    ("/webhooks", ["GET"], list_webhooks),
    ("/webhooks", ["POST"], create_webhook),
    ("/webhooks/{id}", ["PATCH", "PUT"], update_webhook),
    ("/webhooks/{id}", ["DELETE"], delete_webhook),
]


# ---------------------------------------------------------------------------- deliveries


def _account(state: ChatwootSandbox) -> dict[str, Any]:
    from sandbox.chatwoot.data import ACCOUNT_ID

    return {"id": ACCOUNT_ID, "name": str(state.data.accounts[ACCOUNT_ID].get("name") or "Sandbox")}


def contact_payload(state: ChatwootSandbox, contact: dict[str, Any]) -> dict[str, Any]:
    out = {k: contact.get(k) for k in CONTACT_KEYS}
    return {**out, "avatar": "", "account": _account(state)}


def conversation_payload(state: ChatwootSandbox, conversation: dict[str, Any]) -> dict[str, Any]:
    return {**views.conversation_json(state, conversation), "account": _account(state)}


def message_payload(state: ChatwootSandbox, message: Any) -> dict[str, Any]:
    conversation = state.data.conversations[message.conversation_id]
    out = views.message_json(state, message, conversation["inbox_id"])
    # Message#webhook_data: type by name, ISO created_at, no status; inbox, account, conversation objects
    for key in ("status", "inbox_id", "conversation_id"):
        out.pop(key, None)
    out["message_type"] = MESSAGE_TYPES.get(message.message_type, str(message.message_type))
    out["created_at"] = datetime.fromtimestamp(message.created_at, UTC).isoformat(timespec="milliseconds")
    inbox = state.data.inboxes.get(conversation["inbox_id"], {})
    out["inbox"] = {"id": conversation["inbox_id"], "name": inbox.get("name")}
    out["account"] = _account(state)
    out["conversation"] = conversation_payload(state, conversation)
    return out


def _signed(secret: str) -> Any:
    def headers(body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))  # recomputed per attempt
        digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {
            "content-type": "application/json",
            "x-chatwoot-delivery": str(uuid.uuid4()),
            "x-chatwoot-timestamp": stamp,
            "x-chatwoot-signature": f"sha256={digest}",
        }

    return headers


def emit(state: ChatwootSandbox, event: str, payload: dict[str, Any]) -> None:
    for hook in list(registry(state).values()):
        if event in hook["subscriptions"]:
            state.outbox.send(hook["url"], event, {**payload, "event": event}, _signed(hook["secret"]))  # type: ignore[attr-defined]


def install(state: ChatwootSandbox) -> None:
    """Deliver an event for every change `mutate` makes (the admin route and the tests call it)."""
    registry(state)
    original = state.mutate

    def mutate(*args: Any, **kwargs: Any) -> dict[str, Any]:
        summary = original(*args, **kwargs)
        with state.lock:
            data = state.data
            for event, key in (("contact_created", "new_contacts"), ("contact_updated", "edited_contacts")):
                for contact_id in summary.get(key, []):
                    if contact_id in data.contacts:
                        emit(state, event, contact_payload(state, data.contacts[contact_id]))
            for event, key in (
                ("conversation_created", "new_conversations"),
                ("conversation_updated", "edited_conversations"),
            ):
                for display_id in summary.get(key, []):
                    emit(state, event, conversation_payload(state, data.conversations[display_id]))
            new_ids = set(summary.get("new_messages", []))
            for message in state.messages():
                if message.id in new_ids:
                    emit(state, "message_created", message_payload(state, message))
        return summary

    state.mutate = mutate  # type: ignore[method-assign]


def routes(state: ChatwootSandbox) -> list[Any]:
    from starlette.routing import Route

    from sandbox.chatwoot.app import ACCOUNT, authenticated

    install(state)
    return [
        Route(ACCOUNT + path, authenticated(state, handler), methods=methods)
        for path, methods, handler in ROUTES
    ]

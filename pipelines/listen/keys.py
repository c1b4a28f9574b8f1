"""What identifies a delivery (for deduplication) and which event it is, from headers and payload alone."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _body_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def delivery_key(source: str, headers: dict[str, str], payload: Any) -> str:
    """Chatwoot: X-Chatwoot-Delivery (one UUID per event and endpoint). Sendblue sends no id: a message
    state is `message_handle:status:date_updated`; other bodies are keyed by their content."""
    if source == "chatwoot":
        delivery = headers.get("x-chatwoot-delivery", "").strip()
        return delivery or f"body:{_body_digest(payload)}"
    if isinstance(payload, dict) and payload.get("message_handle"):
        return (
            f"{payload['message_handle']}:{payload.get('status') or ''}:{payload.get('date_updated') or ''}"
        )
    return f"body:{_body_digest(payload)}"


def event_name(source: str, payload: Any) -> str:
    """Chatwoot names the event in the body; Sendblue does not, so its kind is read from the shape."""
    if not isinstance(payload, dict):
        return "unknown"
    if source == "chatwoot":
        return str(payload.get("event") or "unknown")
    if payload.get("message_handle"):
        return "outbound" if payload.get("is_outbound") else "receive"
    if "is_typing" in payload:
        return "typing_indicator"
    if payload.get("phone") or payload.get("phone_number"):
        return "contact_created"
    return "unknown"


def scrubbed(source: str, payload: Any) -> Any:
    """The payload as stored: Chatwoot conversation payloads carry the raw contact_inbox row, whose
    `pubsub_token` lets anyone subscribe to the contact's live updates."""
    if source != "chatwoot" or not isinstance(payload, dict):
        return payload
    for holder in (payload, payload.get("conversation")):
        if isinstance(holder, dict) and isinstance(holder.get("contact_inbox"), dict):
            holder["contact_inbox"].pop("pubsub_token", None)
    return payload

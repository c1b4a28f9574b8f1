"""Sendblue webhooks: `/api/account/webhooks` and deliveries (with retries) when messages change.

Shapes as Sendblue answers: GET answers `{status, webhooks: {receive: [...], outbound: [...], ...,
globalSecret}}`; POST `{webhooks: [url | {url, secret}], type?}` appends (type defaults to receive); PUT
`{webhooks: {<type>: [...], globalSecret}}` replaces all; DELETE `{webhooks: [url], type?}`. A delivery
carries the plain secret in `sb-signing-secret` (the entry's own, else globalSecret).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.sendblue.state import SendblueSandbox
from sandbox.webhooks import Outbox

TYPES = (
    "receive",
    "outbound",
    "typing_indicator",
    "call_log",
    "line_blocked",
    "line_assigned",
    "contact_created",
)


def config(state: SendblueSandbox) -> dict[str, Any]:
    if not hasattr(state, "webhooks"):
        state.webhooks = {t: [] for t in TYPES} | {"globalSecret": None}  # type: ignore[attr-defined]
        state.outbox = Outbox("sendblue")  # type: ignore[attr-defined]
    return state.webhooks  # type: ignore[attr-defined,no-any-return]


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _ok(state: SendblueSandbox) -> Response:
    return JSONResponse({"status": "OK", "webhooks": config(state)})


async def list_webhooks(request: Request, state: SendblueSandbox) -> Response:
    return _ok(state)


async def add_webhooks(request: Request, state: SendblueSandbox) -> Response:
    body = await _body(request)
    kind = body.get("type") or "receive"
    entries = body.get("webhooks")
    if kind not in TYPES or not isinstance(entries, list):
        return JSONResponse({"status": "ERROR", "message": "Invalid webhook type or list"}, status_code=400)
    config(state)[kind].extend(entries)
    if body.get("globalSecret"):
        config(state)["globalSecret"] = body["globalSecret"]
    return _ok(state)


async def replace_webhooks(request: Request, state: SendblueSandbox) -> Response:
    body = (await _body(request)).get("webhooks")
    if not isinstance(body, dict):
        return JSONResponse({"status": "ERROR", "message": "webhooks must be an object"}, status_code=400)
    current = config(state)
    for kind in TYPES:
        current[kind] = list(body.get(kind) or [])
    current["globalSecret"] = body.get("globalSecret")
    return _ok(state)


async def delete_webhooks(request: Request, state: SendblueSandbox) -> Response:
    body = await _body(request)
    kind, urls = body.get("type") or "receive", set(body.get("webhooks") or [])
    current = config(state)
    current[kind] = [
        e for e in current.get(kind, []) if (e if isinstance(e, str) else e.get("url")) not in urls
    ]
    return _ok(state)


ENDPOINTS = [
    ("GET", "/api/account/webhooks", list_webhooks),
    ("POST", "/api/account/webhooks", add_webhooks),
    ("PUT", "/api/account/webhooks", replace_webhooks),
    ("DELETE", "/api/account/webhooks", delete_webhooks),
]


def emit(state: SendblueSandbox, kind: str, payload: dict[str, Any]) -> None:
    current = config(state)
    for entry in current.get(kind, []):
        url = entry if isinstance(entry, str) else entry.get("url")
        secret = (None if isinstance(entry, str) else entry.get("secret")) or current.get("globalSecret")
        headers = {"content-type": "application/json"} | ({"sb-signing-secret": secret} if secret else {})
        state.outbox.send(url, kind, payload, lambda body, h=headers: h)  # type: ignore[attr-defined,misc]


def install(state: SendblueSandbox) -> None:
    """New inbound messages go to `receive` webhooks, new outbound ones and status changes to `outbound`."""
    config(state)
    original = state.mutate

    def mutate(*args: Any, **kwargs: Any) -> dict[str, Any]:
        summary = original(*args, **kwargs)
        with state.lock:
            for handle in [*summary.get("new_messages", []), *summary.get("edited_messages", [])]:
                message = state.get_message(handle)
                if message is not None:
                    emit(state, "outbound" if message.get("is_outbound") else "receive", dict(message))
        return summary

    state.mutate = mutate  # type: ignore[method-assign]


def routes(state: SendblueSandbox) -> list[Any]:
    from starlette.routing import Route

    from sandbox.sendblue.app import authenticated

    install(state)
    return [Route(path, authenticated(handler), methods=[method]) for method, path, handler in ENDPOINTS]

"""The Sendblue HTTP surface: auth, request parsing and validation, response shapes, the route table.

Everything here follows shared/api/sendblue.md and sendblue_endpoints.md; where the notes leave a case
open, the choice is written next to the code (and listed in the package docstring).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import phonenumbers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.sendblue.state import ContactQuery, MessageQuery, SendblueSandbox
from sandbox.sendblue.timestamps import InvalidTimestamp, lower_bound, upper_bound

API_KEY_ID = "sandbox-key-id"
API_SECRET_KEY = "sandbox-secret-key"

CONTACTS_LIMIT_DEFAULT, CONTACTS_LIMIT_MAX, CONTACTS_OFFSET_MAX = 100, 1000, 10_000
MESSAGES_LIMIT_DEFAULT, MESSAGES_LIMIT_MAX = 100, 100  # the hand-written docs' "1-100"

# camelCase keys served when key_casing="camel" (docs.sendblue.com/api-v2/contacts); phone, tags,
# verified, created_at and contact_id keep their names in both casings
CAMEL_CONTACT_KEYS = {
    "first_name": "firstName",
    "last_name": "lastName",
    "company_name": "companyName",
    "assigned_to_email": "assignedToEmail",
    "sendblue_number": "sendblueNumber",
    "custom_variables": "customVariables",
    "opt_out": "optOut",
}
# deprecated request aliases the server still accepts
REQUEST_ALIASES = {camel: snake for snake, camel in CAMEL_CONTACT_KEYS.items()}
# `order_by` is a free string in the spec; the docs list created_at, firstName, lastName, phone
CONTACT_ORDER_FIELDS = {
    "created_at": "created_at",
    "createdAt": "created_at",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "phone": "phone",
}
CREATE_FIELDS = ("first_name", "last_name", "company_name", "assigned_to_email", "sendblue_number", "tags",
                 "custom_variables")  # fmt: skip
UPDATE_FIELDS = (*CREATE_FIELDS, "opt_out")
BULK_FIELDS = ("first_name", "last_name", "company_name", "tags", "custom_variables")
BULK_ALIASES = {"firstName": "first_name", "lastName": "last_name", "company": "company_name"}  # pre-2025-12

MESSAGE_ORDER_FIELDS = {"createdAt": "created", "updatedAt": "date_updated", "sentAt": "date_sent"}
MESSAGE_RANGE_PARAMS = {
    "created_at_gte": ("created", ">="),
    "created_at_lte": ("created", "<="),
    "updated_at_gte": ("date_updated", ">="),
    "updated_at_lte": ("date_updated", "<="),
    "sent_at_gte": ("date_sent", ">="),
    "sent_at_lte": ("date_sent", "<="),
}
MESSAGE_EQUAL_PARAMS = {
    "from_number": "from_number",
    "to_number": "to_number",
    "sendblue_number": "sendblue_number",
    "group_id": "group_id",
    "service": "service",
    "status": "status",
    "message_type": "message_type",
    "account_email": "accountEmail",
}

_LOOSE_PHONE_CHARS = re.compile(r"[\s().-]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


class BadRequest(Exception):
    """A 400 with Sendblue's error body."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def error(status_code: int, message: str, status: str = "ERROR") -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status_code)


def contact_not_found() -> JSONResponse:
    # the lower-case "error" is what the docs show for this one
    return error(404, "Contact not found", status="error")


def normalize_phone(value: Any) -> str | None:
    """E.164 for a valid number written with a leading + (spaces, dots, dashes, brackets allowed)."""
    if not isinstance(value, str):
        return None
    compact = _LOOSE_PHONE_CHARS.sub("", value)
    if not _E164.fullmatch(compact):
        return None
    try:
        parsed = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def render_contact(contact: dict[str, Any], casing: str) -> dict[str, Any]:
    if casing == "snake":
        return dict(contact)
    return {CAMEL_CONTACT_KEYS.get(k, k): v for k, v in contact.items()}


# ---------------------------------------------------------------------- request parsing


def param(request: Request, name: str) -> str | None:
    """A query parameter; an empty value counts as absent."""
    value = request.query_params.get(name)
    return value if value else None


def int_param(request: Request, name: str, default: int, minimum: int) -> int:
    text = param(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"Invalid {name}: must be an integer") from None
    if value < minimum:
        raise BadRequest(f"Invalid {name}: must be at least {minimum}")
    return value


def direction_param(request: Request) -> bool:
    """True for descending (the default)."""
    text = param(request, "order_direction") or "desc"
    if text not in ("asc", "desc"):
        raise BadRequest("Invalid order_direction: must be asc or desc")
    return text == "desc"


def time_param(request: Request, name: str, lower: bool) -> str | None:
    text = param(request, name)
    if text is None:
        return None
    try:
        return lower_bound(text) if lower else upper_bound(text)
    except InvalidTimestamp:
        raise BadRequest(f"Invalid {name}: expected an ISO-8601 date-time") from None


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("Invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON body")
    return body


def contact_fields(
    body: dict[str, Any], allowed: tuple[str, ...], aliases: dict[str, str], erase_labels: bool
) -> dict[str, Any]:
    """The writable fields of a request body, snake_case, validated. Unknown keys are ignored.

    A snake_case key wins over its deprecated alias. `erase_labels`: a null custom-variable value
    removes that label (PUT); on create a null value is simply not stored.
    """
    fields: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in allowed else aliases.get(key)
        if name is None or name not in allowed or (name != key and name in body):
            continue
        fields[name] = value
    for name, value in list(fields.items()):
        if name == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise BadRequest("Invalid tags: must be an array of strings")
        elif name == "custom_variables":
            if not isinstance(value, dict) or not all(
                isinstance(v, str) or (v is None) for v in value.values()
            ):
                raise BadRequest("Invalid custom_variables: must be an object of string values")
            if not erase_labels:
                fields[name] = {k: v for k, v in value.items() if v is not None}
        elif name == "opt_out":
            if not isinstance(value, bool):
                raise BadRequest("Invalid opt_out: must be a boolean")
        elif name == "sendblue_number":
            if value is not None:
                number = normalize_phone(value)
                if number is None:
                    raise BadRequest("Invalid sendblue_number")
                fields[name] = number
        elif value is not None and not isinstance(value, str):
            raise BadRequest(f"Invalid {name}: must be a string")
    return fields


# ---------------------------------------------------------------------- handlers

Handler = Callable[[Request, SendblueSandbox], Awaitable[Response]]


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Both key headers on every request (header names are case-insensitive); 400s from BadRequest."""

    async def endpoint(request: Request) -> Response:
        key_id = request.headers.get("sb-api-key-id", "")
        secret = request.headers.get("sb-api-secret-key", "")
        if not (hmac.compare_digest(key_id, API_KEY_ID) & hmac.compare_digest(secret, API_SECRET_KEY)):
            return error(401, "Invalid API credentials")
        try:
            return await handler(request, request.app.state.sandbox)
        except BadRequest as exc:
            return error(400, exc.message)

    return endpoint


async def list_contacts(request: Request, state: SendblueSandbox) -> Response:
    offset = int_param(request, "offset", 0, minimum=0)
    if offset > CONTACTS_OFFSET_MAX:
        raise BadRequest(f"Invalid offset: must be at most {CONTACTS_OFFSET_MAX}")
    order_by = param(request, "order_by") or "created_at"
    if order_by not in CONTACT_ORDER_FIELDS:
        raise BadRequest("Invalid order_by: must be one of created_at, firstName, lastName, phone")
    query = ContactQuery(
        limit=min(int_param(request, "limit", CONTACTS_LIMIT_DEFAULT, minimum=1), CONTACTS_LIMIT_MAX),
        offset=offset,
        order_field=CONTACT_ORDER_FIELDS[order_by],
        descending=direction_param(request),
        # exact match: a "+" sent unencoded in the query string arrives as a space and matches nothing
        phone_number=param(request, "phone_number"),
        cid=param(request, "cid"),
        created_at_gte=time_param(request, "created_at_gte", lower=True),
    )
    state.before_contacts_page()
    with state.lock:
        # the list is a bare JSON array, not an envelope
        return JSONResponse([render_contact(c, state.key_casing) for c in state.list_contacts(query)])


async def count_contacts(request: Request, state: SendblueSandbox) -> Response:
    return JSONResponse({"count": state.count_contacts()})


async def get_contact(request: Request, state: SendblueSandbox) -> Response:
    with state.lock:
        contact = state.contacts.get(request.path_params["phone_number"])
        if contact is None:
            return contact_not_found()
        return JSONResponse({"status": "OK", "contact": render_contact(contact, state.key_casing)})


async def create_contact(request: Request, state: SendblueSandbox) -> Response:
    body = await json_object(request)
    raw_number = next((body[k] for k in ("number", "phone_number", "phoneNumber") if body.get(k)), None)
    if raw_number is None:
        raise BadRequest("Missing fields")
    phone = normalize_phone(raw_number)
    if phone is None:
        raise BadRequest("Invalid phone number")
    # opt_out is not in the create schema, so it is ignored here (PUT or /opt-out set it)
    fields = contact_fields(body, CREATE_FIELDS, REQUEST_ALIASES, erase_labels=False)
    upsert = body.get("update_if_exists") is True
    with state.lock:
        if phone in state.contacts:
            if not upsert:
                return error(409, "Contact already exists")
            contact = state.update_contact(phone, fields)
        else:
            contact = state.create_contact(phone, fields)
        assert contact is not None
        return JSONResponse({"status": "OK", "contact": render_contact(contact, state.key_casing)})


async def update_contact(request: Request, state: SendblueSandbox) -> Response:
    body = await json_object(request)
    fields = contact_fields(body, UPDATE_FIELDS, REQUEST_ALIASES, erase_labels=True)
    with state.lock:
        contact = state.update_contact(request.path_params["phone_number"], fields)
        if contact is None:
            return contact_not_found()
        return JSONResponse({"status": "OK", "contact": render_contact(contact, state.key_casing)})


async def delete_contact(request: Request, state: SendblueSandbox) -> Response:
    if not state.delete_contacts([request.path_params["phone_number"]]):
        return contact_not_found()
    return JSONResponse({"status": "OK"})


async def bulk_create_contacts(request: Request, state: SendblueSandbox) -> Response:
    """Rows with a missing or invalid phone, bad field types, a phone that already exists, or a phone
    repeated earlier in the batch are skipped and left out of the answer; the rest are created."""
    body = await json_object(request)
    items = body.get("contacts")
    if not isinstance(items, list):
        raise BadRequest("Missing fields")
    if len(items) > state.bulk_max:
        raise BadRequest(f"Too many contacts: at most {state.bulk_max} per request")
    rows: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        phone = normalize_phone(item.get("phone"))
        if phone is None or phone in seen:
            continue
        try:
            fields = contact_fields(item, BULK_FIELDS, BULK_ALIASES, erase_labels=False)
        except BadRequest:
            continue
        seen.add(phone)
        rows.append((phone, fields))
    with state.lock:
        created = state.bulk_create_contacts(rows)
        return JSONResponse(
            {"status": "OK", "contacts": [render_contact(c, state.key_casing) for c in created]}
        )


async def bulk_delete_contacts(request: Request, state: SendblueSandbox) -> Response:
    body = await json_object(request)
    phones = body.get("contact_ids")
    if not isinstance(phones, list) or not all(isinstance(p, str) for p in phones):
        raise BadRequest("Missing fields")
    # despite the name the ids are phone numbers; unknown ones are not counted
    return JSONResponse({"status": "OK", "amount": state.delete_contacts(phones)})


async def opt_out(request: Request, state: SendblueSandbox) -> Response:
    body = await json_object(request)
    if not body.get("number"):
        raise BadRequest("Missing fields")
    phone = normalize_phone(body["number"])
    if phone is None:
        raise BadRequest("Invalid phone number")
    opted_out = body.get("opted_out", True)
    if not isinstance(opted_out, bool):
        raise BadRequest("Invalid opted_out: must be a boolean")
    # the recipient record exists for any number, contact or not
    state.set_opt_out(phone, opted_out)
    return JSONResponse({"status": "OK", "number": phone, "opted_out": opted_out})


async def list_messages(request: Request, state: SendblueSandbox) -> Response:
    order_by = param(request, "order_by") or "createdAt"
    if order_by not in MESSAGE_ORDER_FIELDS:
        # the enum spelling only; the events docs' "updated_at" is refused rather than silently ignored
        raise BadRequest("Invalid order_by: must be one of createdAt, updatedAt, sentAt")
    limit = min(int_param(request, "limit", MESSAGES_LIMIT_DEFAULT, minimum=1), MESSAGES_LIMIT_MAX)
    offset = int_param(request, "offset", 0, minimum=0)
    query = MessageQuery(
        limit=limit,
        offset=offset,
        order_field=MESSAGE_ORDER_FIELDS[order_by],
        descending=direction_param(request),
        number=param(request, "number"),
    )
    for name, (field, op) in MESSAGE_RANGE_PARAMS.items():
        bound = time_param(request, name, lower=op == ">=")
        if bound is not None:
            query.ranges.append((field, op, bound))
    for name, key in MESSAGE_EQUAL_PARAMS.items():
        value = param(request, name)
        if value is not None:
            query.equals.append((key, value))
    outbound = param(request, "is_outbound")
    if outbound is not None:
        if outbound not in ("true", "false"):
            raise BadRequest("Invalid is_outbound: must be true or false")
        query.equals.append(("is_outbound", outbound == "true"))
    with state.lock:
        total, page = state.list_messages(query)
        return JSONResponse(
            {
                "status": "OK",
                "data": page,
                "pagination": {"hasMore": offset + len(page) < total, "limit": limit, "offset": offset,
                               "total": total},
            }
        )  # fmt: skip


async def get_message(request: Request, state: SendblueSandbox) -> Response:
    with state.lock:
        message = state.get_message(request.path_params["message_id"])
        if message is None:
            return error(404, "Message not found")
        return JSONResponse({"status": "OK", "data": message})


async def get_group(request: Request, state: SendblueSandbox) -> Response:
    view = state.group_view(request.path_params["group_id"])
    if view is None:
        return error(404, "Group not found")
    return JSONResponse({"status": "OK", "data": view})


# Specific paths come before the `{phone_number}` ones so that /count, /bulk and /opt-out match first.
ENDPOINTS: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v2/contacts", list_contacts),
    ("POST", "/api/v2/contacts", create_contact),
    ("DELETE", "/api/v2/contacts", bulk_delete_contacts),
    ("GET", "/api/v2/contacts/count", count_contacts),
    ("POST", "/api/v2/contacts/bulk", bulk_create_contacts),
    ("POST", "/api/v2/contacts/opt-out", opt_out),
    ("GET", "/api/v2/contacts/{phone_number}", get_contact),
    ("PUT", "/api/v2/contacts/{phone_number}", update_contact),
    ("DELETE", "/api/v2/contacts/{phone_number}", delete_contact),
    ("GET", "/api/v2/messages", list_messages),
    ("GET", "/api/v2/messages/{message_id}", get_message),
    ("GET", "/api/v2/groups/{group_id}", get_group),
]


def routes() -> list[BaseRoute]:
    return [Route(path, authenticated(handler), methods=[method]) for method, path, handler in ENDPOINTS]

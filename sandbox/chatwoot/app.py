"""The Chatwoot API routes (`/api/v1/...`), answering from a `ChatwootSandbox` as the Rails app would.

Every account route checks the `api_access_token` header first (401 `Invalid Access Token`), then the
account (404 when it doesn't exist, 401 when the token's user isn't a member). Handlers map the state's
exceptions to Chatwoot's error bodies and statuses.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.chatwoot import views
from sandbox.chatwoot.data import API_TOKEN
from sandbox.chatwoot.filters import FilterError, compile_filter
from sandbox.chatwoot.state import (
    CONTACTS_PER_PAGE,
    CONVERSATION_FILTER_PAGE_SIZE,
    ChatwootSandbox,
    ConversationQuery,
    NotFound,
    RecordInvalid,
    ServerFault,
    Unprocessable,
)

ACCOUNT = "/api/v1/accounts/{account_id}"
NOT_FOUND = {"error": "Resource could not be found"}

Handler = Callable[[Request, ChatwootSandbox, dict[str, Any]], Awaitable[Response]]


def page_number(raw: Any) -> int:
    """Kaminari's `page(params[:page])`: the leading integer, and anything below 1 is page 1."""
    match = re.match(r"\s*(\d+)", str(raw)) if raw is not None else None
    return max(1, int(match.group(1))) if match else 1


def echoed_page(raw: Any) -> Any:
    """`meta.current_page` echoes `params[:page]` as given (a string from a query string), else 1."""
    return 1 if raw is None or raw == "" else raw


def path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not raw.isdigit():
        raise NotFound()
    return int(raw)


def wants_contact_inboxes(value: Any) -> bool:
    return not (value is False or value == "false")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Unprocessable({"error": "Invalid JSON body"}) from None
    return body if isinstance(body, dict) else {"_json": body}


def token_ok(request: Request) -> bool:
    token = request.headers.get("api_access_token", "")
    return hmac.compare_digest(token.encode(), API_TOKEN.encode())


def authenticated(
    state: ChatwootSandbox, handler: Handler, account_scoped: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not token_ok(request):
            return JSONResponse({"error": "Invalid Access Token"}, status_code=401)
        if account_scoped:
            raw = request.path_params.get("account_id", "")
            account = state.data.accounts.get(int(raw)) if raw.isdigit() else None
            if account is None:
                return JSONResponse(NOT_FOUND, status_code=404)
            if not account["member"]:
                return JSONResponse(
                    {"error": "You are not authorized to access this account"}, status_code=401
                )
        try:
            body = await read_json(request) if request.method in ("POST", "PUT", "PATCH") else {}
            return await handler(request, state, body)
        except NotFound:
            return JSONResponse(NOT_FOUND, status_code=404)
        except RecordInvalid as exc:
            return JSONResponse(exc.body(), status_code=422)
        except Unprocessable as exc:
            return JSONResponse(exc.body, status_code=422)
        except FilterError as exc:
            return JSONResponse({"error": exc.message}, status_code=422)
        except ServerFault:
            return state.error_500()

    return endpoint


def params(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Rails `params`: query string merged with the JSON body (the body wins)."""
    merged: dict[str, Any] = dict(request.query_params)
    merged.update(body)
    return merged


# ---------------------------------------------------------------------------- contacts


def contact_page_response(
    state: ChatwootSandbox,
    scope: tuple[Any, ...],
    select: Callable[[dict[str, Any]], bool] | None,
    p: dict[str, Any],
    with_has_more: bool = False,
) -> JSONResponse:
    page = page_number(p.get("page"))
    sort = p.get("sort") or None
    include = wants_contact_inboxes(p.get("include_contact_inboxes"))
    with state.lock:
        total, rows = state.contact_page(scope, select, str(sort) if sort else None, page)
        payload = [views.contact_json(state, c, include) for c in rows]
        if with_has_more:
            # since v4.11 search's count is the rows on this page; has_more says whether another exists
            meta: dict[str, Any] = {
                "count": len(rows),
                "current_page": echoed_page(p.get("page")),
                "has_more": (page - 1) * CONTACTS_PER_PAGE + len(rows) < total,
            }
        else:
            meta = {"count": total, "current_page": echoed_page(p.get("page"))}
        return JSONResponse({"meta": meta, "payload": payload})


async def list_contacts(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    labels = request.query_params.getlist("labels[]") or request.query_params.getlist("labels")
    if labels:
        wanted = {label.strip().lower() for label in labels}
        contact_labels = state.data.contact_labels

        def tagged(c: dict[str, Any]) -> bool:  # tagged_with(labels, any: true)
            return any(label in wanted for label in contact_labels.get(c["id"], ()))

        return contact_page_response(state, ("labels", tuple(sorted(wanted))), tagged, params(request, body))
    state.before_contacts_page()
    return contact_page_response(state, ("all",), None, params(request, body))


async def active_contacts(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    return contact_page_response(
        state, ("active",), lambda c: c["availability_status"] == "online", params(request, body)
    )


async def search_contacts(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    p = params(request, body)
    q = str(p.get("q") or "").strip()
    if not q:
        return JSONResponse({"error": "Specify search string with parameter q"}, status_code=422)
    needle = q.lower()

    def matches(c: dict[str, Any]) -> bool:
        fields = (
            c["name"],
            c["email"],
            c["phone_number"],
            c["identifier"],
            c["additional_attributes"].get("company_name"),
        )
        return any(value and needle in str(value).lower() for value in fields)

    return contact_page_response(state, ("search", needle), matches, p, with_has_more=True)


async def filter_contacts(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    p = params(request, body)
    if "payload" not in body:
        return JSONResponse({"error": "param is missing or the value is empty: payload"}, status_code=422)
    with state.lock:
        select = compile_filter(body["payload"], state.contact_entity())
    scope = ("filter", json.dumps(body["payload"], sort_keys=True, default=str))
    return contact_page_response(state, scope, select, p)


async def show_contact(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    include = wants_contact_inboxes(request.query_params.get("include_contact_inboxes"))
    with state.lock:
        contact = state.get_contact(path_id(request))  # invisible contacts too: only lists hide them
        return JSONResponse({"payload": views.contact_json(state, contact, include)})


async def create_contact(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        contact, inbox, source_id = state.create_contact(body, state.clock())
        return JSONResponse(
            {
                "payload": {
                    "contact": views.contact_json(state, contact, True),
                    "contact_inbox": {
                        "inbox": views.inbox_record(inbox) if inbox else None,
                        "source_id": source_id,
                    },
                }
            }
        )


async def update_contact(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        contact = state.update_contact(path_id(request), body)
        return JSONResponse({"payload": views.contact_json(state, contact, True)})


async def delete_contact(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    state.delete_contact(path_id(request))
    return Response(b"", status_code=200)


async def destroy_custom_attributes(
    request: Request, state: ChatwootSandbox, body: dict[str, Any]
) -> Response:
    keys = body.get("custom_attributes") or []
    with state.lock:
        contact = state.destroy_custom_attributes(
            path_id(request), keys if isinstance(keys, list) else [keys]
        )
        return JSONResponse({"payload": views.contact_json(state, contact, True)})


async def contact_labels(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    contact_id = path_id(request)
    if request.method == "POST":
        labels = body.get("labels") or []
        return JSONResponse(
            {
                "payload": state.set_contact_labels(
                    contact_id, labels if isinstance(labels, list) else [labels]
                )
            }
        )
    with state.lock:
        state.get_contact(contact_id)
        return JSONResponse({"payload": state.labels_of(contact_id)})


async def contact_conversations(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        contact = state.get_contact(path_id(request))
        rows = state.contact_conversations(contact["id"])
        return JSONResponse({"payload": [views.conversation_json(state, c) for c in rows]})


async def merge_contacts(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        base = state.merge_contacts(body.get("base_contact_id"), body.get("mergee_contact_id"))
        return JSONResponse(views.contact_json(state, base, with_contact_inboxes=False))


# ---------------------------------------------------------------------------- labels, inboxes, agents, teams, profile


async def labels(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    if request.method == "POST":
        return JSONResponse(views.label_json(state.create_label(body)))
    with state.lock:
        return JSONResponse({"payload": [views.label_json(label) for label in state.data.account_labels]})


async def inboxes(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        return JSONResponse({"payload": [views.inbox_full(inbox) for inbox in state.data.inboxes.values()]})


async def agents(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    # agents/index: a bare array of the `_agent` partial, no envelope, no paging
    with state.lock:
        return JSONResponse([views.agent_json(agent) for agent in state.data.agents.values()])


async def teams(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    # teams/index: a bare array of the `_team` partial, no envelope, no paging
    return JSONResponse([views.team_json(team) for team in views.TEAMS])


async def profile(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        return JSONResponse(views.profile_json(state, API_TOKEN))


# ---------------------------------------------------------------------------- conversations


def conversation_query(request: Request) -> ConversationQuery:
    q = request.query_params
    return ConversationQuery(
        status=q.get("status") or None,
        assignee_type=q.get("assignee_type") or None,
        inbox_id=q.get("inbox_id") or None,
        team_id=q.get("team_id") or None,
        labels=tuple(q.getlist("labels[]") or q.getlist("labels")),
        updated_within=q.get("updated_within") or None,
        sort_by=q.get("sort_by") or None,
    )


async def list_conversations(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    query = conversation_query(request)
    with state.lock:
        meta, rows = state.query_conversations(query, state.clock())
        if query.updated_within is None:
            size = state.page_size
            start = (page_number(request.query_params.get("page")) - 1) * size
            rows = rows[start : start + size]
        # with updated_within: every match in one response, no pagination
        payload = [views.conversation_json(state, c) for c in rows]
        return JSONResponse({"data": {"meta": meta, "payload": payload}})


async def conversations_meta(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        meta, _ = state.query_conversations(conversation_query(request), state.clock())
        return JSONResponse({"meta": meta})


async def filter_conversations(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    if "payload" not in body:
        return JSONResponse({"error": "param is missing or the value is empty: payload"}, status_code=422)
    p = params(request, body)
    with state.lock:
        select = compile_filter(body["payload"], state.conversation_entity())
        meta, rows = state.filter_conversations(select)
        start = (page_number(p.get("page")) - 1) * CONVERSATION_FILTER_PAGE_SIZE
        rows = rows[start : start + CONVERSATION_FILTER_PAGE_SIZE]
        # no `data` wrapper here, unlike GET /conversations
        return JSONResponse({"meta": meta, "payload": [views.conversation_json(state, c) for c in rows]})


async def show_conversation(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        return JSONResponse(views.conversation_json(state, state.get_conversation(path_id(request))))


async def conversation_labels(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    with state.lock:
        return JSONResponse({"payload": list(state.get_conversation(path_id(request))["labels"])})


async def conversation_messages(request: Request, state: ChatwootSandbox, body: dict[str, Any]) -> Response:
    q = request.query_params
    # `params[:after].present?`: an empty value counts as absent, "0" does not
    before = q.get("before") or None
    after = q.get("after") or None
    with state.lock:
        conv = state.get_conversation(path_id(request))
        rows = state.find_messages(conv["id"], before, after, bool(q.get("filter_internal_messages")))
        return JSONResponse(
            {
                "meta": views.messages_meta(state, conv),
                "payload": [views.message_json(state, m, conv["inbox_id"]) for m in rows],
            }
        )


# ---------------------------------------------------------------------------- the table

# (path, methods, handler); specific paths before the `{id}` ones they would otherwise match
ROUTES: list[tuple[str, list[str], Handler]] = [
    (f"{ACCOUNT}/contacts", ["GET"], list_contacts),
    (f"{ACCOUNT}/contacts", ["POST"], create_contact),
    (f"{ACCOUNT}/contacts/search", ["GET"], search_contacts),
    (f"{ACCOUNT}/contacts/filter", ["POST"], filter_contacts),
    (f"{ACCOUNT}/contacts/active", ["GET"], active_contacts),
    (f"{ACCOUNT}/contacts/{{id}}", ["GET"], show_contact),
    (f"{ACCOUNT}/contacts/{{id}}", ["PUT", "PATCH"], update_contact),
    (f"{ACCOUNT}/contacts/{{id}}", ["DELETE"], delete_contact),
    (f"{ACCOUNT}/contacts/{{id}}/labels", ["GET", "POST"], contact_labels),
    (f"{ACCOUNT}/contacts/{{id}}/conversations", ["GET"], contact_conversations),
    (f"{ACCOUNT}/contacts/{{id}}/destroy_custom_attributes", ["POST"], destroy_custom_attributes),
    (f"{ACCOUNT}/actions/contact_merge", ["POST"], merge_contacts),
    (f"{ACCOUNT}/labels", ["GET", "POST"], labels),
    (f"{ACCOUNT}/inboxes", ["GET"], inboxes),
    (f"{ACCOUNT}/agents", ["GET"], agents),
    (f"{ACCOUNT}/teams", ["GET"], teams),
    (f"{ACCOUNT}/conversations", ["GET"], list_conversations),
    (f"{ACCOUNT}/conversations/meta", ["GET"], conversations_meta),
    (f"{ACCOUNT}/conversations/filter", ["POST"], filter_conversations),
    (f"{ACCOUNT}/conversations/{{id}}", ["GET"], show_conversation),
    (f"{ACCOUNT}/conversations/{{id}}/labels", ["GET"], conversation_labels),
    (f"{ACCOUNT}/conversations/{{id}}/messages", ["GET"], conversation_messages),
]


def api_routes(state: ChatwootSandbox) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/api/v1/profile", authenticated(state, profile, account_scoped=False), methods=["GET"])
    ]
    for path, methods, handler in ROUTES:
        routes.append(Route(path, authenticated(state, handler), methods=methods))
    return routes

"""What both simulators share: knobs, fault injection, rate budgets, the request log, admin routes.

Each API's sandbox is a `SandboxState` subclass holding its data (the ground truth tests compare
against) plus a Starlette app built by `build_app`, which wraps the API routes in `FaultLayer`.
Admin routes live under `/_sandbox/` and are never faulted, throttled or logged.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SIZES = ("small", "medium", "large")
ADMIN_PREFIX = "/_sandbox"


@dataclass
class Knobs:
    """Latency and random faults. Rates are probabilities per API request (0..1)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_500_rate: float = 0.0
    error_502_rate: float = 0.0  # 502 with an HTML body, as a proxy in front of the API sends
    stall_rate: float = 0.0  # the answer comes after stall_seconds (longer than a client timeout)
    stall_seconds: float = 35.0
    truncate_rate: float = 0.0  # a 200 whose JSON body is cut short
    # Users at work during a walk: before each of the next `churn_pages` contacts-list requests, this many
    # contacts are created (at the tail of the created_at order) and deleted (anywhere).
    churn_pages: float = 0.0
    churn_new_contacts: float = 0.0
    churn_deleted_contacts: float = 0.0

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise KeyError(f"unknown knob {key!r}; known: {sorted(names)}")
            setattr(self, key, float(value))


@dataclass
class RateBudget:
    """`limit` requests per `window_seconds` for requests whose path matches `path_contains`.

    `aligned=True` is a fixed window aligned to epoch time (rack-attack's buckets); False is a sliding
    window. `limit=0` disables the budget.
    """

    name: str
    limit: int
    window_seconds: float
    path_contains: str = ""
    method: str | None = None
    aligned: bool = True
    _stamps: collections.deque[float] = field(default_factory=collections.deque, repr=False)
    _bucket: tuple[int, int] = (0, 0)  # (window index, count)

    def matches(self, method: str, path: str) -> bool:
        return (self.path_contains in path) and (self.method is None or self.method == method)

    def admit(self, now: float) -> bool:
        if self.limit <= 0:
            return True
        if self.aligned:
            index = int(now // self.window_seconds)
            bucket, count = self._bucket
            if bucket != index:
                bucket, count = index, 0
            count += 1
            self._bucket = (bucket, count)
            return count <= self.limit
        while self._stamps and now - self._stamps[0] >= self.window_seconds:
            self._stamps.popleft()
        if len(self._stamps) >= self.limit:
            return False
        self._stamps.append(now)
        return True

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class ScheduledFault:
    """A deterministic fault for the next matching request(s): kind is 500, 502, stall, truncate or 429."""

    kind: str
    path_contains: str = ""
    method: str | None = None
    count: int = 1


@dataclass
class LoggedRequest:
    ts: float
    method: str
    path: str
    route: str  # the route template, e.g. "/api/v1/accounts/{account_id}/contacts/{id}/labels"
    query: list[tuple[str, str]]
    status: int
    body: Any = None
    fault: str | None = None

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None

    def public(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Every API request the simulator answered, in order, with counts per route template."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def matching(
        self, route: str | None = None, method: str | None = None, status: int | None = None
    ) -> list[LoggedRequest]:
        with self._lock:
            return [
                e
                for e in self.entries
                if (route is None or e.route == route or e.route.endswith(route))
                and (method is None or e.method == method)
                and (status is None or e.status == status)
            ]

    def counts(self) -> dict[str, int]:
        """Requests per "METHOD route" key."""
        with self._lock:
            return dict(collections.Counter(f"{e.method} {e.route}" for e in self.entries))

    def status_counts(self) -> dict[int, int]:
        with self._lock:
            return dict(collections.Counter(e.status for e in self.entries))

    def writes(self) -> list[LoggedRequest]:
        with self._lock:
            return [e for e in self.entries if e.method in ("POST", "PUT", "PATCH", "DELETE")]


class SandboxState:
    """Base of each API's state. Subclasses add the data, `mutate()` and the API routes."""

    api_name = "sandbox"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(seed + 7919)
        self.knobs = Knobs()
        self.budgets: list[RateBudget] = []
        self.scheduled: list[ScheduledFault] = []
        self.log = RequestLog()
        self.lock = threading.RLock()  # data is shared between uvicorn's loop and test threads
        self.clock: Callable[[], float] = time.time

    # -- hooks for subclasses

    def error_500(self) -> Response:
        return JSONResponse({"error": "Internal Server Error"}, status_code=500)

    def rate_limited(self, budget: RateBudget) -> Response:
        return Response("Retry later\n", status_code=429, media_type="text/plain")

    def mutate(self, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def truth_summary(self) -> dict[str, Any]:
        return {}

    def churn_contacts(self, new: int, deleted: int) -> None:
        raise NotImplementedError

    def before_contacts_page(self) -> None:
        """The churn knobs: contacts created and deleted between the page requests of a contacts walk."""
        with self.lock:
            if self.knobs.churn_pages < 1:
                return
            self.knobs.churn_pages -= 1
            self.churn_contacts(int(self.knobs.churn_new_contacts), int(self.knobs.churn_deleted_contacts))

    # -- fault and budget decisions

    def schedule(self, kind: str, path_contains: str = "", method: str | None = None, count: int = 1) -> None:
        if kind not in ("500", "502", "stall", "truncate", "429"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.lock:
            self.scheduled.append(ScheduledFault(kind, path_contains, method, count))

    def budget(self, name: str) -> RateBudget:
        for b in self.budgets:
            if b.name == name:
                return b
        raise KeyError(name)

    def _pick_fault(self, method: str, path: str) -> tuple[str | None, RateBudget | None]:
        with self.lock:
            for fault in self.scheduled:
                if fault.path_contains in path and (fault.method is None or fault.method == method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.scheduled.remove(fault)
                    return fault.kind, None
            now = self.clock()
            for b in self.budgets:
                if b.matches(method, path) and not b.admit(now):
                    return "429", b
            k = self.knobs
            r = self.fault_rng.random()
            for kind, rate in (
                ("500", k.error_500_rate),
                ("502", k.error_502_rate),
                ("stall", k.stall_rate),
                ("truncate", k.truncate_rate),
            ):
                if r < rate:
                    return kind, None
                r -= rate
        return None, None

    def latency(self) -> float:
        k = self.knobs
        if k.latency_ms <= 0 and k.jitter_ms <= 0:
            return 0.0
        with self.lock:
            jitter = self.fault_rng.uniform(-k.jitter_ms, k.jitter_ms) if k.jitter_ms else 0.0
        return max(0.0, (k.latency_ms + jitter) / 1000.0)


def _route_template(app: Starlette, scope: Scope) -> str:
    from starlette.routing import Match

    for route in app.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return scope["path"]


class FaultLayer:
    """ASGI wrapper: latency, scheduled and random faults, rate budgets and the request log."""

    def __init__(self, app: Starlette, state: SandboxState):
        self.app = app
        self.sandbox = state
        self.state = app.state  # so `app.state.sandbox` works on the wrapped app too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.sandbox
        method = scope["method"]
        path = scope["path"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)

        # read the body once so it can be logged and replayed to the app
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")[:2000]

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        delay = state.latency()
        if delay:
            await asyncio.sleep(delay)
        fault, budget = state._pick_fault(method, path)
        entry = LoggedRequest(
            state.clock(), method, path, _route_template(self.app, scope), query, 0, body, fault
        )
        response: Response | None = None
        if fault == "429":
            response = state.rate_limited(budget) if budget else state.rate_limited(
                RateBudget("scheduled", 0, 60)
            )
        elif fault == "500":
            response = state.error_500()
        elif fault == "502":
            response = Response(
                "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
                "</center><hr><center>nginx</center></body></html>",
                status_code=502,
                media_type="text/html",
            )
        elif fault == "stall":
            await asyncio.sleep(state.knobs.stall_seconds)
        if response is not None:
            entry.status = response.status_code
            state.log.add(entry)
            await response(scope, replay, send)
            return

        status_holder: dict[str, Any] = {}
        truncate = fault == "truncate"
        held: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                # logged before the client can see the answer, so a test reading the log right after
                # a response finds its request there
                entry.status = int(message["status"])
                state.log.add(entry)
                if truncate:
                    held.append(message)
                    return
            elif truncate and message["type"] == "http.response.body":
                held.append(message)
                if not message.get("more_body", False):
                    full = b"".join(m.get("body", b"") for m in held[1:])
                    cut = full[: max(1, len(full) // 2)]
                    start = dict(held[0])
                    start["headers"] = [
                        (k, str(len(cut)).encode() if k.lower() == b"content-length" else v)
                        for k, v in start.get("headers", [])
                    ]
                    await send(start)
                    await send({"type": "http.response.body", "body": cut, "more_body": False})
                return
            await send(message)

        await self.app(scope, replay, capture)
        if "status" not in status_holder:
            state.log.add(entry)


def admin_routes(state: SandboxState) -> list[BaseRoute]:
    """`/_sandbox/*`: read the log, set knobs and budgets, schedule faults, mutate data."""

    async def requests_(request: Request) -> Response:
        route = request.query_params.get("route")
        entries = state.log.matching(route=route) if route else state.log.entries
        return JSONResponse(
            {
                "counts": state.log.counts(),
                "statuses": {str(k): v for k, v in state.log.status_counts().items()},
                "total": len(state.log.entries),
                "entries": [e.public() for e in entries]
                if request.query_params.get("entries") == "1"
                else [],
            }
        )

    async def clear(request: Request) -> Response:
        state.log.clear()
        return JSONResponse({"ok": True})

    async def knobs(request: Request) -> Response:
        if request.method == "POST":
            values = await request.json()
            budgets = values.pop("budgets", {}) or {}
            try:
                with state.lock:
                    state.knobs.update(values)
                    for name, spec in budgets.items():
                        b = state.budget(name)
                        for key in ("limit", "window_seconds"):
                            if key in spec:
                                setattr(b, key, type(getattr(b, key))(spec[key]))
            except KeyError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"knobs": asdict(state.knobs), "budgets": [b.public() for b in state.budgets]})

    async def faults(request: Request) -> Response:
        spec = await request.json()
        try:
            state.schedule(
                str(spec["kind"]), spec.get("path_contains", ""), spec.get("method"), int(spec.get("count", 1))
            )
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    async def mutate(request: Request) -> Response:
        spec = await request.json() if (await request.body()) else {}
        with state.lock:
            return JSONResponse(state.mutate(**spec))

    async def truth(request: Request) -> Response:
        with state.lock:
            return JSONResponse(state.truth_summary())

    return [
        Route(f"{ADMIN_PREFIX}/requests", requests_, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/requests/clear", clear, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/knobs", knobs, methods=["GET", "POST"]),
        Route(f"{ADMIN_PREFIX}/faults", faults, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/mutate", mutate, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/truth", truth, methods=["GET"]),
    ]


def build_app(state: SandboxState, routes: list[BaseRoute]) -> ASGIApp:
    """The API routes plus the admin routes, wrapped in the fault layer. `app.state.sandbox` is `state`."""
    inner = Starlette(routes=[*admin_routes(state), *routes])
    inner.state.sandbox = state
    return FaultLayer(inner, state)


def sandbox_of(app: Any) -> Any:
    """The state object behind an app built by `build_app`."""
    return app.state.sandbox

"""The webhook receiver: a Starlette app with the two delivery routes and /healthz.

A delivery is answered 2xx only once it is in the spool (written and fsynced); it is checked first (401
on a failed signature, 413 on a body over `max_body_bytes`, 400 on a body that is not JSON) and nothing
is stored for a refused one. The flusher (flush.py) takes the spool to the warehouse in a thread, so a
slow or unreachable warehouse never delays an answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.listen.flush import Flusher
from pipelines.listen.keys import delivery_key, event_name, scrubbed
from pipelines.listen.settings import DEFAULT_ACCOUNT, Endpoint, ListenSettings, endpoint
from pipelines.listen.spool import Spool
from pipelines.listen.verify import check_chatwoot, check_sendblue

log = logging.getLogger("switchboard.listen")

GAP_NOTE = (
    "Chatwoot sends each webhook once and never retries: deliveries missed while the listener was down "
    "are repaired only by the next scheduled `switchboard load`"
)


class TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge
    return bytes(body)


def create_app(
    settings: ListenSettings,
    flusher: Flusher | None = None,
    endpoints: Callable[[str, str], Endpoint | None] = endpoint,
) -> Starlette:
    """The receiver over `settings.spool_dir`. `flusher` (started and stopped with the app) loads the
    spool; without one, events stay spooled (tests of the receiver alone)."""
    spool = flusher.spool if flusher is not None else Spool(settings.spool_dir)
    resolved: dict[tuple[str, str], Endpoint | None] = {}

    def endpoint_for(source: str, account: str) -> Endpoint | None:
        if (source, account) not in resolved:
            resolved[(source, account)] = endpoints(source, account)
        return resolved[(source, account)]

    async def receive(request: Request) -> Response:
        source = request.path_params["source"]
        account = request.path_params.get("account", DEFAULT_ACCOUNT)
        target = endpoint_for(source, account)
        if target is None:
            return JSONResponse({"error": "unknown webhook path"}, status_code=404)
        try:
            body = await _read_body(request, settings.max_body_bytes)
        except TooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if source == "chatwoot":
            problem = check_chatwoot(target.secret, target.allow_unsigned, headers, body)
        else:
            problem = check_sendblue(target.secret, target.allow_unsigned, headers)
        if problem:
            log.warning("refused a %s delivery: %s", target.path, problem)
            return JSONResponse({"error": "verification failed"}, status_code=401)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        record = {
            "source": source,
            "account": target.account,
            "key": delivery_key(source, headers, payload),
            "event": event_name(source, payload),
            "received_at": datetime.now(UTC).isoformat(),
            "payload": scrubbed(source, payload),
        }
        await spool.append(record)
        if flusher is not None and spool.open_events >= settings.flush_events:
            flusher.kick()
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> Response:
        status = flusher.status() if flusher is not None else {}
        return JSONResponse(
            {"ok": not status.get("last_error"), "spool_depth": spool.depth, **status, "note": GAP_NOTE}
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if flusher is not None:
            flusher.start()
        try:
            yield
        finally:
            if flusher is not None:
                flusher.stop()  # one last flush of what is spooled
            spool.close()

    routes = [
        Route("/webhooks/{source:str}", receive, methods=["POST"]),
        Route("/webhooks/{source:str}/{account:str}", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.spool = spool
    app.state.started = time.time()
    return app

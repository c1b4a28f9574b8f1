"""A field the API starts sending that the models do not declare is dropped, as Chatwoot drops it: the
loaded tables keep their declared columns (docs/architecture.md says why)."""

from __future__ import annotations

import json
from typing import Any

from sources.sendblue.endpoints import STREAMS


class WithNewFields:
    """The simulator as a newer deployment: every contact and message carries two undeclared fields."""

    def __init__(self, app: Any):
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def rewrite(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            data = json.loads(body) if body else None
            rows = data if isinstance(data, list) else (data or {}).get("data") if isinstance(data, dict) else None
            for row in rows if isinstance(rows, list) else []:
                row.update({"loyaltyTier": "gold", "internal_score": 7})
            out = json.dumps(data).encode() if body else b""
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(out)).encode())]})
            await send({"type": "http.response.body", "body": out})

        await self.app(scope, receive, rewrite)


def test_undeclared_api_fields_do_not_become_columns(sandbox_factory: Any, warehouse: Any) -> None:
    sandbox = sandbox_factory("small", seed=3, contacts=40, messages=60, wrap=WithNewFields)
    counts = warehouse.run(sandbox.source().with_resources("contacts", "messages"))
    assert counts["contacts"] == 40 and counts["messages"] == 60
    for table in ("contacts", "messages"):
        loaded = {c for c in warehouse.columns(table) if not c.startswith("_dlt")}
        declared = {c["name"] for c in STREAMS[table].columns()} | {"_deleted"}
        assert loaded <= declared, loaded - declared
        assert not {"loyalty_tier", "internal_score"} & loaded

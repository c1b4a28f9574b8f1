"""Fixtures for the Sendblue client and source tests: the simulator (in-process through httpx.ASGITransport,
or served on loopback), settings pointing at it, a dlt pipeline into a DuckDB file under tmp_path, and
the ground truth normalised the way the notes say the tables must hold it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import httpx
import pytest

from sandbox.sendblue import API_KEY_ID, API_SECRET_KEY, create_app
from sandbox.server import RunningServer, serve_in_thread
from sources.sendblue import SendblueSettings, sendblue_source

ASGI_BASE_URL = "http://127.0.0.1"  # any loopback URL: ASGITransport never opens a socket


class RecordingTransport(httpx.ASGITransport):
    """ASGITransport that also keeps each request's raw path and query as they leave the client."""

    def __init__(self, app: Any):
        super().__init__(app=app)
        self.raw: list[tuple[str, str, str]] = []  # (method, raw path, raw query)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.raw.append(
            (request.method, request.url.raw_path.split(b"?")[0].decode(), request.url.query.decode())
        )
        return await super().handle_async_request(request)


class Sandbox:
    """One simulator: its app, state (ground truth, request log) and a transport into it."""

    def __init__(self, app: Any):
        self.app = app
        self.state: Any = app.state.sandbox
        self.transport = RecordingTransport(app)

    def settings(self, base_url: str = ASGI_BASE_URL, **overrides: Any) -> SendblueSettings:
        values: dict[str, Any] = {
            "base_url": base_url,
            "api_key_id": API_KEY_ID,
            "api_secret_key": API_SECRET_KEY,
            "retry_backoff_seconds": 0.01,
            "rate_limit_per_minute": 0,
        }
        values.update(overrides)
        return SendblueSettings(**values)

    def source(self, **settings_overrides: Any) -> Any:
        return sendblue_source(settings=self.settings(**settings_overrides), transport=self.transport)

    def requests(self, route: str, method: str = "GET") -> list[Any]:
        return self.state.log.matching(route=route, method=method)


@pytest.fixture
def sandbox_factory() -> Callable[..., Sandbox]:
    """`sandbox_factory(size="small", seed=0, key_casing="snake", wrap=None, **overrides)`: a fresh
    in-process simulator; `wrap(app)` may put an ASGI layer in front of it (keeping `.state`)."""

    def make(
        size: str = "small",
        seed: int = 0,
        key_casing: str = "snake",
        wrap: Callable[[Any], Any] | None = None,
        **overrides: Any,
    ) -> Sandbox:
        app = create_app(size, seed, key_casing, **overrides)
        return Sandbox(wrap(app) if wrap else app)

    return make


@pytest.fixture
def served_factory() -> Iterator[Callable[..., tuple[Sandbox, RunningServer]]]:
    """Like sandbox_factory, but served over real loopback HTTP; every server stops at teardown."""
    servers: list[RunningServer] = []

    def make(
        size: str = "small", seed: int = 0, key_casing: str = "snake", **overrides: Any
    ) -> tuple[Sandbox, RunningServer]:
        app = create_app(size, seed, key_casing, **overrides)
        server = serve_in_thread(app)
        servers.append(server)
        return Sandbox(app), server

    yield make
    for server in servers:
        server.stop()


class Warehouse:
    """A dlt pipeline into a DuckDB file, and reads of what it loaded."""

    def __init__(self, root: Path, name: str = "sendblue_test"):
        self.path = root / "warehouse.duckdb"
        self.pipeline = dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.duckdb(str(self.path)),
            dataset_name="sendblue",
            pipelines_dir=str(root / "pipelines"),
        )

    def run(self, source: Any) -> dict[str, int]:
        """Run the pipeline; return the rows normalised per table in this run."""
        # dlt's default load files for DuckDB (insert statements): its jsonl loading turns a JSON column
        # holding objects into the union of every row's keys, so `{}` comes back with null labels
        self.pipeline.run(source)
        trace = self.pipeline.last_trace
        assert trace is not None and trace.last_normalize_info is not None
        counts = trace.last_normalize_info.row_counts
        return {k: v for k, v in counts.items() if not k.startswith("_dlt")}

    def rows(self, table: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            cursor = con.cursor()
            cursor.execute(f"SELECT * FROM sendblue.{table}")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def columns(self, table: str) -> dict[str, str]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            rows = con.sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_schema = 'sendblue' AND table_name = '{table}'"
            ).fetchall()
        return {name: dtype for name, dtype in rows}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)


# ---------------------------------------------------------------------------------------- ground truth


def ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


CONTACT_FIELDS = (
    "phone",
    "first_name",
    "last_name",
    "company_name",
    "assigned_to_email",
    "sendblue_number",
    "tags",
    "custom_variables",
    "opt_out",
    "verified",
    "created_at",
    "contact_id",
)


def expected_contact(truth: dict[str, Any]) -> dict[str, Any]:
    row = {name: truth.get(name) for name in CONTACT_FIELDS}
    row["created_at"] = ts(row["created_at"])
    return row


def loaded_contact(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row.get(name) for name in CONTACT_FIELDS}
    out["tags"] = as_json(out["tags"])
    out["custom_variables"] = as_json(out["custom_variables"])
    out["created_at"] = ts(out["created_at"])
    return out


MESSAGE_TIMESTAMPS = ("date_sent", "date_updated")


def expected_message(truth: dict[str, Any]) -> dict[str, Any]:
    """The served message with "" as null, camelCase keys in snake_case and timestamps parsed."""
    out = {}
    for key, value in truth.items():
        name = "account_email" if key == "accountEmail" else key
        out[name] = None if value == "" else value
    for key in MESSAGE_TIMESTAMPS:
        out[key] = ts(out[key])
    return out


def loaded_message(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    out = {key: row.get(key) for key in keys}
    for key in ("participants", "reply_to", "thread_originator", "location"):
        if key in out:
            out[key] = as_json(out[key])
    for key in MESSAGE_TIMESTAMPS:
        out[key] = ts(out[key])
    return out


def truth_conversation_id(key: Any) -> str:
    """The sandbox keys a 1:1 thread by (sendblue_number, number) and a group by group_id."""
    if isinstance(key, tuple):
        return f"{key[0]}:{key[1]}"
    return str(key)


def expected_conversations(state: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for key, t in state.conversations().items():
        out[truth_conversation_id(key)] = {
            "kind": t["kind"],
            "sendblue_number": t["sendblue_number"],
            "number": t["number"],
            "group_id": t["group_id"],
            "message_count": t["messages"],
            "inbound_count": t["inbound"],
            "outbound_count": t["outbound"],
            "first_message_at": ts(t["first_message_at"]),
            "last_message_at": ts(t["last_message_at"]),
            "last_message_handle": t["last_message_handle"],
            "last_message_preview": t["last_message_preview"] or None,
        }
    return out


def loaded_conversations(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rows:
        out[r["conversation_id"]] = {
            "kind": r["kind"],
            "sendblue_number": r["sendblue_number"],
            "number": r["number"],
            "group_id": r["group_id"],
            "message_count": r["message_count"],
            "inbound_count": r["inbound_count"],
            "outbound_count": r["outbound_count"],
            "first_message_at": ts(r["first_message_at"]),
            "last_message_at": ts(r["last_message_at"]),
            "last_message_handle": r["last_message_handle"],
            "last_message_preview": r["last_message_preview"] or None,
        }
    return out


# ---------------------------------------------------------------------------------------- comparisons


class Truth:
    """Assertions that a warehouse holds exactly what a simulator serves."""

    @staticmethod
    def contacts(sandbox: Sandbox, warehouse: Warehouse, tags: bool = True) -> None:
        loaded = {r["phone"]: loaded_contact(r) for r in warehouse.rows("contacts")}
        with sandbox.state.lock:
            truth = {phone: expected_contact(c) for phone, c in sandbox.state.contacts.items()}
        assert set(loaded) == set(truth)
        mismatched = [phone for phone in truth if loaded[phone] != truth[phone]]
        assert not mismatched, [(loaded[p], truth[p]) for p in mismatched[:1]]
        if tags:
            pairs = {(r["phone"], r["tag"]) for r in warehouse.rows("contact_tags")}
            assert pairs == sandbox.state.contact_tags()

    @staticmethod
    def messages(sandbox: Sandbox, warehouse: Warehouse) -> None:
        rows = warehouse.rows("messages")
        with sandbox.state.lock:
            truth = {h: expected_message(m) for h, m in sandbox.state.messages.items()}
        keys = sorted({k for m in truth.values() for k in m})
        loaded = {r["message_handle"]: loaded_message(r, keys) for r in rows}
        assert set(loaded) == set(truth)
        mismatched = [h for h in truth if loaded[h] != {k: truth[h].get(k) for k in keys}]
        assert not mismatched, [(loaded[h], truth[h]) for h in mismatched[:1]]

    @staticmethod
    def conversations(sandbox: Sandbox, warehouse: Warehouse) -> None:
        rows = warehouse.rows("conversations")
        loaded = loaded_conversations(rows)
        truth = expected_conversations(sandbox.state)
        assert set(loaded) == set(truth)
        wrong = {cid: (loaded[cid], truth[cid]) for cid in truth if loaded[cid] != truth[cid]}
        assert not wrong, list(wrong.items())[:2]


@pytest.fixture
def truth() -> type[Truth]:
    return Truth

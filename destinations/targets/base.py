"""What the sync engine and its targets agree on: the `Target` class every target derives from, the work
handed to it, the per-row result it hands back, and the one place that decides what an API error means.

A target never raises for one row: like drt's destinations it collects row errors into results. It raises
only for what stops the whole run (credentials refused, a bug). Its results say, per key (`Outcome`):
- `ok`: the API now holds the row (with the remote id when there is one);
- `skipped`: nothing was sent on purpose (an opt-in the sync may not send, an existing contact in
  create_only mode): the engine keeps the ledger at what the API held before;
- `error`: the API refused the row (400/404/409/422, or 429 after every retry): retried next run;
- `unknown`: the request may or may not have taken effect (a timeout after it left, a 5xx after
  retries, a dropped connection): the engine reconciles it by reading the remote state, never by resending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel

from sources.common.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from sources.common.runtime import gather_limited

T = TypeVar("T")
R = TypeVar("R")

Action = Literal["create", "update", "check", "remove"]


class Outcome:
    """A row's outcome as a target reports it (the ledger's statuses are another vocabulary)."""

    OK, SKIPPED, ERROR, UNKNOWN = "ok", "skipped", "error", "unknown"


@dataclass
class WorkItem:
    """One desired row for a target.

    action: `create` (no remote record known), `update` (a remote record exists; `previous` is the payload
    last confirmed, the baseline for sending only what changed, or None to send every field), `check` (the
    outcome of an earlier send is unknown: read the remote state, then do only what is still missing),
    `remove` (a target with `removes`, a sync with remove = true: the row left the query).
    """

    key: str
    fields: dict[str, Any]
    action: Action
    previous: dict[str, Any] | None = None
    remote_id: str | None = None


@dataclass
class RowResult:
    key: str
    outcome: str
    effects: list[str] = field(default_factory=list)  # created, updated, opted_out, opted_in, labels
    remote_id: str | None = None
    http_status: int | None = None
    message: str | None = None
    action: str = ""
    # fields the API still holds at another value than the row asks (an opt-in withheld without
    # allow_opt_in): the ledger records these values, so it never claims what the API does not hold
    held: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return "+".join(self.effects) if self.effects else (self.action or "none")


@dataclass(frozen=True)
class RemoteTable:
    """The loaded table that lists what exists remotely (in the dataset the target's API loads into): a
    row whose key is found there is updated instead of created, and its id is used without a lookup."""

    table: str
    id_column: str
    key_column: str | None = None  # None: the sync's match_on


class Progress:
    """One row on its way through a target: its effects so far, its remote id, and whether the request in
    flight may take effect unseen. `failure` turns an API error into the row's result from it."""

    def __init__(self, item: WorkItem):
        self.item = item
        self.effects: list[str] = []
        self.remote_id = item.remote_id
        self.wrote = False
        self.unsafe = False

    def did(self, effect: str) -> None:
        if effect not in self.effects:
            self.effects.append(effect)

    def result(
        self, outcome: str = Outcome.OK, message: str | None = None, *, status: int | None = 200,
        held: dict[str, Any] | None = None,
    ) -> RowResult:
        item = self.item
        return RowResult(item.key, outcome, list(self.effects), self.remote_id, status, message, item.action, held)


def failure(row: Progress, exc: BaseException) -> RowResult:
    """The one place that decides what an error means: the end of the run (credentials refused, or not an
    API error at all: a bug), or the row's result. A check that could not read the remote state stays
    unknown; so does a request that may have taken effect unseen (a create's timeout, dropped connection
    or 5xx). Anything else (a 4xx, a 429 that outlasted every retry, a failed idempotent request) is the
    row's error, retried next run."""
    if isinstance(exc, AuthError) or not isinstance(exc, ApiError):
        raise exc
    if row.item.action == "check" and not row.wrote and not isinstance(exc, NotFoundError):
        return row.result(Outcome.UNKNOWN, f"could not read the remote state: {exc}", status=exc.status)
    if row.unsafe and isinstance(exc, TransportError | ServerError):
        return row.result(Outcome.UNKNOWN, f"outcome unknown, will reconcile: {exc}", status=exc.status)
    return row.result(Outcome.ERROR, str(exc), status=exc.status)


def refused(exc: BaseException) -> bool:
    """The API answered and refused the request (a 4xx other than a 429): nothing of it took effect."""
    return isinstance(exc, ApiError) and not isinstance(exc, RateLimitedError) and 400 <= (exc.status or 0) < 500


async def run_each(items: list[T], fn: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """`fn` over `items` with at most `concurrency` in flight; results in input order. Targets return
    row errors as results, so an exception here is fatal (bad credentials, a bug) and is raised."""
    results: dict[int, R] = {}
    indexed = list(enumerate(items))
    async for (index, _item), result in gather_limited(indexed, lambda pair: fn(pair[1]), concurrency):
        if isinstance(result, BaseException):
            raise result
        results[index] = result
    return [results[i] for i in range(len(indexed))]


class Target:
    """A reverse-ETL target: one subclass per `target` a sync may name, listed in `destinations.targets`.

    The class attributes and classmethods describe the target to the engine, which never names one: its
    row model, the column its ledger key comes from, its batch limit, the loaded table that says what
    exists remotely, and which of the sync's settings apply. An instance writes: `apply` gets at most
    `batch_size` items and returns one result per item, on a client of the source's own kind.
    """

    name: ClassVar[str]  # what `[syncs.NAME] target` says
    api: ClassVar[str]  # whose client, credentials and account (a source's name)
    row_model: ClassVar[type[BaseModel]]
    key_field: ClassVar[str | None] = None  # the key column; None: the sync's match_on
    match_columns: ClassVar[tuple[str, ...]] = ()  # what match_on may name, in the order a query infers it
    batch_max: ClassVar[int | None] = None  # the most rows one write request takes
    remote_table: ClassVar[RemoteTable | None] = None
    index_finds_rows: ClassVar[bool] = True  # False: the remote table finds a row's parent, for the writer only
    modes: ClassVar[bool] = True  # False: no create/update distinction, every mode sends the row
    opts: ClassVar[bool] = False  # rows opt numbers out (and in): the plan counts them
    removes: ClassVar[bool] = False  # remove = true takes away what left the query

    # -- rows

    @classmethod
    def key_columns(cls, match_on: str | None) -> list[str]:
        """The input columns a row's key is made of."""
        return [cls.key_field or str(match_on)]

    @classmethod
    def key_of(cls, values: Mapping[str, Any], match_on: str | None) -> str | None:
        """The ledger key of a row, raw or validated (None when its key column is empty)."""
        value = values.get(cls.key_field or str(match_on))
        return None if value is None else str(value)

    @classmethod
    def ledger_fields(cls, fields: dict[str, Any], match_on: str | None) -> dict[str, Any]:
        """A validated row's fields as the ledger keeps them and the writer gets them."""
        return fields

    @classmethod
    def remote_key(cls, fields: dict[str, Any], key: str) -> str:
        """What the remote table is searched by for this row."""
        return key

    @classmethod
    def settings_skip(cls, fields: dict[str, Any], config: Any) -> str | None:
        """Why the sync's settings keep this row from being sent at all, or None."""
        return None

    @classmethod
    def opt_change(cls, fields: dict[str, Any], previous: dict[str, Any] | None, allow_opt_in: bool) -> bool | None:
        """True when sending the row opts its number out, False when it opts it in, else None."""
        return None

    # -- writing

    def __init__(
        self, client: Any, config: Any, *, match_on: str | None = None, index: dict[str, str | None] | None = None
    ) -> None:
        """`config`: the sync (its mode, concurrency, nulls_erase, allow_opt_in, labels_mode); `index`: the
        remote table's ids by key, when the engine read one."""
        self.client = client
        self.config = config
        self.concurrency = int(config.concurrency)
        self.match_on = match_on
        self.index = index
        self.write_requests = 0

    @staticmethod
    def open_client(**overrides: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def open(cls, config: Any, match_on: str | None, index: dict[str, str | None] | None) -> Target:
        """The target on a fresh client of the source's kind; the sync's rate_limit_per_minute (when set;
        0 turns the client-side limit off, as in the sources' settings) replaces the source's."""
        limit = config.rate_limit_per_minute
        overrides = {"rate_limit_per_minute": limit} if limit is not None else {}
        return cls(cls.open_client(**overrides), config, match_on=match_on, index=index)

    def request_count(self) -> int:
        return int(self.client.stats.requests)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        raise NotImplementedError

    async def send(self, request: Awaitable[T], *rows: Progress, unsafe: bool = False) -> T:
        """A state-changing request for `rows`, counted. `unsafe`: not safe to resend (a create), so an
        error without an answer leaves the rows' outcome unknown."""
        self.write_requests += 1
        for row in rows:
            row.wrote, row.unsafe = True, unsafe
        try:
            answer = await request
        except (TransportError, ServerError):
            raise  # no answer, or a 5xx: an unsafe request may have taken effect
        except BaseException:
            for row in rows:
                row.unsafe = False  # refused: nothing took effect
            raise
        for row in rows:
            row.unsafe = False
        return answer

    async def each(
        self, items: Sequence[WorkItem | Progress], fn: Callable[[Progress], Awaitable[RowResult]]
    ) -> list[RowResult]:
        """`fn` over `items`, `concurrency` at a time, results in input order; an error becomes the row's
        result through `failure` (or ends the run)."""

        async def one(item: WorkItem | Progress) -> RowResult:
            row = item if isinstance(item, Progress) else Progress(item)
            try:
                return await fn(row)
            except Exception as exc:
                return failure(row, exc)

        return await run_each(list(items), one, self.concurrency)

"""What the sync engine and the reverse-ETL writers (`destinations/sendblue.py`, `destinations/chatwoot.py`)
agree on: the work handed to a writer, the per-row result it hands back, and how API errors map to them.

A writer never raises for one row: like drt's destinations it collects row errors into results. It raises
only for what stops the whole run (bad credentials, a bug). Its results say, per key:
- `ok`: the API now holds the row (with the remote id when there is one);
- `skipped`: nothing was sent on purpose (an opt-in the sync may not send, an existing contact in
  create_only mode): the engine keeps the ledger at what the API held before;
- `error`: the API refused the row (400/404/409/422, or 429 after every retry): retried next run;
- `unknown`: the request may or may not have taken effect (a timeout after it left, a 5xx after
  retries, a dropped connection): the engine reconciles it by reading the remote state, never by resending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sources.common.http import ApiError, AuthError, ServerError, TransportError, gather_limited

T = TypeVar("T")
R = TypeVar("R")

Action = Literal["create", "update", "check", "remove"]
OK, SKIPPED, ERROR, UNKNOWN = "ok", "skipped", "error", "unknown"


@dataclass
class WorkItem:
    """One desired row for a writer.

    action: `create` (no remote record known), `update` (a remote record exists; `previous` is the payload
    last confirmed, the baseline for sending only what changed, or None to send every field), `check` (the
    outcome of an earlier send is unknown: read the remote state, then do only what is still missing),
    `remove` (chatwoot.contact_labels with remove = true: the row left the query).
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


class Writer:
    """A reverse-ETL target. `apply` gets at most `batch_size` items and returns one result per item.

    Subclasses set `target` and implement `apply`; the client, the write counter and closing are shared.
    """

    target: str

    def __init__(self, client: Any, concurrency: int) -> None:
        self.client = client
        self.concurrency = concurrency
        self.pacer = Pacer()

    @property
    def write_requests(self) -> int:
        return self.pacer.write_requests

    def request_count(self) -> int:
        return int(self.client.stats.requests)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        raise NotImplementedError


def is_fatal(exc: BaseException) -> bool:
    """Errors that end the run instead of one row: credentials refused, or anything that is not an API error."""
    return isinstance(exc, AuthError) or not isinstance(exc, ApiError)


def unreadable(key: str, exc: ApiError) -> RowResult:
    """A `check` that could not read the remote state: the outcome stays unknown (the key stays pending)."""
    return RowResult(key, UNKNOWN, [], None, exc.status, f"could not read the remote state: {exc}", "check")


def result_from_error(key: str, action: str, exc: ApiError, *, may_have_applied: bool) -> RowResult:
    """A row's result after an API error. `may_have_applied` is True for requests that change state and
    are not safe to resend (creates): a timeout, dropped connection or 5xx then leaves the outcome unknown."""
    status = exc.status
    unknown = isinstance(exc, TransportError | ServerError) and may_have_applied
    if unknown:
        return RowResult(key, UNKNOWN, [], None, status, f"outcome unknown, will reconcile: {exc}", action)
    # a refusal (4xx), a 429 that outlasted every retry, or a failed idempotent request: retried next run
    return RowResult(key, ERROR, [], None, status, str(exc), action)


class Pacer:
    """Counts the state-changing requests a writer sends (reads are not counted). Rate limiting is the
    client's: the sync's rate_limit_per_minute configures the client's shared limiter."""

    def __init__(self) -> None:
        self.write_requests = 0

    async def read(self) -> None:
        return None

    async def write(self) -> None:
        self.write_requests += 1


def scalar_changes(
    desired: dict[str, Any],
    baseline: dict[str, Any] | None,
    names: tuple[str, ...],
    *,
    nulls_erase: bool,
    erase_value: Any = None,
) -> dict[str, Any]:
    """Scalar fields to send so the remote equals the desired row. `baseline` is what the remote holds
    (read, or last confirmed); None means unknown, so every present field is sent. A null erases only with
    nulls_erase, and only where the baseline holds (or may hold) a value."""
    out: dict[str, Any] = {}
    for name in names:
        want = desired.get(name)
        have = baseline.get(name) if baseline is not None else None
        if want is None:
            if nulls_erase and (baseline is None or have not in (None, "")):
                out[name] = erase_value
            continue
        if baseline is None or want != have:
            out[name] = want
    return out


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: same type and value (99 and "99", or true and 1, differ; 99 and 99.0 are
    the same number), lists in order, objects key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def map_changes(
    want: dict[str, Any] | None, have: dict[str, Any] | None, *, known: bool, nulls_erase: bool
) -> tuple[dict[str, Any], list[str]]:
    """(keys to set, keys to erase) for a map the API merges into the stored one; values compare as
    JSON (type and value)."""
    if want is None:
        return {}, []
    have = have if isinstance(have, dict) else {}
    to_set = {k: v for k, v in want.items() if v is not None and (not known or not same_json(have.get(k), v))}
    to_erase = [k for k, v in want.items() if v is None and nulls_erase and (not known or have.get(k) not in (None, ""))]
    return to_set, to_erase


async def run_each(items: list[T], fn: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """`fn` over `items` with at most `concurrency` in flight; results in input order. Writers return
    row errors as results, so an exception here is fatal (bad credentials, a bug) and is raised."""
    results: dict[int, R] = {}
    indexed = list(enumerate(items))
    async for (index, _item), result in gather_limited(indexed, lambda pair: fn(pair[1]), concurrency):
        if isinstance(result, BaseException):
            raise result
        results[index] = result
    return [results[i] for i in range(len(indexed))]

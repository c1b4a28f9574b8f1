"""Endpoint tables and the walkers that page through them, shared by both APIs.

Each API describes every endpoint once, as an `Endpoint` in its table (`sources/<api>/endpoints.py`); the
client sends requests from that entry and `walk` dispatches on its `paging` kind to one walker per kind:

- `page+count`:  `page=1,2,...`; ends on an empty or short page, or when the pages cover the reported total
- `short page`:  `page=1,2,...`; ends on an empty or short page (the page size is learned, not assumed)
  or on `has_more` false where the API sends it
- `after id`:    `after=<highest id seen>`; ends on a page shorter than the endpoint's fixed page size
- `single`:      one unpaginated answer
- `keyset window`: timestamp windows plus offsets inside a tie group (`sources.common.keyset`)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("switchboard.paging")

Paging = Literal["page+count", "short page", "after id", "keyset window", "single"]
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: where it lives, how it pages, where its rows are, what it always sends, which
    rate-limit bucket it spends, the field that identifies a row and the field a cursor walk moves by."""

    path: str
    paging: Paging = "single"
    data_path: tuple[str, ...] = ()  # keys leading to the rows; () when the body is the list itself
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    bucket: str = "default"  # which client-side rate limiter the request passes
    key: str | None = "id"  # rows are deduplicated on it; None for lists of plain values
    cursor: str | None = None  # `after id`: the id field; `keyset window`: the order field
    page_size: int | None = None  # fixed server-side page size, where the walk needs it

    def matches(self, method: str, path: str) -> bool:
        """Whether a request (method, path with ids filled in) is one of this endpoint's."""
        want, got = self.path.strip("/").split("/"), path.strip("/").split("/")
        return (
            method == self.method
            and len(want) == len(got)
            and all(w == g or (w.startswith("{") and w.endswith("}")) for w, g in zip(want, got, strict=True))
        )


def endpoint_of(table: Mapping[str, Endpoint], method: str, path: str) -> Endpoint | None:
    """The table entry a request belongs to (first match; list specific paths before templated ones)."""
    return next((e for e in table.values() if e.matches(method, path)), None)


@dataclass
class Page:
    rows: Rows  # in server order
    has_more: bool | None = None  # None when the API sends no end marker
    total: int | None = None
    offset: int = 0


@dataclass
class WalkReport:
    """How a walk went; `complete` is False when a cap stopped it or rows could not be read."""

    complete: bool = False
    pages: int = 0  # requests made
    rows: int = 0
    reported_count: int | None = None  # the total the last page reported, where the endpoint has one
    # keyset walks: timestamps of tie groups the offset cap could not get through, or that came back
    # reordered between pages with no stable way to re-list them
    stuck_timestamps: list[str] = field(default_factory=list)
    reordered_ties: list[str] = field(default_factory=list)
    undated: int = 0  # rows seen without the order field (sorted last, out of any window's reach)
    truncated_at_cap: bool = False  # offset mode hit the cap with more rows left


def is_last_page(page: Page, limit: int) -> bool:
    """`has_more` when the API sends it; else the total, else a short page (or an empty one)."""
    if not page.rows:
        return True
    if page.has_more is not None:
        return not page.has_more
    if page.total is not None and page.offset + len(page.rows) >= page.total:
        return True
    return len(page.rows) < limit


# fetch(extra params) -> Page: the client sends one request of the endpoint with these params added
Fetch = Callable[[dict[str, Any]], Awaitable[Page]]


async def _numbered(
    endpoint: Endpoint, fetch: Fetch, page_cap: int, report: WalkReport, start: Any
) -> AsyncIterator[Rows]:
    """`page+count` and `short page`. Rows are deduplicated on the key: offset pages over a sort with
    ties (or rows deleted meanwhile) can show a row twice."""
    seen: set[Any] = set()
    page_size = 0
    number = 1
    while number <= page_cap:
        page = await fetch({"page": number})
        report.pages += 1
        if endpoint.paging == "page+count":
            report.reported_count = page.total
        fresh = [row for row in page.rows if row[endpoint.key or "id"] not in seen]
        seen.update(row[endpoint.key or "id"] for row in fresh)
        report.rows += len(fresh)
        if fresh:
            yield fresh
        page_size = max(page_size, len(page.rows), endpoint.page_size or 0)
        if not page.rows or len(page.rows) < page_size or page.has_more is False:
            break
        if page.has_more:
            pass
        elif endpoint.paging == "page+count":
            if page.total is not None and number * page_size >= page.total:
                break
        elif not fresh:  # a full page of rows already seen: the server ignores `page`, stop
            break
        number += 1
    else:
        log.warning("%s: stopped at page_cap=%d pages", endpoint.path, page_cap)
        return
    report.complete = True


async def _after_id(
    endpoint: Endpoint, fetch: Fetch, page_cap: int, report: WalkReport, start: Any
) -> AsyncIterator[Rows]:
    """Rows with id > `start`, ascending; the next cursor is the highest id seen."""
    after = int(start or 0)
    cursor = endpoint.cursor or "id"
    for _ in range(page_cap):
        page = await fetch({"after": after})
        report.pages += 1
        report.rows += len(page.rows)
        if page.rows:
            yield page.rows
        if len(page.rows) < (endpoint.page_size or 1):
            break
        highest = max(int(row[cursor]) for row in page.rows)
        if highest <= after:  # the cursor did not move: stop rather than loop
            break
        after = highest
    else:
        log.warning("%s: stopped at page_cap=%d pages", endpoint.path, page_cap)
        return
    report.complete = True


async def _single(
    endpoint: Endpoint, fetch: Fetch, page_cap: int, report: WalkReport, start: Any
) -> AsyncIterator[Rows]:
    page = await fetch({})
    report.pages += 1
    report.rows += len(page.rows)
    report.complete = True
    yield page.rows


WALKERS = {"page+count": _numbered, "short page": _numbered, "after id": _after_id, "single": _single}


def walk(
    endpoint: Endpoint, fetch: Fetch, *, page_cap: int, report: WalkReport | None = None, start: Any = None
) -> AsyncIterator[Rows]:
    """Pages of rows of `endpoint`, walked the way its `paging` kind says (see the module doc).
    `single` yields its one list even when empty; the others yield only non-empty pages."""
    if endpoint.paging not in WALKERS:
        raise ValueError(f"{endpoint.path}: {endpoint.paging} endpoints are walked by sources.common.keyset")
    return WALKERS[endpoint.paging](endpoint, fetch, page_cap, report if report is not None else WalkReport(), start)

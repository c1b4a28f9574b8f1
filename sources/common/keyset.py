"""The `keyset window` walker: Sendblue's offset-paginated lists, walked by timestamp windows.

Both lists Sendblue offers page by `limit`/`offset` only, and both misbehave when walked with deep offsets:
`GET /api/v2/contacts` refuses offsets past 10,000 (one ordering reaches about 11,000 rows), and
`GET /api/v2/messages` is a moving set (a status change bumps `date_updated` and moves a message to the end
of an `updatedAt` ordering, shifting every later row one offset down, so plain offsets skip rows).

So each page restarts the window at the last timestamp seen (`created_at_gte` / `updated_at_gte`, ascending
order) with offset 0, and skips the rows already emitted with that exact timestamp: rows that share a
timestamp at a window edge are neither lost nor duplicated, whatever order the server gives ties in. Offsets
are used only inside a tie group larger than a page, up to the server's cap; a tie group the cap cannot get
through is reported and stepped over, so the walk always ends.

A server that ignores the window filter or the sort order (older deployments lack `created_at_gte`) is
detected on the first windowed page; the walk then falls back to plain offsets from where it began.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sources.common.paging import Page, WalkReport, is_last_page

log = logging.getLogger("switchboard.paging")

# How many emitted keys a walk from the start remembers for a fallback to plain offsets (a few pages' worth
# is enough: a server that ignores the window filter shows it on the first windowed page).
REMEMBERED_KEYS_MAX = 50_000


# fetch(window_start, offset, limit) -> Page; window_start is an ISO-8601 bound or None for "from the start"
WindowFetch = Callable[[str | None, int, int], Awaitable[Page]]


def _step_past(moment: datetime) -> datetime:
    """The next representable instant at the precision the API's timestamps carry (ms, else µs)."""
    return moment + (
        timedelta(milliseconds=1) if moment.microsecond % 1000 == 0 else timedelta(microseconds=1)
    )


# read_tie_group(stamp, keys already emitted with it) -> (the group's other rows, whether that is all of
# them), or None when the server offers no stable way to list the group
TieGroupReader = Callable[[datetime, set[Any]], Awaitable[tuple[list[dict[str, Any]], bool] | None]]


async def keyset_walk(
    fetch: WindowFetch,
    *,
    bound: Callable[[datetime], str],
    order_field: str,
    key_field: str,
    limit: int,
    max_limit: int | None = None,
    start: datetime | None = None,
    offset_cap: int | None = None,
    read_tie_group: TieGroupReader | None = None,
    what: str = "rows",
    report: WalkReport | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield pages (lists of rows) of the whole ordered list from `start` on, each row once.

    A page made entirely of one tie group at the window start is handled in steps: the group is asked
    again with the largest page the API allows (one answer is one consistent snapshot, whatever order the
    server gives ties in); a group larger than that is paged by offset. If a deeper page repeats a row of
    the group (the server reorders ties between requests, so it may also skip some), or the offset cap
    comes before the group's end, the group goes to `read_tie_group` when the caller has a stable way to
    list it; what still cannot be read is reported and stepped over, so the walk always ends.
    """
    report = report if report is not None else WalkReport()
    group_limit = max(limit, max_limit or limit)
    page_limit = limit
    window: datetime | None = start
    offset = 0
    edge_ts: datetime | None = None
    edge_keys: set[Any] = set()  # keys emitted with the timestamp edge_ts
    window_keys: set[Any] = set()  # keys read at the window's own timestamp since the window began
    # keys emitted so far (while few), so a fallback to plain offsets can restart from 0 without duplicates
    emitted: set[Any] | None = set() if start is None else None

    def remember(rows: list[dict[str, Any]]) -> None:
        nonlocal emitted
        report.rows += len(rows)
        if emitted is not None:
            emitted.update(r.get(key_field) for r in rows)
            if len(emitted) > REMEMBERED_KEYS_MAX:
                emitted = None

    def step_past(stamp: datetime) -> None:
        nonlocal window, offset, edge_ts, edge_keys, page_limit, window_keys
        window, offset, edge_ts, edge_keys, page_limit = _step_past(stamp), 0, None, set(), limit
        window_keys = set()

    while True:
        page = await fetch(bound(window) if window is not None else None, offset, page_limit)
        report.pages += 1
        rows = page.rows
        dated = [r for r in rows if r.get(order_field) is not None]
        undated_at_end = len(dated) < len(rows) and all(
            r.get(order_field) is None for r in rows[len(dated) :]
        )
        if undated_at_end:
            # PostgreSQL sorts NULLs last ascending: the dated rows end here, and a window filter can
            # never reach undated ones, so the caller lists them apart (see WalkReport.undated)
            report.undated += len(rows) - len(dated)
            rows = dated
        stamps = [r.get(order_field) for r in rows]
        ordered = all(
            a is not None and b is not None and a <= b for a, b in zip(stamps, stamps[1:], strict=False)
        ) and all(s is not None for s in stamps)
        honoured = window is None or all(s is not None and s >= window for s in stamps)
        if not (ordered and honoured):
            if emitted is None:
                # resuming from `start` (or past the remembered keys) needs the filter the server ignores
                raise RuntimeError(
                    f"Sendblue ignored the window filter or sort order while listing {what}; "
                    "cannot page past the rows already read"
                )
            log.warning(
                "Sendblue ignored the window filter or sort order while listing %s; falling back to plain "
                "offset paging (at most %s rows reachable)",
                what,
                "all" if offset_cap is None else f"about {offset_cap + limit}",
            )
            async for fallback_page in _offset_walk(fetch, key_field, limit, offset_cap, emitted, report):
                yield fallback_page
            return

        fresh = [r for r in rows if not (r.get(order_field) == edge_ts and r.get(key_field) in edge_keys)]
        if fresh:
            remember(fresh)
            yield fresh
        if undated_at_end:
            return
        last = stamps[-1] if stamps else None

        # Inside a tie group, a page at a deeper offset that repeats a row already read in this window
        # shows the server reorders ties between requests, and so may also have skipped some.
        at_window = {r.get(key_field) for r in rows if window is not None and r.get(order_field) == window}
        reordered = offset > 0 and bool(at_window & window_keys)
        window_keys = at_window if offset == 0 else window_keys | at_window
        if window is not None and edge_ts == window:
            edge_keys |= at_window
        if reordered:
            assert window is not None
            group = await read_tie_group(window, set(edge_keys)) if read_tie_group else None
            if group is not None:
                rest, complete = group
                if rest:
                    remember(rest)
                    yield rest
                if not complete:
                    _report_stuck(report, bound(window), what, offset_cap)
                if is_last_page(page, page_limit):
                    return
                if last == window:
                    step_past(window)
                    continue
                # else the window moves on to this page's last timestamp, past the group, below
            else:
                report.reordered_ties.append(bound(window))
                log.warning(
                    "Sendblue returned %s that share the timestamp %s in a different order on each page; "
                    "some of them may have been skipped",
                    what,
                    bound(window),
                )

        if is_last_page(page, page_limit):
            return
        assert last is not None  # a page that is not the last has rows, checked by `ordered`
        if window is None or last != window:
            # move the window to the last timestamp; skip the rows already emitted with exactly that stamp
            edge_ts = last
            edge_keys = {r.get(key_field) for r in rows if r.get(order_field) == last}
            window, offset, page_limit = last, 0, limit
            continue

        # the whole page is one tie group at the window start
        if page_limit < group_limit:
            page_limit, offset = group_limit, 0  # one answer of the largest size is one consistent snapshot
            continue
        offset += len(rows)
        if offset_cap is not None and offset > offset_cap:
            group = await read_tie_group(window, set(edge_keys)) if read_tie_group else None
            if group is not None:
                rest, complete = group
                if rest:
                    remember(rest)
                    yield rest
            if group is None or not group[1]:
                _report_stuck(report, bound(window), what, offset_cap)
            step_past(window)


def _report_stuck(report: WalkReport, stamp: str, what: str, offset_cap: int | None) -> None:
    report.stuck_timestamps.append(stamp)
    log.warning(
        "Sendblue: too many %s share the timestamp %s for the API's offset cap (%s) to list them all; "
        "the unread rest of that group is skipped and the walk goes on after it",
        what,
        stamp,
        offset_cap,
    )


async def _offset_walk(
    fetch: WindowFetch, key_field: str, limit: int, offset_cap: int | None, already: set[Any], report: WalkReport
) -> AsyncIterator[list[dict[str, Any]]]:
    offset = 0
    while offset_cap is None or offset <= offset_cap:
        page = await fetch(None, offset, limit)
        report.pages += 1
        fresh = [r for r in page.rows if r.get(key_field) not in already]
        if fresh:
            report.rows += len(fresh)
            yield fresh
        if is_last_page(page, limit):
            return
        offset += len(page.rows)
    report.truncated_at_cap = True
    log.warning(
        "Sendblue's offset cap (%s) was reached with more rows left; they cannot be listed without a working "
        "window filter",
        offset_cap,
    )

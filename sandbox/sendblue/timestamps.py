"""Sendblue's timestamps: one canonical ISO-8601 form, so string order is time order.

Every timestamp the simulator stores is `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds), the form
Sendblue's JSON shows. Because stored values have millisecond precision, a query bound is rounded to
milliseconds in the direction that keeps the comparison exact (up for `>=`, down for `<=`), after
which filters and bisection compare plain strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


class InvalidTimestamp(ValueError):
    """A query parameter that is not an ISO-8601 date or date-time."""


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> `2026-01-02T03:04:05.678Z` (hot in data generation: the date part is cached)."""
    ms = min(max(ms, 0), _MAX_MS)
    seconds, millis = divmod(ms, 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_date_of_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _date_of_day(days: int) -> str:
    return (EPOCH + timedelta(days=days)).date().isoformat()


def parse_ms(text: str) -> int:
    """An ISO-8601 string (`Z`, offset, or naive = UTC) -> epoch milliseconds, rounded down."""
    return _parse_us(text) // 1000


def _parse_us(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidTimestamp(text) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def lower_bound(text: str) -> str:
    """The canonical string s such that stored >= text  <=>  stored >= s."""
    us = _parse_us(text)
    return iso_ms(-(-us // 1000))


def upper_bound(text: str) -> str:
    """The canonical string s such that stored <= text  <=>  stored <= s."""
    return iso_ms(_parse_us(text) // 1000)

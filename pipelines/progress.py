"""Progress of a load on stderr: pages and rows per table, API requests and rate-limit waits.

`LoadProgress` is a dlt `Collector` (dlt calls `update(table, rows)` once per page an extractor writes,
so counting the calls gives pages and summing `inc` gives rows). Request and rate-limit figures come
from the API clients' shared counters (`sources.common.usage.api_usage`). On a terminal one status line
is redrawn in place; otherwise (cron, CI, Airflow logs) a plain line is written every `log_every`
seconds and at the end of each step, so logs stay short.
"""

from __future__ import annotations

import collections
import math
import shutil
import sys
import threading
import time
from typing import TextIO

from dlt.common.runtime.collector_base import Collector

from sources.common.usage import ClientStats, api_usage, usage_delta, waiting_for_rate_limit

# dlt's own bookkeeping counters, not tables
_DLT_COUNTERS = {"Resources", "Files", "Items", "Jobs"}


class LoadProgress(Collector):
    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        log_every: float = 15.0,
        redraw_every: float = 0.25,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = self._is_tty(self.stream) if interactive is None else interactive
        self.log_every = log_every
        self.redraw_every = redraw_every
        self.step = ""
        self.pages: collections.Counter[str] = collections.Counter()
        self.rows: collections.Counter[str] = collections.Counter()
        self.step_counters: collections.Counter[str] = collections.Counter()
        self._usage_start: dict[str, ClientStats] = api_usage()
        self._lock = threading.Lock()
        self._stop_ticker = threading.Event()
        self._ticker: threading.Thread | None = None
        self._started = time.monotonic()
        self._last_key: tuple[str, ...] = ()

    @staticmethod
    def _is_tty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    # -- dlt's Collector interface

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        with self._lock:
            if self.step.lower().startswith("extract") and name not in _DLT_COUNTERS and not label:
                if name.startswith("_dlt"):
                    return
                self.rows[name] += inc
                if inc > 0:
                    self.pages[name] += 1
            elif name in _DLT_COUNTERS and not label:
                self.step_counters[name] += inc

    def _start(self, step: str) -> None:
        # dlt names steps "Extract chatwoot", "Normalize chatwoot in <load id>": the verb is enough
        self.step = step.split()[0] if step else ""
        self.step_counters.clear()
        self._stop_ticker.clear()
        self._ticker = threading.Thread(target=self._tick, name="switchboard-progress", daemon=True)
        self._ticker.start()

    def _stop(self) -> None:
        self._stop_ticker.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        self._emit(final=True)

    # -- rendering

    def note(self, line: str) -> None:
        """One line of its own (the pair a run serves, a recovery), outside the status line."""
        try:
            self.stream.write(("\r\x1b[K" if self.interactive else "") + line + "\n")
            self.stream.flush()
        except (ValueError, OSError):
            pass

    def usage(self) -> dict[str, ClientStats]:
        """Requests and rate-limit waits per API since this progress display was created."""
        return usage_delta(self._usage_start, api_usage())

    def status_line(self, width: int | None = None) -> str:
        """The status line; narrowed to `width`, it drops the per-table detail and step counters before the
        request, 429 and waiting figures."""
        head, detail, apis = self._sections(with_time=True)
        line = " | ".join([head, *detail, *apis])
        if width is not None and len(line) > width:
            line = " | ".join([head, *apis])[:width]
        return line

    def _status_parts(self, with_time: bool) -> list[str]:
        head, detail, apis = self._sections(with_time)
        return [head, *detail, *apis]

    def _sections(self, with_time: bool) -> tuple[str, list[str], list[str]]:
        """(step and time, per-table and step detail, per-API request and rate-limit figures)."""
        with self._lock:
            tables = ", ".join(f"{name} {self.pages[name]}p/{self.rows[name]}r" for name in sorted(self.rows))
            counters = ", ".join(f"{k.lower()} {v}" for k, v in sorted(self.step_counters.items()))
        head = f"{self.label} {self.step.lower() or 'starting'}"
        if with_time:
            head += f" {time.monotonic() - self._started:.0f}s"
        detail = []
        if tables:
            detail.append(tables)
        if counters and not self.step.lower().startswith("extract"):
            detail.append(counters)
        apis = []
        for api, stats in sorted(self.usage().items()):
            text = f"{api} {stats.requests} requests"
            if stats.retries:
                text += f", {stats.retries} retries"
            if stats.rate_limited or stats.rate_limit_wait_seconds >= 0.05:
                text += f", {stats.rate_limited} x 429, waited {stats.rate_limit_wait_seconds:.1f}s"
            waiting = waiting_for_rate_limit(api)
            if waiting is not None and waiting >= 1:
                text += f", waiting {math.ceil(waiting)} s for {api}'s rate-limit window"
            apis.append(text)
        return head, detail, apis

    def _tick(self) -> None:
        period = self.redraw_every if self.interactive else self.log_every
        while not self._stop_ticker.wait(period):
            self._emit(final=False)

    def _emit(self, final: bool) -> None:
        if not self.interactive:
            # dlt runs a second, empty extract for its state: a line that says nothing new is left out
            key = tuple(self._status_parts(with_time=False))
            if key == self._last_key:
                return
            self._last_key = key
        try:
            if self.interactive:
                line = self.status_line(width=shutil.get_terminal_size((120, 20)).columns - 1)
                self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
            else:
                self.stream.write(self.status_line() + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # stderr closed under us (a killed pipe): progress is optional
            pass

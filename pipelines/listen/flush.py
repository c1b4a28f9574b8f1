"""The flusher: every `flush_seconds`, or as soon as `flush_events` are spooled, the sealed spool goes to
the warehouse in one dlt load, and only then leaves the disk.

A failing load (warehouse down, DuckDB file held by a running `switchboard load`) keeps the segments and
is retried with a growing pause; acknowledgements never wait for it. Status for /healthz: spool depth,
the last flush and the last error (one line, secrets blanked).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any

from pipelines.errors import describe
from pipelines.listen.spool import Spool
from pipelines.load import duckdb_locked

log = logging.getLogger("switchboard.listen")

MAX_EVENTS_PER_LOAD = 20_000  # a long outage's backlog goes in several loads, not one huge one
MAX_RETRY_PAUSE_SECONDS = 60.0
WAITING = "waiting for the DuckDB file (held by another process); events stay spooled"


class Flusher:
    def __init__(self, spool: Spool, load: Callable[[list[dict[str, Any]]], Any], flush_seconds: float):
        self.spool = spool
        self._load = load
        self.flush_seconds = flush_seconds
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one flush at a time
        self.last_flush_at: str | None = None
        self.last_flush_events = 0
        self.flushed_events = 0
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self._failures = 0
        self._waiting = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="switchboard-flusher", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()  # what came in since the last tick
        close = getattr(self._load, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        while not self._stop.is_set():
            pause = self.flush_seconds
            if self._waiting:  # a `switchboard load` has the DuckDB file: it is ours again in seconds
                pause = min(pause, 1.0)
            elif self._failures:
                pause = min(MAX_RETRY_PAUSE_SECONDS, self.flush_seconds * 2 ** min(self._failures, 6))
            self._kick.wait(pause)
            self._kick.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> int:
        """Load every sealed segment (the open one is sealed first); return the events loaded."""
        with self._lock:
            loaded = 0
            try:
                segments = self.spool.seal()
                while segments:
                    batch, count = [], 0
                    for path in segments:
                        batch.append(path)
                        count += sum(1 for _ in path.open("rb"))
                        if count >= MAX_EVENTS_PER_LOAD:
                            break
                    records = self.spool.read(batch)
                    if records:
                        self._load(records)
                    self.spool.remove(batch)
                    loaded += len(records)
                    segments = segments[len(batch) :]
            except Exception as exc:
                self._waiting = duckdb_locked(exc) or str(exc) == WAITING
                self._failures += 0 if self._waiting else 1
                self.last_error = WAITING if self._waiting else describe(exc)
                self.last_error_at = datetime.now(UTC).isoformat()
                log.warning("flush failed (events stay spooled, retried): %s", self.last_error)
                return loaded
            self._failures = 0
            self._waiting = False
            self.last_error = None
            if loaded:
                self.last_flush_at = datetime.now(UTC).isoformat()
                self.last_flush_events = loaded
                self.flushed_events += loaded
            return loaded

    def status(self) -> dict[str, Any]:
        return {
            "last_flush_at": self.last_flush_at,
            "last_flush_events": self.last_flush_events,
            "flushed_events": self.flushed_events,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "flush_seconds": self.flush_seconds,
        }


_writer: Any = None


def _start_worker(destination: Any, pipelines_dir: str | None, parent: int) -> None:
    from pipelines.listen.warehouse import WarehouseWriter

    global _writer
    _writer = WarehouseWriter(destination, pipelines_dir)
    if hasattr(os, "nice"):
        os.nice(5)  # on a busy machine the acknowledgements get the CPU first; a flush can wait a little

    def exit_with_parent() -> None:  # a SIGKILLed listener leaves no loader behind
        while os.getppid() == parent:
            threading.Event().wait(1)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _load_in_worker(records: list[dict[str, Any]]) -> int:
    try:
        _writer(records)
    except Exception as exc:  # dlt's exceptions do not all survive pickling: send their message back
        raise RuntimeError(WAITING if duckdb_locked(exc) else describe(exc)) from None
    return len(records)


class ProcessLoader:
    """Runs the dlt loads in a child process, so their CPU never holds the receiver's GIL (a flush in a
    thread of the same process stalled every acknowledgement behind it)."""

    def __init__(self, destination: Any, pipelines_dir: str | None = None):
        self._args = (destination, pipelines_dir, os.getpid())
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, records: list[dict[str, Any]]) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=self._args,
            )
        try:
            self._pool.submit(_load_in_worker, records).result()
        except BrokenProcessPool:
            self.close()  # the next flush starts a fresh worker; the segments stay spooled
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

"""What an earlier run left behind, and how a run stops when told to.

A run that failed in its normalize or load step (warehouse connection lost, disk full, file locked) leaves
its load package pending in the local pipelines folder. dlt's `pipeline.run` would load that package and
return without extracting, so a scheduled run would bring nothing new. `finish_pending` loads the pending
packages first and reports their rows per table; the caller then runs its own extraction.

Ctrl-C and SIGTERM go through dlt's own signal handling (`dlt.common.runtime.signals`): the first signal
sets a flag that dlt checks between extracted pages and between load jobs, so the current step stops at a
safe point (nothing half-committed, state saved only with its data); a second signal of the same kind
stops the process at once.
"""

from __future__ import annotations

import collections
import signal
from typing import Any

import dlt
from dlt.common.runtime import signals


def finish_pending(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Normalize and load what an earlier run left pending; rows per table of what was loaded now."""
    rows: collections.Counter[str] = collections.Counter()
    normalized = pipeline.list_normalized_load_packages()
    # packages normalized by the earlier run: their row counts are in that run's trace
    earlier = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    for load_id in normalized:
        rows.update(_package_rows(earlier, load_id) or _file_rows(pipeline, load_id))
    if pipeline.list_extracted_load_packages():
        info = pipeline.normalize()  # in the file format chosen when it was extracted
        if info is not None:
            rows.update(info.row_counts)
    pipeline.load()
    return {table: n for table, n in sorted(rows.items()) if not table.startswith("_dlt")}


def _file_rows(pipeline: dlt.Pipeline, load_id: str) -> dict[str, int]:
    """Rows per table counted in a normalized package's own files, when no trace of the earlier run kept
    them (the earlier run may have stopped before writing its trace). Parquet files carry their row count;
    other formats are counted by line, with gzip when dlt compressed them; a file that cannot be read
    counts nothing rather than failing the recovery."""
    counts: collections.Counter[str] = collections.Counter()
    try:
        jobs = pipeline.get_load_package_info(load_id).jobs
    except Exception:
        return {}
    for state in ("new_jobs", "started_jobs"):
        for job in jobs.get(state, []):  # type: ignore[call-overload]
            table = job.job_file_info.table_name
            try:
                counts[table] += _rows_in_file(job.file_path, job.job_file_info.file_format)
            except Exception:
                continue
    return dict(counts)


def _rows_in_file(path: str, file_format: str) -> int:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if file_format != "jsonl":
        raise ValueError(f"rows of a {file_format} file are not counted")
    import gzip

    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    opener: Any = gzip.open if compressed else open
    with opener(path, "rb") as lines:
        return sum(1 for line in lines if line.strip())


def _package_rows(normalize_info: Any, load_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for metrics in (getattr(normalize_info, "metrics", None) or {}).get(load_id, []):
        for table, table_metrics in metrics.get("table_metrics", {}).items():
            counts[table] = counts.get(table, 0) + int(table_metrics.items_count)
    return counts


def interruption(exc: BaseException | None = None) -> BaseException | None:
    """The interruption behind `exc` (or pending now): dlt's signal flag or a KeyboardInterrupt cause."""
    if signals.was_signal_received():
        return signals.exception_for_signal()
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "exception", None)
    return None


def raise_if_interrupted(exc: BaseException | None = None) -> None:
    stop = interruption(exc)
    if stop is not None:
        raise stop from None


def exit_code(interrupt: BaseException) -> int:
    """The shell's convention: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(getattr(interrupt, "signal_code", 0) or signal.SIGINT)


intercepted_signals = signals.intercepted_signals

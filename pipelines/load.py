"""Build and run the dlt pipelines that load Chatwoot and Sendblue into the warehouse.

Incremental state belongs to one (account, warehouse, dataset) pair (`pipelines.identity`):
the dlt pipeline name is derived from a hash of the pair, so it is stable (dlt restores the state from
the warehouse on ephemeral workers, CI, Airflow) and never shared by two warehouses or accounts. Before a
run the local copy of the state is dropped unless an earlier run left a package pending: the warehouse
holds the only state applied, so a new, emptied or replaced warehouse is loaded in full. A pending
package is loaded first, then the run extracts as usual (`pipelines.recovery`).
Defaults: DuckDB file `switchboard.duckdb` (key `destination.duckdb.credentials`), datasets
`chatwoot` and `sendblue`. With `--dataset NAME`, a single source loads into `NAME`; `all` loads
into `NAME_chatwoot` and `NAME_sendblue` (and the views go to `NAME_analytics`) so the two sources'
tables (both have `contacts`, `messages`, `conversations`) never collide.

After the loads, the `analytics` views are (re)created whenever both sources' datasets are present.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any, TextIO

import dlt
from dlt.common.destination.reference import Destination

from destinations.views import ANALYTICS, ViewsResult, create_analytics_views
from destinations.warehouse import duckdb_path_from_config
from destinations.warehouse_config import destination_problem, postgres_destination
from pipelines.errors import CliError, describe, failing_resource
from pipelines.identity import StatePair, state_pair
from pipelines.load_report import LoadReport, SourceLoad
from pipelines.progress import LoadProgress
from pipelines.recovery import finish_pending, intercepted_signals, raise_if_interrupted
from pipelines.source_names import SOURCE_NAMES, check_source_name, source_module

DEFAULT_DESTINATION = "duckdb"

DestinationArg = str | Destination


def destination_name(destination: DestinationArg) -> str:
    if isinstance(destination, str):
        return destination
    return str(getattr(destination, "destination_name", None) or destination.destination_type.split(".")[-1])


# DuckDB parses dlt's default INSERT files statement by statement: loading 90,000 rows peaked at 4.5 GiB
# and took longer than the extraction. Parquet files are read natively (400 MiB, load in seconds);
# see benchmarks/bench_load.py. Other destinations keep dlt's own choice.
PREFERRED_FILE_FORMATS = {"duckdb": "parquet", "motherduck": "parquet"}


def loader_file_format_for(destination: DestinationArg) -> Any:
    """The loader file format for a destination, or None for dlt's default."""
    return PREFERRED_FILE_FORMATS.get(destination_name(destination))


def resolve_targets(target: str) -> list[str]:
    """`chatwoot`, `sendblue` or `all` -> the source names to load."""
    return list(SOURCE_NAMES) if check_source_name(target, or_all=True) == "all" else [target]


def check_destination(destination: DestinationArg) -> None:
    """Refuse a destination name dlt does not know, or the example's Postgres DSN, before any source is
    touched."""
    problem = destination_problem(destination) if isinstance(destination, str) else None
    if problem:
        raise CliError(problem)


def dataset_for(source: str, dataset: str | None = None, *, several: bool = False) -> str:
    """The dataset (schema) a source loads into; see the module docstring for `--dataset`."""
    if not dataset:
        return source
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", dataset):
        raise CliError(f"dataset name {dataset!r} must be letters, digits and underscores")
    return f"{dataset}_{source}" if several else dataset


def pair_for(
    source: str, destination: DestinationArg = DEFAULT_DESTINATION, dataset: str | None = None
) -> StatePair:
    """The (account, warehouse, dataset) pair a load serves; its pipeline name is the key of the state."""
    return state_pair(source, explicit_duckdb(destination), dataset or source)


def build_source(source: str, resources: Sequence[str] | None = None) -> Any:
    """The dlt source, config resolved from `sources.<source>.*`, narrowed to `resources`."""
    dlt_source = getattr(source_module(source), f"{source}_source")()
    if resources:
        known = set(dlt_source.resources.keys())
        unknown = [r for r in resources if r not in known]
        if unknown:
            raise CliError(
                f"{source} has no resource {', '.join(unknown)}; its resources are {', '.join(sorted(known))}"
            )
        dlt_source = dlt_source.with_resources(*resources)
    return dlt_source


def discover_streams(source: str) -> list[dict[str, Any]]:
    """Each stream of a source (table, primary key, write disposition, cursor, columns); no network."""
    return list(source_module(source).discover())


def explicit_duckdb(destination: DestinationArg) -> DestinationArg:
    """`duckdb` with the file spelled out as an absolute path.

    Without it dlt falls back to `<pipeline_name>.duckdb` when no `destination.duckdb.credentials` is
    configured, and reuses the path a pipeline of the same name used before (kept in the local pipelines
    dir), possibly another directory's. The file is always the one `sql`, `sync` and the views open.
    """
    if destination != DEFAULT_DESTINATION:
        return postgres_destination(destination)  # a Postgres DSN without a password works too
    path = duckdb_path_from_config()
    if not path.startswith(":"):
        path = os.path.abspath(path)
    return dlt.destinations.duckdb(credentials=path)


def build_pipeline(
    pair: StatePair,
    *,
    destination: DestinationArg = DEFAULT_DESTINATION,
    pipelines_dir: str | None = None,
    progress: Any = None,
) -> dlt.Pipeline:
    options: dict[str, Any] = {"progress": progress}
    if pipelines_dir:
        options["pipelines_dir"] = pipelines_dir
    return dlt.pipeline(
        pipeline_name=pair.pipeline_name,
        destination=explicit_duckdb(destination),
        dataset_name=pair.dataset,
        **options,
    )


def data_location(pipeline: dlt.Pipeline, displayable_credentials: str | None = None) -> str:
    """Where a user finds the tables: the DuckDB file, or the destination with its password masked."""
    creds = displayable_credentials or ""
    if creds.startswith("duckdb:///"):
        return f"DuckDB file {creds[len('duckdb:///') :]}"
    if creds:
        return creds
    return destination_name(pipeline.destination) if pipeline.destination else "unknown destination"


def _row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    counts: dict[str, int] = {}
    trace = pipeline.last_trace
    normalize = trace.last_normalize_info if trace else None
    if normalize is not None:
        counts = {t: n for t, n in normalize.row_counts.items() if not t.startswith("_dlt")}
    try:
        for table in pipeline.default_schema.data_table_names():
            counts.setdefault(table, 0)
    except Exception:  # no schema yet (a failed first run): the counts above are all there is
        pass
    return dict(sorted(counts.items()))


def load_source(
    source: str,
    *,
    resources: Sequence[str] | None = None,
    destination: DestinationArg = DEFAULT_DESTINATION,
    dataset: str | None = None,
    full_refresh: bool = False,
    pipelines_dir: str | None = None,
    progress_stream: TextIO | None = None,
    interactive: bool | None = None,
    log_every: float = 15.0,
) -> SourceLoad:
    """Extract and load one source; failures are reported in the result, not raised (an interruption,
    Ctrl-C or SIGTERM, is raised)."""
    dataset = dataset or source
    progress = LoadProgress(source, progress_stream, interactive=interactive, log_every=log_every)
    result = SourceLoad(source, "", dataset, destination_name(destination))
    started = time.monotonic()
    pipeline: dlt.Pipeline | None = None
    try:
        pair = pair_for(source, destination, dataset)
        result.pipeline_name, result.pair = pair.pipeline_name, pair.describe()
        progress.note(result.pair)
        pipeline = build_pipeline(
            pair, destination=destination, pipelines_dir=pipelines_dir, progress=progress
        )
        file_format = loader_file_format_for(destination)
        if pipeline.has_pending_data:
            result.recovered = finish_pending(pipeline)
            progress.note(f"{source}: completed the load an earlier run left pending")
        else:
            # only the warehouse's state is applied: a local copy may be older than the warehouse's, or be
            # left from a warehouse since emptied or replaced
            pipeline = pipeline.drop()
            pipeline.activate()
        dlt_source = build_source(source, resources)
        run_options: dict[str, Any] = {"loader_file_format": file_format}
        if full_refresh:
            # drop_sources wipes every table and the state of the source; with --resources only those
            run_options["refresh"] = "drop_resources" if resources else "drop_sources"
        info = _waiting_for_duckdb(
            lambda: pipeline.run(  # a retry after extraction finishes that package; before, it extracts again
                None if pipeline.has_pending_data else dlt_source, **run_options
            ),
            progress.note,
        )
        result.location = data_location(pipeline, info.destination_displayable_credentials)
        result.rows = _row_counts(pipeline)
    except Exception as exc:
        raise_if_interrupted(exc)
        result.error = describe(exc)
        result.failed_resource = failing_resource(exc)
        if pipeline is not None:
            result.location = data_location(pipeline)
    finally:
        result.elapsed = time.monotonic() - started
        result.usage = progress.usage()
    return result


DUCKDB_LOCKED = "Could not set lock on file"  # DuckDB's IOException: another process has the file open
DUCKDB_WAIT_SECONDS = 300.0


def duckdb_locked(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) is DuckDB refusing a file another process holds."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if DUCKDB_LOCKED in str(current):
            return True
        wrapped = getattr(current, "exception", None)
        current = wrapped if isinstance(wrapped, BaseException) else (current.__cause__ or current.__context__)
    return False


def duckdb_wait_seconds() -> float:
    """`load.duckdb_wait_seconds` (env LOAD__DUCKDB_WAIT_SECONDS): how long a load waits for a DuckDB file
    another process holds before it fails; default 300."""
    value: Any = dlt.config.get("load.duckdb_wait_seconds")
    return DUCKDB_WAIT_SECONDS if value in (None, "") else float(value)


def _waiting_for_duckdb(step: Any, note: Any, limit: float | None = None) -> Any:
    """Run `step`, retrying while another process (a `switchboard listen` flushing) holds the DuckDB file:
    the listener takes the file for a flush only, so it is free again within seconds."""
    limit = duckdb_wait_seconds() if limit is None else limit
    deadline, pause, said = time.monotonic() + limit, 0.2, False
    while True:
        try:
            return step()
        except Exception as exc:
            if not duckdb_locked(exc) or time.monotonic() + pause > deadline:
                raise
            if not said:
                note("waiting for the DuckDB file (held by another process)")
                said = True
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def load(
    target: str | Sequence[str],
    *,
    resources: Sequence[str] | None = None,
    destination: DestinationArg = DEFAULT_DESTINATION,
    dataset: str | None = None,
    full_refresh: bool = False,
    pipelines_dir: str | None = None,
    progress_stream: TextIO | None = None,
    interactive: bool | None = None,
    log_every: float = 15.0,
    create_views: bool = True,
) -> LoadReport:
    """Load `chatwoot`, `sendblue` or `all`, then refresh the analytics views. Never raises for a
    source failure: the report says which source and resource failed (`report.ok`)."""
    sources = resolve_targets(target) if isinstance(target, str) else list(target)
    several = len(sources) > 1
    check_destination(destination)
    per_source_resources: dict[str, list[str] | None] = {s: None for s in sources}
    if resources:
        per_source_resources = _split_resources(sources, resources)
    started = time.monotonic()
    report = LoadReport(loads=[])
    # Ctrl-C / SIGTERM set dlt's signal flag: the current step stops at a safe point and no other source starts
    with intercepted_signals():
        for source in per_source_resources:
            raise_if_interrupted()
            report.loads.append(
                load_source(
                    source,
                    resources=per_source_resources[source],
                    destination=destination,
                    dataset=dataset_for(source, dataset, several=several),
                    full_refresh=full_refresh,
                    pipelines_dir=pipelines_dir,
                    progress_stream=progress_stream,
                    interactive=interactive,
                    log_every=log_every,
                )
            )
        raise_if_interrupted()
    loaded = [load for load in report.loads if load.ok]
    if create_views and loaded:
        report.views = refresh_views(loaded[0], destination=destination, pipelines_dir=pipelines_dir)
    report.elapsed = time.monotonic() - started
    return report


def _split_resources(sources: list[str], resources: Sequence[str]) -> dict[str, list[str] | None]:
    """With several sources, each takes the named resources it has; a name no source has is an error."""
    if len(sources) == 1:
        source = sources[0]
        known = {str(stream["table"]) for stream in discover_streams(source)}
        unknown = [r for r in resources if r not in known]
        if unknown:
            raise CliError(
                f"{source} has no resource {', '.join(unknown)}; its resources are {', '.join(sorted(known))}"
            )
        return {source: list(resources)}
    split: dict[str, list[str] | None] = {}
    claimed: set[str] = set()
    for source in sources:
        names = {str(stream["table"]) for stream in discover_streams(source)}
        mine = [r for r in resources if r in names]
        claimed.update(mine)
        split[source] = mine or None
    unknown = [r for r in resources if r not in claimed]
    if unknown:
        raise CliError(f"no source has a resource named {', '.join(unknown)}")
    # a source none of whose resources were named is skipped rather than loaded in full
    return {s: r for s, r in split.items() if r}


def analytics_family(source: str, dataset: str) -> tuple[str, str, str] | None:
    """(chatwoot dataset, sendblue dataset, analytics dataset) that belong together, if the naming
    allows pairing: the defaults, or `PREFIX_chatwoot` / `PREFIX_sendblue` / `PREFIX_analytics`."""
    if dataset == source:
        prefix = ""
    elif dataset.endswith(f"_{source}"):
        prefix = dataset[: -len(source)]
    else:
        return None
    return f"{prefix}chatwoot", f"{prefix}sendblue", f"{prefix}{ANALYTICS}"


def refresh_views(
    any_load: SourceLoad,
    *,
    destination: DestinationArg = DEFAULT_DESTINATION,
    pipelines_dir: str | None = None,
) -> ViewsResult | None:
    family = analytics_family(any_load.source, any_load.dataset)
    if family is None:
        return None
    chatwoot_ds, sendblue_ds, analytics_ds = family
    options: dict[str, Any] = {"pipelines_dir": pipelines_dir} if pipelines_dir else {}
    # only dlt's SQL client is used: no state is read or written
    pipeline = dlt.pipeline(
        pipeline_name=any_load.pipeline_name or "switchboard_views",
        destination=explicit_duckdb(destination),
        dataset_name=any_load.dataset,
        **options,
    )
    try:
        with pipeline.sql_client() as client:
            return create_analytics_views(client, chatwoot_ds, sendblue_ds, analytics_ds)
    except Exception as exc:
        return ViewsResult(created=[], note=f"analytics views not created: {describe(exc)}")

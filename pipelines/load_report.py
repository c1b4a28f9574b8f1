"""What a load reports: per source its rows, time, API usage, where the data is or why it failed, and the
end-of-run summary the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from destinations.views import ViewsResult
from sources.common.usage import ClientStats


@dataclass
class SourceLoad:
    source: str
    pipeline_name: str
    dataset: str
    destination: str
    location: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    usage: dict[str, ClientStats] = field(default_factory=dict)
    error: str | None = None
    failed_resource: str | None = None
    pair: str = ""  # "chatwoot: account 1 at URL -> DuckDB file PATH, dataset chatwoot"
    recovered: dict[str, int] | None = None  # rows of the packages an earlier run left pending, if any

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LoadReport:
    loads: list[SourceLoad]
    elapsed: float = 0.0
    views: ViewsResult | None = None

    @property
    def ok(self) -> bool:
        return all(load.ok for load in self.loads)

    def failure_message(self) -> str:
        parts = []
        for load in self.loads:
            if not load.ok:
                where = f" (resource {load.failed_resource})" if load.failed_resource else ""
                parts.append(f"load {load.source} failed{where}: {load.error}")
        return "; ".join(parts)


def _usage_text(usage: dict[str, ClientStats]) -> str:
    parts = []
    for api, stats in sorted(usage.items()):
        text = f"{stats.requests} {api} requests"
        if stats.retries:
            text += f", {stats.retries} retried"
        if stats.rate_limited or stats.rate_limit_wait_seconds >= 0.05:
            text += f", {stats.rate_limited} rate-limited (429), {stats.rate_limit_wait_seconds:.1f}s waiting"
        parts.append(text)
    return "; ".join(parts) or "no API requests"


def format_report(report: LoadReport) -> str:
    """The end-of-run summary: rows loaded per table, time, requests, and where the data is."""
    from pipelines.tables import render_table

    rows = [
        [load.source, table, count] for load in report.loads if load.ok for table, count in load.rows.items()
    ]
    lines = []
    if rows:
        lines.append(render_table(["source", "table", "rows loaded"], rows))
        lines.append("")
    for load in report.loads:
        if load.recovered is not None:
            done = ", ".join(f"{t} {n}" for t, n in load.recovered.items()) or "its row counts were not kept"
            lines.append(f"{load.source}: completed the load an earlier run left pending ({done})")
        if load.ok:
            lines.append(
                f"{load.source}: {load.elapsed:.1f}s, {_usage_text(load.usage)}; "
                f"data in {load.location}, dataset {load.dataset} (pipeline {load.pipeline_name})"
            )
        else:
            where = f" in resource {load.failed_resource}" if load.failed_resource else ""
            lines.append(f"{load.source}: FAILED{where} after {load.elapsed:.1f}s: {load.error}")
    if report.views is not None:
        if report.views.created:
            lines.append(f"views: {', '.join(report.views.created)}")
        elif report.views.note:
            lines.append(report.views.note)
    lines.append(f"elapsed: {report.elapsed:.1f}s")
    return "\n".join(lines)

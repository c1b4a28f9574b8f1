"""`switchboard listen`: signed webhooks -> a local fsync'd spool -> dlt micro-batches.

app.py (the ASGI receiver), verify.py (signatures), spool.py (durable append), flush.py (the timer and
retries), warehouse.py (the dlt load and the merge rules), rows.py (payloads -> table rows), settings.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.listen.settings import endpoint, listen_settings
from pipelines.source_names import SOURCE_NAMES


def startup_warnings() -> list[str]:
    """One line per endpoint that accepts unsigned deliveries or refuses every delivery."""
    lines = []
    for source in SOURCE_NAMES:
        target = endpoint(source)
        if target is None:
            continue
        if target.secret is None and target.allow_unsigned:
            lines.append(
                f"warning: sources.{source}.allow_unsigned_webhooks is on: {target.path} accepts deliveries "
                "nobody signed; set sources.{source}.webhook_secret as soon as the server signs them".replace(
                    "{source}", source
                )
            )
        elif target.secret is None:
            lines.append(
                f"warning: sources.{source}.webhook_secret is not set: {target.path} refuses every delivery (401)"
            )
    return lines


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Run the listener in the foreground until SIGINT/SIGTERM; what is spooled is flushed on the way out."""
    import uvicorn

    from pipelines.listen.app import GAP_NOTE, create_app
    from pipelines.listen.flush import Flusher, ProcessLoader
    from pipelines.listen.spool import Spool
    from sources.common.settings import check_source_keys

    for source in SOURCE_NAMES:
        check_source_keys(source)
    settings = listen_settings()
    for line in startup_warnings():
        say(line)
    spool = Spool(settings.spool_dir)
    flusher = Flusher(spool, ProcessLoader(destination, pipelines_dir), settings.flush_seconds)
    say(
        f"listening on http://{host}:{port} (POST /webhooks/chatwoot, /webhooks/sendblue; GET /healthz); "
        f"spool {settings.spool_dir} ({spool.depth} events waiting), flush every {settings.flush_seconds:g}s "
        f"or {settings.flush_events} events"
    )
    say(f"note: {GAP_NOTE}")
    # keep idle connections longer than a proxy does (nginx: 60 s), so the proxy never reuses one we closed
    uvicorn.run(
        create_app(settings, flusher),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
    )

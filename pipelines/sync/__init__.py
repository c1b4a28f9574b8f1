"""Reverse ETL: push warehouse rows into Sendblue and Chatwoot, only what changed, exactly once.

A sync is declared under `[syncs.NAME]` in `.dlt/config.toml` (or `SYNCS__NAME__KEY` env vars). Modules:
`config` (the declaration), `desired` (the query, hashed in the warehouse; the loaded table's ids),
`rows` (validation), `ledger` (the reverse_etl tables), `diff` (rows against the ledger), `plan` (the
work and its printout), `send` (batches and the crash protocol), `run` (one run, start to end). The
engine names no target: each is a class in `destinations/targets/`.

    from pipelines.sync import list_syncs, run_sync
    result = run_sync("optouts_to_chatwoot", dry_run=True)

`switchboard sync NAME [--dry-run]` runs it from a shell.
"""

from pipelines.sync.config import SyncConfig, SyncConfigError, list_syncs, load_sync_config, sync_names
from pipelines.sync.run import SyncResult, run_sync

__all__ = ["SyncConfig", "SyncConfigError", "SyncResult", "list_syncs", "load_sync_config", "run_sync", "sync_names"]

"""Reverse ETL: push warehouse rows into Sendblue and Chatwoot, only what changed, exactly once.

A sync is declared under `[syncs.NAME]` in `.dlt/config.toml` (or `SYNCS__NAME__KEY` env vars). Modules:
`config` (the declaration), `desired` (the query, hashed in the warehouse), `rows` (validation),
`ledger` (the reverse_etl tables), `plan` (the diff and its printout), `run` (sending, the crash protocol).
Writers live in `destinations/sendblue.py` and `destinations/chatwoot.py`.

    from pipelines.sync import list_syncs, run_sync
    result = run_sync("optouts_to_chatwoot", dry_run=True)

`python -m pipelines.sync NAME [--dry-run]` and `switchboard sync NAME [--dry-run]` run it from a shell.
"""

from pipelines.sync.config import SyncConfig, SyncConfigError, list_syncs, load_sync_config, sync_names
from pipelines.sync.run import SyncResult, run_sync

__all__ = ["SyncConfig", "SyncConfigError", "SyncResult", "list_syncs", "load_sync_config", "run_sync", "sync_names"]

"""`python -m pipelines.sync NAME [--dry-run]` / `--list`: run one sync from a shell or a scheduler.

Exit status: 0 success, 2 partial (newly rejected rows, row errors or unknown outcomes; with --strict
also rows still rejected unchanged; a dry run whose rejects would make the run partial), 1 failed.
"""

from __future__ import annotations

import argparse
import sys

from pipelines.errors import redact
from pipelines.sync.config import SyncConfigError, load_sync_config, sync_names
from pipelines.sync.run import run_sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sync", description="Run a reverse-ETL sync.")
    parser.add_argument("name", nargs="?", help="the sync, as declared under [syncs.NAME]")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and send nothing")
    parser.add_argument("--list", action="store_true", help="list the declared syncs")
    parser.add_argument("--warehouse", help="duckdb (default), postgres or another dlt SQL destination")
    parser.add_argument("--strict", action="store_true", help="rows still rejected also make the run partial")
    args = parser.parse_args(argv)
    try:
        if args.list:
            status = 0
            for name in sync_names():
                try:
                    config = load_sync_config(name)
                except SyncConfigError as exc:
                    print(redact(str(exc)), file=sys.stderr)
                    status = 1
                    continue
                print(f"{config.name}\t{config.target}\t{config.mode}\t{config.source_description()}")
            return status
        if not args.name:
            parser.error("name a sync (or --list)")
        config = load_sync_config(args.name)
    except SyncConfigError as exc:
        print(redact(str(exc)), file=sys.stderr)
        return 1
    result = run_sync(
        config,
        dry_run=args.dry_run,
        warehouse=args.warehouse,
        out=lambda line: print(redact(line)),
        strict=args.strict,
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""Whose data is this: the (account, warehouse, dataset) pair incremental state belongs to
(docs/operations.md, "Whose state").

dlt keys a pipeline's local state (cursors, schemas) by pipeline name only, so a name shared by two
warehouses or two accounts makes the second one resume from the first one's cursors and miss data. The
pipeline name is therefore derived from a hash of the pair: the account (Chatwoot base URL and account
id; Sendblue base URL and API key id), the warehouse (the DuckDB file's absolute path; a server's host,
port and database) and the dataset. The name is stable, so dlt still restores the state from the
warehouse on an ephemeral worker; a new, emptied or replaced warehouse has no state under that name and
is loaded in full. Secrets (the Sendblue key id) only ever enter the hash; the printed pair never holds one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

PIPELINE_PREFIX = "switchboard"


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class StatePair:
    source: str
    account: str  # shown: "account 1 at https://app.chatwoot.com"
    account_key: str  # hashed only (may hold a secret)
    warehouse: str  # shown: "DuckDB file /abs/switchboard.duckdb", "postgres 127.0.0.1:5432/test"
    warehouse_key: str
    dataset: str

    @property
    def fingerprint(self) -> str:
        return _digest("\n".join((self.source, self.account_key, self.warehouse_key, self.dataset)))

    @property
    def pipeline_name(self) -> str:
        return f"{PIPELINE_PREFIX}_{self.source}_{self.fingerprint}"

    def describe(self) -> str:
        return f"{self.source}: {self.account} -> {self.warehouse}, dataset {self.dataset}"


def account_identity(source: str) -> tuple[str, str]:
    """(shown, hashed) identity of the account a source reads, from its resolved settings."""
    from pipelines.source_names import source_module

    settings = source_module(source).settings_from_config()
    if source == "chatwoot":
        account = f"{settings.base_url.lower()}|{settings.account_id}"
        return f"account {settings.account_id} at {settings.base_url}", account
    key_id = settings.api_key_id.get_secret_value().strip()
    # the key id is a credential: only a digest of it is ever shown
    return (
        f"API key #{_digest('sendblue-key-id:' + key_id)} at {settings.base_url}",
        f"{settings.base_url.lower()}|{key_id}",
    )


def account_fingerprint(source: str) -> tuple[str, str]:
    """(shown, digest) of the account a source reads: the digest keys what belongs to the account alone
    (a sync's ledger rows) and holds no secret."""
    shown, key = account_identity(source)
    return shown, _digest(f"{source}|{key}", 16)


def warehouse_identity(destination: Any) -> tuple[str, str]:
    """(shown, key) identity of a warehouse: the DuckDB file, or host:port/database, never a password.

    `destination` is a dlt destination reference (a name or a `Destination`, e.g. the DuckDB destination
    with its file spelled out); its credentials resolve from dlt's config as the load will resolve them.
    """
    from dlt.common.destination.reference import Destination

    dest: Any = Destination.from_reference(destination) if isinstance(destination, str) else destination
    kind = str(dest.destination_type).split(".")[-1]
    name = str(getattr(dest, "destination_name", None) or kind)
    try:
        creds = dest.configuration(None, accept_partial=True).credentials
    except Exception:  # unresolvable config: the load itself reports it
        creds = None
    host = getattr(creds, "host", None)
    database = getattr(creds, "database", None)
    if kind in ("duckdb", "motherduck") and database and not host:
        path = str(database)
        if kind == "duckdb" and not path.startswith(":"):
            path = os.path.abspath(path)
            return f"DuckDB file {path}", f"duckdb:{path}"
        return f"{name} database {path}", f"{kind}:{path}"
    if host:
        port = getattr(creds, "port", None)
        where = f"{host}:{port}" if port else str(host)
        where += f"/{database}" if database else ""
        return f"{name} {where}", f"{kind}:{str(where).lower()}"
    project = getattr(creds, "project_id", None) or getattr(creds, "account", None)
    if project:
        return f"{name} {project}", f"{kind}:{project}"
    return name, kind


def state_pair(source: str, destination: Any, dataset: str) -> StatePair:
    account, account_key = account_identity(source)
    warehouse, warehouse_key = warehouse_identity(destination)
    return StatePair(source, account, account_key, warehouse, warehouse_key, dataset)

"""Where the warehouse is, from dlt config: the DuckDB file, the Postgres DSN, the default destination.

Also what is wrong with them before anything connects: an unknown destination name, the DSN still being
the example's placeholder, a DuckDB file that does not exist (reading commands never create one). A
Postgres DSN without a password (trust or peer auth) is accepted: dlt requires a password, so such a DSN
is given an empty one, which libpq reads as none.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_DUCKDB_FILE = "switchboard.duckdb"


def _error(message: str) -> Exception:
    from destinations.warehouse import WarehouseError

    return WarehouseError(message)


def duckdb_path_from_config() -> str:
    """`destination.duckdb.credentials` (a path, or duckdb:///path), default switchboard.duckdb."""
    import dlt

    value: Any = dlt.config.get("destination.duckdb.credentials")
    if isinstance(value, dict):
        value = value.get("database")
    path = str(value) if value else DEFAULT_DUCKDB_FILE
    if path.startswith("duckdb:///"):
        path = path[len("duckdb:///") :]
    return path


# the parts of the DSN in .dlt/secrets.toml.example (postgresql://USER:PASSWORD@HOST:5432/DATABASE) a user
# must replace
_PLACEHOLDERS = ("USER", "PASSWORD", "HOST", "DATABASE")


def _configured_postgres_dsn() -> str | None:
    """`destination.postgres.credentials` when it is a DSN string (not a table of fields)."""
    import dlt

    value: Any = dlt.secrets.get("destination.postgres.credentials")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _placeholder_parts(dsn: str) -> list[str]:
    """The example's placeholders still in a DSN (compared as written: `urlsplit` lowercases hosts)."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    found = [user, password, hostport.rsplit(":", 1)[0], parts.path.lstrip("/")]
    return [name.lower() for name, value in zip(_PLACEHOLDERS, found, strict=True) if value == name]


def _with_empty_password(dsn: str) -> str:
    """`postgresql://user@host/db` as `postgresql://user:@host/db`. A DSN without a password is normal with
    trust or peer auth (or a ~/.pgpass), but dlt refuses it; libpq reads an empty password as none."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if not parts.scheme.startswith("postgres") or "@" not in parts.netloc:
        return dsn
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo or not userinfo:
        return dsn
    return urlunsplit(parts._replace(netloc=f"{userinfo}:@{hostport}"))


def postgres_problem() -> str | None:
    """Why the configured Postgres DSN cannot work as it is: still the example's placeholder."""
    dsn = _configured_postgres_dsn()
    placeholders = _placeholder_parts(dsn) if dsn else []
    if not placeholders:
        return None
    # the parts are named, not quoted: the example's password is a configured secret, blanked in messages
    parts = ", ".join(placeholders[:-1]) + (" and " if len(placeholders) > 1 else "") + placeholders[-1]
    return (
        f"destination.postgres.credentials is still the example DSN of .dlt/secrets.toml.example: its {parts} "
        f"{'are placeholders' if len(placeholders) > 1 else 'is a placeholder'}; put your server's DSN in "
        ".dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS"
    )


def postgres_destination(destination: Any) -> Any:
    """The `postgres` destination for dlt, with a DSN that has no password given an empty one (see
    `_with_empty_password`); any other destination as it is."""
    if destination != "postgres":
        return destination
    dsn = _configured_postgres_dsn()
    if not dsn or _with_empty_password(dsn) == dsn:
        return destination
    import dlt

    return dlt.destinations.postgres(credentials=_with_empty_password(dsn))


def postgres_dsn_from_config() -> str:
    """The Postgres DSN from `destination.postgres.credentials` (a DSN or its fields), resolved the dlt way."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigFieldMissingException
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    problem = postgres_problem()
    if problem:
        raise _error(problem)
    dsn = _configured_postgres_dsn()
    try:
        credentials = resolve_configuration(
            PostgresCredentials(),
            sections=("destination", "postgres", "credentials"),
            explicit_value=_with_empty_password(dsn) if dsn else None,
        )
    except ConfigFieldMissingException as exc:
        if dsn:
            # a password is never required (trust or peer auth): name what else is missing
            missing = [f for f in exc.fields if f != "password"] or list(exc.fields)
            raise _error(
                f"destination.postgres.credentials has no {' or '.join(missing)}: write the DSN with one, "
                "e.g. postgresql://postgres@127.0.0.1:5432/test"
            ) from None
        raise _error(
            "Postgres is not configured: set destination.postgres.credentials in .dlt/secrets.toml "
            "or DESTINATION__POSTGRES__CREDENTIALS"
        ) from None
    return str(credentials.to_native_representation())


def default_destination() -> str:
    """The warehouse used when none is named: `warehouse.destination` in config (env WAREHOUSE__DESTINATION),
    else duckdb."""
    import dlt

    return str(dlt.config.get("warehouse.destination") or "duckdb")


def destination_problem(name: str) -> str | None:
    """Why `name` cannot serve as a destination: dlt does not know it, or its Postgres DSN is the example's."""
    from dlt.common.destination.exceptions import UnknownDestinationModule
    from dlt.common.destination.reference import Destination

    try:
        Destination.from_reference(name)
    except UnknownDestinationModule:
        return (
            f"unknown destination {name!r}: use duckdb (the default), postgres, or another dlt "
            "destination such as bigquery, snowflake or motherduck"
        )
    return postgres_problem() if name in ("postgres", "postgresql") else None


def existing_duckdb_path() -> str:
    """The configured DuckDB file, which must exist: reading commands never create an empty warehouse."""
    path = duckdb_path_from_config()
    if path.startswith(":") or path.startswith("md:") or os.path.exists(path):
        return path
    import dlt

    if dlt.config.get("destination.duckdb.credentials") is None:
        how = f"destination.duckdb.credentials is not set, so the default {DEFAULT_DUCKDB_FILE} in the working directory"
    else:
        how = "destination.duckdb.credentials"
    raise _error(
        f"no DuckDB warehouse at {os.path.abspath(path)} ({how}): load data first (switchboard load), "
        "or run from the project directory, the one with .dlt/"
    )


def dsn_host(dsn: str) -> str:
    """host:port/database of a DSN for messages; never the password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(dsn)
        if parts.hostname:
            return f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    except ValueError:
        pass
    return "the configured server"

"""The loaded tables as data: one `Stream` per table, shared shape for both APIs.

A stream names its table, key, write disposition, incremental cursor and the pydantic model its rows come
from. Column types are derived from the model (plus the columns the rows add, minus the fields they drop),
so they are written once: the dlt resources take their hints from `Stream.hints()` and `discover` reports
`Stream.describe()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args, get_origin

from dlt.common.schema.typing import TColumnSchema
from pydantic import BaseModel

# Rows with this column true are tombstones: dlt's hard_delete hint deletes the row instead of storing it.
DELETED_COLUMN = "_deleted"

_DLT_TYPES: dict[Any, str] = {str: "text", bool: "bool", int: "bigint", float: "double", datetime: "timestamp"}


def dlt_type(annotation: Any) -> str:
    """The dlt data type of a pydantic field annotation (Optional unwrapped; lists and dicts are JSON)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if args and get_origin(annotation) not in (list, dict) else annotation
    if get_origin(base) in (list, dict) or base in (list, dict):
        return "json"
    return _DLT_TYPES.get(base, "text")


def columns_of(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Column name, dlt data type and nullability for every field of a model, in declaration order."""
    return [
        {"name": name, "data_type": dlt_type(info.annotation), "nullable": not info.is_required()}
        for name, info in model.model_fields.items()
    ]


@dataclass(frozen=True)
class Stream:
    table: str
    primary_key: tuple[str, ...]
    write_disposition: str
    model: type[BaseModel]  # the fields of a row; column types are derived from it
    description: str = ""
    cursor: str | None = None  # the incremental cursor, as `discover` reports it
    derived: tuple[tuple[str, str, bool], ...] = ()  # (name, data type, nullable) the rows add
    dropped: tuple[str, ...] = ()  # model fields the rows leave out
    deletes: bool = False  # rows may be tombstones (DELETED_COLUMN true) that delete the loaded row

    def columns(self) -> list[dict[str, Any]]:
        cols = [c for c in columns_of(self.model) if c["name"] not in self.dropped]
        cols += [{"name": n, "data_type": t, "nullable": nullable} for n, t, nullable in self.derived]
        for col in cols:
            col["nullable"] = col["nullable"] and col["name"] not in self.primary_key
        return cols

    def column_hints(self) -> dict[str, TColumnSchema]:
        hints: dict[str, TColumnSchema] = {
            c["name"]: {"data_type": c["data_type"], "nullable": c["nullable"]} for c in self.columns()
        }
        if self.deletes:
            hints[DELETED_COLUMN] = {"data_type": "bool", "nullable": True, "hard_delete": True}
        return hints

    def hints(self) -> dict[str, Any]:
        """Keyword arguments of `dlt.resource` / `dlt.transformer` for this table."""
        return {
            "name": self.table,
            "primary_key": list(self.primary_key),
            "write_disposition": self.write_disposition,
            "columns": self.column_hints(),
        }

    def describe(self) -> dict[str, Any]:
        """What `discover` reports: table, key, write disposition, cursor, description, typed columns."""
        return {
            "table": self.table,
            "primary_key": list(self.primary_key),
            "write_disposition": self.write_disposition,
            "cursor": self.cursor,
            "description": self.description,
            "columns": self.columns(),
        }

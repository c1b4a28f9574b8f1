"""Validation of the desired rows a sync's query yields, against the target's pydantic row model (see
destinations/targets/fields.py for how fields are normalised).

Each valid row becomes a `DesiredRow`: its key and the plain dict of the target's fields. Each invalid row
becomes a `Reject` with a reason a person can act on. Columns a target does not know are ignored (the plan
names them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from destinations.targets import TARGETS
from destinations.targets.fields import PHONE_FIELDS, blank_to_none, normalize_phone


@dataclass(frozen=True)
class Reject:
    key: str | None
    reason: str
    source_hash: str | None = None  # the raw row's (see desired.py): an unchanged row rejected again is known


@dataclass
class DesiredRow:
    """A validated row: its key, the normalised fields, and the hash of those fields."""

    key: str
    fields: dict[str, Any]
    row_hash: str
    source_hash: str


def row_hash(fields: dict[str, Any]) -> str:
    """Stable hash of a normalised row (what the ledger records as last sent)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


class RowValidator:
    """Validates raw rows for one sync. Phones are normalised before the model sees them (they need the
    sync's default_region and phone_validation), and the key field follows the sync's match_on."""

    def __init__(
        self, target: str, match_on: str | None, default_region: str | None, phone_validation: str = "possible"
    ):
        self.target = TARGETS[target]
        self.match_on = match_on
        self.model = self.target.row_model
        self.key_field = self.target.key_field or str(match_on)
        self.region = default_region
        self.fields = list(self.model.model_fields)
        self.phone_fields = [f for f in self.fields if f in PHONE_FIELDS]
        self.strict_phones = phone_validation == "strict"

    def validate(self, raw: dict[str, Any], source_hash: str) -> DesiredRow | Reject:
        data = {name: raw.get(name) for name in self.fields if name in raw}
        problems: list[str] = []
        for name in self.phone_fields:
            if name in data:
                try:
                    data[name] = normalize_phone(data[name], self.region, strict=self.strict_phones)
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
        key_value = blank_to_none(raw.get(self.key_field))
        if key_value is None:
            problems.insert(0, f"missing key: {self.key_field} is empty")
        try:
            row = self.model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                message = str(err["msg"]).removeprefix("Value error, ")
                if field == self.key_field and key_value is None:
                    continue  # already reported as the missing key
                if not any(p.startswith(f"{field}:") for p in problems):
                    problems.append(f"{field}: {message}")
            row = None
        if problems or row is None:
            reason = "; ".join(p if len(p) <= 300 else p[:297] + "..." for p in problems)
            return Reject(self.target.key_of(raw, self.match_on), reason, source_hash)
        fields = row.model_dump()
        key = str(self.target.key_of(fields, self.match_on))
        fields = self.target.ledger_fields(fields, self.match_on)
        return DesiredRow(key, fields, row_hash(fields), source_hash)


def reject_duplicates(rows: Iterable[DesiredRow]) -> tuple[list[DesiredRow], list[Reject]]:
    """Every row whose key appears more than once in the run is rejected, all copies: a query without an
    ORDER BY has no "first" row, so picking one would make the outcome depend on scan order."""
    by_key: dict[str, list[DesiredRow]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    kept: list[DesiredRow] = []
    rejects: list[Reject] = []
    for key, group in by_key.items():
        if len(group) == 1:
            kept.append(group[0])
        else:
            rejects.extend(Reject(key, f"duplicate key: {len(group)} rows share {key}", row.source_hash) for row in group)
    return kept, rejects

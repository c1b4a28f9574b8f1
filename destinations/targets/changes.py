"""What to send so a remote record equals a desired row: the fields that differ from a baseline (the
record as read, or as last confirmed; None when unknown, which sends every present field)."""

from __future__ import annotations

from typing import Any


def scalar_changes(
    desired: dict[str, Any],
    baseline: dict[str, Any] | None,
    names: tuple[str, ...],
    *,
    nulls_erase: bool,
    erase_value: Any = None,
) -> dict[str, Any]:
    """Scalar fields to send so the remote equals the desired row. A null erases only with nulls_erase,
    and only where the baseline holds (or may hold) a value."""
    out: dict[str, Any] = {}
    for name in names:
        want = desired.get(name)
        have = baseline.get(name) if baseline is not None else None
        if want is None:
            if nulls_erase and (baseline is None or have not in (None, "")):
                out[name] = erase_value
            continue
        if baseline is None or want != have:
            out[name] = want
    return out


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: same type and value (99 and "99", or true and 1, differ; 99 and 99.0 are
    the same number), lists in order, objects key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def map_changes(
    want: dict[str, Any] | None, have: dict[str, Any] | None, *, known: bool, nulls_erase: bool
) -> tuple[dict[str, Any], list[str]]:
    """(keys to set, keys to erase) for a map the API merges into the stored one; values compare as
    JSON (type and value)."""
    if want is None:
        return {}, []
    have = have if isinstance(have, dict) else {}
    to_set = {k: v for k, v in want.items() if v is not None and (not known or not same_json(have.get(k), v))}
    to_erase = [k for k, v in want.items() if v is None and nulls_erase and (not known or have.get(k) not in (None, ""))]
    return to_set, to_erase

"""`POST /contacts/filter` and `POST /conversations/filter`: Chatwoot's filter payload, evaluated in Python.

The attribute/operator tables mirror Chatwoot's `lib/filters/filter_keys.yml` (each attribute's type and
operators); the evaluation mirrors the SQL that `FilterService` builds: conditions joined by each one's
`query_operator` (AND binds tighter than OR, as in SQL), NULL columns never match a comparison, dates
compared by day.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

Record = dict[str, Any]
Predicate = Callable[[Record], bool]


class FilterError(Exception):
    """A bad filter payload: the API answers 422 `{"error": message}`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FilterKey:
    kind: str  # text, phone, id, date, labels, boolean, status
    operators: tuple[str, ...]
    get: Callable[[Record], Any]


@dataclass(frozen=True)
class Entity:
    """What differs between the contact and the conversation filter services."""

    keys: dict[str, FilterKey]
    labels_of: Callable[[Record], Sequence[str]]
    custom_attribute_keys: dict[str, str]  # key -> display type (text, number, list, date, ...)
    # Contacts::FilterService compares with `= values[0]`; the conversation service with `IN (values)`
    first_value_only: bool


TEXT_OPS = ("equal_to", "not_equal_to", "contains", "does_not_contain")
EQUALITY_OPS = ("equal_to", "not_equal_to")
PRESENCE_OPS = ("equal_to", "not_equal_to", "is_present", "is_not_present")
DATE_OPS = ("is_greater_than", "is_less_than", "days_before")
LABEL_OPS = ("equal_to", "not_equal_to", "is_present", "is_not_present")


def _attr(name: str) -> Callable[[Record], Any]:
    return lambda record: record["additional_attributes"].get(name)


def _col(name: str) -> Callable[[Record], Any]:
    return lambda record: record.get(name)


CONTACT_KEYS: dict[str, FilterKey] = {
    "name": FilterKey("text", TEXT_OPS, _col("name")),
    "phone_number": FilterKey("phone", (*TEXT_OPS, "starts_with"), _col("phone_number")),
    "email": FilterKey("text", TEXT_OPS, _col("email")),
    "identifier": FilterKey("text", EQUALITY_OPS, _col("identifier")),
    "country_code": FilterKey("text", EQUALITY_OPS, _attr("country_code")),
    "city": FilterKey("text", TEXT_OPS, _attr("city")),
    "company_name": FilterKey("text", TEXT_OPS, _attr("company_name")),
    "labels": FilterKey("labels", LABEL_OPS, _col("id")),
    "created_at": FilterKey("date", DATE_OPS, _col("created_at")),
    "last_activity_at": FilterKey("date", DATE_OPS, _col("last_activity_at")),
    "blocked": FilterKey("boolean", EQUALITY_OPS, _col("blocked")),
}

CONVERSATION_KEYS: dict[str, FilterKey] = {
    "status": FilterKey("status", EQUALITY_OPS, _col("status")),
    "assignee_id": FilterKey("id", PRESENCE_OPS, _col("assignee_id")),
    "inbox_id": FilterKey("id", PRESENCE_OPS, _col("inbox_id")),
    "team_id": FilterKey("id", PRESENCE_OPS, _col("team_id")),
    "contact_id": FilterKey("id", EQUALITY_OPS, _col("contact_id")),
    "priority": FilterKey("text", EQUALITY_OPS, _col("priority")),
    "display_id": FilterKey("id", TEXT_OPS, _col("id")),
    "campaign_id": FilterKey("id", PRESENCE_OPS, _col("campaign_id")),
    "labels": FilterKey("labels", LABEL_OPS, _col("id")),
    "browser_language": FilterKey("text", EQUALITY_OPS, _attr("browser_language")),
    "conversation_language": FilterKey("text", EQUALITY_OPS, _attr("conversation_language")),
    "referer": FilterKey("text", TEXT_OPS, _attr("referer")),
    "created_at": FilterKey("date", DATE_OPS, _col("created_at")),
    "last_activity_at": FilterKey("date", DATE_OPS, _col("last_activity_at")),
    "mail_subject": FilterKey("text", TEXT_OPS, _attr("mail_subject")),
}

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def invalid_attribute(key: Any, keys: dict[str, FilterKey]) -> FilterError:
    return FilterError(
        f"Invalid attribute key - [{key}]. The key should be one of [{','.join(keys)}] "
        "or a custom attribute defined in the account."
    )


def invalid_operator(key: str, allowed: Sequence[str]) -> FilterError:
    return FilterError(f"Invalid operator. The allowed operators for {key} are [{','.join(allowed)}].")


def invalid_value(key: str) -> FilterError:
    return FilterError(f"Invalid value. The values provided for {key} are invalid")


INVALID_QUERY_OPERATOR = FilterError('Query operator must be either "AND" or "OR".')


def _blank(values: Any) -> bool:
    return values is None or values == "" or values == [] or values == {}


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, list) else [values]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ruby_to_i(value: Any) -> int:
    """String#to_i: the leading integer, else 0."""
    match = re.match(r"\s*([+-]?\d+)", _text(value))
    return int(match.group(1)) if match else 0


def _day(epoch: Any) -> date | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).date()


def _parse_day(key: str, value: Any) -> date:
    """`Date.iso8601`: only YYYY-MM-DD is accepted."""
    text = _text(value).strip()
    if not _ISO_DATE.match(text):
        raise invalid_value(key)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid_value(key) from None


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in ("true", "t", "1", "yes"):
        return True
    if text in ("false", "f", "0", "no"):
        return False
    raise invalid_value(key)


def _text_condition(operator: str, get: Callable[[Record], Any], values: list[str]) -> Predicate:
    lowered = [v.lower() for v in values]
    if operator == "equal_to":
        return lambda r: (v := get(r)) is not None and _text(v).lower() in lowered
    if operator == "not_equal_to":
        return lambda r: (v := get(r)) is not None and _text(v).lower() not in lowered
    needles = [v.strip().lower() for v in values]
    if operator == "contains":  # ILIKE ANY (ARRAY['%v%', ...])
        return lambda r: (v := get(r)) is not None and any(n in _text(v).lower() for n in needles)
    if operator == "does_not_contain":  # NOT ILIKE ALL
        return lambda r: (v := get(r)) is not None and all(n not in _text(v).lower() for n in needles)
    if operator == "starts_with":
        return lambda r: (v := get(r)) is not None and any(_text(v).lower().startswith(n) for n in needles)
    if operator == "is_present":
        return lambda r: get(r) is not None
    if operator == "is_not_present":
        return lambda r: get(r) is None
    return lambda r: (v := get(r)) is not None and _text(v).lower() == lowered[0]


def _date_condition(
    key: str, operator: str, get: Callable[[Record], Any], values: list[Any], today: date
) -> Predicate:
    # `(table.column)::date > 'D'::date`: day granularity, the day itself excluded
    if operator == "days_before":
        bound = today - timedelta(days=ruby_to_i(values[0]))
        operator = "is_less_than"
    else:
        bound = _parse_day(key, values[0])
    if operator == "is_greater_than":
        return lambda r: (d := _day(get(r))) is not None and d > bound
    return lambda r: (d := _day(get(r))) is not None and d < bound


def _labels_condition(operator: str, entity: Entity, values: list[Any]) -> Predicate:
    wanted = {_text(v).strip().lower() for v in values}
    labels_of = entity.labels_of
    if operator == "equal_to":
        return lambda r: any(label in wanted for label in labels_of(r))
    if operator == "not_equal_to":
        return lambda r: not any(label in wanted for label in labels_of(r))
    if operator == "is_present":
        return lambda r: bool(labels_of(r))
    return lambda r: not labels_of(r)


def _custom_attribute_condition(key: str, display_type: str, operator: str, values: list[Any]) -> Predicate:
    def get(record: Record) -> Any:
        return record["custom_attributes"].get(key)

    if display_type == "number" and operator in (
        "is_greater_than",
        "is_less_than",
        "equal_to",
        "not_equal_to",
    ):
        try:
            bound = float(values[0])
        except (TypeError, ValueError):
            raise invalid_value(key) from None

        def number(record: Record) -> float | None:
            value = get(record)
            try:
                return None if value is None else float(value)
            except (TypeError, ValueError):
                return None

        compare: dict[str, Callable[[float], bool]] = {
            "is_greater_than": lambda v: v > bound,
            "is_less_than": lambda v: v < bound,
            "equal_to": lambda v: v == bound,
            "not_equal_to": lambda v: v != bound,
        }
        test = compare[operator]
        if operator == "not_equal_to":  # the service adds `OR (custom_attributes ->> key) IS NULL`
            return lambda r: (v := number(r)) is None or test(v)
        return lambda r: (v := number(r)) is not None and test(v)
    text_values = [_text(v) for v in values]
    predicate = _text_condition(operator, get, text_values or [""])
    if operator == "not_equal_to":
        return lambda r: get(r) is None or predicate(r)
    return predicate


def _condition(condition: Any, entity: Entity, today: date) -> Predicate:
    if not isinstance(condition, dict):
        raise FilterError("Invalid filter payload: each condition must be an object")
    key = condition.get("attribute_key")
    operator = condition.get("filter_operator")
    values = condition.get("values")
    spec = entity.keys.get(key) if isinstance(key, str) else None
    # order of checks as in Filters::FilterHelper#build_condition_query: operator, then values, then key
    if spec is not None and operator not in spec.operators:
        raise invalid_operator(str(key), spec.operators)
    if operator not in ("is_present", "is_not_present") and _blank(values):
        raise invalid_value(str(key))
    if spec is None:
        if isinstance(key, str) and key in entity.custom_attribute_keys:
            return _custom_attribute_condition(
                key, entity.custom_attribute_keys[key], str(operator), _as_list(values) if values else []
            )
        raise invalid_attribute(key, entity.keys)
    all_values = _as_list(values) if not _blank(values) else []
    chosen = all_values[:1] if entity.first_value_only else all_values
    if spec.kind == "date":
        return _date_condition(str(key), str(operator), spec.get, all_values, today)
    if spec.kind == "labels":
        return _labels_condition(str(operator), entity, chosen)
    if spec.kind == "boolean":
        flag = _parse_bool(str(key), chosen[0])
        if operator == "equal_to":
            return lambda r: spec.get(r) == flag
        return lambda r: spec.get(r) is not None and spec.get(r) != flag
    if spec.kind == "status":
        statuses = [_text(v) for v in chosen]
        if "all" in statuses:
            statuses = ["open", "resolved", "pending", "snoozed"]
        return _text_condition(str(operator), spec.get, statuses)
    texts = [_text(v) for v in (all_values if operator in ("contains", "does_not_contain") else chosen)]
    if spec.kind == "phone" and operator in ("equal_to", "not_equal_to"):
        # Contacts::FilterService stores phone values as "+#{value.delete('+')}"
        texts = ["+" + t.replace("+", "") for t in texts]
    return _text_condition(str(operator), spec.get, texts)


def compile_filter(payload: Any, entity: Entity, today: date | None = None) -> Predicate:
    """One predicate for the whole payload, or FilterError with the API's 422 message."""
    if not isinstance(payload, list):
        raise FilterError("Invalid filter payload: payload must be a list of conditions")
    today = today or datetime.now(UTC).date()
    joins: list[str] = []
    for i, condition in enumerate(payload):
        operator = condition.get("query_operator") if isinstance(condition, dict) else None
        last = i == len(payload) - 1
        if operator is None or operator == "":
            if not last:  # "a = 1  b = 2" is not SQL; Chatwoot refuses a missing join too
                raise INVALID_QUERY_OPERATOR
            joins.append("")
            continue
        if not isinstance(operator, str) or operator.upper() not in ("AND", "OR"):
            raise INVALID_QUERY_OPERATOR
        joins.append(operator.upper())
    predicates = [_condition(condition, entity, today) for condition in payload]
    if not predicates:
        return lambda r: True
    # SQL precedence: AND groups, joined by OR (the last condition's operator dangles and is dropped)
    groups: list[list[Predicate]] = [[]]
    for predicate, join in zip(predicates, joins, strict=True):
        groups[-1].append(predicate)
        if join == "OR":
            groups.append([])
    groups = [g for g in groups if g]
    return lambda r: any(all(p(r) for p in group) for group in groups)

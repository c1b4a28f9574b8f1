"""Property: whatever a query yields (text, numbers, decimals, dates, nested JSON, None, huge strings, in
any column), the sync's RowValidator hands back a Reject or a DesiredRow for every target, never an
exception; and a DesiredRow's fields are plain JSON that the ledger and the HTTP client can carry."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destinations.targets import TARGETS
from pipelines.sync.rows import DesiredRow, Reject, RowValidator

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
nested_json = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.dates()
    | st.datetimes()
    | st.times()
    | st.uuids()
    | st.binary(max_size=8)
    | st.text(max_size=40)
    | st.text(alphabet="+0123456789 ()-.", max_size=20)
    | st.sampled_from(["+19895550000", "+19995551234", "user@example.org", "true", "[1, 2]", '{"a": 1}', "  "])
    | st.just("x" * 200_000)
)
values = (
    scalars
    | nested_json
    | nested_json.map(json.dumps)
    | st.lists(scalars, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(), scalars, max_size=4)
    # a MAP some drivers hand over as key/value pairs, keys of any type (lists too)
    | st.lists(st.fixed_dictionaries({"key": scalars | st.lists(st.integers(), max_size=2), "value": scalars}), max_size=3)
)
FIELDS = sorted({name for target in TARGETS.values() for name in target.row_model.model_fields} | {"label", "extra"})
rows = st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=rows, target=st.sampled_from(sorted(TARGETS)), match_on=st.sampled_from(["identifier", "email", "phone_number"]),
       region=st.sampled_from([None, "US", "GB"]), strict=st.booleans())
def test_the_row_validator_returns_a_reject_or_a_desired_row(
    raw: dict[str, Any], target: str, match_on: str, region: str | None, strict: bool
) -> None:
    validator = RowValidator(target, match_on if target.startswith("chatwoot.") else None, region,
                             "strict" if strict else "possible")

    outcome = validator.validate(raw, "hash")

    assert isinstance(outcome, Reject | DesiredRow)
    if isinstance(outcome, Reject):
        assert outcome.reason and len(outcome.reason) < 10_000, "a huge value is not copied into the reason"
    else:
        assert outcome.key
        # the HTTP client and the ledger serialise fields as strict JSON, with no fallback
        json.dumps(outcome.fields, allow_nan=False)

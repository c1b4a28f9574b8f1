"""Target `sendblue.opt_outs`: one `POST /api/v2/contacts/opt-out` per row. The call sets state, so a row
whose earlier outcome is unknown is simply sent again. Opt-outs are sticky: an opt-in is sent only when
the sync sets allow_opt_in."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from destinations.targets.base import Outcome, Progress, RowResult, WorkItem
from destinations.targets.fields import Row, blank_to_none
from destinations.targets.sendblue_contacts import WITHHELD, SendblueTarget


class SendblueOptOutRow(Row):
    phone: str
    # a row without an opted_out column (or a null) means "opt this number out"
    opted_out: bool = True

    @field_validator("opted_out", mode="before")
    @classmethod
    def _default_true(cls, value: Any) -> Any:
        value = blank_to_none(value)
        return True if value is None else value


class SendblueOptOuts(SendblueTarget):
    name = "sendblue.opt_outs"
    row_model = SendblueOptOutRow
    modes = False

    @classmethod
    def settings_skip(cls, fields: dict[str, Any], config: Any) -> str | None:
        return WITHHELD if not fields["opted_out"] and not config.allow_opt_in else None

    @classmethod
    def opt_change(cls, fields: dict[str, Any], previous: dict[str, Any] | None, allow_opt_in: bool) -> bool | None:
        return bool(fields["opted_out"])

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        return await self.each(items, self._one)

    async def _one(self, row: Progress) -> RowResult:
        key = row.item.key
        opted_out = bool(row.item.fields.get("opted_out", True))
        if not opted_out and not self.config.allow_opt_in:
            return row.result(Outcome.SKIPPED, WITHHELD, status=None)
        answer = await self.send(self.client.opt_out(key, opted_out), row)
        if bool(answer.get("opted_out")) != opted_out:
            return row.result(Outcome.UNKNOWN, f"Sendblue answered opted_out={answer.get('opted_out')}")
        row.remote_id = key
        row.did("opted_out" if opted_out else "opted_in")
        return row.result()

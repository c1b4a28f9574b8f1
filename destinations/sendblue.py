"""Reverse-ETL writers for Sendblue: `sendblue.contacts` and `sendblue.opt_outs`.

They drive the same `AsyncSendblueClient` the source uses (its limiters, retries and typed errors) and
return one `RowResult` per row (see destinations/reverse_etl.py). What Sendblue's API forces:

- Creates go through `POST /api/v2/contacts/bulk` (one request per batch of at most 500). Bulk items take
  only phone, names, company, tags and custom variables, so `assigned_to_email` and `sendblue_number`
  follow as a PUT and `opt_out` through the opt-out endpoint. Bulk duplicate handling is undocumented:
  a row missing from the answer (the phone most likely exists) gets a full PUT in upsert mode (a 404
  there creates it alone); a batch refused as a whole (4xx: a bad row, a duplicate, or more rows than
  the server takes) is split in halves until the refused rows stand alone, and those are created with
  `POST /api/v2/contacts` (`update_if_exists` in upsert mode; a 409 in create_only mode is a row error).
- Bulk create is not known to be idempotent, so a timeout, dropped connection or 5xx leaves its rows'
  outcome unknown; the engine then asks for `check`, which reads `GET /api/v2/contacts/{phone}` and
  sends only what is still missing.
- Updates are partial PUTs of the fields that changed; custom variables merge server-side, so an erased
  variable (nulls_erase) is sent as null, and an erased text field as null.
- Opt-outs are sticky: a row never opts a number back in unless the sync sets allow_opt_in, and then only
  when the number is known to be opted out (last sent so, read so, or answered so). An opt-in withheld
  is reported (`held`), so the ledger records opt_out = true, as Sendblue holds it.
"""

from __future__ import annotations

from typing import Any

from destinations.reverse_etl import (
    ERROR,
    OK,
    SKIPPED,
    UNKNOWN,
    RowResult,
    WorkItem,
    Writer,
    is_fatal,
    map_changes,
    result_from_error,
    run_each,
    scalar_changes,
    unreadable,
)
from sources.common.http import ApiError, NotFoundError, gather_limited
from sources.sendblue.client import AsyncSendblueClient, SendblueSettings
from sources.sendblue.settings import BULK_CREATE_BATCH_MAX

TEXT_FIELDS = ("first_name", "last_name", "company_name", "assigned_to_email", "sendblue_number")
BULK_TEXT_FIELDS = ("first_name", "last_name", "company_name")
# fields a bulk item cannot carry: a PUT right after the create sets them
AFTER_CREATE_FIELDS = ("assigned_to_email", "sendblue_number")


def open_client(settings: SendblueSettings | None = None, **overrides: Any) -> AsyncSendblueClient:
    """The source's client, from `[sources.sendblue]` config; `overrides` (e.g. rate_limit_per_minute)
    replace config values."""
    if settings is None:
        from sources.sendblue.helpers import settings_from_config

        settings = settings_from_config(**overrides)
    return AsyncSendblueClient(settings)


def _same_tags(want: list[str], have: Any) -> bool:
    return isinstance(have, list) and sorted(want) == sorted(str(t) for t in have)


def contact_changes(
    desired: dict[str, Any], baseline: dict[str, Any] | None, *, nulls_erase: bool
) -> dict[str, Any]:
    """The partial PUT body that makes a contact equal the desired row (opt_out excluded)."""
    body = scalar_changes(desired, baseline, TEXT_FIELDS, nulls_erase=nulls_erase)
    tags = desired.get("tags")
    have_tags = baseline.get("tags") if baseline is not None else None
    if tags is not None:
        if baseline is None or not _same_tags(tags, have_tags):
            body["tags"] = tags
    elif nulls_erase and (baseline is None or have_tags):
        body["tags"] = []
    to_set, to_erase = map_changes(
        desired.get("custom_variables"),
        baseline.get("custom_variables") if baseline is not None else None,
        known=baseline is not None,
        nulls_erase=nulls_erase,
    )
    if to_set or to_erase:
        # custom_variables merge server-side; a null value is the only way to ask for a label's removal
        body["custom_variables"] = {**to_set, **dict.fromkeys(to_erase)}
    return body


def opt_change(want: bool | None, have: bool | None, *, allow_opt_in: bool) -> bool | None:
    """The opted_out value to send, or None. `have` None means the remote state is not known."""
    if want is True and have is not True:
        return True
    if want is False and have is True and allow_opt_in:
        return False
    return None


WITHHELD = "opt-in not sent: the sync does not set allow_opt_in"


def withheld_opt_in(want: bool | None, have: Any, *, allow_opt_in: bool) -> dict[str, Any] | None:
    """What the API keeps when the row asks for an opt-in the sync may not send: opt_out stays true."""
    if want is False and have is True and not allow_opt_in:
        return {"opt_out": True}
    return None


def _remote_id(contact: dict[str, Any] | None, phone: str) -> str:
    if contact and contact.get("contact_id"):
        return str(contact["contact_id"])
    return phone


class SendblueContactsWriter(Writer):
    """`sendblue.contacts`: bulk creates, partial updates, opt-outs."""

    target = "sendblue.contacts"
    client: AsyncSendblueClient

    def __init__(
        self,
        client: AsyncSendblueClient,
        *,
        mode: str = "upsert",
        concurrency: int = 4,
        nulls_erase: bool = False,
        allow_opt_in: bool = False,
    ):
        super().__init__(client, concurrency)
        self.mode = mode
        self.nulls_erase = nulls_erase
        self.allow_opt_in = allow_opt_in

    # -- the batch

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        results: dict[str, RowResult] = {}
        creates = [i for i in items if i.action == "create"]
        updates: list[tuple[WorkItem, dict[str, Any] | None, bool]] = [
            (i, i.previous, False) for i in items if i.action == "update"
        ]
        checks = [i for i in items if i.action == "check"]

        async for item, remote in gather_limited(checks, self._read, self.concurrency):
            if isinstance(remote, BaseException):
                if isinstance(remote, ApiError) and not is_fatal(remote):
                    results[item.key] = unreadable(item.key, remote)
                    continue
                raise remote
            if remote is None:
                if self.mode == "update_only":
                    results[item.key] = RowResult(item.key, ERROR, [], None, 404, "no such contact (update_only)", "check")
                else:
                    creates.append(item)
            else:
                updates.append((item, remote, True))

        for start in range(0, len(creates), BULK_CREATE_BATCH_MAX):
            for result in await self._bulk_create(creates[start : start + BULK_CREATE_BATCH_MAX]):
                results[result.key] = result

        for result in await run_each(updates, lambda u: self._update(*u), self.concurrency):
            results[result.key] = result
        return [results[i.key] for i in items]

    async def _read(self, item: WorkItem) -> dict[str, Any] | None:
        await self.pacer.read()
        return await self.client.get_contact(item.key)

    # -- creates

    async def _bulk_create(self, items: list[WorkItem]) -> list[RowResult]:
        if not items:
            return []
        bulk_items = []
        for item in items:
            row: dict[str, Any] = {"phone": item.key}
            row.update({k: item.fields[k] for k in BULK_TEXT_FIELDS if item.fields.get(k) is not None})
            if item.fields.get("tags"):
                row["tags"] = item.fields["tags"]
            variables = {k: v for k, v in (item.fields.get("custom_variables") or {}).items() if v is not None}
            if variables:
                row["custom_variables"] = variables
            bulk_items.append(row)
        await self.pacer.write()
        try:
            answered = await self.client.bulk_create_contacts(bulk_items)
        except ApiError as exc:
            if is_fatal(exc):
                raise
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                # refused as a whole: a bad row, a duplicate, or more rows than this server takes (the
                # maximum is undocumented). Halves narrow it down in a few requests; a single row left
                # is created on its own, where a refusal is that row's error.
                if len(items) == 1:
                    return await self._one_by_one(items)
                middle = len(items) // 2
                return await self._bulk_create(items[:middle]) + await self._bulk_create(items[middle:])
            # a timeout, dropped connection or 5xx: some or all rows may exist now
            return [result_from_error(i.key, "create", exc, may_have_applied=True) for i in items]
        by_phone = {str(c.get("phone")): c for c in answered if c.get("phone")}
        created = [i for i in items if i.key in by_phone]
        missing = [i for i in items if i.key not in by_phone]
        results = await run_each(
            created, lambda i: self._after_create(i, by_phone[i.key], AFTER_CREATE_FIELDS), self.concurrency
        )
        if self.mode == "upsert":
            # skipped by the bulk import, most likely because the phone exists: a full PUT makes it equal
            # the row (a 404 there creates it one by one)
            return results + await run_each(missing, lambda i: self._update(i, None, False), self.concurrency)
        return results + await self._one_by_one(missing)

    async def _one_by_one(self, items: list[WorkItem]) -> list[RowResult]:
        return await run_each(items, self._create_one, self.concurrency)

    async def _create_one(self, item: WorkItem) -> RowResult:
        fields = {k: v for k, v in item.fields.items() if k in ("phone", *TEXT_FIELDS, "tags") and v is not None}
        fields.pop("company_name", None)  # not in the create schema: the follow-up PUT sets it
        variables = {k: v for k, v in (item.fields.get("custom_variables") or {}).items() if v is not None}
        if variables:
            fields["custom_variables"] = variables
        await self.pacer.write()
        try:
            contact = await self.client.create_contact(fields, update_if_exists=self.mode == "upsert")
        except ApiError as exc:
            if is_fatal(exc):
                raise
            return result_from_error(item.key, "create", exc, may_have_applied=True)
        return await self._after_create(item, contact, put_fields=("company_name",))

    async def _after_create(self, item: WorkItem, contact: dict[str, Any], put_fields: tuple[str, ...]) -> RowResult:
        """The steps a create could not carry: a PUT of `put_fields` (what the create's schema lacks), then
        the opt-out."""
        effects = ["created"]
        remote_id = _remote_id(contact, item.key)
        body = {k: item.fields[k] for k in put_fields if item.fields.get(k) is not None}
        # a number that texted STOP before it was a contact is created opted out
        have_opt = contact.get("opt_out") if isinstance(contact.get("opt_out"), bool) else None
        opted = opt_change(item.fields.get("opt_out"), have_opt, allow_opt_in=self.allow_opt_in)
        held = withheld_opt_in(item.fields.get("opt_out"), have_opt, allow_opt_in=self.allow_opt_in)
        try:
            if body:
                await self.pacer.write()
                await self.client.update_contact(item.key, body)
            if opted is not None:
                await self.pacer.write()
                await self.client.opt_out(item.key, opted)
                effects.append("opted_out" if opted else "opted_in")
        except ApiError as exc:
            if is_fatal(exc):
                raise
            failed = result_from_error(item.key, "create", exc, may_have_applied=False)
            failed.effects, failed.remote_id = effects, remote_id
            return failed
        return RowResult(item.key, OK, effects, remote_id, 200, WITHHELD if held else None, "create", held)

    # -- updates (and checks that found the contact)

    async def _update(self, item: WorkItem, baseline: dict[str, Any] | None, read: bool) -> RowResult:
        """Send what differs from `baseline` (the remote as read when `read`, else the payload last
        confirmed, or None when unknown)."""
        body = contact_changes(item.fields, baseline, nulls_erase=self.nulls_erase)
        have_opt = baseline.get("opt_out") if baseline is not None else None
        effects: list[str] = []
        remote_id = item.remote_id or (_remote_id(baseline, item.key) if read else None)
        try:
            if body:
                await self.pacer.write()
                try:
                    contact = await self.client.update_contact(item.key, body)
                    remote_id = _remote_id(contact, item.key)
                    effects.append("updated")
                except NotFoundError:
                    if self.mode != "upsert":
                        raise
                    # deleted in Sendblue since it was last seen: upsert means create it again
                    return await self._create_one(item)
                if isinstance(contact.get("opt_out"), bool):
                    have_opt = contact["opt_out"]  # the answer is fresher than the baseline
            want_opt = item.fields.get("opt_out")
            opted = opt_change(want_opt, have_opt, allow_opt_in=self.allow_opt_in)
            held = withheld_opt_in(want_opt, have_opt, allow_opt_in=self.allow_opt_in)
            if opted is not None:
                await self.pacer.write()
                await self.client.opt_out(item.key, opted)
                effects.append("opted_out" if opted else "opted_in")
        except ApiError as exc:
            if is_fatal(exc):
                raise
            failed = result_from_error(item.key, item.action, exc, may_have_applied=False)
            failed.effects, failed.remote_id = effects, remote_id
            return failed
        if held and not effects:
            return RowResult(item.key, SKIPPED, [], remote_id or item.key, None, WITHHELD, item.action, held)
        return RowResult(item.key, OK, effects, remote_id or item.key, 200, WITHHELD if held else None, item.action, held)


class SendblueOptOutsWriter(Writer):
    """`sendblue.opt_outs`: one `POST /api/v2/contacts/opt-out` per row. The call sets state, so a row
    whose earlier outcome is unknown is simply sent again."""

    target = "sendblue.opt_outs"
    client: AsyncSendblueClient

    def __init__(
        self, client: AsyncSendblueClient, *, concurrency: int = 4, allow_opt_in: bool = False
    ):
        super().__init__(client, concurrency)
        self.allow_opt_in = allow_opt_in

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        return await run_each(items, self._one, self.concurrency)

    async def _one(self, item: WorkItem) -> RowResult:
        opted_out = bool(item.fields.get("opted_out", True))
        if not opted_out and not self.allow_opt_in:
            return RowResult(item.key, SKIPPED, [], None, None, WITHHELD, item.action)
        await self.pacer.write()
        try:
            answer = await self.client.opt_out(item.key, opted_out)
        except ApiError as exc:
            if is_fatal(exc):
                raise
            return result_from_error(item.key, item.action, exc, may_have_applied=False)
        if bool(answer.get("opted_out")) != opted_out:
            return RowResult(item.key, UNKNOWN, [], None, 200, f"Sendblue answered opted_out={answer.get('opted_out')}", item.action)
        return RowResult(item.key, OK, ["opted_out" if opted_out else "opted_in"], item.key, 200, None, item.action)

"""Target `sendblue.contacts` (and what both Sendblue targets share: the client, the key, opt-out rules).

It drives the same `AsyncSendblueClient` the source uses (its limiters, retries and typed errors). What
Sendblue's API forces:

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

from pydantic import field_validator

from destinations.targets.base import (
    Outcome,
    Progress,
    RemoteTable,
    RowResult,
    Target,
    WorkItem,
    failure,
    refused,
    run_each,
)
from destinations.targets.changes import map_changes, scalar_changes
from destinations.targets.fields import (
    Row,
    blank_to_none,
    normalize_email,
    normalize_list,
    normalize_text,
    normalize_text_map,
)
from sources.common.errors import NotFoundError
from sources.sendblue.client import AsyncSendblueClient
from sources.sendblue.endpoints import BULK_CREATE_BATCH_MAX

TEXT_FIELDS = ("first_name", "last_name", "company_name", "assigned_to_email", "sendblue_number")
BULK_TEXT_FIELDS = ("first_name", "last_name", "company_name")
# fields a bulk item cannot carry: a PUT right after the create sets them
AFTER_CREATE_FIELDS = ("assigned_to_email", "sendblue_number")
WITHHELD = "opt-in not sent: the sync does not set allow_opt_in"


def sendblue_client(**overrides: Any) -> AsyncSendblueClient:
    """The source's client, from `[sources.sendblue]` config; `overrides` replace config values."""
    from sources.sendblue import settings_from_config

    return AsyncSendblueClient(settings_from_config(**overrides))


class SendblueContactRow(Row):
    phone: str
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    assigned_to_email: str | None = None
    sendblue_number: str | None = None
    tags: list[str] | None = None
    custom_variables: dict[str, str | None] | None = None
    opt_out: bool | None = None

    _text = field_validator("first_name", "last_name", "company_name", mode="before")(
        lambda v: normalize_text(v)
    )
    _email = field_validator("assigned_to_email", mode="before")(lambda v: normalize_email(v))
    _tags = field_validator("tags", mode="before")(lambda v: normalize_list(v))
    _vars = field_validator("custom_variables", mode="before")(lambda v: normalize_text_map(v))
    _optout = field_validator("opt_out", mode="before")(blank_to_none)


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


def withheld_opt_in(want: bool | None, have: Any, *, allow_opt_in: bool) -> dict[str, Any] | None:
    """What the API keeps when the row asks for an opt-in the sync may not send: opt_out stays true."""
    if want is False and have is True and not allow_opt_in:
        return {"opt_out": True}
    return None


def _remote_id(contact: dict[str, Any] | None, phone: str) -> str:
    if contact and contact.get("contact_id"):
        return str(contact["contact_id"])
    return phone


class SendblueTarget(Target):
    """What both Sendblue targets share: rows keyed by the E.164 phone, numbers opted out and in."""

    api = "sendblue"
    key_field = "phone"
    opts = True
    open_client = staticmethod(sendblue_client)
    client: AsyncSendblueClient


class SendblueContacts(SendblueTarget):
    """`sendblue.contacts`: bulk creates, partial updates, opt-outs."""

    name = "sendblue.contacts"
    row_model = SendblueContactRow
    batch_max = BULK_CREATE_BATCH_MAX
    remote_table = RemoteTable("contacts", "contact_id", "phone")

    @classmethod
    def opt_change(cls, fields: dict[str, Any], previous: dict[str, Any] | None, allow_opt_in: bool) -> bool | None:
        before = previous.get("opt_out") if previous is not None else None
        return opt_change(fields.get("opt_out"), before, allow_opt_in=allow_opt_in)

    # -- the batch

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        results: dict[str, RowResult] = {}
        creates = [Progress(i) for i in items if i.action == "create"]
        updates = [i for i in items if i.action == "update"]
        baselines: dict[str, dict[str, Any] | None] = {i.key: i.previous for i in updates}
        checks = [Progress(i) for i in items if i.action == "check"]

        async def read(row: Progress) -> RowResult | dict[str, Any] | None:
            try:
                return await self.client.get_contact(row.item.key)
            except Exception as exc:
                return failure(row, exc)

        for row, remote in zip(checks, await run_each(checks, read, self.concurrency), strict=True):
            if isinstance(remote, RowResult):
                results[row.item.key] = remote
            elif remote is None and self.config.mode == "update_only":
                results[row.item.key] = row.result(Outcome.ERROR, "no such contact (update_only)", status=404)
            elif remote is None:
                creates.append(row)
            else:
                updates.append(row.item)
                baselines[row.item.key] = remote
        read_keys = {row.item.key for row in checks}

        for start in range(0, len(creates), BULK_CREATE_BATCH_MAX):
            for result in await self._bulk_create(creates[start : start + BULK_CREATE_BATCH_MAX]):
                results[result.key] = result

        async def update(row: Progress) -> RowResult:
            return await self._update(row, baselines[row.item.key], row.item.key in read_keys)

        for result in await self.each(updates, update):
            results[result.key] = result
        return [results[i.key] for i in items]

    # -- creates

    async def _bulk_create(self, rows: list[Progress]) -> list[RowResult]:
        if not rows:
            return []
        bulk_items = []
        for row in rows:
            fields = row.item.fields
            item: dict[str, Any] = {"phone": row.item.key}
            item.update({k: fields[k] for k in BULK_TEXT_FIELDS if fields.get(k) is not None})
            if fields.get("tags"):
                item["tags"] = fields["tags"]
            variables = {k: v for k, v in (fields.get("custom_variables") or {}).items() if v is not None}
            if variables:
                item["custom_variables"] = variables
            bulk_items.append(item)
        try:
            answered = await self.send(self.client.bulk_create_contacts(bulk_items), *rows, unsafe=True)
        except Exception as exc:
            failed = [failure(row, exc) for row in rows]  # raises what ends the run
            if not refused(exc):
                return failed  # a timeout, dropped connection or 5xx: some or all rows may exist now
            # refused as a whole: a bad row, a duplicate, or more rows than this server takes (the maximum
            # is undocumented). Halves narrow it down in a few requests; a single row left is created on
            # its own, where a refusal is that row's error.
            if len(rows) == 1:
                return await self.each([rows[0].item], self._create_one)
            middle = len(rows) // 2
            return await self._bulk_create(rows[:middle]) + await self._bulk_create(rows[middle:])
        by_phone = {str(c.get("phone")): c for c in answered if c.get("phone")}
        created = [r for r in rows if r.item.key in by_phone]
        missing = [r.item for r in rows if r.item.key not in by_phone]
        results = await self.each(created, lambda r: self._after_create(r, by_phone[r.item.key], AFTER_CREATE_FIELDS))
        if self.config.mode == "upsert":
            # skipped by the bulk import, most likely because the phone exists: a full PUT makes it equal
            # the row (a 404 there creates it one by one)
            return results + await self.each(missing, lambda r: self._update(r, None, False))
        return results + await self.each(missing, self._create_one)

    async def _create_one(self, row: Progress) -> RowResult:
        item = row.item
        fields = {k: v for k, v in item.fields.items() if k in ("phone", *TEXT_FIELDS, "tags") and v is not None}
        fields.pop("company_name", None)  # not in the create schema: the follow-up PUT sets it
        variables = {k: v for k, v in (item.fields.get("custom_variables") or {}).items() if v is not None}
        if variables:
            fields["custom_variables"] = variables
        request = self.client.create_contact(fields, update_if_exists=self.config.mode == "upsert")
        contact = await self.send(request, row, unsafe=True)
        return await self._after_create(row, contact, put_fields=("company_name",))

    async def _after_create(self, row: Progress, contact: dict[str, Any], put_fields: tuple[str, ...]) -> RowResult:
        """The steps a create could not carry: a PUT of `put_fields` (what the create's schema lacks), then
        the opt-out."""
        item = row.item
        row.did("created")
        row.remote_id = _remote_id(contact, item.key)
        body = {k: item.fields[k] for k in put_fields if item.fields.get(k) is not None}
        # a number that texted STOP before it was a contact is created opted out
        have_opt = contact.get("opt_out") if isinstance(contact.get("opt_out"), bool) else None
        allow_opt_in = self.config.allow_opt_in
        opted = opt_change(item.fields.get("opt_out"), have_opt, allow_opt_in=allow_opt_in)
        held = withheld_opt_in(item.fields.get("opt_out"), have_opt, allow_opt_in=allow_opt_in)
        if body:
            await self.send(self.client.update_contact(item.key, body), row)
        if opted is not None:
            await self.send(self.client.opt_out(item.key, opted), row)
            row.did("opted_out" if opted else "opted_in")
        return row.result(message=WITHHELD if held else None, held=held)

    # -- updates (and checks that found the contact)

    async def _update(self, row: Progress, baseline: dict[str, Any] | None, read: bool) -> RowResult:
        """Send what differs from `baseline` (the remote as read when `read`, else the payload last
        confirmed, or None when unknown)."""
        item = row.item
        body = contact_changes(item.fields, baseline, nulls_erase=self.config.nulls_erase)
        have_opt = baseline.get("opt_out") if baseline is not None else None
        row.remote_id = item.remote_id or (_remote_id(baseline, item.key) if read else None)
        if body:
            try:
                contact = await self.send(self.client.update_contact(item.key, body), row)
            except NotFoundError:
                if self.config.mode != "upsert":
                    raise
                # deleted in Sendblue since it was last seen: upsert means create it again
                return await self._create_one(row)
            row.remote_id = _remote_id(contact, item.key)
            row.did("updated")
            if isinstance(contact.get("opt_out"), bool):
                have_opt = contact["opt_out"]  # the answer is fresher than the baseline
        want_opt = item.fields.get("opt_out")
        opted = opt_change(want_opt, have_opt, allow_opt_in=self.config.allow_opt_in)
        held = withheld_opt_in(want_opt, have_opt, allow_opt_in=self.config.allow_opt_in)
        if opted is not None:
            await self.send(self.client.opt_out(item.key, opted), row)
            row.did("opted_out" if opted else "opted_in")
        row.remote_id = row.remote_id or item.key
        if held and not row.effects:
            return row.result(Outcome.SKIPPED, WITHHELD, status=None, held=held)
        return row.result(message=WITHHELD if held else None, held=held)

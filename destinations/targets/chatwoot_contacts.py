"""Target `chatwoot.contacts` (and what both Chatwoot targets share: the client, the match columns, the
contact directory).

It drives the same `AsyncChatwootClient` the source uses (its shared limiter, 429 handling and typed
errors). What Chatwoot's API forces:

- There is no upsert: a contact is matched on the sync's `match_on` (identifier, email or phone_number)
  through the loaded `contacts` table when the engine found one, else through `POST /contacts/filter`
  (equal_to conditions joined by OR, up to 15 keys per request: one page). A create answered 422 "has
  already been taken" on the match key means the contact appeared since: it is looked up and updated.
- `POST /contacts` is not idempotent: a timeout or 5xx after it left leaves the outcome unknown, and the
  engine's `check` looks the contact up by its match key before anything is sent again.
- Updates (`PATCH /contacts/{id}`) carry only what changed. Custom and additional attributes are JSONB:
  values keep their JSON type and are compared by type and value. They are shallow-merged server-side,
  so a null attribute value erases a key only with nulls_erase, through
  `POST /contacts/{id}/destroy_custom_attributes`.
- `POST /contacts/{id}/labels` replaces the whole set, so labels are read first and the target sends the
  union of current and wanted labels (`labels_mode = "replace"` sends the wanted set as is).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import field_validator

from destinations.targets.base import Outcome, Progress, RemoteTable, RowResult, Target, WorkItem, run_each
from destinations.targets.changes import map_changes, scalar_changes
from destinations.targets.fields import (
    Row,
    blank_to_none,
    normalize_email,
    normalize_json_map,
    normalize_list,
    normalize_text,
)
from sources.chatwoot.client import AsyncChatwootClient
from sources.common.errors import ApiError, NotFoundError, ValidationError

# a filter page holds 15 contacts, so 15 OR-ed keys come back in one request
LOOKUP_KEYS_PER_REQUEST = 15
SCALAR_FIELDS = ("name", "email", "phone_number", "identifier")


def chatwoot_client(**overrides: Any) -> AsyncChatwootClient:
    """The source's client, from `[sources.chatwoot]` config; `overrides` replace config values."""
    from sources.chatwoot import settings_from_config

    return AsyncChatwootClient(settings_from_config(**overrides))


def identifier_text(value: Any) -> Any:
    value = blank_to_none(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric external ids are ids, not numbers
    return normalize_text(value)


class ChatwootContactRow(Row):
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    custom_attributes: dict[str, Any] | None = None
    additional_attributes: dict[str, Any] | None = None
    labels: list[str] | None = None

    _text = field_validator("name", mode="before")(lambda v: normalize_text(v))
    _email = field_validator("email", mode="before")(lambda v: normalize_email(v))
    _identifier = field_validator("identifier", mode="before")(identifier_text)
    _maps = field_validator("custom_attributes", "additional_attributes", mode="before")(
        lambda v: normalize_json_map(v)
    )
    # Chatwoot lower-cases account labels, so labels are compared and sent lower-case
    _labels = field_validator("labels", mode="before")(lambda v: normalize_list(v, lower=True))


def _match_value(contact: dict[str, Any], match_on: str) -> str | None:
    value = contact.get(match_on)
    if value is None:
        return None
    text = str(value).strip()
    return text.lower() if match_on == "email" else text


class ContactDirectory:
    """Finds Chatwoot contacts by match key, batching keys through the filter endpoint."""

    def __init__(self, client: AsyncChatwootClient, match_on: str):
        self.client = client
        self.match_on = match_on

    async def lookup(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The live contacts matching these keys (missing keys have no contact)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        chunks = [wanted[i : i + LOOKUP_KEYS_PER_REQUEST] for i in range(0, len(wanted), LOOKUP_KEYS_PER_REQUEST)]
        for part in await run_each(chunks, self._lookup_chunk, 4):
            found.update(part)
        return found

    async def lookup_all(self, keys: list[str]) -> tuple[dict[str, dict[str, Any]], ApiError | None]:
        """`lookup`, with its error kept for the rows that needed it (each row's result tells)."""
        try:
            return await self.lookup(keys), None
        except ApiError as exc:
            return {}, exc

    async def _lookup_chunk(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        conditions = [
            {
                "attribute_key": self.match_on,
                "filter_operator": "equal_to",
                "values": [key],
                "query_operator": "OR" if i < len(keys) - 1 else None,
            }
            for i, key in enumerate(keys)
        ]
        wanted = set(keys)
        found: dict[str, dict[str, Any]] = {}
        async for page in self.client.filter_contacts(conditions):
            for contact in page:
                value = _match_value(contact, self.match_on)
                if value in wanted:
                    found[value] = contact
        return found


class ChatwootTarget(Target):
    """What both Chatwoot targets share."""

    api = "chatwoot"
    match_columns = ("identifier", "email", "phone_number")
    remote_table = RemoteTable("contacts", "id")
    open_client = staticmethod(chatwoot_client)
    client: AsyncChatwootClient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.directory = ContactDirectory(self.client, str(self.match_on))

    def no_contact(self, row: Progress, key: str) -> RowResult:
        return row.result(Outcome.ERROR, f"no Chatwoot contact with {self.match_on} {key}", status=404)


def _exists_create_only(row: Progress, contact: dict[str, Any]) -> RowResult:
    """create_only met an existing contact: nothing is sent, so the API does not hold the row (skipped,
    reconsidered when the row or the sync's settings change)."""
    row.remote_id = str(contact["id"])
    return row.result(Outcome.SKIPPED, "exists already; create_only sends no updates")


class ChatwootContacts(ChatwootTarget):
    """`chatwoot.contacts`: match, create or update, then labels."""

    name = "chatwoot.contacts"
    row_model = ChatwootContactRow

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        # contacts whose id is not known yet are looked up live; without a loaded table that includes
        # every create, since the contact may exist in Chatwoot already
        unresolved = {
            i.key
            for i in items
            if i.action == "check"
            or (i.action == "update" and not i.remote_id)
            or (i.action == "create" and self.index is None)
        }
        found, lookup_error = await self.directory.lookup_all([i.key for i in items if i.key in unresolved])

        async def one(row: Progress) -> RowResult:
            if row.item.key not in unresolved:
                return await self._sync(row)
            if lookup_error is not None:
                raise lookup_error
            return await self._sync_found(row, found.get(row.item.key))

        return await self.each(items, one)

    # -- paths

    async def _sync(self, row: Progress) -> RowResult:
        """A create (no contact matched in the loaded table) or an update of a known id."""
        item = row.item
        if item.action == "create":
            return await self._create(row)
        assert item.remote_id is not None
        try:
            return await self._update(row, int(item.remote_id), item.previous, read=False)
        except NotFoundError:
            # deleted (or merged away) since the id was recorded: match again by key
            return await self._sync_found(row, (await self.directory.lookup([item.key])).get(item.key))

    async def _sync_found(self, row: Progress, contact: dict[str, Any] | None) -> RowResult:
        """After a live lookup: update the contact found, or create one (upsert/create_only)."""
        if contact is None:
            if self.config.mode == "update_only":
                return self.no_contact(row, row.item.key)
            return await self._create(row)
        if self.config.mode == "create_only" and row.item.action != "check":
            return _exists_create_only(row, contact)
        return await self._update(row, int(contact["id"]), contact, read=True)

    async def _create(self, row: Progress) -> RowResult:
        fields = row.item.fields
        body: dict[str, Any] = {k: fields[k] for k in SCALAR_FIELDS if fields.get(k) is not None}
        for name in ("custom_attributes", "additional_attributes"):
            values = {k: v for k, v in (fields.get(name) or {}).items() if v is not None}
            if values:
                body[name] = values
        try:
            contact = await self.send(self.client.create_contact(body), row, unsafe=True)
        except ValidationError as exc:
            # the match key is taken: the contact exists after all (created since the table loaded)
            found = (await self.directory.lookup([row.item.key])).get(row.item.key) if self.match_on in exc.attributes else None
            if found is None:
                raise
            if self.config.mode == "create_only":
                return _exists_create_only(row, found)
            return await self._update(row, int(found["id"]), found, read=True)
        contact_id = int(contact["id"])
        row.remote_id = str(contact_id)
        row.did("created")
        if fields.get("labels"):
            await self.send(self.client.set_contact_labels(contact_id, fields["labels"]), row)
            row.did("labels")
        return row.result()

    async def _update(self, row: Progress, contact_id: int, baseline: dict[str, Any] | None, *, read: bool) -> RowResult:
        """Send what differs from `baseline` (the live contact when `read`, else the payload last
        confirmed, or None when unknown); then labels. A 404 is raised: the caller matches again."""
        fields = row.item.fields
        row.remote_id = str(contact_id)
        nulls_erase = self.config.nulls_erase
        body = scalar_changes(fields, baseline, SCALAR_FIELDS, nulls_erase=nulls_erase)
        if "name" in body and body["name"] is None:
            body["name"] = ""  # Chatwoot's name defaults to "" and is never null
        destroy: list[str] = []
        for name in ("custom_attributes", "additional_attributes"):
            to_set, to_erase = map_changes(
                fields.get(name),
                baseline.get(name) if baseline is not None else None,
                known=baseline is not None,
                nulls_erase=nulls_erase,
            )
            if name == "custom_attributes":
                destroy = to_erase
            else:
                to_set.update(dict.fromkeys(to_erase))
            if to_set:
                body[name] = to_set
        if body:
            await self.send(self.client.update_contact(contact_id, body), row)
            row.did("updated")
        if destroy:
            path = f"{self.client.account_prefix}/contacts/{contact_id}/destroy_custom_attributes"
            await self.send(self.client.request("POST", path, json_body={"custom_attributes": destroy}), row)
            row.did("updated")
        if await self._labels(row, contact_id, baseline, read=read):
            row.did("labels")
        return row.result()

    async def _labels(self, row: Progress, contact_id: int, baseline: dict[str, Any] | None, *, read: bool) -> bool:
        wanted = row.item.fields.get("labels")
        if wanted is None:
            return False  # null labels leave the contact's labels alone
        if not read and baseline is not None and sorted(baseline.get("labels") or []) == sorted(wanted):
            return False  # unchanged since last confirmed
        current = [label.lower() for label in await self.client.get_contact_labels(contact_id)]
        target = list(wanted) if self.config.labels_mode == "replace" else current + [x for x in wanted if x not in current]
        if sorted(set(target)) == sorted(set(current)):
            return False
        await self.send(self.client.set_contact_labels(contact_id, target), row)
        return True

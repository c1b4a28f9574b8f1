"""Reverse-ETL writers for Chatwoot: `chatwoot.contacts` and `chatwoot.contact_labels`.

They drive the same `AsyncChatwootClient` the source uses (its shared limiter, 429 handling and typed
errors) and return one `RowResult` per row (see destinations/reverse_etl.py). What Chatwoot's API forces:

- There is no upsert: a contact is matched on the sync's `match_on` (identifier, email or phone_number)
  through the loaded `chatwoot.contacts` table when the engine found one, else through
  `POST /contacts/filter` (equal_to conditions joined by OR, up to 15 keys per request: one page).
  A create answered 422 "has already been taken" on the match key means the contact appeared since:
  it is looked up and updated instead.
- `POST /contacts` is not idempotent: a timeout or 5xx after it left leaves the outcome unknown, and the
  engine's `check` looks the contact up by its match key before anything is sent again.
- Updates (`PATCH /contacts/{id}`) carry only what changed. Custom and additional attributes are JSONB:
  values keep their JSON type and are compared by type and value. They are shallow-merged server-side,
  so a null attribute value erases a key only with nulls_erase, through
  `POST /contacts/{id}/destroy_custom_attributes`.
- `POST /contacts/{id}/labels` replaces the whole set, so labels are read first and the writer sends the
  union of current and wanted labels (`labels_mode = "replace"` sends the wanted set as is).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from destinations.reverse_etl import (
    ERROR,
    OK,
    SKIPPED,
    Pacer,
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
from sources.chatwoot.client import AsyncChatwootClient, ChatwootSettings, ChatwootValidationError
from sources.common.http import ApiError, NotFoundError

# a filter page holds 15 contacts, so 15 OR-ed keys come back in one request
LOOKUP_KEYS_PER_REQUEST = 15
SCALAR_FIELDS = ("name", "email", "phone_number", "identifier")


def open_client(settings: ChatwootSettings | None = None, **overrides: Any) -> AsyncChatwootClient:
    """The source's client, from `[sources.chatwoot]` config; `overrides` (e.g. rate_limit_per_minute)
    replace config values."""
    if settings is None:
        from sources.chatwoot import settings_from_config

        settings = settings_from_config(**overrides)
    return AsyncChatwootClient(settings)


def _match_value(contact: dict[str, Any], match_on: str) -> str | None:
    value = contact.get(match_on)
    if value is None:
        return None
    text = str(value).strip()
    return text.lower() if match_on == "email" else text


class ContactDirectory:
    """Finds Chatwoot contacts by match key: the loaded table's index first (when given), then the filter
    endpoint, batching keys. Shared by both writers."""

    def __init__(self, client: AsyncChatwootClient, pacer: Pacer, match_on: str, index: dict[str, str | None] | None):
        self.client = client
        self.pacer = pacer
        self.match_on = match_on
        self.index = index

    def indexed_id(self, key: str) -> str | None:
        return self.index.get(key) if self.index else None

    async def lookup(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The live contacts matching these keys (missing keys have no contact)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        chunks = [wanted[i : i + LOOKUP_KEYS_PER_REQUEST] for i in range(0, len(wanted), LOOKUP_KEYS_PER_REQUEST)]
        for part in await run_each(chunks, self._lookup_chunk, 4):
            found.update(part)
        return found

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
        await self.pacer.read()
        async for page in self.client.filter_contacts(conditions):
            for contact in page:
                value = _match_value(contact, self.match_on)
                if value in wanted:
                    found[value] = contact
        return found


def _exists_create_only(item: WorkItem, contact: dict[str, Any]) -> RowResult:
    """create_only met an existing contact: nothing is sent, so the API does not hold the row (skipped,
    reconsidered when the row or the sync's settings change)."""
    return RowResult(item.key, SKIPPED, [], str(contact["id"]), 200, "exists already; create_only sends no updates", item.action)


class ChatwootContactsWriter(Writer):
    """`chatwoot.contacts`: match, create or update, then labels."""

    target = "chatwoot.contacts"
    client: AsyncChatwootClient

    def __init__(
        self,
        client: AsyncChatwootClient,
        *,
        match_on: str,
        mode: str = "upsert",
        concurrency: int = 4,
        nulls_erase: bool = False,
        labels_mode: str = "union",
        index: dict[str, str | None] | None = None,
    ):
        super().__init__(client, concurrency)
        self.match_on = match_on
        self.mode = mode
        self.nulls_erase = nulls_erase
        self.labels_mode = labels_mode
        self.directory = ContactDirectory(client, self.pacer, match_on, index)

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        # contacts whose id is not known yet are looked up live; without a loaded table that includes
        # every create, since the contact may exist in Chatwoot already
        unresolved = [
            i
            for i in items
            if i.action == "check"
            or (i.action == "update" and not i.remote_id)
            or (i.action == "create" and self.directory.index is None)
        ]
        found: dict[str, dict[str, Any]] = {}
        lookup_error: ApiError | None = None
        try:
            found = await self.directory.lookup(i.key for i in unresolved)
        except ApiError as exc:
            if is_fatal(exc):
                raise
            lookup_error = exc
        looked_up = {i.key for i in unresolved}

        async def one(item: WorkItem) -> RowResult:
            if item.key in looked_up:
                if lookup_error is not None:
                    if item.action == "check":
                        return unreadable(item.key, lookup_error)
                    return result_from_error(item.key, item.action, lookup_error, may_have_applied=False)
                return await self._sync_found(item, found.get(item.key))
            return await self._sync(item)

        return await run_each(items, one, self.concurrency)

    # -- paths

    async def _sync(self, item: WorkItem) -> RowResult:
        """A create (no contact matched in the loaded table) or an update of a known id."""
        try:
            if item.action == "create":
                return await self._create(item)
            assert item.remote_id is not None
            try:
                return await self._update(item, int(item.remote_id), item.previous, read=False)
            except NotFoundError:
                # deleted (or merged away) since the id was recorded: match again by key
                contact = (await self.directory.lookup([item.key])).get(item.key)
                return await self._sync_found(item, contact)
        except ApiError as exc:
            if is_fatal(exc):
                raise
            return result_from_error(item.key, item.action, exc, may_have_applied=item.action == "create")

    async def _sync_found(self, item: WorkItem, contact: dict[str, Any] | None) -> RowResult:
        """After a live lookup: update the contact found, or create one (upsert/create_only)."""
        try:
            if contact is None:
                if self.mode == "update_only":
                    return RowResult(
                        item.key, ERROR, [], None, 404, f"no Chatwoot contact with {self.match_on} {item.key}", item.action
                    )
                return await self._create(item)
            if self.mode == "create_only" and item.action != "check":
                return _exists_create_only(item, contact)
            return await self._update(item, int(contact["id"]), contact, read=True)
        except ApiError as exc:
            if is_fatal(exc):
                raise
            return result_from_error(item.key, item.action, exc, may_have_applied=False)

    async def _create(self, item: WorkItem) -> RowResult:
        fields = item.fields
        body: dict[str, Any] = {k: fields[k] for k in SCALAR_FIELDS if fields.get(k) is not None}
        for name in ("custom_attributes", "additional_attributes"):
            values = {k: v for k, v in (fields.get(name) or {}).items() if v is not None}
            if values:
                body[name] = values
        await self.pacer.write()
        try:
            contact = await self.client.create_contact(body)
        except ChatwootValidationError as exc:
            if self.match_on in exc.attributes:
                # the match key is taken: the contact exists after all (created since the table loaded)
                found = (await self.directory.lookup([item.key])).get(item.key)
                if found is not None:
                    if self.mode == "create_only":
                        return _exists_create_only(item, found)
                    return await self._update(item, int(found["id"]), found, read=True)
            raise
        except ApiError as exc:
            if is_fatal(exc):
                raise
            return result_from_error(item.key, "create", exc, may_have_applied=True)
        contact_id = int(contact["id"])
        effects = ["created"]
        try:
            if fields.get("labels"):
                await self.pacer.write()
                await self.client.set_contact_labels(contact_id, fields["labels"])
                effects.append("labels")
        except ApiError as exc:
            if is_fatal(exc):
                raise
            failed = result_from_error(item.key, "create", exc, may_have_applied=False)
            failed.effects, failed.remote_id = effects, str(contact_id)
            return failed
        return RowResult(item.key, OK, effects, str(contact_id), 200, None, "create")

    async def _update(
        self, item: WorkItem, contact_id: int, baseline: dict[str, Any] | None, *, read: bool
    ) -> RowResult:
        """Send what differs from `baseline` (the live contact when `read`, else the payload last
        confirmed, or None when unknown); then labels."""
        fields = item.fields
        body = scalar_changes(fields, baseline, SCALAR_FIELDS, nulls_erase=self.nulls_erase)
        if "name" in body and body["name"] is None:
            body["name"] = ""  # Chatwoot's name defaults to "" and is never null
        destroy: list[str] = []
        for name in ("custom_attributes", "additional_attributes"):
            to_set, to_erase = map_changes(
                fields.get(name),
                baseline.get(name) if baseline is not None else None,
                known=baseline is not None,
                nulls_erase=self.nulls_erase,
            )
            if name == "custom_attributes":
                destroy = to_erase
            else:
                to_set.update(dict.fromkeys(to_erase))
            if to_set:
                body[name] = to_set
        effects: list[str] = []
        try:
            if body:
                await self.pacer.write()
                await self.client.update_contact(contact_id, body)
                effects.append("updated")
            if destroy:
                await self.pacer.write()
                await self.client.request(
                    "POST",
                    f"{self.client.account_prefix}/contacts/{contact_id}/destroy_custom_attributes",
                    json_body={"custom_attributes": destroy},
                )
                if "updated" not in effects:
                    effects.append("updated")
            if await self._labels(item, contact_id, baseline, read=read):
                effects.append("labels")
        except ApiError as exc:
            if is_fatal(exc) or isinstance(exc, NotFoundError):
                raise
            failed = result_from_error(item.key, item.action, exc, may_have_applied=False)
            failed.effects, failed.remote_id = effects, str(contact_id)
            return failed
        return RowResult(item.key, OK, effects, str(contact_id), 200, None, item.action)

    async def _labels(self, item: WorkItem, contact_id: int, baseline: dict[str, Any] | None, *, read: bool) -> bool:
        wanted = item.fields.get("labels")
        if wanted is None:
            return False  # null labels leave the contact's labels alone
        if not read and baseline is not None and sorted(baseline.get("labels") or []) == sorted(wanted):
            return False  # unchanged since last confirmed
        await self.pacer.read()
        current = [label.lower() for label in await self.client.get_contact_labels(contact_id)]
        target = list(wanted) if self.labels_mode == "replace" else current + [x for x in wanted if x not in current]
        if sorted(set(target)) == sorted(set(current)):
            return False
        await self.pacer.write()
        await self.client.set_contact_labels(contact_id, target)
        return True


class ChatwootContactLabelsWriter(Writer):
    """`chatwoot.contact_labels`: one row per (contact, label). Adds (and with remove = true, removes)
    single labels: each contact's labels are read, changed and written back once per batch, so labels the
    sync does not manage stay as they are."""

    target = "chatwoot.contact_labels"
    client: AsyncChatwootClient

    def __init__(
        self,
        client: AsyncChatwootClient,
        *,
        match_on: str,
        concurrency: int = 4,
        index: dict[str, str | None] | None = None,
    ):
        super().__init__(client, concurrency)
        self.match_on = match_on
        self.directory = ContactDirectory(client, self.pacer, match_on, index)

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        by_contact: dict[str, list[WorkItem]] = {}
        for item in items:
            by_contact.setdefault(str(item.fields["contact_key"]), []).append(item)
        ids: dict[str, str] = {}
        for contact_key, group in by_contact.items():
            known = next((i.remote_id for i in group if i.remote_id), None) or self.directory.indexed_id(contact_key)
            if known:
                ids[contact_key] = str(known)
        lookup_error: ApiError | None = None
        missing = [k for k in by_contact if k not in ids]
        if missing:
            try:
                found = await self.directory.lookup(missing)
                ids.update({k: str(c["id"]) for k, c in found.items()})
            except ApiError as exc:
                if is_fatal(exc):
                    raise
                lookup_error = exc

        async def one(contact_key: str) -> list[RowResult]:
            group = by_contact[contact_key]
            if contact_key not in ids:
                if lookup_error is not None:
                    return [result_from_error(i.key, i.action, lookup_error, may_have_applied=False) for i in group]
                message = f"no Chatwoot contact with {self.match_on} {contact_key}"
                return [RowResult(i.key, ERROR, [], None, 404, message, i.action) for i in group]
            try:
                return await self._apply_contact(int(ids[contact_key]), group)
            except NotFoundError:
                if not any(i.remote_id for i in group):
                    raise
                # the recorded id is stale: look the contact up again and retry once
                found = (await self.directory.lookup([contact_key])).get(contact_key)
                if found is None:
                    message = f"no Chatwoot contact with {self.match_on} {contact_key}"
                    return [RowResult(i.key, ERROR, [], None, 404, message, i.action) for i in group]
                return await self._apply_contact(int(found["id"]), group)

        async def guarded(contact_key: str) -> list[RowResult]:
            try:
                return await one(contact_key)
            except ApiError as exc:
                if is_fatal(exc):
                    raise
                return [result_from_error(i.key, i.action, exc, may_have_applied=False) for i in by_contact[contact_key]]

        results: dict[str, RowResult] = {}
        for group_results in await run_each(list(by_contact), guarded, self.concurrency):
            results.update({r.key: r for r in group_results})
        return [results[i.key] for i in items]

    async def _apply_contact(self, contact_id: int, group: list[WorkItem]) -> list[RowResult]:
        await self.pacer.read()
        current = [label.lower() for label in await self.client.get_contact_labels(contact_id)]
        removals = {str(i.fields["label"]) for i in group if i.action == "remove"}
        additions = [str(i.fields["label"]) for i in group if i.action != "remove"]
        target = [label for label in current if label not in removals]
        target += [label for label in additions if label not in target]
        changed = set(target) != set(current)
        if changed:
            await self.pacer.write()
            await self.client.set_contact_labels(contact_id, target)
        results = []
        for item in group:
            label = str(item.fields["label"])
            did = (label in removals and label in current) or (label not in removals and label not in current)
            effects = ["labels"] if changed and did else []
            results.append(RowResult(item.key, OK, effects, str(contact_id), 200, None, item.action))
        return results

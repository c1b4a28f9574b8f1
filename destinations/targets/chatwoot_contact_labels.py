"""Target `chatwoot.contact_labels`: one row per (contact, label). It adds (and with remove = true, removes)
single labels. `POST /contacts/{id}/labels` replaces the whole set, so each contact's labels are read,
changed and written back once per batch, and labels the sync does not manage stay as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import field_validator

from destinations.targets.base import Progress, RowResult, WorkItem, failure, run_each
from destinations.targets.chatwoot_contacts import ChatwootTarget, identifier_text
from destinations.targets.fields import Row, normalize_email, normalize_text
from sources.common.errors import NotFoundError


class ChatwootLabelRow(Row):
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    label: str

    _email = field_validator("email", mode="before")(lambda v: normalize_email(v))
    _identifier = field_validator("identifier", mode="before")(identifier_text)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        value = normalize_text(value)
        if value is None:
            raise ValueError("missing label")
        return value.lower()


class ChatwootContactLabels(ChatwootTarget):
    name = "chatwoot.contact_labels"
    row_model = ChatwootLabelRow
    index_finds_rows = False  # the loaded contacts table finds a label's contact, not the label
    modes = False
    removes = True

    # -- rows: keyed by contact and label, as {contact_key, label}

    @classmethod
    def key_columns(cls, match_on: str | None) -> list[str]:
        return [str(match_on), "label"]

    @classmethod
    def key_of(cls, values: Mapping[str, Any], match_on: str | None) -> str | None:
        value = values.get(str(match_on))
        return None if value is None else f"{value}|{values.get('label')}"

    @classmethod
    def ledger_fields(cls, fields: dict[str, Any], match_on: str | None) -> dict[str, Any]:
        return {"contact_key": fields[str(match_on)], "label": fields["label"]}

    @classmethod
    def remote_key(cls, fields: dict[str, Any], key: str) -> str:
        return str(fields["contact_key"])

    # -- writing

    async def apply(self, items: list[WorkItem]) -> list[RowResult]:
        by_contact: dict[str, list[Progress]] = {}
        for item in items:
            by_contact.setdefault(str(item.fields["contact_key"]), []).append(Progress(item))
        ids: dict[str, str] = {}
        for contact_key, group in by_contact.items():
            known = next((r.item.remote_id for r in group if r.item.remote_id), None)
            known = known or (self.index.get(contact_key) if self.index else None)
            if known:
                ids[contact_key] = str(known)
        found, lookup_error = await self.directory.lookup_all([k for k in by_contact if k not in ids])
        ids.update({k: str(c["id"]) for k, c in found.items()})

        async def one(contact_key: str) -> list[RowResult]:
            group = by_contact[contact_key]
            try:
                if contact_key not in ids:
                    if lookup_error is not None:
                        raise lookup_error
                    return [self.no_contact(r, contact_key) for r in group]
                try:
                    return await self._apply_contact(int(ids[contact_key]), group)
                except NotFoundError:
                    if not any(r.item.remote_id for r in group):
                        raise
                    # the recorded id is stale: look the contact up again and retry once
                    contact = (await self.directory.lookup([contact_key])).get(contact_key)
                    if contact is None:
                        return [self.no_contact(r, contact_key) for r in group]
                    return await self._apply_contact(int(contact["id"]), group)
            except Exception as exc:
                return [failure(r, exc) for r in group]

        results: dict[str, RowResult] = {}
        for group_results in await run_each(list(by_contact), one, self.concurrency):
            results.update({r.key: r for r in group_results})
        return [results[i.key] for i in items]

    async def _apply_contact(self, contact_id: int, group: list[Progress]) -> list[RowResult]:
        current = [label.lower() for label in await self.client.get_contact_labels(contact_id)]
        removals = {str(r.item.fields["label"]) for r in group if r.item.action == "remove"}
        additions = [str(r.item.fields["label"]) for r in group if r.item.action != "remove"]
        target = [label for label in current if label not in removals]
        target += [label for label in additions if label not in target]
        changed = set(target) != set(current)
        if changed:
            await self.send(self.client.set_contact_labels(contact_id, target), *group)
        for row in group:
            label = str(row.item.fields["label"])
            row.remote_id = str(contact_id)
            if changed and ((label in removals and label in current) or (label not in removals and label not in current)):
                row.did("labels")
        return [row.result() for row in group]

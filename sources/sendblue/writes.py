"""The write methods (reverse ETL) of the Sendblue client: contacts created, updated, opted out, deleted.

Each returns the contact as the API answered, normalised like the reads. `AsyncSendblueClient` derives
from `ContactWrites`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sources.common.errors import NotFoundError
from sources.common.http import AsyncApiClient
from sources.sendblue.endpoints import BULK_CREATE_BATCH_MAX, ENDPOINTS
from sources.sendblue.models import (
    BULK_FIELDS,
    CREATE_FIELDS,
    UPDATE_FIELDS,
    normalise_contact,
    normalise_contacts,
    phone_of,
    write_fields,
)


def phone_path(template: str, phone: str) -> str:
    # the docs: "URL-encode + as %2B" in path segments; a literal + may be read as a space by the server
    return template.replace("{phone}", quote(phone.strip(), safe=""))


class ContactWrites(AsyncApiClient):

    async def create_contact(self, fields: dict[str, Any], update_if_exists: bool = False) -> dict[str, Any]:
        """POST /api/v2/contacts; with `update_if_exists` an upsert. Returns the contact as stored.

        company_name and opt_out are not in the create schema, so when given they are applied by a PUT
        right after the create. Not retried on a timeout (the create may have happened): the caller
        reconciles with `get_contact`.
        """
        phone = phone_of(fields)
        values = write_fields(fields)
        _refuse_unknown(values, CREATE_FIELDS | {"company_name", "opt_out"}, "create_contact")
        body: dict[str, Any] = {"number": phone, **{k: v for k, v in values.items() if k in CREATE_FIELDS}}
        if update_if_exists:
            body["update_if_exists"] = True
        answer = await self.request(
            "POST",
            ENDPOINTS["create_contact"].path,
            json_body=body,
            # a plain create is not idempotent: after a timeout the caller reconciles with get_contact
            retry_on_timeout=update_if_exists,
        )
        contact = _contact_from(answer, phone)
        follow_up = {k: v for k, v in values.items() if k in ("company_name", "opt_out")}
        if follow_up:
            contact = await self.update_contact(phone, follow_up)
        return contact

    async def bulk_create_contacts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /api/v2/contacts/bulk in batches of at most 500; returns the contacts Sendblue answered with.

        Bulk items take phone, first_name, last_name, company_name, tags and custom_variables only; other
        fields are refused here (set them with `update_contact` / `opt_out`). Not retried on a timeout:
        bulk create is not known to be idempotent, so the caller reconciles by phone.
        """
        items = []
        for row in rows:
            values = write_fields(row)
            _refuse_unknown(values, BULK_FIELDS, "bulk_create_contacts")
            items.append({"phone": phone_of(row), **values})
        created: list[dict[str, Any]] = []
        for start in range(0, len(items), BULK_CREATE_BATCH_MAX):
            batch = items[start : start + BULK_CREATE_BATCH_MAX]
            answer = await self.request(
                "POST",
                ENDPOINTS["bulk_create_contacts"].path,
                json_body={"contacts": batch},
                retry_on_timeout=False,
            )
            contacts = answer.get("contacts") if isinstance(answer, dict) else None
            created.extend(normalise_contacts(contacts or []))
        return created

    async def update_contact(self, phone: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PUT /api/v2/contacts/{phone}, partial: only the given fields change (custom_variables merge)."""
        values = write_fields(fields)
        _refuse_unknown(values, UPDATE_FIELDS, "update_contact")
        answer = await self.request(
            "PUT", phone_path(ENDPOINTS["update_contact"].path, phone), json_body=values
        )
        return _contact_from(answer, phone)

    async def opt_out(self, phone: str, opted_out: bool = True) -> dict[str, Any]:
        """POST /api/v2/contacts/opt-out: opt a number out (or back in with opted_out=False)."""
        answer = await self.request(
            "POST",
            ENDPOINTS["opt_out"].path,
            json_body={"number": phone.strip(), "opted_out": bool(opted_out)},
        )
        answer = answer if isinstance(answer, dict) else {}
        return {
            "number": answer.get("number", phone.strip()),
            "opted_out": bool(answer.get("opted_out", answer.get("optedOut", opted_out))),
            "status": answer.get("status"),
        }

    async def delete_contact(self, phone: str) -> dict[str, Any]:
        """DELETE /api/v2/contacts/{phone}; a contact that is already gone counts as deleted."""
        try:
            answer = await self.request("DELETE", phone_path(ENDPOINTS["delete_contact"].path, phone))
        except NotFoundError:
            return {"phone": phone.strip(), "deleted": True, "status": "NOT_FOUND"}
        status = answer.get("status") if isinstance(answer, dict) else None
        return {"phone": phone.strip(), "deleted": True, "status": status}


def _contact_from(answer: Any, phone: str) -> dict[str, Any]:
    contact = answer.get("contact") if isinstance(answer, dict) else None
    if isinstance(contact, dict):
        return normalise_contact(contact)
    return normalise_contact({"phone": phone})


def _refuse_unknown(values: dict[str, Any], allowed: frozenset[str], method: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{method} cannot set {', '.join(unknown)}; it accepts {', '.join(sorted(allowed))}")

"""The write half of the client (used by the reverse ETL), through the async client and the sync facade."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sandbox.chatwoot import create_app
from sandbox.common import sandbox_of
from sources.chatwoot.client import AsyncChatwootClient, ChatwootClient
from sources.common.errors import ValidationError

ASGI_URL = "http://127.0.0.1"


def test_create_update_label_and_search_a_contact_with_the_async_client(settings_for):
    app = create_app("small", seed=41)
    state = sandbox_of(app)

    async def scenario() -> tuple[dict, dict, list[str], list[dict], list[str]]:
        client = AsyncChatwootClient(settings_for(ASGI_URL), transport=httpx.ASGITransport(app=app))
        try:
            created = await client.create_contact(
                {"name": "Ada Lovelace", "email": "Ada@Example.org", "custom_attributes": {"plan": "pro"}}
            )
            updated = await client.update_contact(created["id"], {"custom_attributes": {"seats": 3}})
            labels = await client.set_contact_labels(created["id"], ["vip", "not-an-account-label"])
            found = await client.search_contacts("ada@example.org")
            read_back = await client.get_contact_labels(created["id"])
            return created, updated, labels, found, read_back
        finally:
            await client.aclose()

    created, updated, labels, found, read_back = asyncio.run(scenario())
    assert created["email"] == "ada@example.org"  # stored lower-cased
    assert created["id"] in state.contacts
    # custom attributes are shallow-merged server-side, and update answers the contact (not 204)
    assert updated["custom_attributes"] == {"plan": "pro", "seats": 3}
    assert sorted(labels) == sorted(read_back) == ["not-an-account-label", "vip"]
    assert [c["id"] for c in found] == [created["id"]]


def test_duplicate_email_is_a_validation_error_naming_the_field(settings_for):
    app = create_app("small", seed=42)
    state = sandbox_of(app)
    taken = next(c["email"] for c in state.visible_contacts() if c["email"])
    with ChatwootClient(settings_for(ASGI_URL), transport=httpx.ASGITransport(app=app)) as client:
        with pytest.raises(ValidationError) as caught:
            client.create_contact({"name": "Copy", "email": taken})
        contact = client.get_contact(next(iter(state.contacts)))
    assert caught.value.status == 422 and caught.value.attributes == ["email"]
    assert (
        str(caught.value) == "Chatwoot refused the request (422 Email has already been taken; fields: email)"
    )
    assert contact["id"] == next(iter(state.contacts))

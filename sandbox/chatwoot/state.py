"""The Chatwoot sandbox's state: the data (ground truth), the orderings the API applies, writes, `mutate`.

Everything here runs with `self.lock` held (an RLock, so nested calls are fine): the app serves from
uvicorn's loop while tests read the ground truth from their own thread.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.responses import HTMLResponse, Response

from sandbox.chatwoot.data import (
    NON_ACCOUNT_LABELS,
    USER_ID,
    ContactFactory,
    ConversationFactory,
    Dataset,
    MessageRow,
    inbox_choices,
    is_invisible,
    iso,
    link_inbox,
    source_id_for,
)
from sandbox.chatwoot.filters import CONTACT_KEYS, CONVERSATION_KEYS, Entity, ruby_to_i
from sandbox.common import SandboxState

# Rails' public/500.html: what an unhandled exception looks like in production
RAILS_500_PAGE = """<!DOCTYPE html>
<html>
<head>
  <title>We're sorry, but something went wrong (500)</title>
  <meta name="viewport" content="width=device-width,initial-scale=1">
</head>
<body class="rails-default-error-page">
  <div class="dialog">
    <div><h1>We're sorry, but something went wrong.</h1></div>
    <p>If you are the application owner check the logs for more information.</p>
  </div>
</body>
</html>
"""

CONTACTS_PER_PAGE = 15  # Contacts RESULTS_PER_PAGE, not configurable
CONVERSATION_FILTER_PAGE_SIZE = 25  # Kaminari's default; CONVERSATION_RESULTS_PER_PAGE doesn't apply
CONTACT_CONVERSATIONS_LIMIT = 20
STATUSES = ("open", "resolved", "pending", "snoozed")
PHONE_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
EMAIL_FORMAT = re.compile(r"^[^@\s]+@[^@\s]+$")  # Devise.email_regexp
LABEL_TITLE = re.compile(r"^[a-z0-9_-]+$")
WRITABLE_CONTACT_FIELDS = ("name", "email", "phone_number", "identifier", "blocked", "avatar_url")


class NotFound(Exception):
    """404 `{"error":"Resource could not be found"}`."""


class RecordInvalid(Exception):
    """422 `{"message": "A, B", "attributes": ["a", "b"]}` (ActiveRecord::RecordInvalid)."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__(", ".join(message for _, message in errors))
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {"message": ", ".join(m for _, m in self.errors), "attributes": [a for a, _ in self.errors]}


class Unprocessable(Exception):
    """422 with a body of the caller's choosing (e.g. `{"message": ...}` or `{"error": ...}`)."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(str(body))
        self.body = body


class ServerFault(Exception):
    """An unhandled exception on the server side: 500 with the error page."""


# Contact sorts (Sift + the Contact order scopes): key, and whether NULLS LAST holds in both directions
# (the named scopes say NULLS LAST; plain email/phone sorts use Postgres' default: NULLS FIRST for DESC)
ContactSort = tuple[Callable[[dict[str, Any]], Any], bool]


def _lower_attr(name: str) -> Callable[[dict[str, Any]], Any]:
    def key(contact: dict[str, Any]) -> Any:
        value = contact["additional_attributes"].get(name)
        return str(value).lower() if value not in (None, "") else None

    return key


CONTACT_SORTS: dict[str, ContactSort] = {
    "name": (lambda c: (c["name"] or "").lower(), True),
    "email": (lambda c: c["email"], False),
    "phone_number": (lambda c: c["phone_number"], False),
    "last_activity_at": (lambda c: c["last_activity_at"], True),
    "created_at": (lambda c: c["created_at"], True),
    "company_name": (_lower_attr("company_name"), True),
    "city": (_lower_attr("city"), True),
    "country": (_lower_attr("country"), True),
}

PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}

# ConversationFinder SORT_OPTIONS: sort key and direction (ties keep the physical row order)
CONVERSATION_SORTS: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = {
    "last_activity_at_desc": (lambda c: c["last_activity_at"], True),
    "last_activity_at_asc": (lambda c: c["last_activity_at"], False),
    "created_at_desc": (lambda c: c["created_at"], True),
    "created_at_asc": (lambda c: c["created_at"], False),
    "priority_desc": (lambda c: (PRIORITY_RANK.get(c["priority"], -1), c["last_activity_at"]), True),
    "priority_asc": (lambda c: (PRIORITY_RANK.get(c["priority"], 99), -c["last_activity_at"]), False),
    "waiting_since_asc": (lambda c: (c["waiting_since"] is None, c["waiting_since"] or 0), False),
    "waiting_since_desc": (lambda c: (c["waiting_since"] is not None, c["waiting_since"] or 0), True),
    "priority_desc_created_at_asc": (
        lambda c: (-PRIORITY_RANK.get(c["priority"], -1), c["created_at"]),
        False,
    ),
}
CONVERSATION_SORT_ALIASES = {
    "latest": "last_activity_at_desc",
    "sort_on_created_at": "created_at_asc",
    "sort_on_priority": "priority_desc",
    "sort_on_waiting_since": "waiting_since_asc",
    "unread": "last_activity_at_desc",
}


@dataclass
class ConversationQuery:
    status: str | None = None  # None means the server default, open
    assignee_type: str | None = None
    inbox_id: str | None = None
    team_id: str | None = None
    labels: tuple[str, ...] = ()
    updated_within: str | None = None
    sort_by: str | None = None


class ChatwootSandbox(SandboxState):
    """One Chatwoot account. See the package docstring for the ground-truth accessors."""

    api_name = "chatwoot"

    def __init__(self, data: Dataset, seed: int = 0, page_size: int = 25):
        super().__init__(seed)
        self.data = data
        self.page_size = page_size  # CONVERSATION_RESULTS_PER_PAGE
        self.unordered_requests = 0  # seeds the arbitrary order of each unsorted contact page
        self._contact_cache: dict[tuple[Any, ...], list[int]] = {}
        self._conversation_cache: dict[str, list[int]] = {}
        self._conversation_queries: dict[tuple[Any, ...], Any] = {}
        self._by_email: dict[str, int] = {}
        self._by_phone: dict[str, int] = {}
        self._by_identifier: dict[str, int] = {}
        for contact in data.contacts.values():
            self._index(contact)

    def error_500(self) -> Response:
        return HTMLResponse(RAILS_500_PAGE, status_code=500)

    # ------------------------------------------------------------------ ground truth

    @property
    def contacts(self) -> dict[int, dict[str, Any]]:
        return self.data.contacts

    @property
    def conversations(self) -> dict[int, dict[str, Any]]:
        return self.data.conversations

    @property
    def messages_by_conversation(self) -> dict[int, list[MessageRow]]:
        return self.data.messages

    @property
    def inboxes(self) -> dict[int, dict[str, Any]]:
        return self.data.inboxes

    @property
    def agents(self) -> dict[int, dict[str, Any]]:
        return self.data.agents

    def visible_contacts(self) -> list[dict[str, Any]]:
        """Contacts list/filter/search return (email, phone_number or identifier set), ascending id."""
        with self.lock:
            return [c for c in self.data.contacts.values() if not is_invisible(c)]

    def invisible_contact_ids(self) -> set[int]:
        with self.lock:
            return {cid for cid, c in self.data.contacts.items() if is_invisible(c)}

    def contact_labels(self, visible_only: bool = True) -> set[tuple[int, str]]:
        """(contact_id, label) pairs, account labels or not."""
        with self.lock:
            contacts = self.data.contacts
            return {
                (cid, label)
                for cid, labels in self.data.contact_labels.items()
                if cid in contacts and not (visible_only and is_invisible(contacts[cid]))
                for label in labels
            }

    def labels_of(self, contact_id: int) -> list[str]:
        with self.lock:
            return list(self.data.contact_labels.get(contact_id, []))

    def account_labels(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(label) for label in self.data.account_labels]

    def account_label_titles(self) -> set[str]:
        with self.lock:
            return {label["title"] for label in self.data.account_labels}

    def messages(self) -> Iterator[MessageRow]:
        """Every message, ascending id (a snapshot)."""
        with self.lock:
            rows = [m for rows in self.data.messages.values() for m in rows]
        return iter(sorted(rows))

    def message_count(self) -> int:
        with self.lock:
            return sum(len(rows) for rows in self.data.messages.values())

    def truth_summary(self) -> dict[str, Any]:
        with self.lock:
            statuses = {s: 0 for s in STATUSES}
            for conv in self.data.conversations.values():
                statuses[conv["status"]] += 1
            visible = len(self.visible_contacts())
            return {
                "contacts": len(self.data.contacts),
                "visible_contacts": visible,
                "invisible_contacts": len(self.data.contacts) - visible,
                "contact_labels": len(self.contact_labels()),
                "account_labels": len(self.data.account_labels),
                "inboxes": len(self.data.inboxes),
                "conversations": len(self.data.conversations),
                "conversations_by_status": statuses,
                "messages": self.message_count(),
                "page_size": self.page_size,
            }

    # ------------------------------------------------------------------ contact orderings

    def contact_entity(self) -> Entity:
        return Entity(
            keys=CONTACT_KEYS,
            labels_of=lambda c: self.data.contact_labels.get(c["id"], ()),
            custom_attribute_keys=self.data.contact_attribute_keys,
            first_value_only=True,
        )

    def conversation_entity(self) -> Entity:
        return Entity(
            keys=CONVERSATION_KEYS,
            labels_of=lambda c: c["labels"],
            custom_attribute_keys={},
            first_value_only=False,
        )

    def _contacts_changed(self) -> None:
        self._contact_cache.clear()

    def _conversations_changed(self) -> None:
        self._conversation_cache.clear()
        self._conversation_queries.clear()

    def data_changed(self) -> None:
        """Call after editing the data dicts directly: drops the cached orderings and query results."""
        with self.lock:
            self._contacts_changed()
            self._conversations_changed()

    def _scoped_contact_ids(
        self, scope: tuple[Any, ...], select: Callable[[dict[str, Any]], bool] | None
    ) -> list[int]:
        """Visible contacts matching `select`, in physical row order (cached until the next write)."""
        key = ("scope", *scope)
        cached = self._contact_cache.get(key)
        if cached is None:
            rows = [
                c
                for c in self.data.contacts.values()
                if not is_invisible(c) and (select is None or select(c))
            ]
            rows.sort(key=lambda c: c["_pos"])
            cached = [c["id"] for c in rows]
            if len(self._contact_cache) > 256:
                self._contact_cache.clear()
            self._contact_cache[key] = cached
        return cached

    def _sorted_contact_ids(self, scope: tuple[Any, ...], ids: list[int], sort: str) -> list[int] | None:
        descending = sort.startswith("-")
        spec = CONTACT_SORTS.get(sort.lstrip("-"))
        if spec is None:
            return None  # Sift ignores an unknown sort: no ORDER BY at all
        key = ("sorted", sort, *scope)
        cached = self._contact_cache.get(key)
        if cached is None:
            key_of, nulls_last_always = spec
            contacts = self.data.contacts
            present = [cid for cid in ids if key_of(contacts[cid]) is not None]
            nulls = [cid for cid in ids if key_of(contacts[cid]) is None]
            # a stable sort over physical order: ties come back in row order, not by id
            present.sort(key=lambda cid: key_of(contacts[cid]), reverse=descending)
            cached = nulls + present if (descending and not nulls_last_always) else present + nulls
            self._contact_cache[key] = cached
        return cached

    def contact_page(
        self,
        scope: tuple[Any, ...],
        select: Callable[[dict[str, Any]], bool] | None,
        sort: str | None,
        page: int,
        per_page: int = CONTACTS_PER_PAGE,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total matching, the contacts of `page`) as an OFFSET/LIMIT query would return them."""
        ids = self._scoped_contact_ids(scope, select)
        offset = (page - 1) * per_page
        total = len(ids)
        if offset >= total:
            return total, []
        ordered = self._sorted_contact_ids(scope, ids, sort) if sort else None
        if ordered is not None:
            chosen = ordered[offset : offset + per_page]
        else:
            # no ORDER BY: each query may return any rows in any order, so pages overlap and miss rows
            self.unordered_requests += 1
            rng = random.Random(self.seed * 1_000_003 + self.unordered_requests)
            chosen = rng.sample(ids, min(per_page, total - offset))
        return total, [self.data.contacts[cid] for cid in chosen]

    # ------------------------------------------------------------------ conversations

    def _sorted_conversation_ids(self, sort_by: str) -> list[int]:
        cached = self._conversation_cache.get(sort_by)
        if cached is None:
            key_of, descending = CONVERSATION_SORTS[sort_by]
            rows = sorted(self.data.conversations.values(), key=lambda c: c["_pos"])
            rows.sort(key=key_of, reverse=descending)
            cached = [c["id"] for c in rows]
            self._conversation_cache[sort_by] = cached
        return cached

    def query_conversations(
        self, query: ConversationQuery, now: float
    ) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """(meta counts, matching conversations in order) for `GET /conversations`, before paging."""
        sort_by = CONVERSATION_SORT_ALIASES.get(query.sort_by or "", query.sort_by or "")
        if sort_by not in CONVERSATION_SORTS:
            sort_by = "last_activity_at_desc"
        status = query.status or "open"  # status defaults to open server-side; "all" disables the filter
        key = (sort_by, status, query.inbox_id, query.team_id, tuple(sorted(query.labels)))
        cached = self._conversation_queries.get(key) if query.updated_within is None else None
        if cached is None:
            since = None if query.updated_within is None else now - ruby_to_i(query.updated_within)
            cached = self._match_conversations(query, sort_by, status, since)
            if query.updated_within is None:
                self._conversation_queries[key] = cached
        meta, by_assignee = cached
        return meta, by_assignee.get(query.assignee_type or "", by_assignee["all"])

    def _match_conversations(
        self, query: ConversationQuery, sort_by: str, status: str, since: float | None
    ) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
        labels = {label.lower() for label in query.labels}
        convs = self.data.conversations
        matching = []
        for cid in self._sorted_conversation_ids(sort_by):
            conv = convs[cid]
            if status != "all" and conv["status"] != status:
                continue
            if query.inbox_id and str(conv["inbox_id"]) != query.inbox_id:
                continue
            if query.team_id and str(conv["team_id"]) != query.team_id:
                continue
            if labels and not labels.intersection(conv["labels"]):
                continue
            if since is not None and not conv["updated_at"] > since:
                continue
            matching.append(conv)
        mine = [c for c in matching if c["assignee_id"] == USER_ID]
        assigned = [c for c in matching if c["assignee_id"] is not None]
        unassigned = [c for c in matching if c["assignee_id"] is None]
        meta = {
            "mine_count": len(mine),
            "assigned_count": len(assigned),
            "unassigned_count": len(unassigned),
            "all_count": len(matching),  # before assignee_type
        }
        return meta, {"me": mine, "assigned": assigned, "unassigned": unassigned, "all": matching}

    def filter_conversations(
        self, select: Callable[[dict[str, Any]], bool]
    ) -> tuple[dict[str, int], list[dict[str, Any]]]:
        convs = self.data.conversations
        matching = [
            convs[cid] for cid in self._sorted_conversation_ids("last_activity_at_desc") if select(convs[cid])
        ]
        meta = {
            "mine_count": sum(1 for c in matching if c["assignee_id"] == USER_ID),
            "unassigned_count": sum(1 for c in matching if c["assignee_id"] is None),
            "all_count": len(matching),
        }
        return meta, matching

    def contact_conversations(self, contact_id: int) -> list[dict[str, Any]]:
        rows = [c for c in self.data.conversations.values() if c["contact_id"] == contact_id]
        rows.sort(key=lambda c: c["last_activity_at"], reverse=True)
        return rows[:CONTACT_CONVERSATIONS_LIMIT]

    def find_messages(
        self, conversation_id: int, before: str | None, after: str | None, internal_filtered: bool
    ) -> list[MessageRow]:
        """MessageFinder: cursors are message ids; results ascending."""
        rows = self.data.messages.get(conversation_id, [])
        if internal_filtered:
            rows = [m for m in rows if not (m.private or m.message_type == 2)]
        if after is not None and before is not None:
            low, high = ruby_to_i(after), ruby_to_i(before)
            return [m for m in rows if low <= m.id < high][:1000]
        if before is not None:
            high = ruby_to_i(before)
            return [m for m in rows if m.id < high][-20:]
        if after is not None:
            low = ruby_to_i(after)
            return [m for m in rows if m.id > low][:100]
        return rows[-20:]

    # ------------------------------------------------------------------ contact writes

    def _index(self, contact: dict[str, Any]) -> None:
        if contact["email"]:
            self._by_email[contact["email"].lower()] = contact["id"]
        if contact["phone_number"]:
            self._by_phone[contact["phone_number"]] = contact["id"]
        if contact["identifier"]:
            self._by_identifier[contact["identifier"]] = contact["id"]

    def _unindex(self, contact: dict[str, Any]) -> None:
        for index, value in (
            (self._by_email, (contact["email"] or "").lower()),
            (self._by_phone, contact["phone_number"]),
            (self._by_identifier, contact["identifier"]),
        ):
            if value and index.get(value) == contact["id"]:
                del index[value]

    def get_contact(self, contact_id: int) -> dict[str, Any]:
        contact = self.data.contacts.get(contact_id)
        if contact is None:
            raise NotFound()
        return contact

    def get_conversation(self, display_id: int) -> dict[str, Any]:
        conv = self.data.conversations.get(display_id)
        if conv is None:
            raise NotFound()
        return conv

    @staticmethod
    def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
        """Permitted params with Chatwoot's normalisation: email lower-cased, blanks stored as null."""
        clean: dict[str, Any] = {}
        for name in WRITABLE_CONTACT_FIELDS:
            if name not in fields:
                continue
            value = fields[name]
            if name in ("email", "phone_number", "identifier"):
                value = None if value is None or str(value).strip() == "" else str(value).strip()
                if name == "email" and value is not None:
                    value = value.lower()
            elif name == "name":
                value = "" if value is None else str(value)
            elif name == "blocked":
                value = value is True or str(value).lower() in ("true", "1", "t")
            clean[name] = value
        for name in ("additional_attributes", "custom_attributes"):
            if isinstance(fields.get(name), dict):
                clean[name] = dict(fields[name])
        return clean

    def _validate(self, candidate: dict[str, Any], contact_id: int | None) -> None:
        errors: list[tuple[str, str]] = []
        email = candidate.get("email")
        if email is not None:
            if not EMAIL_FORMAT.match(email):
                errors.append(("email", "Email Invalid email"))
            elif self._by_email.get(email.lower(), contact_id) != contact_id:
                errors.append(("email", "Email has already been taken"))
        phone = candidate.get("phone_number")
        if phone is not None:
            if not PHONE_E164.match(phone):
                errors.append(("phone_number", "Phone number should be in e164 format"))
            elif self._by_phone.get(phone, contact_id) != contact_id:
                errors.append(("phone_number", "Phone number has already been taken"))
        identifier = candidate.get("identifier")
        if identifier is not None and self._by_identifier.get(identifier, contact_id) != contact_id:
            errors.append(("identifier", "Identifier has already been taken"))
        if errors:
            raise RecordInvalid(errors)

    def create_contact(
        self, fields: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        """POST /contacts. Returns (contact, inbox or None, source_id or None)."""
        with self.lock:
            clean = self._clean_fields(fields)
            inbox = None
            if fields.get("inbox_id") not in (None, ""):
                inbox = self.data.inboxes.get(ruby_to_i(fields["inbox_id"]))
                if inbox is None:
                    raise NotFound()
            self._validate(clean, None)
            contact_id = self.data.next_contact_id
            self.data.next_contact_id += 1
            contact = {
                "id": contact_id,
                "name": clean.get("name", ""),
                "email": clean.get("email"),
                "phone_number": clean.get("phone_number"),
                "identifier": clean.get("identifier"),
                "blocked": clean.get("blocked", False),
                "thumbnail": "",
                "availability_status": "offline",
                "additional_attributes": clean.get("additional_attributes", {}),
                "custom_attributes": clean.get("custom_attributes", {}),
                "last_activity_at": None,
                "created_at": int(now),
                "contact_inboxes": [],
                "_pos": self.rng.random(),
            }
            source_id = None
            if inbox is not None:
                source_id = self._contact_inbox_source(inbox, contact, fields.get("source_id"))
            self.data.contacts[contact_id] = contact
            self._index(contact)
            if inbox is not None and source_id is not None:
                contact["contact_inboxes"].append((inbox["id"], source_id))
            self._contacts_changed()
            return contact, inbox, source_id

    def _contact_inbox_source(self, inbox: dict[str, Any], contact: dict[str, Any], given: Any) -> str:
        if given not in (None, ""):
            return str(given)
        channel = inbox["channel_type"]
        # ContactInboxBuilder: email/SMS channels need the matching field; unknown channel types raise
        if channel == "Channel::Email" and not contact["email"]:
            raise Unprocessable({"error": "Contact does not have an email address"})
        if (
            channel in ("Channel::TwilioSms", "Channel::Sms", "Channel::Whatsapp")
            and not contact["phone_number"]
        ):
            raise Unprocessable({"error": "Contact does not have a phone number"})
        if channel not in (
            "Channel::Api",
            "Channel::WebWidget",
            "Channel::Email",
            "Channel::TwilioSms",
            "Channel::Sms",
            "Channel::Whatsapp",
        ):
            raise ServerFault(f"unsupported channel {channel}")
        return source_id_for(self.rng, inbox, contact)

    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """PUT/PATCH: omitted fields unchanged; the attribute hashes are shallow-merged, not replaced."""
        with self.lock:
            contact = self.get_contact(contact_id)
            clean = self._clean_fields(fields)
            candidate = {k: v for k, v in clean.items() if k in ("email", "phone_number", "identifier")}
            self._validate(candidate, contact_id)
            self._unindex(contact)
            for name, value in clean.items():
                if name in ("additional_attributes", "custom_attributes"):
                    contact[name] = {**contact[name], **value}
                elif name == "avatar_url":
                    contact["thumbnail"] = str(value or "")
                else:
                    contact[name] = value
            self._index(contact)
            self._contacts_changed()
            return contact

    def destroy_custom_attributes(self, contact_id: int, keys: list[Any]) -> dict[str, Any]:
        with self.lock:
            contact = self.get_contact(contact_id)
            contact["custom_attributes"] = {
                k: v for k, v in contact["custom_attributes"].items() if k not in {str(x) for x in keys}
            }
            self._contacts_changed()
            return contact

    def delete_contact(self, contact_id: int) -> None:
        with self.lock:
            contact = self.get_contact(contact_id)
            if contact["availability_status"] == "online":
                name = (contact["name"] or "").capitalize()
                raise Unprocessable({"message": f"{name} is Online, please try again later"})
            self._remove_contact(contact)

    def _remove_contact(self, contact: dict[str, Any]) -> None:
        self._unindex(contact)
        del self.data.contacts[contact["id"]]
        self.data.contact_labels.pop(contact["id"], None)
        # has_many :conversations, dependent: :destroy_async: gone with their messages
        for display_id in [d for d, c in self.data.conversations.items() if c["contact_id"] == contact["id"]]:
            del self.data.conversations[display_id]
            self.data.messages.pop(display_id, None)
        self._contacts_changed()
        self._conversations_changed()

    def merge_contacts(self, base_id: Any, mergee_id: Any) -> dict[str, Any]:
        """ContactMergeAction: conversations, messages and contact inboxes move; base's non-blank values win."""
        with self.lock:
            base = self.data.contacts.get(ruby_to_i(base_id))
            mergee = self.data.contacts.get(ruby_to_i(mergee_id))
            if base is None or mergee is None:
                raise NotFound()
            if base["id"] == mergee["id"]:
                raise Unprocessable(
                    {"message": "contact does not belong to the account or is the same contact"}
                )
            for conv in self.data.conversations.values():
                if conv["contact_id"] == mergee["id"]:
                    conv["contact_id"] = base["id"]
            for display_id, rows in self.data.messages.items():
                if any(m.sender_type == "Contact" and m.sender_id == mergee["id"] for m in rows):
                    self.data.messages[display_id] = [
                        m._replace(sender_id=base["id"])
                        if m.sender_type == "Contact" and m.sender_id == mergee["id"]
                        else m
                        for m in rows
                    ]
            for inbox_id, source_id in mergee["contact_inboxes"]:
                base["contact_inboxes"].append((inbox_id, source_id))
            merged = {name: mergee[name] for name in ("name", "email", "phone_number", "identifier")}
            for name, value in merged.items():
                if base[name] in (None, "") and value not in (None, ""):
                    base[name] = value
            for name in ("additional_attributes", "custom_attributes"):
                base[name] = {**mergee[name], **{k: v for k, v in base[name].items() if v not in (None, "")}}
            if (mergee["last_activity_at"] or 0) > (base["last_activity_at"] or 0):
                base["last_activity_at"] = mergee["last_activity_at"]
            self._unindex(mergee)
            del self.data.contacts[mergee["id"]]
            self.data.contact_labels.pop(mergee["id"], None)
            self._unindex(base)
            self._index(base)
            self._contacts_changed()
            self._conversations_changed()
            return base

    def set_contact_labels(self, contact_id: int, labels: list[Any]) -> list[str]:
        """POST /contacts/{id}/labels replaces the set and accepts labels the account doesn't have."""
        with self.lock:
            self.get_contact(contact_id)
            clean: list[str] = []
            for label in labels:
                title = str(label).strip().lower()  # acts_as_taggable_on force_lowercase
                if title and title not in clean:
                    clean.append(title)
            if clean:
                self.data.contact_labels[contact_id] = clean
            else:
                self.data.contact_labels.pop(contact_id, None)
            self._contacts_changed()
            return list(clean)

    def create_label(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            title = str(fields.get("title") or "").strip().lower()
            if not LABEL_TITLE.match(title):
                raise RecordInvalid([("title", "Title only allows letters, numbers, hyphen and underscore")])
            if title in self.account_label_titles():
                raise RecordInvalid([("title", "Title has already been taken")])
            label = {
                "id": self.data.next_label_id,
                "title": title,
                "description": fields.get("description"),
                "color": fields.get("color") or "#1f93ff",
                "show_on_sidebar": bool(fields.get("show_on_sidebar", True)),
            }
            self.data.next_label_id += 1
            self.data.account_labels.append(label)
            return label

    # ------------------------------------------------------------------ conversation writes

    def add_message(
        self, display_id: int, message_type: int, content: str, now: float, private: bool = False
    ) -> MessageRow:
        """A new message bumps the conversation's updated_at and last_activity_at (and the sender's activity)."""
        with self.lock:
            conv = self.get_conversation(display_id)
            created = int(now)
            if message_type == 0:
                sender: tuple[str | None, int | None] = ("Contact", conv["contact_id"])
            elif message_type == 2:
                sender = (None, None)
            else:
                sender = ("User", conv["assignee_id"] or USER_ID)
            row = MessageRow(
                self.data.next_message_id,
                display_id,
                created,
                message_type,
                content,
                sender[0],
                sender[1],
                private,
                "sent",
                False,
            )
            self.data.next_message_id += 1
            self.data.messages.setdefault(display_id, []).append(row)
            conv["last_activity_at"] = created
            conv["updated_at"] = max(float(now), conv["updated_at"] + 0.000001)
            if message_type == 0:
                if conv["status"] == "resolved":
                    conv["status"] = "open"  # an incoming message reopens a resolved conversation
                if conv["waiting_since"] is None:
                    conv["waiting_since"] = created
                contact = self.data.contacts.get(conv["contact_id"])
                if contact is not None:
                    contact["last_activity_at"] = created
                    self._contacts_changed()
            elif message_type == 1 and not private:
                conv["waiting_since"] = None
                if conv["first_reply_created_at"] is None:
                    conv["first_reply_created_at"] = created
            self._conversations_changed()
            return row

    # ------------------------------------------------------------------ mutate

    def mutate(
        self,
        new_contacts: int = 3,
        edited_contacts: int = 5,
        deleted_contacts: int = 2,
        new_conversations: int = 2,
        edited_conversations: int = 4,
        new_messages: int = 10,
        seed: int | None = None,
        **unknown: Any,
    ) -> dict[str, Any]:
        """Change the data as users would between two loads; returns the ids that changed.

        Contact edits change attributes (and some labels) but never last_activity_at, which only moves
        when a contact sends a message. Conversation edits and new messages bump updated_at to now.
        Deletions pick offline contacts, preferring those without conversations (a deleted contact's
        conversations go with it, and nothing in the conversations API reports that).
        """
        if unknown:
            raise TypeError(f"unknown mutate arguments: {sorted(unknown)}")
        with self.lock:
            rng = random.Random(seed) if seed is not None else self.rng
            now = self.clock()
            data = self.data
            summary: dict[str, Any] = {"now": now}
            # contacts
            factory = ContactFactory(rng)
            factory.phones = set(self._by_phone)
            created_ids = []
            for _ in range(new_contacts):
                cid = data.next_contact_id
                data.next_contact_id += 1
                contact = factory.visible(cid, int(now))  # created in the same second: created_at ties
                link_inbox(rng, data.inboxes, contact, rng.choice(inbox_choices(contact)))
                data.contacts[cid] = contact
                self._index(contact)
                if rng.random() < 0.4:
                    data.contact_labels[cid] = [rng.choice(sorted(self.account_label_titles()))]
                created_ids.append(cid)
            summary["new_contacts"] = created_ids
            visible = [c["id"] for c in self.visible_contacts() if c["id"] not in created_ids]
            edited = rng.sample(visible, min(edited_contacts, len(visible)))
            for cid in edited:
                self._edit_contact(rng, data.contacts[cid])
            summary["edited_contacts"] = sorted(edited)
            with_conversations = {c["contact_id"] for c in data.conversations.values()}
            candidates = [
                cid
                for cid in visible
                if cid not in edited and data.contacts[cid]["availability_status"] != "online"
            ]
            quiet = [cid for cid in candidates if cid not in with_conversations]
            pool = quiet if len(quiet) >= deleted_contacts else candidates
            deleted = rng.sample(pool, min(deleted_contacts, len(pool)))
            for cid in deleted:
                self._remove_contact(data.contacts[cid])
            summary["deleted_contacts"] = sorted(deleted)
            # conversations
            conv_factory = ConversationFactory(rng, data.agents)
            new_convs = []
            senders = [c["id"] for c in self.visible_contacts()]
            for _ in range(new_conversations if senders else 0):
                contact = data.contacts[rng.choice(senders)]
                inbox_id = rng.choice(inbox_choices(contact))
                link_inbox(rng, data.inboxes, contact, inbox_id)
                display_id = data.next_conversation_id
                data.next_conversation_id += 1
                conv = conv_factory.conversation(display_id, contact, data.inboxes[inbox_id], int(now))
                conv["status"] = "open"
                conv["updated_at"] = float(now)
                data.conversations[display_id] = conv
                data.messages[display_id] = []
                self.add_message(display_id, 0, "Hello, I have a new question", now)
                new_convs.append(display_id)
            summary["new_conversations"] = new_convs
            existing = [d for d in data.conversations if d not in new_convs]
            edited_convs = rng.sample(existing, min(edited_conversations, len(existing)))
            for display_id in edited_convs:
                self._edit_conversation(rng, data.conversations[display_id], now)
            summary["edited_conversations"] = sorted(edited_convs)
            message_ids = []
            touched = set(new_convs) | set(edited_convs)
            targets = list(data.conversations)
            for _ in range(new_messages if targets else 0):
                display_id = rng.choice(targets)
                kind = 0 if rng.random() < 0.5 else 1
                text = rng.choice(["Any news?", "Following up on this", "Thanks!", "We have shipped a fix."])
                message_ids.append(self.add_message(display_id, kind, text, now).id)
                touched.add(display_id)
            summary["new_messages"] = message_ids
            summary["touched_conversations"] = sorted(touched)
            self._contacts_changed()
            self._conversations_changed()
            return summary

    def churn_contacts(self, new: int, deleted: int) -> None:
        """Create `new` contacts (created now: the tail of the created_at order) and delete `deleted`
        listed contacts picked anywhere (unlike `mutate`, which spares those with conversations), so
        deletions also land on pages a walk has already read and shift every later row."""
        with self.lock:
            created = self.mutate(
                new_contacts=new,
                edited_contacts=0,
                deleted_contacts=0,
                new_conversations=0,
                edited_conversations=0,
                new_messages=0,
            )["new_contacts"]
            pool = sorted(c["id"] for c in self.visible_contacts() if c["id"] not in created)
            for cid in self.rng.sample(pool, min(deleted, len(pool))):
                self._remove_contact(self.data.contacts[cid])

    def _edit_contact(self, rng: random.Random, contact: dict[str, Any]) -> None:
        contact["name"] = (contact["name"] or "Unnamed") + rng.choice([" Jr.", " (edited)", " II"])
        attrs = dict(contact["additional_attributes"])
        attrs["city"] = rng.choice(["Porto", "Munich", "Recife", "Denver"])
        contact["additional_attributes"] = attrs
        custom = dict(contact["custom_attributes"])
        custom["plan"] = rng.choice(["free", "pro", "enterprise", "trial"])
        contact["custom_attributes"] = custom
        if contact["email"] and rng.random() < 0.2:
            self._unindex(contact)
            local, domain = contact["email"].split("@", 1)
            contact["email"] = f"{local}.v{rng.randint(2, 99999)}@{domain}"
            self._index(contact)
        if rng.random() < 0.4:
            labels = list(self.data.contact_labels.get(contact["id"], []))
            if labels and rng.random() < 0.5:
                labels.remove(rng.choice(labels))
            else:
                pool = sorted(self.account_label_titles()) + NON_ACCOUNT_LABELS
                extra = rng.choice(pool)
                if extra not in labels:
                    labels.append(extra)
            if labels:
                self.data.contact_labels[contact["id"]] = labels
            else:
                self.data.contact_labels.pop(contact["id"], None)

    def _edit_conversation(self, rng: random.Random, conv: dict[str, Any], now: float) -> None:
        change = rng.choice(["status", "labels", "priority", "assignee"])
        if change == "status":
            conv["status"] = rng.choice([s for s in STATUSES if s != conv["status"]])
            conv["snoozed_until"] = None
            if conv["status"] == "snoozed":
                conv["snoozed_until"] = iso(int(now) + 86_400)
        elif change == "labels":
            titles = sorted(self.account_label_titles())
            conv["labels"] = rng.sample(titles, rng.randint(0, min(2, len(titles))))
        elif change == "priority":
            conv["priority"] = rng.choice([None, "low", "medium", "high", "urgent"])
        else:
            conv["assignee_id"] = rng.choice([None, *self.data.agents])
        conv["updated_at"] = max(float(now), conv["updated_at"] + 0.000001)

"""The Sendblue simulator's state: its data (the ground truth), queries over it, writes and `mutate`.

The HTTP layer (`app.py`) parses and validates requests, then calls these methods while holding
`state.lock`. Sorted views of contacts and messages are cached per order key and rebuilt lazily after a
write, so paging through 250,000 messages costs a bisection per request, not a sort.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from starlette.responses import JSONResponse, Response

from sandbox.common import SIZES, RateBudget, SandboxState
from sandbox.sendblue.data import DEFAULT_ANCHOR, SIZE_SPECS, SizeSpec, add_message, generate
from sandbox.sendblue.timestamps import iso_ms, parse_ms

KEY_CASINGS = ("snake", "camel")
FINAL_STATUSES = {"DELIVERED", "RECEIVED", "ERROR", "DECLINED"}
# QUEUED -> SENT -> DELIVERED: the moves a status makes after the send call returns
NEXT_STATUS = {"QUEUED": "SENT", "SENT": "DELIVERED", "PENDING": "SENT", "REGISTERED": "SENT"}
DEFAULT_MUTATION = {
    "new_contacts": 5,
    "edited_contacts": 5,
    "deleted_contacts": 2,
    "new_messages": 40,
    "edited_messages": 20,
}


@dataclass
class ContactQuery:
    """`GET /api/v2/contacts` after validation. `order_field` is a snake_case contact key."""

    limit: int = 100
    offset: int = 0
    order_field: str = "created_at"
    descending: bool = True
    phone_number: str | None = None
    cid: str | None = None
    created_at_gte: str | None = None  # canonical ISO bound (see timestamps.lower_bound)


@dataclass
class MessageQuery:
    """`GET /api/v2/messages` after validation.

    `order_field` is `created` (the hidden creation time), `date_updated` or `date_sent`. `ranges` holds
    (field, ">=" | "<=", canonical bound); `equals` holds (message key, value).
    """

    limit: int = 100
    offset: int = 0
    order_field: str = "created"
    descending: bool = True
    ranges: list[tuple[str, str, str]] = field(default_factory=list)
    equals: list[tuple[str, Any]] = field(default_factory=list)
    number: str | None = None


Predicate = Callable[[dict[str, Any]], bool]


def _in_range(get: Callable[[dict[str, Any]], str], op: str, bound: str) -> Predicate:
    if op == ">=":
        return lambda m: get(m) >= bound
    return lambda m: get(m) <= bound


def page_of(rows: list[Any], offset: int, limit: int, descending: bool) -> list[Any]:
    """rows are ascending; the descending view is the exact reverse (a backward index scan)."""
    if not descending:
        return rows[offset : offset + limit]
    end = len(rows) - offset
    if end <= 0:
        return []
    return rows[max(0, end - limit) : end][::-1]


class SendblueSandbox(SandboxState):
    """Ground truth and behaviour of the simulated Sendblue account. See the package docstring."""

    api_name = "sendblue"

    def __init__(
        self,
        size: str = "small",
        seed: int = 0,
        key_casing: str = "snake",
        *,
        contacts: int | None = None,
        messages: int | None = None,
        lines: int | None = None,
        groups: int | None = None,
        tie_fraction: float = 0.35,
        max_burst: int | None = None,
        anchor: str = DEFAULT_ANCHOR,
        messages_rate_limit: int = 100,
        messages_rate_window_seconds: float = 10.0,
        contacts_rate_limit: int = 0,
        contacts_rate_window_seconds: float = 10.0,
        retry_after_header: bool = False,
        unstable_ties: bool = False,
        bulk_max: int = 1000,
        **knobs: Any,
    ) -> None:
        super().__init__(seed)
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose one of {SIZES}")
        if key_casing not in KEY_CASINGS:
            raise ValueError(f"unknown key_casing {key_casing!r}; choose one of {KEY_CASINGS}")
        try:
            self.knobs.update(knobs)
        except KeyError as exc:
            raise TypeError(f"unknown Sendblue sandbox option: {exc}") from None
        base = SIZE_SPECS[size]
        self.size = size
        self.spec = SizeSpec(
            contacts=base.contacts if contacts is None else contacts,
            messages=base.messages if messages is None else messages,
            lines=base.lines if lines is None else lines,
            groups=base.groups if groups is None else groups,
            max_burst=base.max_burst if max_burst is None else max_burst,
        )
        self.key_casing = key_casing
        self.retry_after_header = retry_after_header
        self.unstable_ties = unstable_ties
        self.bulk_max = bulk_max
        self.budgets = [
            # "Rate limited to 100 requests per 10 seconds per account" (messages list docstring)
            RateBudget(
                "messages",
                messages_rate_limit,
                messages_rate_window_seconds,
                "/api/v2/messages",
                aligned=False,
            ),
            # no documented limit on contacts: off unless a test or benchmark sets one
            RateBudget(
                "contacts",
                contacts_rate_limit,
                contacts_rate_window_seconds,
                "/api/v2/contacts",
                aligned=False,
            ),
        ]

        data, self.factory = generate(self.spec, seed, parse_ms(anchor), tie_fraction)
        self.account_email = data.account_email
        self.lines: list[str] = data.lines
        self.seats: list[dict[str, Any]] = data.seats
        self.contacts: dict[str, dict[str, Any]] = data.contacts
        self.messages: dict[str, dict[str, Any]] = data.messages
        self.message_created: dict[str, str] = data.message_created
        self.groups: dict[str, dict[str, Any]] = data.groups
        self.opted_out_numbers: set[str] = data.opted_out_numbers
        self._data = data

        self._by_number: dict[str, list[str]] = {}
        self._by_group: dict[str, list[str]] = {}
        for handle, message in self.messages.items():
            self._index_message(handle, message)
        self._contacts_version = 0
        self._messages_version = 0
        self._contact_views: dict[str, tuple[int, list[dict[str, Any]], list[Any]]] = {}
        self._message_views: dict[str, tuple[int, list[dict[str, Any]], list[str]]] = {}
        latest = max((m["date_updated"] for m in self.messages.values()), default=anchor)
        self._last_issued_ms = max(parse_ms(latest), parse_ms(anchor))

    # ------------------------------------------------------------------ hooks of SandboxState

    def error_500(self) -> Response:
        return JSONResponse({"status": "ERROR", "message": "Internal server error"}, status_code=500)

    def rate_limited(self, budget: RateBudget) -> Response:
        headers = {}
        # Sendblue does not document a Retry-After header, so by default none is sent
        if self.retry_after_header:
            headers["Retry-After"] = str(self._retry_after_seconds(budget))
        return JSONResponse(
            {"status": "ERROR", "message": "Too Many Requests"}, status_code=429, headers=headers
        )

    def _retry_after_seconds(self, budget: RateBudget) -> int:
        stamps = budget._stamps
        if budget.name == "scheduled" or not stamps:
            return 1
        return max(1, math.ceil(stamps[0] + budget.window_seconds - self.clock()))

    # ------------------------------------------------------------------ time

    def _now_ms(self) -> int:
        """Now, but never before anything already stamped (the data set ends at a fixed anchor)."""
        now = max(int(self.clock() * 1000), self._last_issued_ms + 1)
        self._last_issued_ms = now
        return now

    def _issued(self, ms: int) -> None:
        self._last_issued_ms = max(self._last_issued_ms, ms)

    # ------------------------------------------------------------------ contacts: reads

    def _contact_view(self, order_field: str) -> tuple[list[dict[str, Any]], list[Any]]:
        """Contacts ascending by `order_field` (insertion order among ties), nulls last; and the keys."""
        cached = self._contact_views.get(order_field)
        if cached and cached[0] == self._contacts_version:
            return cached[1], cached[2]
        rows = list(self.contacts.values())
        present = [c for c in rows if c.get(order_field) is not None]
        present.sort(key=itemgetter(order_field))
        nulls = [c for c in rows if c.get(order_field) is None]  # PostgreSQL: NULLS LAST when ascending
        ordered = present + nulls
        keys = [c[order_field] for c in present]
        self._contact_views[order_field] = (self._contacts_version, ordered, keys)
        return ordered, keys

    def list_contacts(self, q: ContactQuery) -> list[dict[str, Any]]:
        with self.lock:
            bound = q.created_at_gte
            if q.phone_number is not None:
                one = self.contacts.get(q.phone_number)
                rows = [one] if one is not None else []
            else:
                rows, keys = self._contact_view(q.order_field)
                if bound is not None and q.order_field == "created_at":
                    rows = rows[bisect.bisect_left(keys, bound) :]
                    bound = None
            if bound is not None:
                rows = [c for c in rows if c.get("created_at") is not None and c["created_at"] >= bound]
            if q.cid is not None:
                rows = [c for c in rows if c.get("contact_id") == q.cid]
            if self.unstable_ties:
                rows = self._scramble_ties(rows, q.order_field, salt=q.offset + q.limit)
            return page_of(rows, q.offset, q.limit, q.descending)

    @staticmethod
    def _scramble_ties(rows: list[dict[str, Any]], order_field: str, salt: int) -> list[dict[str, Any]]:
        """Reorder rows that tie on the sort key, differently for each LIMIT+OFFSET.

        PostgreSQL's top-N sort does exactly this when ORDER BY is not unique: pages of one listing
        can overlap or skip rows that share a created_at.
        """
        out: list[dict[str, Any]] = []
        for _, group in itertools.groupby(rows, key=lambda c: c.get(order_field)):
            members = list(group)
            if len(members) > 1:
                members.sort(key=lambda c: zlib.crc32(f"{salt}:{c['phone']}".encode()))
            out.extend(members)
        return out

    def count_contacts(self) -> int:
        with self.lock:
            return len(self.contacts)

    # ------------------------------------------------------------------ contacts: writes

    def _touch_contacts(self) -> None:
        self._contacts_version += 1

    def apply_contact_fields(self, contact: dict[str, Any], fields: dict[str, Any]) -> None:
        """A partial update: custom_variables MERGED (a null value removes the label), tags replaced,
        opt_out written to the recipient opt-out record as well."""
        for key, value in fields.items():
            if key == "custom_variables":
                merged = dict(contact.get("custom_variables") or {})
                for label, text in value.items():
                    if text is None:
                        merged.pop(label, None)
                    else:
                        merged[label] = text
                contact["custom_variables"] = merged
            elif key == "tags":
                contact["tags"] = list(value)
            elif key == "opt_out":
                contact["opt_out"] = bool(value)
                if value:
                    self.opted_out_numbers.add(contact["phone"])
                else:
                    self.opted_out_numbers.discard(contact["phone"])
            else:
                contact[key] = value

    def create_contact(
        self, phone: str, fields: dict[str, Any], created_at: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            contact: dict[str, Any] = {
                "phone": phone,
                "first_name": None,
                "last_name": None,
                "company_name": None,
                "assigned_to_email": None,
                "sendblue_number": None,
                "tags": [],
                "custom_variables": {},
                "opt_out": phone in self.opted_out_numbers,
                "verified": False,
                "created_at": created_at or iso_ms(self._now_ms()),
                "contact_id": self.factory.uuid(),
            }
            self.apply_contact_fields(contact, fields)
            self.contacts[phone] = contact
            self.factory.taken_phones.add(phone)
            self._touch_contacts()
            return contact

    def update_contact(self, phone: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            contact = self.contacts.get(phone)
            if contact is None:
                return None
            self.apply_contact_fields(contact, fields)
            self._touch_contacts()
            return contact

    def delete_contacts(self, phones: Iterable[str]) -> int:
        with self.lock:
            deleted = 0
            for phone in phones:
                if self.contacts.pop(phone, None) is not None:
                    deleted += 1
            if deleted:
                self._touch_contacts()
            return deleted

    def bulk_create_contacts(self, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Create each (phone, fields) whose phone is new; existing phones are skipped and not returned.

        One import is stamped once: every contact it creates shares the same created_at.
        """
        with self.lock:
            stamp = iso_ms(self._now_ms())
            created = []
            for phone, fields in items:
                if phone in self.contacts:
                    continue
                created.append(self.create_contact(phone, fields, created_at=stamp))
            return created

    def set_opt_out(self, phone: str, opted_out: bool) -> None:
        """The recipient opt-out record (what inbound STOP writes) and the contact's `opt_out` field."""
        with self.lock:
            if opted_out:
                self.opted_out_numbers.add(phone)
            else:
                self.opted_out_numbers.discard(phone)
            contact = self.contacts.get(phone)
            if contact is not None:
                contact["opt_out"] = opted_out
                self._touch_contacts()

    # ------------------------------------------------------------------ messages: reads

    def _index_message(self, handle: str, message: dict[str, Any]) -> None:
        for number in {message["from_number"], message["to_number"]}:
            if number:
                self._by_number.setdefault(number, []).append(handle)
        if message["message_type"] == "group" and message["group_id"]:
            self._by_group.setdefault(message["group_id"], []).append(handle)

    def _message_key(self, order_field: str) -> Callable[[dict[str, Any]], str]:
        if order_field == "created":
            created = self.message_created
            return lambda m: created[m["message_handle"]]
        return itemgetter(order_field)

    def _message_view(self, order_field: str) -> tuple[list[dict[str, Any]], list[str]]:
        cached = self._message_views.get(order_field)
        if cached and cached[0] == self._messages_version:
            return cached[1], cached[2]
        key = self._message_key(order_field)
        rows = sorted(self.messages.values(), key=key)
        keys = [key(m) for m in rows]
        self._message_views[order_field] = (self._messages_version, rows, keys)
        return rows, keys

    def list_messages(self, q: MessageQuery) -> tuple[int, list[dict[str, Any]]]:
        """(total matching, the requested page)."""
        with self.lock:
            ranges = list(q.ranges)
            equals = list(q.equals)
            group_id = next((v for k, v in equals if k == "group_id"), None)
            key = self._message_key(q.order_field)
            rows: list[dict[str, Any]]
            if q.number is not None or group_id is not None:
                # a conversation fetch: start from the per-number or per-group index
                handles = self._by_number.get(q.number, []) if q.number is not None else []
                if q.number is None and group_id is not None:
                    handles = self._by_group.get(group_id, [])
                rows = sorted((self.messages[h] for h in handles), key=key)
            else:
                rows, keys = self._message_view(q.order_field)
                lo, hi = 0, len(rows)
                for name, op, bound in [r for r in ranges if r[0] == q.order_field]:
                    if op == ">=":
                        lo = max(lo, bisect.bisect_left(keys, bound))
                    else:
                        hi = min(hi, bisect.bisect_right(keys, bound))
                    ranges.remove((name, op, bound))
                rows = rows[lo:hi] if lo < hi else []
            for name, value in equals:  # plain comprehensions: a full scan of 250,000 stays cheap
                rows = [m for m in rows if m.get(name) == value]
            for predicate in self._message_predicates(ranges, q.number):
                rows = [m for m in rows if predicate(m)]
            return len(rows), page_of(rows, q.offset, q.limit, q.descending)

    def _message_predicates(self, ranges: list[tuple[str, str, str]], number: str | None) -> list[Predicate]:
        predicates: list[Predicate] = []
        for name, op, bound in ranges:
            predicates.append(_in_range(self._message_key(name), op, bound))
        if number is not None:
            predicates.append(lambda m: m["from_number"] == number or m["to_number"] == number)
        return predicates

    def get_message(self, handle: str) -> dict[str, Any] | None:
        with self.lock:
            return self.messages.get(handle)

    def group_view(self, group_id: str) -> dict[str, Any] | None:
        """`GET /api/v2/groups/{group_id}` data: membership plus the latest activity."""
        with self.lock:
            group = self.groups.get(group_id)
            if group is None:
                return None
            messages = [self.messages[h] for h in self._by_group.get(group_id, [])]
            latest = max(messages, key=lambda m: self.message_created[m["message_handle"]], default=None)
            participants = []
            for phone in group["participants"]:
                contact = self.contacts.get(phone) or {}
                name = " ".join(x for x in (contact.get("first_name"), contact.get("last_name")) if x) or None
                participants.append(
                    {
                        "participant_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{group_id}/{phone}")),
                        "type": "contact",
                        "handle": phone,
                        "phone": phone,
                        "name": name,
                        "contact_id": contact.get("contact_id"),
                        "seat_id": None,
                    }
                )
            seat = self.seats[0]
            participants.append(
                {
                    "participant_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{group_id}/{seat['seat_id']}")),
                    "type": "seat",
                    "handle": group["sendblue_number"],
                    "phone": group["sendblue_number"],
                    "name": seat["email"],
                    "contact_id": None,
                    "seat_id": seat["seat_id"],
                }
            )
            return {
                "group_id": group_id,
                "group_name": group["group_name"],
                "created_at": group["created_at"],
                "updated_at": max([group["created_at"], *(m["date_updated"] for m in messages)]),
                "latest_comm_at": latest["date_sent"] if latest else None,
                "latest_message_id": latest["message_handle"] if latest else None,
                "participant_numbers": list(group["participants"]),
                "participants": participants,
                "worker_group_id": group["worker_group_id"],
            }

    # ------------------------------------------------------------------ messages: writes

    def _add_message(self, message: dict[str, Any], created_ms: int) -> None:
        add_message(self._data, message, iso_ms(created_ms))
        self._index_message(message["message_handle"], message)
        self._issued(parse_ms(message["date_updated"]))
        self._messages_version += 1

    # ------------------------------------------------------------------ ground truth

    def contact_tags(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(phone, tag) for phone, c in self.contacts.items() for tag in (c.get("tags") or [])}

    def contact_custom_variables(self) -> set[tuple[str, str, str]]:
        with self.lock:
            return {
                (phone, label, value)
                for phone, c in self.contacts.items()
                for label, value in (c.get("custom_variables") or {}).items()
            }

    def conversations(self) -> dict[Any, dict[str, Any]]:
        """One entry per thread: 1:1 keyed (sendblue_number, number), group keyed by group_id."""
        with self.lock:
            out: dict[Any, dict[str, Any]] = {}
            for handle, m in self.messages.items():
                group = m["message_type"] == "group"
                key: Any = m["group_id"] if group else (m["sendblue_number"], m["number"])
                thread = out.get(key)
                if thread is None:
                    thread = out[key] = {
                        "kind": "group" if group else "direct",
                        "sendblue_number": m["sendblue_number"],
                        "number": None if group else m["number"],
                        "group_id": m["group_id"] if group else None,
                        "group_display_name": m["group_display_name"] if group else None,
                        "participants": list(m["participants"]) if group else [m["number"]],
                        "messages": 0,
                        "inbound": 0,
                        "outbound": 0,
                        "first_message_at": m["date_sent"],
                        "last_message_at": m["date_sent"],
                        "last_message_handle": handle,
                        "last_message_preview": m["content"],
                    }
                thread["messages"] += 1
                thread["outbound" if m["is_outbound"] else "inbound"] += 1
                thread["first_message_at"] = min(thread["first_message_at"], m["date_sent"])
                if m["date_sent"] >= thread["last_message_at"]:
                    thread["last_message_at"] = m["date_sent"]
                    thread["last_message_handle"] = handle
                    thread["last_message_preview"] = m["content"]
            return out

    def truth_summary(self) -> dict[str, Any]:
        with self.lock:
            created = [c["created_at"] for c in self.contacts.values()]
            return {
                "size": self.size,
                "seed": self.seed,
                "key_casing": self.key_casing,
                "lines": list(self.lines),
                "contacts": len(self.contacts),
                "distinct_contact_created_at": len(set(created)),
                "contact_tags": len(self.contact_tags()),
                "opted_out_contacts": sum(1 for c in self.contacts.values() if c.get("opt_out")),
                "messages": len(self.messages),
                "conversations": len(self.conversations()),
                "groups": len(self.groups),
                "max_date_updated": max((m["date_updated"] for m in self.messages.values()), default=None),
            }

    # ------------------------------------------------------------------ mutation between runs

    def mutate(self, **kwargs: Any) -> dict[str, Any]:
        """Create, edit and delete data as users would between two pipeline runs.

        Keywords: new_contacts, edited_contacts, deleted_contacts, new_messages, edited_messages, seed.
        With no counts at all a default mix is applied; otherwise unnamed counts are 0. Returns what
        changed (phones, handles, thread keys) so tests can compare a second load against it.
        """
        unknown = set(kwargs) - {*DEFAULT_MUTATION, "seed"}
        if unknown:
            raise TypeError(f"unknown mutate() keywords: {sorted(unknown)}")
        seed = kwargs.pop("seed", None)
        counts = {name: int(kwargs.get(name, 0)) for name in DEFAULT_MUTATION}
        if not kwargs:
            counts = dict(DEFAULT_MUTATION)
        with self.lock:
            rng = random.Random(f"sendblue-mutate-{seed}") if seed is not None else self.rng
            saved_rng, self.factory.rng = self.factory.rng, rng
            try:
                return self._mutate(rng, **counts)
            finally:
                self.factory.rng = saved_rng

    def churn_contacts(self, new: int, deleted: int) -> None:
        self.mutate(new_contacts=new, deleted_contacts=deleted)

    def _mutate(
        self,
        rng: random.Random,
        new_contacts: int,
        edited_contacts: int,
        deleted_contacts: int,
        new_messages: int,
        edited_messages: int,
    ) -> dict[str, Any]:
        factory = self.factory
        existing = list(self.contacts)
        deleted = rng.sample(existing, min(deleted_contacts, len(existing)))
        self.delete_contacts(deleted)
        remaining = [p for p in existing if p in self.contacts]
        edited = rng.sample(remaining, min(edited_contacts, len(remaining)))
        for phone in edited:
            factory.edit_contact(self.contacts[phone])

        # half of the new contacts arrive as one import sharing a created_at, the rest one by one
        created: list[str] = []
        stamp = self._now_ms()
        for i in range(new_contacts):
            if i >= new_contacts // 2:
                stamp = self._now_ms()
            phone = factory.phone()
            self.contacts[phone] = factory.contact(phone, iso_ms(stamp), rng.choice(self.lines))
            created.append(phone)
        self._touch_contacts()

        edited_handles = self._edit_messages(rng, edited_messages)
        new_handles, new_threads, new_groups = self._new_messages(rng, new_messages, created)
        return {
            "new_contacts": created,
            "edited_contacts": edited,
            "deleted_contacts": deleted,
            "new_messages": new_handles,
            "edited_messages": edited_handles,
            "new_threads": [list(t) for t in new_threads],
            "new_groups": new_groups,
        }

    def _edit_messages(self, rng: random.Random, count: int) -> list[str]:
        """Status moves (QUEUED -> SENT -> DELIVERED, sometimes ERROR) first, then other late changes;
        every edit bumps date_updated to now, and edits in one batch can share a millisecond."""
        if count <= 0 or not self.messages:
            return []
        in_flight = [h for h, m in self.messages.items() if m["status"] not in FINAL_STATUSES]
        settled = [h for h, m in self.messages.items() if m["status"] in FINAL_STATUSES]
        chosen = rng.sample(in_flight, min(count, len(in_flight)))
        chosen += rng.sample(settled, min(count - len(chosen), len(settled)))
        stamp = self._now_ms()
        for handle in chosen:
            if rng.random() < 0.5:
                stamp = self._now_ms()
            message = self.messages[handle]
            status = message["status"]
            if status in NEXT_STATUS:
                message["status"] = NEXT_STATUS[status]
                if message["status"] == "DELIVERED" and rng.random() < 0.1:
                    message["status"] = "ERROR"
                    message["error_code"], message["error_message"] = 4001, "Recipient is not reachable"
            elif message["media_url"]:
                message["media_url"] = ""  # inbound media URLs expire after about 30 days
            message["date_updated"] = iso_ms(stamp)
        self._messages_version += 1
        return chosen

    def _new_messages(
        self, rng: random.Random, count: int, new_contacts: list[str]
    ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """New messages in existing 1:1 threads and groups, new 1:1 threads and one new group."""
        if count <= 0:
            return [], [], []
        factory = self.factory
        threads = {
            (m["sendblue_number"], m["number"]): m["service"]
            for m in self.messages.values()
            if m["message_type"] == "message"
        }
        groups = list(self.groups.values())
        talked_to = {number for _, number in threads}
        fresh = [p for p in new_contacts if p in self.contacts]
        fresh += [p for p in self.contacts if p not in talked_to and p not in fresh]
        new_threads: list[tuple[str, str]] = []
        new_groups: list[str] = []
        if len(self.contacts) >= 2 and count >= 4:
            members = rng.sample(list(self.contacts), min(len(self.contacts), rng.randint(2, 4)))
            group = factory.group(members, self._now_ms(), rng.choice(self.lines))
            self.groups[group["group_id"]] = group
            groups.append(group)
            new_groups.append(group["group_id"])

        handles = []
        # stamped from one "now" so that every new date_updated lies after everything served before
        created_ms = self._now_ms()
        for i in range(count):
            created_ms += 0 if rng.random() < 0.2 else rng.randint(1, 50)  # some share a millisecond
            r = rng.random()
            if (new_groups and i == 0) or (r < 0.2 and groups):
                group = self.groups[new_groups[0]] if new_groups and i == 0 else rng.choice(groups)
                message = factory.message(
                    created_ms=created_ms,
                    line=group["sendblue_number"],
                    counterpart=rng.choice(group["participants"]),
                    outbound=rng.random() < 0.4,
                    service="iMessage",
                    in_flight_after_ms=created_ms,
                    group=group,
                )
            else:
                if (r < 0.4 or not threads) and fresh:
                    number = fresh.pop(0)
                    line = factory.line_for(self.contacts.get(number))
                    service = factory.service()
                    threads[(line, number)] = service
                    new_threads.append((line, number))
                else:
                    line, number = rng.choice(list(threads))
                    service = threads[(line, number)]
                message = factory.message(
                    created_ms=created_ms,
                    line=line,
                    counterpart=number,
                    outbound=rng.random() < 0.55,
                    service=service,
                    in_flight_after_ms=created_ms,
                )
            self._add_message(message, created_ms)
            handles.append(message["message_handle"])
        return handles, new_threads, new_groups

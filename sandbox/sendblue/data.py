"""Seeded, deterministic Sendblue data: lines, seats, contacts, groups and messages as plain dicts.

Contacts and messages are the public snake_case contact and message objects of the v2 API, ready to
serve. Their shape follows what the notes say the real API returns, awkward parts included:
- every optional contact field is missing on some contacts and null on others (the spec marks all optional);
- a share of contacts (`tie_fraction`) arrives in import bursts that share one `created_at` to the
  millisecond, half of them stamped at a whole second, so ordering by `created_at` has ties;
- `custom_variables` keys are free-text labels ("Lead Source"); tags carry spaces and capitals;
- messages carry `""` for some absent values and null for others, as the docs and OpenAPI spec disagree;
- campaign blasts send one text to many contacts at the same millisecond (ties on `date_sent`);
- recent outbound messages are still QUEUED or SENT, so later status moves can bump `date_updated`;
- a third of the contacts are people the Chatwoot simulator knows too (`sandbox.people`), some of
  them opted out;
- some threads are with numbers that are not contacts, some contacts talk on two lines, and groups
  have `group_id`, `group_display_name` (sometimes empty) and `participants`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import phonenumbers

from sandbox.people import Person, shared_count, shared_people
from sandbox.sendblue.timestamps import iso_ms, parse_ms

T = TypeVar("T")
DAY_MS = 86_400_000
# All generated history ends here, so the same seed gives the same data on any day.
DEFAULT_ANCHOR = "2026-06-30T18:00:00.000Z"
# Outbound messages younger than this at the anchor may still be QUEUED or SENT.
IN_FLIGHT_MS = 2 * DAY_MS


@dataclass(frozen=True)
class SizeSpec:
    contacts: int
    messages: int
    lines: int
    groups: int
    max_burst: int  # the largest import burst sharing one created_at


SIZE_SPECS = {
    "small": SizeSpec(contacts=300, messages=2_000, lines=2, groups=6, max_burst=30),
    "medium": SizeSpec(contacts=12_000, messages=50_000, lines=3, groups=60, max_burst=150),
    "large": SizeSpec(contacts=50_000, messages=250_000, lines=5, groups=200, max_burst=150),
}

US_AREA_CODES = (
    "201", "202", "206", "212", "213", "303", "305", "312", "404", "415",
    "503", "512", "617", "646", "702", "713", "718", "773", "808", "917",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Grace", "Linus", "Maya", "Noah", "Olivia", "Liam", "Sofia", "Mateo", "Zoë", "José", "Chloé",
    "Aarav", "Mei", "Fatima", "Oluwaseun", "Sean", "Hannah", "Émile", "Priya", "Kenji", "Ingrid", "Luca",
    "Amara", "Diego", "Freya", "Tomás", "Yara", "Ava", "Ethan",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "O'Brien", "García", "Nguyen", "Smith", "Johnson", "van der Berg", "Müller",
    "Kowalski", "Okafor", "Tanaka", "Rossi", "Dubois", "Patel", "Kim", "Lee", "Brown", "Silva", "Andersen",
)  # fmt: skip
COMPANIES = (
    "Acme Dental", "Northwind Traders", "Globex", "Initech", "Umbrella Health", "Stark & Sons",
    "Blue Bottle Studio", "Wayne Fitness", "Hooli", "Pied Piper", "Soylent Co.", "Vandelay Industries",
)  # fmt: skip
TAGS = (
    "vip", "lead", "customer", "trial", "churn-risk", "Beta Tester", "newsletter", "event:2025-summit",
    "Partner", "high intent", "renewal", "Spanish speaker",
)  # fmt: skip
CUSTOM_VARIABLES: dict[str, tuple[str, ...]] = {
    "Lead Source": ("Website", "Referral", "Trade Show", "Cold Outreach", "Instagram"),
    "Plan": ("Starter", "Growth", "Enterprise"),
    "Renewal Date": ("2026-01-15", "2026-03-01", "2026-07-31", "2026-12-01"),
    "Account Manager": ("Maya Chen", "Sean Park", "Ingrid Holm"),
    "NPS Score": tuple(str(n) for n in range(11)),
    "Region": ("West", "East", "Central", "EMEA"),
    "Preferred Language": ("English", "Español", "Français"),
    "Last Order #": ("A-1001", "A-2042", "B-0007", "C-9310"),
}
GROUP_NAMES = ("Book club", "Q3 launch crew", "Family", "Ops on-call", "Soccer parents", "Wedding party")
OUTBOUND_TEXTS = (
    "Hi {name}, your appointment is confirmed for tomorrow at 10am.",
    "Thanks for reaching out! A teammate will reply shortly.",
    "Your order has shipped 📦 Track it here: https://example.com/t/8841",
    "Can you confirm the new address?",
    "Reply STOP to opt out.",
    "Great talking today — sending the proposal now.",
    "Reminder: your renewal is coming up next week.",
    "Here is the link you asked for:\nhttps://example.com/docs",
)  # fmt: skip
INBOUND_TEXTS = (
    "Yes, that works for me",
    "Can we move it to Thursday?",
    "👍",
    "Who is this?",
    "Thanks!!",
    "What are your opening hours?",
    "STOP",
    "I'll call you back later.\nBusy right now",
    "Ok",
    "Perfect, see you then 🙌",
)  # fmt: skip
CAMPAIGN_TEXTS = (
    "Flash sale this weekend: 20% off everything. Reply YES for the code.",
    "We're open late on Thursdays now! Book here: https://example.com/book",
    "Happy holidays from all of us 🎉",
)  # fmt: skip
ERRORS = (
    (4001, "Recipient is not reachable", "unreachable"),
    (4002, "Message failed to send", "carrier_rejected"),
    (5000, "Internal delivery error", "internal"),
)
SEND_STYLES = ("celebration", "invisible", "gentle", "loud", "slam", "fireworks")
# (min, max) milliseconds from date_sent to the last status change, per status
STATUS_DELAY_MS = {
    "RECEIVED": (0, 0),
    "QUEUED": (0, 0),
    "DECLINED": (0, 500),
    "SENT": (200, 3000),
    "DELIVERED": (1000, 30000),
    "ERROR": (500, 60000),
}


@dataclass
class SendblueData:
    """Everything the simulator serves; the state object owns it after generation."""

    account_email: str
    lines: list[str]
    seats: list[dict[str, Any]]
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    message_created: dict[str, str] = field(default_factory=dict)  # handle -> creation time (not served)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    opted_out_numbers: set[str] = field(default_factory=set)  # the recipient opt-out records


def _pick(rand: Callable[[], float], items: Sequence[T]) -> T:
    return items[int(rand() * len(items))]


def _between(rand: Callable[[], float], low: int, high: int) -> int:
    """An int in [low, high]."""
    return low + int(rand() * (high - low + 1))


_MISSING = object()  # marks an optional key left out of a generated object


def _maybe(rng: random.Random, value: Any, present: float, null: float) -> Any:
    """`value` with probability `present`, None with `null`, else the `_MISSING` marker (key left out)."""
    r = rng.random()
    if r < present:
        return value
    if r < present + null:
        return None
    return _MISSING


class SendblueFactory:
    """Builds contacts, groups and messages. Shared by the initial generation and `mutate`."""

    def __init__(self, rng: random.Random, data: SendblueData):
        self.rng = rng
        self.data = data
        self.taken_phones: set[str] = set(data.lines) | set(data.contacts)
        for message in data.messages.values():
            self.taken_phones.add(message["number"])

    # -- identifiers

    def uuid(self) -> str:
        """A random (version 4) UUID drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def phone(self) -> str:
        """A new, unique, valid E.164 number: mostly US, a few UK and Australian mobiles."""
        rng = self.rng
        while True:
            r = rng.random()
            if r < 0.92:
                exchange = rng.randint(200, 999)
                if exchange % 100 == 11:  # N11 exchanges are not assignable
                    continue
                number = f"+1{rng.choice(US_AREA_CODES)}{exchange}{rng.randint(0, 9999):04d}"
            else:
                if r < 0.96:
                    number = f"+447{rng.choice(('400', '123', '740', '780'))}{rng.randint(100000, 999999)}"
                else:
                    number = f"+614{rng.randint(10, 39)}{rng.randint(100000, 999999)}"
                if not phonenumbers.is_valid_number(phonenumbers.parse(number)):
                    continue
            if number not in self.taken_phones:
                self.taken_phones.add(number)
                return number

    # -- contacts

    def contact(self, phone: str, created_at: str, line: str | None) -> dict[str, Any]:
        rng = self.rng
        data = self.data
        tags = rng.sample(TAGS, rng.randint(1, 4)) if rng.random() < 0.78 else []
        labels = rng.sample(sorted(CUSTOM_VARIABLES), rng.randint(1, 4)) if rng.random() < 0.7 else []
        opt_out = _maybe(rng, rng.random() < 0.05, 0.9, 0.0)
        candidates: dict[str, Any] = {
            "phone": phone,
            "first_name": _maybe(rng, rng.choice(FIRST_NAMES), 0.85, 0.08),
            "last_name": _maybe(rng, rng.choice(LAST_NAMES), 0.75, 0.15),
            "company_name": _maybe(rng, rng.choice(COMPANIES), 0.45, 0.4),
            "assigned_to_email": _maybe(rng, rng.choice(data.seats)["email"], 0.35, 0.5),
            "sendblue_number": _maybe(rng, line, 0.9, 0.05),
            "tags": _maybe(rng, tags, 0.9, 0.0),
            "custom_variables": _maybe(
                rng, {label: rng.choice(CUSTOM_VARIABLES[label]) for label in labels}, 0.85, 0.0
            ),
            "opt_out": opt_out,
            "verified": _maybe(rng, rng.random() < 0.6, 0.95, 0.0),
            "created_at": created_at,
            "contact_id": self.uuid(),
        }
        contact = {k: v for k, v in candidates.items() if v is not _MISSING}
        if contact.get("opt_out"):
            data.opted_out_numbers.add(phone)
        return contact

    def edit_contact(self, contact: dict[str, Any]) -> None:
        """An edit a user makes in the Sendblue app: names, company, tags, labels or opt-out."""
        rng = self.rng
        kind = rng.choice(("name", "company", "tags", "labels", "opt_out", "assignee"))
        if kind == "name":
            contact["first_name"] = rng.choice(FIRST_NAMES)
            contact["last_name"] = rng.choice(LAST_NAMES)
        elif kind == "company":
            contact["company_name"] = rng.choice((*COMPANIES, None))
        elif kind == "tags":
            contact["tags"] = rng.sample(TAGS, rng.randint(0, 3))
        elif kind == "labels":
            variables = dict(contact.get("custom_variables") or {})
            label = rng.choice(sorted(CUSTOM_VARIABLES))
            variables[label] = rng.choice(CUSTOM_VARIABLES[label])
            contact["custom_variables"] = variables
        elif kind == "opt_out":
            contact["opt_out"] = not contact.get("opt_out", False)
            if contact["opt_out"]:
                self.data.opted_out_numbers.add(contact["phone"])
            else:
                self.data.opted_out_numbers.discard(contact["phone"])
        else:
            contact["assigned_to_email"] = rng.choice(self.data.seats)["email"]

    def line_for(self, contact: dict[str, Any] | None) -> str:
        if contact and contact.get("sendblue_number"):
            return str(contact["sendblue_number"])
        return self.rng.choice(self.data.lines)

    # -- groups and messages

    def group(self, participants: list[str], created_ms: int, line: str) -> dict[str, Any]:
        rng = self.rng
        name = rng.choice(GROUP_NAMES) if rng.random() < 0.7 else rng.choice(("", None))
        return {
            "group_id": self.uuid(),
            "group_name": name,
            "created_at": iso_ms(created_ms),
            "participants": participants,
            "sendblue_number": line,
            "worker_group_id": self.uuid(),
        }

    def service(self) -> str:
        r = self.rng.random()
        return "iMessage" if r < 0.7 else "SMS" if r < 0.95 else "RCS"

    def message(
        self,
        *,
        created_ms: int,
        line: str,
        counterpart: str,
        outbound: bool,
        service: str,
        in_flight_after_ms: int,
        group: dict[str, Any] | None = None,
        content: str | None = None,
        blast: bool = False,
    ) -> dict[str, Any]:
        """One message. `counterpart` is the contact (1:1) or, inbound in a group, the participant."""
        rand = self.rng.random  # the hot path of generation: plain random() draws are cheapest
        data = self.data
        opted_out = outbound and counterpart in data.opted_out_numbers and group is None
        error_code = error_message = error_reason = None
        if not outbound:
            status = "RECEIVED"
        elif opted_out:
            status = "DECLINED"
        elif created_ms >= in_flight_after_ms:
            status = _pick(rand, ("QUEUED", "SENT", "DELIVERED"))
        else:
            r = rand()
            status = "DELIVERED" if r < 0.85 else "SENT" if r < 0.93 else "ERROR" if r < 0.98 else "DECLINED"
        if status == "ERROR":
            error_code, error_message, error_reason = _pick(rand, ERRORS)
        # a blast is stamped once for every recipient; a single send leaves the queue a moment later
        sent_ms = created_ms
        if outbound and not blast and status != "QUEUED":
            sent_ms += _between(rand, 0, 1500)
        low, high = STATUS_DELAY_MS[status]
        updated_ms = sent_ms + _between(rand, low, high)
        if content is None:
            if outbound:
                first = data.contacts.get(counterpart, {}).get("first_name") or "there"
                content = _pick(rand, OUTBOUND_TEXTS).replace("{name}", first)
            else:
                content = _pick(rand, INBOUND_TEXTS)
        media_url: str | None = _pick(rand, ("", "", "", None))
        if rand() < 0.05:
            media_url = f"https://storage.example.com/media/{self.rng.getrandbits(64):016x}.jpg"
            if rand() < 0.5:
                content = ""
        seat = _pick(rand, data.seats) if outbound and rand() < 0.6 else None
        absent = _pick(rand, ("", None))  # the docs show "" where the spec shows null
        if group is None:
            from_number, to_number, number = (
                (line, counterpart, counterpart) if outbound else (counterpart, line, counterpart)
            )
        else:
            # an outbound group message has no single counterpart
            from_number, to_number, number = (line, "", "") if outbound else (counterpart, line, counterpart)
        return {
            "message_handle": self.uuid(),
            "accountEmail": data.account_email,
            "content": content,
            "media_url": media_url,
            "is_outbound": outbound,
            "status": status,
            "service": service,
            "message_type": "message" if group is None else "group",
            "date_sent": iso_ms(sent_ms),
            "date_updated": iso_ms(updated_ms),
            "from_number": from_number,
            "to_number": to_number,
            "number": number,
            "sendblue_number": line,
            "group_id": absent if group is None else group["group_id"],
            "group_display_name": absent if group is None else group["group_name"],
            "participants": [] if group is None else group["participants"],
            "was_downgraded": outbound and service == "SMS" and rand() < 0.5,
            "opted_out": opted_out,
            "error_code": error_code,
            "error_message": error_message if error_message else absent,
            "error_reason": error_reason,
            "error_detail": None,
            "send_style": _pick(rand, SEND_STYLES) if outbound and rand() < 0.03 else "",
            "plan": "dedicated",
            "seat_id": seat["seat_id"] if seat else None,
            "sender_email": seat["email"] if seat else None,
        }


def _allocate(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """Split `total` into len(weights) counts >= 1 proportional to the weights (len <= total)."""
    rest = total - len(weights)
    scale = sum(weights) or 1.0
    counts = [1 + int(rest * w / scale) for w in weights]
    for _ in range(total - sum(counts)):
        counts[rng.randrange(len(counts))] += 1
    return counts


def _import_timeline(
    n: int, start_ms: int, end_ms: int, tie_fraction: float, max_burst: int, rng: random.Random
) -> list[int]:
    """n non-decreasing creation times; about tie_fraction of them in bursts sharing one timestamp."""
    tied = round(n * min(max(tie_fraction, 0.0), 1.0))
    events: list[int] = []
    while tied >= 2:
        size = min(tied, rng.randint(2, max(2, max_burst)))
        if tied - size == 1:
            size += 1
        events.append(size)
        tied -= size
    events.extend([1] * (n - sum(events)))
    rng.shuffle(events)
    stamps = sorted(rng.randrange(start_ms, end_ms) for _ in events)
    times: list[int] = []
    previous = start_ms
    for size, stamp in zip(events, stamps, strict=True):
        if size > 1 and rng.random() < 0.5:
            stamp -= stamp % 1000  # CSV imports stamped at a whole second
        stamp = max(stamp, previous)
        times.extend([stamp] * size)
        previous = stamp
    return times


def generate(
    spec: SizeSpec, seed: int, anchor_ms: int, tie_fraction: float = 0.35
) -> tuple[SendblueData, SendblueFactory]:
    """The full data set for one seed; also the factory (with its taken-phone set) for later mutations."""
    rng = random.Random(f"sendblue-data-{seed}")
    data = SendblueData(account_email="ops@northwind-dental.example.com", lines=[], seats=[])
    factory = SendblueFactory(rng, data)
    people = shared_people(seed, shared_count(spec.contacts))
    factory.taken_phones.update(person.phone for person in people)  # never drawn for anyone else
    # the people Chatwoot knows too, at positions picked by a generator of their own (so the rest of
    # the data is what the seed gave before)
    positions = random.Random(f"sendblue-shared-{seed}").sample(range(spec.contacts), len(people))
    sharing = dict(zip(positions, people, strict=True))
    data.lines = [factory.phone() for _ in range(max(1, spec.lines))]
    data.seats = [
        {"seat_id": factory.uuid(), "email": f"{name}@northwind-dental.example.com"}
        for name in ("maya", "sean", "ingrid", "tomas")
    ]

    timeline = _import_timeline(
        spec.contacts, anchor_ms - 730 * DAY_MS, anchor_ms, tie_fraction, spec.max_burst, rng
    )
    for i, created_ms in enumerate(timeline):
        phone = factory.phone()
        person = sharing.get(i)
        if person is not None:
            phone = person.phone
        data.contacts[phone] = factory.contact(phone, iso_ms(created_ms), rng.choice(data.lines))
        if person is not None:
            _adopt(data, data.contacts[phone], person)

    _generate_messages(factory, spec, anchor_ms)
    return data, factory


def _adopt(data: SendblueData, contact: dict[str, Any], person: Person) -> None:
    """The person's name (where the contact has one) and opt-out state."""
    for key, value in (("first_name", person.first_name), ("last_name", person.last_name)):
        if contact.get(key) is not None:
            contact[key] = value
    if person.opted_out or "opt_out" in contact:
        contact["opt_out"] = person.opted_out
    if person.opted_out:
        data.opted_out_numbers.add(person.phone)
    else:
        data.opted_out_numbers.discard(person.phone)


def _generate_messages(factory: SendblueFactory, spec: SizeSpec, anchor_ms: int) -> None:
    rng = factory.rng
    data = factory.data
    total = spec.messages
    if total <= 0:
        return
    in_flight_after = anchor_ms - IN_FLIGHT_MS
    history_start = anchor_ms - 400 * DAY_MS
    group_budget = int(total * 0.12) if spec.groups and len(data.contacts) >= 3 else 0
    blast_budget = int(total * 0.10) if data.contacts else 0
    direct_budget = total - group_budget - blast_budget
    pending: list[tuple[int, dict[str, Any]]] = []  # (created_ms, message)

    # 1:1 threads: (line, number, start_ms, service); most with contacts, a few with strangers
    phones = list(data.contacts)
    n_threads = max(1, min(len(phones), direct_budget // 12))
    threads: list[tuple[str, str, int, str]] = []
    for phone in rng.sample(phones, n_threads) if phones else []:
        contact = data.contacts[phone]
        start = max(history_start, parse_ms(contact["created_at"]))
        line = factory.line_for(contact)
        threads.append((line, phone, start, factory.service()))
        if len(data.lines) > 1 and rng.random() < 0.04:  # the same person also texts another line
            other = rng.choice([x for x in data.lines if x != line])
            threads.append((other, phone, start, factory.service()))
    for _ in range(max(1, n_threads // 25)):
        threads.append((rng.choice(data.lines), factory.phone(), history_start, factory.service()))
    threads = threads[:direct_budget]
    counts = _allocate(direct_budget, [rng.paretovariate(1.3) for _ in threads], rng)
    for (line, number, start, service), count in zip(threads, counts, strict=True):
        previous: dict[str, Any] | None = None
        for created_ms in sorted(start + int(rng.random() * (anchor_ms - start)) for _ in range(count)):
            message = factory.message(
                created_ms=created_ms,
                line=line,
                counterpart=number,
                outbound=rng.random() < 0.55,
                service=service,
                in_flight_after_ms=in_flight_after,
            )
            if previous is not None and not message["is_outbound"] and rng.random() < 0.03:
                message["reply_to"] = {"message_handle": previous["message_handle"], "part_index": 0}
            previous = message
            pending.append((created_ms, message))

    # blasts: one text to many contacts at one instant
    n_blasts = max(1, blast_budget // 20) if blast_budget else 0
    for size in _allocate(blast_budget, [1.0] * n_blasts, rng) if n_blasts else []:
        created_ms = rng.randrange(history_start, anchor_ms)
        created_ms -= created_ms % 1000
        text = rng.choice(CAMPAIGN_TEXTS)
        for phone in rng.sample(phones, min(size, len(phones))):
            pending.append(
                (
                    created_ms,
                    factory.message(
                        created_ms=created_ms,
                        line=factory.line_for(data.contacts[phone]),
                        counterpart=phone,
                        outbound=True,
                        service=factory.service(),
                        in_flight_after_ms=in_flight_after,
                        content=text,
                        blast=True,
                    ),
                )
            )

    # groups
    if group_budget:
        groups = []
        for _ in range(min(spec.groups, group_budget)):
            members = rng.sample(phones, rng.randint(2, min(5, len(phones))))
            created_ms = rng.randrange(history_start, anchor_ms - DAY_MS)
            group = factory.group(members, created_ms, rng.choice(data.lines))
            data.groups[group["group_id"]] = group
            groups.append(group)
        counts = _allocate(group_budget, [rng.paretovariate(1.5) for _ in groups], rng)
        for group, count in zip(groups, counts, strict=True):
            start = parse_ms(group["created_at"])
            service = "iMessage"  # group threads are an iMessage feature
            for created_ms in sorted(start + int(rng.random() * (anchor_ms - start)) for _ in range(count)):
                outbound = rng.random() < 0.4
                pending.append(
                    (
                        created_ms,
                        factory.message(
                            created_ms=created_ms,
                            line=group["sendblue_number"],
                            counterpart=rng.choice(group["participants"]),
                            outbound=outbound,
                            service=service,
                            in_flight_after_ms=in_flight_after,
                            group=group,
                        ),
                    )
                )

    pending.sort(key=lambda item: item[0])
    for created_ms, message in pending:
        add_message(data, message, iso_ms(created_ms))


def add_message(data: SendblueData, message: dict[str, Any], created_at: str) -> None:
    data.messages[message["message_handle"]] = message
    data.message_created[message["message_handle"]] = created_at

"""Seeded generator of one Chatwoot account: agents, inboxes, labels, contacts, conversations, messages.

Contacts and conversations are plain dicts and messages are `MessageRow` tuples, so the large size
(50,000 contacts, 20,000 conversations, 250,000 messages) builds in seconds and stays memory-sane.
A third of the visible contacts are people the Sendblue simulator knows too (`sandbox.people`: same
phone and name). Every timestamp lies before `anchor` (the start of the current UTC day unless given),
so data built with the same seed on the same day is identical.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sandbox.people import Person, shared_count, shared_people

ACCOUNT_ID = 1
OTHER_ACCOUNT_ID = 2  # exists, but the sandbox token's user is not a member of it
API_TOKEN = "sandbox-chatwoot-token"
USER_ID = 1  # the administrator who owns API_TOKEN ("mine" in conversation counts)

DAY = 86_400
YEAR = 365 * DAY


@dataclass(frozen=True)
class SizeSpec:
    contacts: int
    invisible_contacts: int  # no email, phone_number or identifier: hidden from list/filter/search
    labelled_contacts: int
    conversations: int
    messages: int
    online_contacts: int  # availability_status "online": DELETE answers 422 for them


SIZE_SPECS: dict[str, SizeSpec] = {
    "small": SizeSpec(200, 10, 60, 80, 1_000, 2),
    "medium": SizeSpec(5_000, 150, 1_500, 2_000, 30_000, 10),
    "large": SizeSpec(50_000, 1_200, 15_000, 20_000, 250_000, 40),
}


class MessageRow(NamedTuple):
    id: int  # global: ids interleave across conversations
    conversation_id: int  # the conversation's display id
    created_at: int
    message_type: int  # 0 incoming, 1 outgoing, 2 activity, 3 template
    content: str | None
    sender_type: str | None  # "Contact", "User", or None for activity messages
    sender_id: int | None
    private: bool
    status: str
    has_attachment: bool


@dataclass
class Dataset:
    anchor: int
    accounts: dict[int, dict[str, Any]]
    agents: dict[int, dict[str, Any]]
    inboxes: dict[int, dict[str, Any]]
    account_labels: list[dict[str, Any]]
    contact_attribute_keys: dict[str, str]  # custom attribute definitions: key -> display type
    contacts: dict[int, dict[str, Any]]
    contact_labels: dict[int, list[str]]
    conversations: dict[int, dict[str, Any]]
    messages: dict[int, list[MessageRow]]  # by conversation display id, ascending id
    next_contact_id: int = 1
    next_conversation_id: int = 1
    next_message_id: int = 1
    next_label_id: int = 1


ACCOUNT_LABELS = [
    ("customer", "Paying customers", "#2E7D32"),
    ("lead", "Prospects from the website", "#1565C0"),
    ("vip", "Priority handling", "#F9A825"),
    ("billing", "Billing questions", "#6A1B9A"),
    ("support", "Open support cases", "#C62828"),
    ("partner", "Resellers and partners", "#00838F"),
    ("churn-risk", "Flagged by success team", "#EF6C00"),
    ("newsletter", "Subscribed to the newsletter", "#546E7A"),
]
# Labels set through POST /contacts/{id}/labels are not checked against the account's labels
NON_ACCOUNT_LABELS = ["legacy-crm", "import_2023", "beta-tester", "old_vip"]

CONTACT_ATTRIBUTE_KEYS = {"plan": "list", "signup_source": "text", "seats": "number"}

FIRST_NAMES = (
    "Ana Bruno Carla Diego Elena Farid Grace Hiro Ines Jonas Kemal Lena Marco Nadia Omar Paula Quentin "
    "Rosa Samir Tara Umar Vera Walter Xenia Yusuf Zoe Amara Bilal Chloe Dmitri"
).split()
LAST_NAMES = (
    "Silva Müller Rossi Kowalski Nguyen Okafor Haddad Svensson Tanaka Moreau Petrov Cohen Singh Garcia "
    "Ivanova Larsen O'Brien Kaya Mendes Fischer Dubois Novak Costa Ahmed Jensen Romano Schmidt Park Ali Brown"
).split()
PLACES = [
    ("Lisbon", "Portugal", "PT"),
    ("Berlin", "Germany", "DE"),
    ("São Paulo", "Brazil", "BR"),
    ("Austin", "United States", "US"),
    ("London", "United Kingdom", "GB"),
    ("Lagos", "Nigeria", "NG"),
    ("Tokyo", "Japan", "JP"),
    ("Toronto", "Canada", "CA"),
]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries", "Hooli", "Wayne Enterprises"]
DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.test"]
VISITOR_WORDS = (
    "amber autumn bold calm crimson dawn frost ivory lake misty quiet river silent snow sun".split()
)

INCOMING_TEXTS = [
    "Hi, I need help with my order",
    "Can you check my invoice?",
    "The app keeps logging me out",
    "Is there a discount for annual plans?",
    "Thanks, that worked!",
    "Any update on this?",
    "How do I export my data?",
    "I was charged twice this month",
    "Olá, preciso de ajuda 🙏",
    "Can I talk to a human?",
]
OUTGOING_TEXTS = [
    "Thanks for reaching out, let me check.",
    "Could you share your account email?",
    "I've refunded the duplicate charge.",
    "You can export from Settings > Data.",
    "Happy to help! Anything else?",
    "We're looking into it and will update you soon.",
]
PRIVATE_TEXTS = ["Escalated to billing", "Customer is on the legacy plan", "Follow up on Monday"]
ACTIVITY_TEXTS = [
    "Conversation was marked resolved by {agent}",
    "Assigned to {agent} by Sandbox Admin",
    "{agent} added vip",
    "Conversation was reopened by {agent}",
]
TEMPLATE_TEXTS = ["Please rate the conversation", "Give the team a way to reach you."]

STATUSES = ("open", "resolved", "pending", "snoozed")
PRIORITIES = ("low", "medium", "high", "urgent")


def iso(ts: float) -> str:
    """Rails' JSON form of a datetime: millisecond precision, Z suffix."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def default_anchor(now: float) -> int:
    return int(now // DAY * DAY)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_agents() -> dict[int, dict[str, Any]]:
    names = ["Sandbox Admin", "Alex Agent", "Bea Support", "Chen Success"]
    agents = {}
    for i, name in enumerate(names, start=1):
        first = name.split()[0].lower()
        agents[i] = {
            "id": i,
            "name": name,
            "available_name": name,
            "email": f"{first}@sandbox.chatwoot.test",
            "role": "administrator" if i == USER_ID else "agent",
            "availability_status": "online" if i % 2 else "offline",
            "confirmed": True,
        }
    return agents


def make_inboxes(anchor: int) -> dict[int, dict[str, Any]]:
    specs = [
        (1, "Website", "Channel::WebWidget", None, {"website_url": "https://www.example.com"}),
        (2, "Support Email", "Channel::Email", None, {"email_address": "support@example.com"}),
        (3, "SMS", "Channel::TwilioSms", "twilio", {"phone_number": "+15550100000"}),
        (4, "WhatsApp", "Channel::Whatsapp", "whatsapp_cloud", {"phone_number": "+15550100001"}),
        (5, "API", "Channel::Api", None, {}),
        (6, "Telegram", "Channel::Telegram", None, {}),
    ]
    inboxes = {}
    for inbox_id, name, channel_type, provider, extra in specs:
        inboxes[inbox_id] = {
            "id": inbox_id,
            "channel_id": 100 + inbox_id,
            "account_id": ACCOUNT_ID,
            "name": name,
            "channel_type": channel_type,
            "provider": provider,
            "avatar_url": "",
            "created_at": anchor - 2 * YEAR + inbox_id * DAY,
            "enable_auto_assignment": True,
            "greeting_enabled": False,
            "greeting_message": None,
            "enable_email_collect": True,
            "csat_survey_enabled": inbox_id == 1,
            "allow_messages_after_resolved": True,
            "lock_to_single_conversation": False,
            "working_hours_enabled": False,
            "timezone": "UTC",
            "website_url": extra.get("website_url"),
            "email_address": extra.get("email_address"),
            "phone_number": extra.get("phone_number"),
        }
    return inboxes


def make_account_labels() -> list[dict[str, Any]]:
    return [
        {"id": i, "title": title, "description": description, "color": color, "show_on_sidebar": True}
        for i, (title, description, color) in enumerate(ACCOUNT_LABELS, start=1)
    ]


class ContactFactory:
    """Builds contact dicts with unique emails, phones and identifiers (shared by the generator and mutate)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.phones: set[str] = set()

    def phone(self) -> str:
        rng = self.rng
        while True:
            kind = rng.random()
            if kind < 0.5:
                number = f"+1{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(2, 9)}{rng.randint(0, 999999):06d}"
            elif kind < 0.7:
                number = f"+447{rng.randint(100000000, 999999999)}"
            elif kind < 0.85:
                number = f"+4915{rng.randint(100000000, 999999999)}"
            else:
                number = f"+55119{rng.randint(10000000, 99999999)}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def visible(self, contact_id: int, created_at: int) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        has_email = rng.random() < 0.85
        has_phone = rng.random() < 0.7
        has_identifier = rng.random() < 0.4
        if not (has_email or has_phone or has_identifier):
            has_email = True
        email = None
        if has_email:
            local = f"{first}.{last}".lower().replace("'", "").replace("ü", "u")
            email = f"{local}.{contact_id}@{rng.choice(DOMAINS)}"
        additional: dict[str, Any] = {}
        if rng.random() < 0.7:
            city, country, code = rng.choice(PLACES)
            additional = {"city": city, "country": country, "country_code": code}
            if rng.random() < 0.6:
                additional["company_name"] = rng.choice(COMPANIES)
            if rng.random() < 0.2:
                additional["description"] = "Imported from the old CRM"
        custom: dict[str, Any] = {}
        if rng.random() < 0.6:
            custom["plan"] = rng.choice(["free", "pro", "enterprise"])
            if rng.random() < 0.5:
                custom["signup_source"] = rng.choice(["web", "referral", "ads"])
            if rng.random() < 0.3:
                custom["seats"] = rng.randint(1, 250)
        thumbnail = ""
        if email and rng.random() < 0.05:
            thumbnail = f"https://www.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}?d=404"
        return {
            "id": contact_id,
            "name": f"{first} {last}" if rng.random() < 0.95 else "",
            "email": email,
            "phone_number": self.phone() if has_phone else None,
            "identifier": f"crm-{contact_id:07d}" if has_identifier else None,
            "blocked": rng.random() < 0.02,
            "thumbnail": thumbnail,
            "availability_status": "offline",
            "additional_attributes": additional,
            "custom_attributes": custom,
            "last_activity_at": None,
            "created_at": created_at,
            "contact_inboxes": [],
            "_pos": rng.random(),  # physical row order: what ties come back in when sorted
        }

    def invisible(self, contact_id: int, created_at: int) -> dict[str, Any]:
        """A widget visitor or Telegram user: nothing that `resolved_contacts` looks at."""
        rng = self.rng
        name = f"{rng.choice(VISITOR_WORDS)}-{rng.choice(VISITOR_WORDS)}-{rng.randint(100, 999)}"
        return {
            "id": contact_id,
            "name": name,
            "email": None,
            "phone_number": None,
            "identifier": None,
            "blocked": False,
            "thumbnail": "",
            "availability_status": "offline",
            "additional_attributes": {"source": rng.choice(["widget", "telegram"])},
            "custom_attributes": {},
            "last_activity_at": None,
            "created_at": created_at,
            "contact_inboxes": [],
            "_pos": rng.random(),
        }


def contact_created_times(rng: random.Random, n: int, start: int) -> list[int]:
    """Ascending creation times over about a year; ~30% arrive in import batches sharing one second."""
    gap_max = max(2, int(1.9 * YEAR / max(n, 1)))
    times: list[int] = []
    t = start
    while len(times) < n:
        t += rng.randint(1, gap_max)
        batch = rng.randint(3, 8) if rng.random() < 0.08 else 1
        times.extend([t] * batch)
    return times[:n]


def assign_labels(rng: random.Random, contact_ids: list[int], count: int) -> dict[int, list[str]]:
    """Account labels mostly; ~15% carry only non-account labels and ~15% a mix of both kinds."""
    account = [title for title, _, _ in ACCOUNT_LABELS]
    chosen = rng.sample(contact_ids, min(count, len(contact_ids)))
    n_other = max(2, len(chosen) * 15 // 100) if len(chosen) >= 6 else 0
    labels: dict[int, list[str]] = {}
    for i, contact_id in enumerate(chosen):
        if i < n_other:
            labels[contact_id] = rng.sample(NON_ACCOUNT_LABELS, rng.randint(1, 2))
        elif i < 2 * n_other:
            labels[contact_id] = rng.sample(account, rng.randint(1, 2)) + [rng.choice(NON_ACCOUNT_LABELS)]
        else:
            labels[contact_id] = rng.sample(account, rng.randint(1, 3))
    return labels


def source_id_for(rng: random.Random, inbox: dict[str, Any], contact: dict[str, Any]) -> str:
    channel = inbox["channel_type"]
    if channel == "Channel::Email" and contact["email"]:
        return str(contact["email"])
    if channel in ("Channel::TwilioSms", "Channel::Whatsapp", "Channel::Sms") and contact["phone_number"]:
        phone = str(contact["phone_number"])
        return phone.lstrip("+") if channel == "Channel::Whatsapp" else phone
    if channel == "Channel::Telegram":
        return str(rng.randint(10_000_000, 999_999_999))
    return _uuid(rng)


def inbox_choices(contact: dict[str, Any]) -> list[int]:
    if not (contact["email"] or contact["phone_number"] or contact["identifier"]):
        return [1, 6]  # web widget visitors and Telegram users
    choices = [1, 5]
    if contact["email"]:
        choices.append(2)
    if contact["phone_number"]:
        choices += [3, 4]
    return choices


def link_inbox(
    rng: random.Random, inboxes: dict[int, dict[str, Any]], contact: dict[str, Any], inbox_id: int
) -> None:
    if all(existing != inbox_id for existing, _ in contact["contact_inboxes"]):
        contact["contact_inboxes"].append((inbox_id, source_id_for(rng, inboxes[inbox_id], contact)))


class ConversationFactory:
    """Builds a conversation and its message events (shared by the generator and mutate)."""

    def __init__(self, rng: random.Random, agents: dict[int, dict[str, Any]]):
        self.rng = rng
        self.agents = agents

    def conversation(
        self, display_id: int, contact: dict[str, Any], inbox: dict[str, Any], created_at: int
    ) -> dict[str, Any]:
        rng = self.rng
        r = rng.random()
        status = "open" if r < 0.4 else "resolved" if r < 0.8 else "pending" if r < 0.9 else "snoozed"
        assignee = None if rng.random() < 0.3 else rng.randint(1, len(self.agents))
        additional: dict[str, Any] = {}
        if inbox["channel_type"] == "Channel::WebWidget":
            additional = {
                "browser": {"browser_name": "Chrome", "platform_name": "macOS"},
                "referer": rng.choice(["https://www.example.com/pricing", "https://www.example.com/docs"]),
                "browser_language": rng.choice(["en", "pt", "de"]),
            }
        elif inbox["channel_type"] == "Channel::Email":
            additional = {"mail_subject": rng.choice(["Invoice question", "Login problem", "Partnership"])}
        account_titles = [title for title, _, _ in ACCOUNT_LABELS]
        return {
            "id": display_id,
            "uuid": _uuid(rng),
            "inbox_id": inbox["id"],
            "contact_id": contact["id"],
            "status": status,
            "priority": None if rng.random() < 0.6 else rng.choice(PRIORITIES),
            "assignee_id": assignee,
            "team_id": None,
            "labels": rng.sample(account_titles, rng.randint(1, 2)) if rng.random() < 0.4 else [],
            "created_at": created_at,
            "last_activity_at": created_at,
            "updated_at": created_at + rng.random(),
            "agent_last_seen_at": None,
            "assignee_last_seen_at": None,
            "contact_last_seen_at": None,
            "first_reply_created_at": None,
            "waiting_since": None,
            "snoozed_until": None,
            "additional_attributes": additional,
            "custom_attributes": {},
            "muted": False,
            "can_reply": True,
            "_pos": rng.random(),
        }

    def message_events(
        self, conversation: dict[str, Any], count: int, start: int, end: int
    ) -> list[tuple[Any, ...]]:
        """(created_at, conversation id, seq, type, content, sender_type, sender_id, private, status, attachment)."""
        rng = self.rng
        if count <= 0:
            return []
        offsets = [0.0]
        for _ in range(count - 1):
            offsets.append(offsets[-1] + max(1.0, rng.expovariate(1 / 1800)))
        span = max(1, end - start)
        scale = min(1.0, span / offsets[-1]) if offsets[-1] > 0 else 1.0
        agent = conversation["assignee_id"] or 2
        agent_name = self.agents[agent]["name"]
        events = []
        sender: tuple[str | None, int | None]
        for seq, offset in enumerate(offsets):
            ts = start + int(offset * scale)
            r = rng.random() if seq else 0.0
            if r < 0.4:
                kind, content, sender = 0, rng.choice(INCOMING_TEXTS), ("Contact", conversation["contact_id"])
                private, status = False, "sent"
            elif r < 0.88:
                private = rng.random() < 0.08
                content = rng.choice(PRIVATE_TEXTS if private else OUTGOING_TEXTS)
                kind, sender = 1, ("User", agent)
                status = rng.choice(["sent", "delivered", "read"])
            elif r < 0.96:
                kind, content, sender = 2, rng.choice(ACTIVITY_TEXTS).format(agent=agent_name), (None, None)
                private, status = False, "sent"
            else:
                kind, content, sender = 3, rng.choice(TEMPLATE_TEXTS), ("User", agent)
                private, status = False, "sent"
            attachment = kind in (0, 1) and rng.random() < 0.03
            events.append(
                (
                    ts,
                    conversation["id"],
                    seq,
                    kind,
                    content,
                    sender[0],
                    sender[1],
                    private,
                    status,
                    attachment,
                )
            )
        return events

    def settle(
        self, conversation: dict[str, Any], messages: list[MessageRow], status_change_before: int
    ) -> None:
        """Derive activity times, first reply, waiting_since and seen-at times from the messages."""
        rng = self.rng
        conv = conversation
        if messages:
            conv["last_activity_at"] = messages[-1].created_at
        replies = [m.created_at for m in messages if m.message_type == 1 and not m.private]
        conv["first_reply_created_at"] = replies[0] if replies else None
        waiting = None
        if conv["status"] == "open":
            for m in messages:
                if m.message_type == 1 and not m.private:
                    waiting = None
                elif m.message_type == 0 and waiting is None:
                    waiting = m.created_at
        conv["waiting_since"] = waiting
        last = conv["last_activity_at"]
        changed = last
        if conv["status"] in ("resolved", "snoozed") and status_change_before > last:
            changed = last + rng.randint(0, min(3600, status_change_before - last))
        conv["updated_at"] = round(changed + rng.random(), 6)
        if conv["status"] == "snoozed":
            conv["snoozed_until"] = iso(status_change_before + rng.randint(1, 7) * DAY)
        if conv["assignee_id"] and rng.random() < 0.8:
            seen = rng.randint(conv["created_at"], max(conv["created_at"], last))
            conv["agent_last_seen_at"] = seen
            conv["assignee_last_seen_at"] = seen
        if rng.random() < 0.5:
            conv["contact_last_seen_at"] = last


def message_counts(rng: random.Random, conversations: int, total: int) -> list[int]:
    """One long conversation (130 messages: more than one `after` page), two empty ones, the rest skewed."""
    counts = [0] * conversations
    if conversations == 0:
        return counts
    remaining = total
    rest = list(range(conversations))
    if conversations >= 10 and total >= 500:
        counts[0] = 130
        remaining -= 130
        rest = list(range(3, conversations))  # 1 and 2 stay empty
    weights = [rng.expovariate(1.0) for _ in rest]
    scale = remaining / sum(weights) if weights else 0
    for i, w in zip(rest, weights, strict=True):
        counts[i] = int(w * scale)
    shortfall = remaining - sum(counts[i] for i in rest)
    for k in range(shortfall):
        counts[rest[k % len(rest)]] += 1
    rng.shuffle(counts)
    return counts


def generate(spec: SizeSpec, seed: int, anchor: int) -> Dataset:
    rng = random.Random(seed)
    agents = make_agents()
    inboxes = make_inboxes(anchor)
    data = Dataset(
        anchor=anchor,
        accounts={
            ACCOUNT_ID: {"id": ACCOUNT_ID, "name": "Sandbox Co", "member": True},
            OTHER_ACCOUNT_ID: {"id": OTHER_ACCOUNT_ID, "name": "Someone Else Inc", "member": False},
        },
        agents=agents,
        inboxes=inboxes,
        account_labels=make_account_labels(),
        contact_attribute_keys=dict(CONTACT_ATTRIBUTE_KEYS),
        contacts={},
        contact_labels={},
        conversations={},
        messages={},
    )
    data.next_label_id = len(data.account_labels) + 1

    # contacts: ids are global DB ids (shared with other accounts), so they have gaps
    factory = ContactFactory(rng)
    n = spec.contacts
    people = shared_people(seed, shared_count(n - min(spec.invisible_contacts, n)))
    factory.phones.update(person.phone for person in people)  # never drawn for anyone else
    times = contact_created_times(rng, n, anchor - YEAR)
    invisible = set(rng.sample(range(n), min(spec.invisible_contacts, n)))
    contact_id = 1000
    for i, created_at in enumerate(times):
        contact_id += 1 if rng.random() < 0.8 else rng.randint(2, 5)
        make = factory.invisible if i in invisible else factory.visible
        data.contacts[contact_id] = make(contact_id, created_at)
    data.next_contact_id = contact_id + 1
    share_people(data, people, seed)
    ids = list(data.contacts)
    visible_ids = [cid for cid in ids if not is_invisible(data.contacts[cid])]
    for cid in rng.sample(visible_ids, min(spec.online_contacts, len(visible_ids))):
        data.contacts[cid]["availability_status"] = "online"
    data.contact_labels = assign_labels(rng, ids, spec.labelled_contacts)

    # conversations: one contact gets 22 (past the 20-item cap of /contacts/{id}/conversations)
    conv_factory = ConversationFactory(rng, agents)
    invisible_ids = [cid for cid in ids if is_invisible(data.contacts[cid])]
    senders: list[int] = []
    if spec.conversations >= 44 and visible_ids:
        senders += [visible_ids[len(visible_ids) // 3]] * 22
    while len(senders) < spec.conversations and ids:
        pool = invisible_ids if invisible_ids and (rng.random() < 0.08 or not visible_ids) else visible_ids
        senders.append(rng.choice(pool))
    latest = anchor - 3600
    drafts = []
    for cid in senders:
        contact = data.contacts[cid]
        created = rng.randint(min(contact["created_at"] + 60, latest), latest)
        drafts.append((created, cid))
    drafts.sort()
    counts = message_counts(rng, len(drafts), spec.messages)
    events: list[tuple[Any, ...]] = []
    for display_id, ((created, cid), count) in enumerate(zip(drafts, counts, strict=True), start=1):
        contact = data.contacts[cid]
        inbox_id = rng.choice(inbox_choices(contact))
        link_inbox(rng, inboxes, contact, inbox_id)
        conv = conv_factory.conversation(display_id, contact, inboxes[inbox_id], created)
        data.conversations[display_id] = conv
        events += conv_factory.message_events(conv, count, created, anchor - 120)
    data.next_conversation_id = len(drafts) + 1

    # message ids follow creation time across all conversations, like a DB sequence
    events.sort()
    message_id = 5000
    by_conversation: dict[int, list[MessageRow]] = {display_id: [] for display_id in data.conversations}
    for ts, conv_id, _seq, kind, content, sender_type, sender_id, private, status, attachment in events:
        message_id += 1
        row = MessageRow(
            message_id, conv_id, ts, kind, content, sender_type, sender_id, private, status, attachment
        )
        by_conversation[conv_id].append(row)
    data.messages = by_conversation
    data.next_message_id = message_id + 1
    for display_id, conv in data.conversations.items():
        conv_factory.settle(conv, by_conversation[display_id], anchor - 60)

    # last_activity_at moves only when the contact sends a message
    for rows in by_conversation.values():
        for m in rows:
            if m.sender_type == "Contact" and m.sender_id is not None:
                contact = data.contacts[m.sender_id]
                if (contact["last_activity_at"] or 0) < m.created_at:
                    contact["last_activity_at"] = m.created_at
    for contact in data.contacts.values():
        if contact["last_activity_at"] is None and rng.random() < 0.35:
            contact["last_activity_at"] = rng.randint(contact["created_at"], anchor - 60)
        if not contact["contact_inboxes"] and rng.random() < 0.6:
            link_inbox(rng, inboxes, contact, rng.choice(inbox_choices(contact)))
    return data


def share_people(data: Dataset, people: list[Person], seed: int) -> None:
    """A third of the visible contacts are people Sendblue knows too: their phone and name come from
    `sandbox.people`, picked among the contacts with a phone by a generator of their own (so the rest
    of the data is what the seed gave before)."""
    rng = random.Random(f"chatwoot-shared-{seed}")
    visible = [c for c in data.contacts.values() if not is_invisible(c)]
    with_phone = [c for c in visible if c["phone_number"]]
    count = min(shared_count(len(visible)), len(with_phone), len(people))
    for contact, person in zip(rng.sample(with_phone, count), people, strict=False):
        contact["phone_number"] = person.phone
        if contact["name"]:
            contact["name"] = person.name
        if contact["email"]:
            local = f"{person.first_name}.{person.last_name}".lower().replace("'", "")
            local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
            contact["email"] = f"{local}.{contact['id']}@{contact['email'].rsplit('@', 1)[1]}"


def is_invisible(contact: dict[str, Any]) -> bool:
    """`Contact.resolved_contacts`: list, search and filter only return contacts with one of these."""
    return not (contact["email"] or contact["phone_number"] or contact["identifier"])


def spec_for(size: str, overrides: dict[str, Any]) -> SizeSpec:
    if size not in SIZE_SPECS:
        raise ValueError(f"unknown size {size!r}; known: {sorted(SIZE_SPECS)}")
    spec = SIZE_SPECS[size]
    values = {k: int(overrides[k]) for k in spec.__dataclass_fields__ if k in overrides}
    if "contacts" in values and "invisible_contacts" not in values:
        values["invisible_contacts"] = values["contacts"] // 20
    if "contacts" in values and "labelled_contacts" not in values:
        values["labelled_contacts"] = values["contacts"] * 3 // 10
    if "contacts" in values and "online_contacts" not in values:
        values["online_contacts"] = min(spec.online_contacts, values["contacts"] // 50)
    if "conversations" in values and "messages" not in values:
        values["messages"] = values["conversations"] * spec.messages // max(spec.conversations, 1)
    return replace(spec, **values)

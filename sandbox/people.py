"""The people both simulators know: customers who talk to the support team in Chatwoot and get texts
through Sendblue, under the same phone number.

`shared_people(seed)` is one deterministic sequence per seed: person i is the same in both simulators
(phone, first and last name, opted out of texts or not). Each simulator gives a third of its own
contacts the first people of the sequence (`shared_count`), so about a third of the smaller account's
people are in both, and roughly one in seven of them opted out in Sendblue (person 1 always did, so
every size and seed has one). Phones are valid US mobiles in E.164, which both APIs accept.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers

FIRST_NAMES = (
    "Ana", "Bruno", "Chloé", "Diego", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
    "Maya", "Nadia", "Omar", "Priya", "Rosa", "Sean", "Tara", "Yusuf", "Zoë", "Amara", "Liam", "Sofia",
)  # fmt: skip
LAST_NAMES = (
    "Silva", "Müller", "Rossi", "Nguyen", "Okafor", "Haddad", "Tanaka", "Moreau", "Cohen", "García",
    "O'Brien", "Kowalski", "Patel", "Kim", "Larsen", "Dubois", "Novak", "Costa", "Ahmed", "Park",
)  # fmt: skip
AREA_CODES = ("206", "312", "415", "512", "617", "646", "713", "773", "917", "303")
OPT_OUT_RATE = 0.15


@dataclass(frozen=True)
class Person:
    phone: str  # E.164
    first_name: str
    last_name: str
    opted_out: bool  # of Sendblue texts

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def shared_count(contacts: int) -> int:
    """How many of a simulator's `contacts` are people the other simulator knows too."""
    return contacts // 3


def _people(seed: int) -> Iterator[Person]:
    rng = random.Random(f"shared-people-{seed}")
    seen: set[str] = set()
    for i in itertools.count():
        while True:
            exchange = rng.randint(200, 999)
            phone = f"+1{rng.choice(AREA_CODES)}{exchange}{rng.randint(0, 9999):04d}"
            if (
                exchange % 100 != 11
                and phone not in seen
                and phonenumbers.is_valid_number(phonenumbers.parse(phone))
            ):
                break
        seen.add(phone)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        opted_out = rng.random() < OPT_OUT_RATE or i == 1
        yield Person(phone, first, last, opted_out)


def shared_people(seed: int, count: int) -> list[Person]:
    """The first `count` people of the seed's sequence (a prefix of any longer list)."""
    return list(itertools.islice(_people(seed), max(0, count)))

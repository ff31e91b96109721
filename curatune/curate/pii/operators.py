"""Replacing what was found: entity linking within a conversation, and the operators.

One :class:`EntityBook` per conversation gives every distinct entity a number per type, in order
of first appearance; person mentions are linked by their name tokens, so "Maria Gonzalez" in turn
1 and "Maria" in turn 5 are the same ``<PERSON_1>`` (and the same surrogate).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from faker import Faker

from curatune.curate.pii.recognizers import ContextNameRecognizer

# Titles and greetings ("Ms", "Dr.", "Bye") are no name tokens: "Ms Gonzalez" is the "Maria Gonzalez" before it.
_NOT_NAME_TOKENS = frozenset(w.casefold() for w in ContextNameRecognizer.NOT_NAMES)


def canonical(entity: str, value: str) -> str:
    if entity in ("PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "SPOKEN_DIGITS"):
        return re.sub(r"[^0-9a-z]", "", value.lower())
    if entity == "HANDLE":  # "@cminh730" and the user name "cminh730" are one person's
        value = value.lstrip("@")
    return " ".join(re.sub(r"[^\w@.+-]", " ", value.lower()).split())


@dataclass
class EntityBook:
    """Numbers entities of one conversation; links person mentions that share name tokens."""

    numbers: dict[tuple[str, str], int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    persons: list[tuple[set[str], str]] = field(default_factory=list)  # (tokens, entity key)

    def key(self, entity: str, value: str) -> tuple[str, str]:
        canon = canonical(entity, value)
        if entity != "PERSON":
            return entity, canon
        tokens = {t for t in canon.split() if len(t) > 1 and t.strip(".") not in _NOT_NAME_TOKENS}
        for known, key in self.persons:
            if tokens and (tokens <= known or known <= tokens):
                known |= tokens
                return "PERSON", key
        self.persons.append((set(tokens), canon))
        return "PERSON", canon

    def number(self, entity: str, value: str) -> tuple[int, str]:
        key = self.key(entity, value)
        if key not in self.numbers:
            self.counters[entity] = self.counters.get(entity, 0) + 1
            self.numbers[key] = self.counters[entity]
        return self.numbers[key], key[1]


class Replacer:
    """Turns (entity, value) into its replacement under the configured operator for that type."""

    def __init__(self, default: str, per_entity: dict[str, str], secret: bytes) -> None:
        self.default, self.per_entity, self.secret = default, per_entity, secret

    def __call__(self, entity: str, value: str, book: EntityBook, piece: str | None = None) -> str:
        """The replacement of ``value``; of a value split over turns, each ``piece`` is replaced by the
        whole value's replacement (one placeholder, hash or surrogate), a mask by its own length."""
        op = self.per_entity.get(entity, self.default)
        n, key = book.number(entity, value)
        if op == "placeholder":
            return f"<{entity}_{n}>"
        if op == "mask":
            return "*" * len(value if piece is None else piece)
        digest = hmac.new(self.secret, f"{entity}|{key}".encode(), hashlib.sha256).hexdigest()
        if op == "hash":
            return f"<{entity}_{digest[:10]}>"
        return self._surrogate(entity, value, key, int(digest[:15], 16))

    @staticmethod
    def _surrogate(entity: str, value: str, key: str, seed: int) -> str:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        if entity == "PERSON":
            first, last = fake.first_name(), fake.last_name()
            if len(value.split()) > 1:
                return f"{first} {last}"
            # A one-word mention of a linked person becomes the surrogate's first name, or its surname
            # where it is the surname of the person's first mention ("Ms Gonzalez" after "Maria Gonzalez").
            words = key.split()
            return last if len(words) > 1 and canonical(entity, value) == words[-1] != words[0] else first
        makers = {"EMAIL_ADDRESS": fake.email, "PHONE_NUMBER": fake.phone_number,
                  "CREDIT_CARD": lambda: fake.credit_card_number(card_type="visa16"), "IBAN_CODE": fake.iban,
                  "STREET_ADDRESS": fake.street_address, "ZIP_CODE": fake.postcode, "LOCATION": fake.city,
                  "IP_ADDRESS": fake.ipv4, "URL": fake.url, "US_SSN": fake.ssn,
                  # "@" only where it was written: "Username: cminh730" gets a bare user name.
                  "HANDLE": lambda: "@"[:value.startswith("@")] + fake.user_name(),
                  # A PIN stays a PIN of its length, so a reader still sees what was asked for.
                  "PASSCODE": lambda: fake.numerify("#" * len(value)) if value.isdigit() else fake.password(
                      length=max(8, len(value)), special_chars=False),
                  "DATE_OF_BIRTH": lambda: _birth_date(fake, value)}
        return makers.get(entity, lambda: fake.bothify("??-########").upper())()


def _birth_date(fake: Faker, value: str) -> str:
    """A fake adult's birth date, written with the original's separator where it has one."""
    sep = re.search(r"\d([/.-])\d", value)
    return fake.date_of_birth(minimum_age=18).strftime(f"%d{sep.group(1)}%m{sep.group(1)}%Y" if sep else "%d %B %Y")

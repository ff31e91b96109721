"""Personal data planted in the demo transcripts, from seeded Faker generators.

Names follow the customer's language variety (Nigerian names for en-NG, German, Spanish,
Vietnamese... for non-native speakers); phone numbers, IBANs and addresses follow the region.
Every value is returned with its entity type (the names the anonymiser reports), so the
generator can list it in ``pii.parquet``. Card numbers come from Faker and pass the Luhn check.
"""

from __future__ import annotations

import random
import re
import unicodedata

from faker import Faker

NAME_LOCALES: dict[str, tuple[str, ...]] = {
    "en-US": ("en_US",), "en-GB": ("en_GB",), "en-IN": ("en_IN",), "en-NG": ("en_NG",),
}
# Non-native speakers' names depend on where they live.
NON_NATIVE_NAME_LOCALES: dict[str, tuple[str, ...]] = {
    "NA": ("es_MX", "vi_VN"), "EU": ("de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "nl_NL"),
    "APAC": ("id_ID", "vi_VN"), "LATAM": ("es_MX", "pt_BR"),
}
PHONE_LOCALES: dict[str, tuple[str, ...]] = {"NA": ("en_US",), "EU": ("en_GB",), "LATAM": ("en_US",)}
# Street addresses in US and UK formats only: Indian PINs and Australian 4-digit postcodes are not
# recognised by the anonymiser yet, and the demo's leak scan must pass.
ADDRESS_LOCALES: dict[str, tuple[str, ...]] = {"NA": ("en_US",), "EU": ("en_GB",), "APAC": ("en_US", "en_GB"),
                                               "LATAM": ("en_US",)}
# IBANs exist where banks use them.
IBAN_LOCALES: dict[str, tuple[str, ...]] = {
    "NA": ("en_GB",), "EU": ("en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"), "APAC": ("en_GB",),
    "LATAM": ("pt_BR", "es_ES"),
}
ALL_LOCALES = tuple(sorted({loc for table in (NAME_LOCALES, NON_NATIVE_NAME_LOCALES, ADDRESS_LOCALES, IBAN_LOCALES)
                            for locs in table.values() for loc in locs}))
CARD_TYPES = ("visa16", "mastercard", "amex", "discover")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _phrase_words() -> frozenset[str]:
    from curatune.demo import intents, phrasing

    text = " ".join(str(v) for mod in (intents, phrasing) for k, v in vars(mod).items()
                    if k.isupper() and isinstance(v, tuple | dict))
    return frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", text))


COMMON_WORDS = _phrase_words() | {"hope", "will", "may", "june", "joy", "faith", "grace", "mark", "bill", "rich",
                                  "sunny", "summer", "april", "chance", "price", "case", "page", "long", "young"}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class PiiSource:
    """Seeded personal values. One Faker per locale, each seeded from ``seed`` and its name, so a
    value depends only on the seed and the order of calls."""

    def __init__(self, seed: int, rng: random.Random) -> None:
        self.rng = rng
        self._fakers: dict[str, Faker] = {}
        for i, loc in enumerate(ALL_LOCALES):
            fake = Faker(loc)
            fake.seed_instance(seed * 1009 + i)
            self._fakers[loc] = fake

    def _faker(self, locales: tuple[str, ...]) -> Faker:
        return self._fakers[self.rng.choice(locales)]

    def person(self, variety: str, region: str) -> tuple[str, str]:
        return self._name(NAME_LOCALES.get(variety) or NON_NATIVE_NAME_LOCALES[region])

    def agent(self) -> tuple[str, str]:
        return self._name(("en_US", "en_GB"))

    def _name(self, locales: tuple[str, ...]) -> tuple[str, str]:
        # Names that are also words of the transcripts ("Hope you can help", "the Price") would make
        # the planted truth ambiguous: such names are drawn again.
        fake = self._faker(locales)
        first, last = fake.first_name(), fake.last_name()
        while first.lower() in COMMON_WORDS or last.lower() in COMMON_WORDS:
            first, last = fake.first_name(), fake.last_name()
        return first, last

    def email(self, first: str, last: str) -> str:
        fake = self._fakers["en_US"]
        if self.rng.random() < 0.5:
            return fake.email()
        sep = self.rng.choice((".", "_", ""))
        local = _ascii(f"{first}{sep}{last}").lower().replace(" ", "")
        if self.rng.random() < 0.4:
            local += str(self.rng.randrange(1, 99))
        return f"{local}@{fake.free_email_domain()}"

    def phone(self, region: str) -> str:
        if region == "APAC":  # Faker's en_IN / en_AU numbers are often not dialable; write mobiles as people do
            rng = self.rng
            if rng.random() < 0.6:
                digits = f"{rng.choice('6789')}{rng.randrange(10**9):09d}"
                return rng.choice((f"+91 {digits[:5]} {digits[5:]}", f"+91-{digits}", f"0{digits[:5]} {digits[5:]}"))
            d = f"4{rng.randrange(10**8):08d}"
            return rng.choice((f"+61 {d[:3]} {d[3:6]} {d[6:]}", f"0{d[:3]} {d[3:6]} {d[6:]}"))
        return self._faker(PHONE_LOCALES[region]).phone_number()

    def phone_digits(self) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(self.rng.choice((10, 11))))

    def card(self) -> str:
        number = self._fakers["en_US"].credit_card_number(card_type=self.rng.choice(CARD_TYPES))
        if len(number) == 16 and self.rng.random() < 0.4:  # written in groups, as people type them
            sep = self.rng.choice((" ", "-"))
            number = sep.join(number[i:i + 4] for i in range(0, 16, 4))
        return number

    def iban(self, region: str) -> str:
        return self._faker(IBAN_LOCALES[region]).iban()

    def address(self, region: str) -> tuple[str, str, str]:
        """(street address, city, postcode); street lines joined on one line."""
        fake = self._faker(ADDRESS_LOCALES[region])
        street = fake.street_address()
        if "\n" in street or not street[:1].isdigit():  # "Flat 6\nJenkins Way": give it a house number
            street = f"{fake.building_number()} {fake.street_name()}"
        return street, fake.city(), fake.postcode()

    def order_id(self) -> str:
        return f"ORD-{self.rng.randrange(10**6):06d}"

    def account_id(self) -> str:
        return f"ACC-{self.rng.randrange(10**8):08d}"

    def handle(self, first: str, last: str) -> str:
        base = _ascii(self.rng.choice((f"{first}{last}", f"{first}_{last[:1]}", f"{last}{first[:1]}"))).lower()
        return f"@{base.replace(' ', '')}{self.rng.choice(('', str(self.rng.randrange(10, 999))))}"

    @staticmethod
    def spoken(digits: str) -> str:
        """Digits read out on a call: "four one one ..." (what a phone transcript holds)."""
        return " ".join(DIGIT_WORDS[int(d)] for d in digits if d.isdigit())


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return len(digits) >= 12 and total % 10 == 0

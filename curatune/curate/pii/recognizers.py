"""Recognizers that support transcripts need and Presidio does not ship.

Street addresses and postcodes, order/ticket/account numbers (patterns from config, and named
before or after they are told: "my order number is …"), PINs, codes, passwords and dates of birth
by their name (in the same turn, or in the question the turn answers; a PIN also where a turn
gives it later by "it was" or "try", named up to 400 characters before), digits spoken in call
transcripts, @handles, a looser phone pattern for formats the phonenumbers library rejects
(``(331)770-6690x7439``), and person names found from context cues ("my name is …",
"this is … speaking", "thanks …", sign-offs) and from a first-name/surname gazetteer (Faker's
locale name lists), so names are still found when the spaCy model is missing or misses them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

# The one language detection supports: the cue and context words here, Presidio's predefined
# recognizers as loaded, and the spaCy model are English. ``[curate.anonymise] language`` must say so.
LANGUAGE = "en"
DIGIT_WORDS = "zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple"


def _after_words(*words: str) -> str:
    """Right after one of ``words``, alone or with one separator: one lookbehind a width, as Python's
    re wants them."""
    return "(?:" + "|".join(rf"(?<=\b{w}{sep})" for w in words for sep in ("", "[-#: ]")) + ")"


# A code's own prefix is part of the value ("ORD-740498", "ACCT#12345678"); a word before the number
# stays in the text, as it does after the cued recognizers: "my <ACCOUNT_ID_1> was locked" lost what was
# locked, "my account <ACCOUNT_ID_1> was locked" keeps it.
DEFAULT_ID_PATTERNS = {
    "ORDER_ID": rf"\b(?:ORD|ORDR)[-#: ]?\d{{5,10}}\b|{_after_words('ORDER')}\d{{5,10}}\b",
    # Not "in case 2020 comes round again".
    "TICKET_ID": (rf"\b(?:TKT|INC)[-#: ]?\d{{4,10}}\b|"
                  rf"{_after_words('TICKET', 'CASE')}(?<!\bin case)(?<!\bin case[-#: ])\d{{4,10}}\b"),
    "ACCOUNT_ID": rf"\b(?:ACC|ACCT|CUST)[-#: ]?\d{{6,12}}\b|{_after_words('ACCOUNT')}\d{{6,12}}\b",
}


@lru_cache(maxsize=1)
def street_suffixes() -> list[str]:
    from faker.providers.address.en_GB import Provider as GB
    from faker.providers.address.en_US import Provider as US

    words = set(US.street_suffixes) | set(getattr(GB, "street_suffixes", ())) | {
        "St", "Ave", "Rd", "Dr", "Ln", "Blvd", "Ct", "Pl", "Sq", "Hwy", "Pkwy", "Cres", "Close", "Gardens", "Mews"}
    return sorted(words, key=len, reverse=True)


@lru_cache(maxsize=1)
def name_gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """First names and surnames from Faker's English locales."""
    firsts, lasts = _faker_names()
    return (frozenset(f for f in firsts if f not in COMMON_WORD_NAMES),
            frozenset(s for s in lasts if s not in COMMON_WORD_NAMES))


@lru_cache(maxsize=1)
def word_first_names() -> frozenset[str]:
    """The COMMON_WORD_NAMES that are first names ("Mark", "Will"; not "Good", "Box"): a name only where
    nothing but a name fits ("…your name, please?" / "It's mark !")."""
    return COMMON_WORD_NAMES & _faker_names()[0]


@lru_cache(maxsize=1)
def _faker_names() -> tuple[frozenset[str], frozenset[str]]:
    firsts: set[str] = set()
    lasts: set[str] = set()
    # Customers' names come from everywhere: every Latin-script Faker locale contributes.
    for loc in ("en_US", "en_GB", "en_IN", "en_CA", "en_AU", "en_IE", "en_NZ", "de_DE", "fr_FR", "es_ES", "es_MX",
                "it_IT", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI", "cs_CZ", "tr_TR",
                "ro_RO", "hu_HU", "id_ID", "fil_PH", "vi_VN", "sk_SK", "hr_HR", "sl_SI", "et_EE", "lv_LV", "lt_LT"):
        try:
            mod = __import__(f"faker.providers.person.{loc}", fromlist=["Provider"])
        except ImportError:
            continue
        p = mod.Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            firsts.update(getattr(p, attr, ()) or ())
        lasts.update(getattr(p, "last_names", ()) or ())
    return frozenset(firsts), frozenset(lasts)


# Names that are also ordinary English in support text, left out of the gazetteer: they would flood the results.
COMMON_WORD_NAMES = frozenset({
    "Will", "May", "June", "Mark", "Bill", "Grant", "Chance", "Hope", "Faith", "Joy", "Rich", "Sunny", "Page", "Case",
    "Price", "Long", "Young", "Black", "White", "Brown", "Green", "Gray", "Bond", "Bank", "Card", "Cash", "Hall",
    "Love", "Day", "Hill", "Wood", "Rose", "Summer", "April", "Box", "Lane", "Street", "North", "West", "Best", "King",
    "Good", "Major", "Ball", "Field", "Gold", "Fox", "Park"})


@lru_cache(maxsize=1)
def _folded_names() -> tuple[frozenset[str], frozenset[str]]:
    firsts, lasts = name_gazetteer()
    return frozenset(map(str.casefold, firsts)), frozenset(map(str.casefold, lasts))


def known_name(word: str, *, first_only: bool = False) -> bool:
    """Whether the gazetteer holds ``word``, in any case, as a first name (or, unless ``first_only``, a surname)."""
    firsts, lasts = _folded_names()
    return word.casefold() in firsts or (not first_only and word.casefold() in lasts)


@lru_cache(maxsize=1)
def common_english_words() -> frozenset[str]:
    """About a thousand of the commonest English words, in lower case ("little", "line", "card"): Faker's
    en_US lorem list, the one offline word list at hand (spaCy's small models carry no word frequencies)."""
    from faker.providers.lorem.en_US import Provider

    return frozenset(w.casefold() for w in Provider.word_list)


@lru_cache(maxsize=1)
def vocabulary_words() -> frozenset[str]:
    """The whole words of the embedded default encoder's WordPiece vocabulary (about 22,000 in lower case,
    learned from English books and Wikipedia: "dumb", "anymore", and common first names too). Wider than
    Faker's list, so it tells a word from an unknown name where the gazetteer has had its say."""
    from curatune.embeddings import DEFAULT_MODEL, resolve_model_path

    vocab = Path(resolve_model_path(DEFAULT_MODEL)) / "vocab.txt"
    return frozenset(w for w in vocab.read_text(encoding="utf-8").splitlines() if w.isalpha() and w.islower())


def ordinary_word(word: str) -> bool:
    """A word no name is spelt like: a stop word, a common English word, a word names are not
    (ContextNameRecognizer.NOT_NAMES), or an adverb in -ly ("Unfortunately"); judged without a
    possessive ("Mother's"). A known first name or surname, or a name the gazetteer leaves out as a
    word (Bill, Mark), stays a name."""
    base = re.split(r"['’]", word)[0]
    folded = base.casefold()
    if not base or known_name(base) or base.capitalize() in COMMON_WORD_NAMES:
        return False
    return (folded in stop_words() or folded in common_english_words() or base.capitalize() in
            ContextNameRecognizer.NOT_NAMES or (folded.endswith("ly") and len(folded) > 5))


# Common surnames left out of the gazetteer as common words: the surname in "Sarah brown" answering
# "your full name?", and nowhere else.
COMMON_WORD_SURNAMES = frozenset({"Black", "White", "Brown", "Green", "Gray", "Hall", "Hill", "Wood", "King", "Young",
                                  "Long", "Price"})


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | {"calling", "writing", "trying", "looking", "waiting", "sorry", "happy", "glad"}


def acronym(word: str) -> bool:
    """Capitals only, short and no known name: "RSVP", "ASAP", "AI" (not "ANGELA")."""
    return word.isupper() and len(word) <= 5 and not known_name(word)


def is_stop_word(word: str) -> bool:
    """Whether ``word`` is a stop word, judged without a clitic or possessive: "It's" and "That's"
    are stop words, "O'Brien" is not."""
    return re.split(r"['’]", word.casefold())[0] in stop_words()


# Stop words that are words of place names too: "Frankfurt am Main", "Burton upon Trent", "Isle of Man".
PLACE_STOP_WORDS = frozenset({"am", "an", "on", "upon", "of"})


def _no_stop_word() -> str:
    """A look-ahead refusing a word that is a stop word (but PLACE_STOP_WORDS), in any case but two
    capitals: a country or state code ("Aalborg NO 9100", "Dusino San Michele, AT 31295")."""
    words = sorted((w for w in stop_words() - PLACE_STOP_WORDS if w[:1].isalpha()), key=len, reverse=True)
    return rf"(?!(?![A-Z]{{2}}\b)(?i:{'|'.join(map(re.escape, words))})\b)"


def address_recognizer() -> PatternRecognizer:
    suffix = "|".join(re.escape(s) for s in street_suffixes())
    # The full stop of an abbreviation ("St."), never a sentence's.
    dot = r"(?:(?<=\b(?:St|Rd|Dr|Ln|Ct|Pl|Sq))\.|(?<=\b(?:Ave|Hwy))\.|(?<=\b(?:Blvd|Pkwy|Cres))\.)?"
    unit = r"(?:,?\s*(?:Apt\.?|Apartment|Suite|Unit|Flat|#)\s*\w{1,6})?"
    # A building number before the street's own: "3485 615 Benedum Drive", "2224 Trenerys gate 232".
    lead = r"(?:\d{1,6}[ \t]+)?"
    street_type = (r"Rua|Rue|rue|Avenida|Av\.|Avenue|avenue|Via|Calle|Carrer|Strada|Rruga|ul\.|Ulica|Viale|Piazza|"
                   r"Largo|Travessa|Quinta|Boulevard|Chemin|Place|Route|Plaza|Paseo|Camino")
    particle = r"(?:de|du|des|la|le|do|da|dos|das|di|dei|del|della|van|von|der|den)"
    patterns = [
        Pattern("street_with_suffix",
                rf"\b{lead}\d{{1,6}}[A-Za-z]?\s+(?:[A-Z][\w'.-]*\s+){{0,4}}(?:{suffix})\b{dot}{unit}", 0.6),
        # International: "6750 Koskikatu 25 Apt. 864", "Hauptstrasse 12".
        Pattern("number_name_number",
                rf"\b{lead}\d{{1,6}}\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){{0,2}}\s+\d{{1,5}}\b" + unit, 0.45),
        Pattern("name_then_number",
                rf"\b{lead}[A-Z][a-zà-ÿ]+(?:strasse|straße|str\.|gasse|weg|katu|gatan|gade|vej|laan|straat|allee|"
                r"platz|plein|ulica|utca|calle|rue|via|rua)\s*\d{1,5}[a-z]?\b" + unit, 0.55),
        # A street type as its own word after the name: "Trenerys gate 232", "Piroska u. 97", "Jagerij 64".
        Pattern("name_type_number",
                rf"\b{lead}[A-Z][\w'’-]+[ \t](?:gate|gata|vei|veien|vej|vegen|straat|weg|laan|tie|katu|utca|u\.|"
                r"ulica|strasse|straße|gasse|allee|platz)[ \t]\d{1,5}[a-z]?\b\.?" + unit, 0.55),
        Pattern("po_box", r"\b(?:P\.?\s?O\.?\s?Box|PO Box|Postfach)\s+\d{1,6}\b", 0.6),
        # Street type first: "Rua Diadema 1903", "rue du centre 320", "ul. Narewska 94", "Via Roma 131".
        Pattern("type_name_number",
                rf"\b{lead}(?:{street_type})\s+(?:[\w'’.-]+\s+){{0,4}}?\d{{1,5}}[a-z]?\b" + unit, 0.55),
        # Numbered, street type first: "63 Rue de Kairouan", "33 avenue de Provence".
        Pattern("number_type_name",
                rf"\b{lead}\d{{1,6}}[ \t]+(?:{street_type})(?:[ \t]+{particle})*(?:[ \t]+[A-Z][\w'’.-]*){{1,3}}"
                + unit, 0.5),
        # Two numbers, then capitalised words: "9816 214 Pavlou Drandaki", "7943 2027 Prospect St".
        Pattern("two_numbers_name", r"\b\d{1,6}[ \t]+\d{1,6}[ \t]+[A-Z][\w'’.-]+(?:[ \t]+[A-Z][\w'’.-]+){0,3}"
                + unit, 0.5),
        # A unit on its own line or after a comma: "Apt. 478", "Suite 960".
        Pattern("unit", r"\b(?:Apt\.?|Apartment|Suite|Unit|Flat)\s*#?\s*\d{1,6}[A-Za-z]?\b", 0.5),
    ]
    return PatternRecognizer(supported_entity="STREET_ADDRESS", patterns=patterns, name="StreetAddressRecognizer",
                             context=["address", "live", "street", "deliver", "ship", "send", "moved", "located"],
                             global_regex_flags=re.MULTILINE)


def postcode_recognizer() -> PatternRecognizer:
    patterns = [
        Pattern("uk_postcode", r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", 0.6),
        Pattern("us_zip_plus4", r"\b\d{5}-\d{4}\b", 0.5),
        # Brazilian and Portuguese postcodes.
        Pattern("br_cep", r"\b\d{5}-\d{3}\b", 0.45),
        Pattern("pt_postcode", r"\b\d{4}-\d{3}\b", 0.4),
        Pattern("five_digits", r"\b\d{5}\b", 0.3),
        Pattern("canada", r"\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b", 0.5),
    ]
    return PatternRecognizer(supported_entity="ZIP_CODE", patterns=patterns, name="PostcodeRecognizer",
                             context=["zip", "postcode", "post code", "postal", "address", "street", "apt", "suite",
                                      "city", "state"],
                             global_regex_flags=re.MULTILINE)


# Marks a finding's metadata: found by the words around it, which say what it is.
CUED = "curatune_cued"


class CueRecognizer(EntityRecognizer):
    """Values found by what surrounds them: each pattern's named group ``v`` is the entity, the rest
    of the match is the cue ("Phone:", "zip code is", the place name before a postcode), which is
    not part of the value. Presidio's PatternRecognizer can only report whole matches."""

    def __init__(self, entity: str, patterns: list[tuple[str, float]], name: str, flags: int = 0) -> None:
        super().__init__(supported_entities=[entity], name=name, supported_language=LANGUAGE)
        self._patterns = [(re.compile(p, flags), score) for p, score in patterns]

    def load(self) -> None:  # compiled in __init__
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        return [RecognizerResult(entity, m.start("v"), m.end("v"), score, recognition_metadata={CUED: True})
                for rx, score in self._patterns for m in rx.finditer(text)]


def cued(result: RecognizerResult) -> bool:
    """Whether a cue found this value (``CueRecognizer``), which beats an uncued finding of its words."""
    return bool((result.recognition_metadata or {}).get(CUED))


class CueKeepingEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context step, then, where a cue found a value that another recognizer found too (same
    type and span), only the cued finding, at the higher of their scores. Presidio's de-duplication,
    which comes next, keeps one of two equal findings through a set, so the cue mark (which beats NER's
    other type for the same words, ``resolve_overlaps``) would survive by chance: the cued place in
    "home city Assen" one run, the uncued one, losing to NER's PERSON, the next. A cue is context too."""

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult], nlp_artifacts,
                              recognizers: list[EntityRecognizer], context: list[str] | None = None,
                              ) -> list[RecognizerResult]:
        results = super().enhance_using_context(text, raw_results, nlp_artifacts, recognizers, context)
        found = {(r.entity_type, r.start, r.end): r for r in results if cued(r)}
        for r in results:
            if (kept := found.get((r.entity_type, r.start, r.end))) is not None:
                kept.score = max(kept.score, r.score)
        return [r for r in results if cued(r) or (r.entity_type, r.start, r.end) not in found]


def cued_postcode_recognizer() -> CueRecognizer:
    postcode = r"\d{3,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d"
    return CueRecognizer("ZIP_CODE", [
        (rf"(?i:\b(?:zip|post(?:al)?)(?:\s*code)?\s*(?:is|:|#)?\s*)(?P<v>{postcode})\b", 0.7),
        # The last line of an address: "Finland 80896", "ASKER 1386", "Lake Michelle, 65953". A stop
        # word makes it a sentence ending in a number: "balance is 1500", "customer since 2015".
        (rf"(?m)^[^\w\n]*(?:{_no_stop_word()}[^\W\d_][\w'.-]*[ ,]+){{1,4}}(?P<v>\d{{4,6}}(?:-\d{{3,4}})?)[ \t]*$",
         0.55),
        (r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2},?\s(?P<v>\d{5}(?:-\d{4})?)\b", 0.5),
    ], "CuedPostcodeRecognizer")


def cued_address_recognizer() -> CueRecognizer:
    return CueRecognizer("STREET_ADDRESS", [
        # "at the corner of Dalbraut 99 and Frederikke Coves"
        (r"\b(?i:the corner of)\s+(?P<v>[^\W\d_][^.,;!?\n]{2,60}?\s(?:and|&)\s[^.,;!?\n]{2,40}?)(?=[.,;!?\n]|$)", 0.55),
    ], "CuedAddressRecognizer")


def cued_place_recognizer() -> CueRecognizer:
    # The town of an address line: "..., New Monique 14748", "..., Lake Michelle, 65953". The gazetteer
    # cannot know every town (nor Faker's invented ones); its place before the postcode can.
    return CueRecognizer("LOCATION", [
        (r",[ \t]*(?P<v>[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2}),?[ \t]\d{5}(?:-\d{4})?\b", 0.5),
        (r"^(?P<v>[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2}),?[ \t]\d{5}(?:-\d{4})?[ \t]*$", 0.5),
        # A town after words that only lead to places: "flew to Khandallah", "originally from ΕΓΚΩΜΗ".
        (r"\b(?i:(?:flew|fly|flying|moved|moving|relocated|travell?ed|drove|commute[sd]?) (?:to|from|here from)|"
         r"arrived (?:at|in)|originally from|grew up in|born in|based in|I'?m in|I am in|we'?re in|lives? in|"
         r"living in|home (?:city|town)|returned to)"
         r"[ \t]+(?P<v>(?-i:[^\W\d_a-z][^\W\d_]+(?:[ -](?:[^\W\d_a-z][^\W\d_]+|nad|an|am|de|del|la|sur)){0,3}))",
         0.5),
    ], "CuedPlaceRecognizer", re.MULTILINE)


def cued_phone_recognizer() -> CueRecognizer:
    number = r"\+?\(?\d[\d ()./-]{4,18}\d"
    return CueRecognizer("PHONE_NUMBER", [
        # "Phone:\n780 6326", "mobile number is 51 516 33 75": short local numbers the parser rejects.
        (rf"(?i:\b(?:phone|tel(?:ephone)?|mobile|mob|cell|fax)\b(?:\s*(?:number|no\.?|#))?\s*(?:is\s+)?[:#]?\s*)"
         rf"(?P<v>{number})", 0.6),
        (rf"(?P<v>{number})(?i:\s*-?\s*(?:office|fax|mobile|mobil|home|work|cell)\b)", 0.6),
    ], "CuedPhoneRecognizer")


# Words that name an identifier of each type. A number told after its name ("my order number is
# 48291048", "Order ID: 3348917502") is as identifying as one with its prefix glued on (ORD-123456,
# what the patterns above need); without the cue it is typed by its shape alone (phone, NHS) or missed.
# A tracking number points at one delivery, as an order number does. Words that are also speaker
# roles (customer, client, member) name an identifier only with a noun after them: in a transcript
# "customer: 9431" is who spoke.
ID_CUES = {
    "ORDER_ID": ("order|purchase|invoice|tracking|shipment|parcel", ""),
    "TICKET_ID": (r"ticket|(?<!\bin )case|incident|complaint|claim|reference|confirmation|booking", ""),
    "ACCOUNT_ID": ("account|acct|membership|loyalty", "customer|member|client"),
}
ID_NOUN = r"(?:number|no\.?|num|nr|id|code|ref(?:erence)?)"
_ID_JOIN = r"(?:\s*(?:\bis\b|\bwas\b|[:#=]))*\s*"
# One token of letters, digits and inner hyphens holding at least ``n`` digits; an ISO date is not one.
_ID_VALUE = (r"(?!\d{{4}}-\d\d?-\d\d?\b)(?=(?:[A-Za-z-]*\d){{{n}}})"
             r"[A-Za-z0-9](?:[A-Za-z0-9-]{{2,28}}[A-Za-z0-9])(?![\w-])")
# Words that hedge a value the customer half remembers: "It might be 3100", "either 3941 or 0314".
_HEDGE = (r"either|maybe|perhaps|probably|actually|now|just|i think|i believe|"
          r"(?:it )?(?:might|may|could|should|must|would) be|try")
# What an answer may say around the value it gives: "Yes it is 95381901.", "sure, my pin is 9431".
_ANSWER_FILLER = (r"(?i:(?:yes|yeah|yep|sure(?: thing)?|ok(?:ay)?|oh|um|uh|right|of course|certainly|no problem|"
                  rf"you got it|here you go|here it is|it'?s|its|it is|it was|that'?s|that is|{_HEDGE}|"
                  r"my [a-z]+(?: [a-z]+)? is)[ \t,.!:-]*)*")


def _answer(cue: str, value: str, *, whole: bool = True, reach: int = 60, before: str = "") -> str:
    """A line naming what it asks for within ``reach`` characters of its end ("…your account number,
    please?", "Right, and your PIN as well please."), then a transcript's next turn that gives only
    the value, or (``whole`` false) opens with it; ``before`` may stand before the value in that turn
    ("9431 or 3100")."""
    end = r"[^\w\n]*$" if whole else r"(?!\w)"
    return rf"(?i:\b(?:{cue})\b)[^\n]{{0,{reach}}}\n{SPEAKER_PREFIX}{_ANSWER_FILLER}{before}(?P<v>{value}){end}"


def _asked(cue: str, *, reach: int = 60, turns_between: int = 0) -> str:
    """A line naming ``cue`` (in any case) and ending in a question within ``reach`` characters of it,
    then up to ``turns_between`` other turns, then the speaker's prefix of the turn that answers."""
    between = rf"(?:[^\n]*\n){{0,{turns_between}}}?" if turns_between else ""
    return rf"(?i:{cue})[^\n]{{0,{reach}}}\?[ \t]*\n{between}{SPEAKER_PREFIX}"


def _join(words: str, punct: str) -> str:
    """What may stand between a value's name and the value on one line, in any case: the ``words``
    (alternatives that say where they end) and ``punct`` characters, with spaces between."""
    return rf"(?i:[ \t]*(?:\b(?:{words})|[{punct}]))*[ \t]*"


def _given_later(named: str, asked: str, *, across_turns: bool = False) -> str:
    """What leads to a value told after free words: its name (``named``) earlier in the turn, or a name
    (``asked``) in the line the turn answers, then "it's", "it was", "it might be", "maybe", "perhaps",
    "either" or "try (using, them)": "I remember my PIN again. Maybe. It was either 3100 or 7402", "Right,
    and your PIN as well please." / "I don't recall. It could be either 0314" or "I'm not sure. Maybe
    9503?". Not "is" alone: "my PIN is blocked and my balance is 2500". No digit between: the value is
    the first number after the name. ``across_turns``: the name may also stand in an earlier turn, up to
    400 characters back, with no number but a date between (a customer who could not give the PIN when
    asked, then, after giving their date of birth, "Actually I remember now. It was either 9503 or
    7402")."""
    lead = (r"(?i:\b(?:it(?:'?s| is| was)|its|try(?:[ \t]+(?:using|with|them|these|those))?|"
            r"(?:it )?(?:might|may|could|must) be|(?:it )?seems to(?: either)? be|maybe|perhaps|possibly|"
            r"either)\b)"
            + _join(rf"(?:{_HEDGE})(?=\W|\d)", r":#=.!,-"))
    # Across turns a date may stand between: the date of birth asked for while the PIN was not known.
    gap = rf"(?:[^\d]|(?=\d)(?i:{_DATE})(?!\w)){{0,400}}?" if across_turns else r"[^\n\d]{0,100}?"
    return (rf"(?:(?i:\b(?:{named})\b){gap}|(?i:\b(?:{asked})\b)[^\n]{{0,80}}\n{SPEAKER_PREFIX}[^\n\d]{{0,100}}?)"
            + lead)


# After a value told later than its name: an amount is not such a value ("it was 2500 dollars").
NOT_AMOUNT = r"(?![ \t]*(?i:dollars|pounds|euros?|bucks|usd|gbp|eur|%))"


def cued_id_recognizers() -> list[CueRecognizer]:
    """Order, ticket and account numbers named before they are told: after the name and its noun
    ("order number is", "case no.", "customer ID:"), or as the next turn's whole answer to a line
    that names them, a token with 3 or more digits; after the bare name ("order 48291048",
    "account: 12345678") or before the name ("95381901 is my account #") one with 4 or more; one with
    5 or more where "it's" gives it later in the turn or in the answer (``_given_later``)."""
    out = []
    for entity, (bare, noun_only) in ID_CUES.items():
        named = rf"(?:{'|'.join(filter(None, (bare, noun_only)))})[\s-]*{ID_NOUN}"
        out.append(CueRecognizer(entity, [
            (rf"(?i:\b{named}\b\.?){_ID_JOIN}(?P<v>{_ID_VALUE.format(n=3)})", 0.85),
            (rf"(?i:\b(?:{bare})\b){_ID_JOIN}(?P<v>{_ID_VALUE.format(n=4)})", 0.85),
            (_answer(named, _ID_VALUE.format(n=3)), 0.8),
            # Told first, named after: "Sarah Brown, 95381901 is my account #".
            # Tried at word starts only: at every letter of a long word, the value's digit count would
            # read on to the word's end.
            (rf"(?<![\w-])(?P<v>{_ID_VALUE.format(n=4)})[ \t]+(?i:is|was)[ \t]+(?i:my|the|our)[ \t]+"
             rf"(?i:{named}\b|(?:{bare})[ \t]*(?:#|[.,!?]|$))", 0.85),
            # Told after free words: "…your account number, please?" / "Sure I have it written down.
            # It's 84318931431." Five digits or more: a shorter number there is more often a count.
            (rf"{_given_later(named, named)}(?P<v>{_ID_VALUE.format(n=5)}){NOT_AMOUNT}", 0.8),
        ], f"Cued{entity.title().replace('_', '')}Recognizer", re.MULTILINE))
    return out


def cued_passcode_recognizer() -> CueRecognizer:
    """PINs, access and one-time codes, card security codes and passwords, after their name ("My pin
    is 9503", "Clearance Code is 031431", "cvv: 123", "my password is hunter2", "my PIN: eitehr 3941"),
    a PIN before it ("9503 is my PIN"), opening or closing the next turn's answer to a line that names
    them ("Please enter the code." / "639431"), closing the turn that names it after a question ("I
    have a pin - is that useful for you? 0314"), or given by "it was", "try" after free words, the name
    in the turn or up to 400 characters before it (``_given_later``); both of "either 0314 or 9503". A credential
    in a training set is worse than a name in it. Every value holds a digit: a password told without
    one ("my password is not working") cannot be told from the words around it."""
    code = (r"pin(?:[\s-]*(?:code|number|no\.?))?|pass[\s-]*code|otp|cvv2?|cvc2?|csc|"
            r"(?:access|security|verification|clearance|one[\s-]time|auth(?:entication|orization)?|sms|login)"
            r"[\s-]*code")
    # Asked for, "the code" is one, but for the codes of a place, a phone line or a discount.
    asked = rf"{code}|password|passwd|(?<!zip )(?<!post )(?<!postal )(?<!area )(?<!country )(?<!promo )code"
    # A PIN half remembered: "my pin! its either 3941 or 0314", "I remembered my PIN. It's 0314", "The
    # pin is actually 0314", "my PIN might be 1596 or 9431".
    # A hedge may run into the digits: "either3941".
    join = r"(?i:'s\b)?" + _join(rf"(?:is|was|it'?s|its|it)\b|(?:{_HEDGE})(?=\W|\d)", r":#=.!,-")
    # After a colon, any one word: a hedge misspelt, "Just remembered my PIN: eitehr 3941 or 0314".
    join = rf"(?:{join}|(?i:[ \t]*:[ \t]*[a-z]+[ \t]+))"
    digits = r"\d{3,12}(?![\w-])"
    # What the code opens: "my pin for the bank is 3941", "the security code on the back of the card is
    # 123". Words only, none of them "is" or "was", and "is", "was" or ":" after them: not "my PIN for
    # the card is blocked and my balance is 2500".
    of_what = (r"(?i:[ \t]+(?:for|on|of|to|at|from|with)(?:[ \t]+(?!(?:is|was)\b)[a-z]+){1,5}"
               r"(?=[ \t]*(?:\b(?:is|was)\b|:)))")
    # "3100 or 7402", "3100 or it's 7402", "9503, or maybe it was 5380", "Maybe 9503? or 7402?".
    # A pause may come before the second: "3100 or uhhhh 7402".
    alternative = (r"(?i:[ \t]*[,?]?[ \t]*or[ \t]+(?:(?:maybe|perhaps|possibly|u+[hm]+|e+r+m*|hm+)[ \t,.]+)?"
                   r"(?:it(?:'?s| is| was)[ \t]+)?)")
    later = _given_later(code, asked, across_turns=True)
    # Told first, named after: "9503 is my PIN", "try either 3100 or 5380 for my PIN", or in the next
    # sentence: "It says 7402 and 0314. Those might be my PIN numbers."
    named_after = (rf"(?i:[ \t,]+(?:(?:is|was|for)[ \t]+)?(?:my|the)[ \t]+(?:{code})\b|"
                   r"[.!,]?[ \t]+(?:those|these|they|that|this|which)[ \t]+"
                   rf"(?:is|are|was|were|(?:might|may|could|must|should)[ \t]+be)[ \t]+(?:my|the)[ \t]+(?:{code})s?"
                   # Where the sentence ends: not "2500. That might be my PIN that's blocked".
                   r"(?:[ \t]+numbers?)?[ \t]*(?:[.!?,]|$))")
    return CueRecognizer("PASSCODE", [
        (rf"(?i:\b(?:{code})\b)(?:{of_what})?{join}(?P<v>{digits})", 0.85),
        (rf"(?i:\b(?:{code})\b)(?:{of_what})?{join}{digits}{alternative}(?P<v>{digits})", 0.85),
        (rf"(?<![\w-])(?P<v>{digits})(?:{alternative}{digits})?{named_after}", 0.85),
        (rf"(?<![\w-]){digits}{alternative}(?P<v>{digits}){named_after}", 0.85),
        (rf"{later}(?P<v>\d{{4,12}}(?![\w-])){NOT_AMOUNT}", 0.8),
        (rf"{later}\d{{4,12}}{alternative}(?P<v>\d{{4,12}}(?![\w-])){NOT_AMOUNT}", 0.8),
        # Anything but a space, a digit in it; a sentence's full stop after it is not part of it.
        (rf"(?i:\b(?:password|passwd|pwd|passphrase)\b){_ID_JOIN}(?P<v>(?=\S*\d)\S{{2,63}}[^\s.,;:!?])", 0.85),
        # The answer opens the turn; what follows may be anything ("…, my memory is a little fuzzy").
        (_answer(asked, digits, whole=False), 0.8),
        (_answer(asked, digits, whole=False, before=rf"{digits}{alternative}"), 0.8),
        # Or closes it, after words without a number: "…your PIN as well please." / "I trust you. 1596".
        (rf"(?i:\b(?:{asked})\b)[^\n]{{0,80}}\n{SPEAKER_PREFIX}[^\n\d]{{1,100}}?(?<![\w$£€.,-])"
         rf"(?P<v>\d{{4,12}}){NOT_AMOUNT}[^\w\n]*$", 0.8),
        # Or closes the turn that names it, after a question: "I have a pin - is that useful for you? 0314".
        (rf"(?i:\b(?:{code})\b)[^\n\d]{{0,80}}\?[ \t]*(?P<v>\d{{4,12}}){NOT_AMOUNT}[^\w\n]*$", 0.8),
    ], "CuedPasscodeRecognizer", re.MULTILINE)


_MONTH = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
# 12/12/2001, 4.1.27, 1990-04-04, 12th of March 1990, March 12, 1990.
_DATE = (r"\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2}|"
         rf"\d{{1,2}}(?:st|nd|rd|th)?(?:[ \t]+of)?[ \t]+(?:{_MONTH})\.?,?[ \t]+\d{{4}}|"
         rf"(?:{_MONTH})\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]+\d{{4}}")


def cued_birth_date_recognizer() -> CueRecognizer:
    """A date of birth after its name ("my date of birth is 04/04/1990", "DOB: 12/12/2001", "born on
    12 March 1990"), or opening the next turn after a line asking for it ("…your date of birth,
    please?" / "Sure, it is 31/06/1996."), or as that whole turn, one number of 4 to 8 digits ("0314"),
    or such a number opening one of the four turns after a question for it ("9431, does that sound right?").
    Dates in general are left alone (most are not about a person: DATE_TIME is not asked for by
    default); a birth date, with a postcode, singles people out."""
    cue = r"date[ \t]+of[ \t]+birth|d\.?o\.?b|birth[ \t]*date|birthday|born(?:[ \t]+on)?"
    join = _join(r"(?:is|was|it'?s)\b", ":#=,.")
    return CueRecognizer("DATE_OF_BIRTH", [
        (rf"(?i:\b(?:{cue})\b\.?){join}(?P<v>(?i:{_DATE}))(?!\w)", 0.85),
        # The question may ask for several things: "…date of birth, your mother's maiden name and …?"
        (_answer(cue, rf"(?i:{_DATE})", whole=False, reach=80), 0.8),
        # Or the answer is one number, the date without separators ("03141990"), a part of it or a
        # year: no cue tells it from the date asked for.
        (_answer(cue, r"\d{4,8}", reach=80), 0.7),
        # Or such a number opening a turn up to four turns after the question, the date told in parts:
        # "…do you remember your birthday?" / "I think it starts with an 18" / "Can you tell me the rest?"
        # / "9431, does that sound right?". Below every other cue's score: a number asked for by its name
        # in between ("…your account number?" / "68318931") is that number.
        (_asked(rf"\b(?:{cue})\b", reach=80, turns_between=3) + rf"(?P<v>\d{{4,8}})(?![\w-]){NOT_AMOUNT}", 0.6),
    ], "CuedBirthDateRecognizer", re.MULTILINE)


def id_recognizers(patterns: dict[str, str]) -> list[PatternRecognizer]:
    """Order, ticket and account numbers; ``patterns`` (entity -> regex) from config extend the defaults."""
    merged = {**DEFAULT_ID_PATTERNS, **patterns}
    out = []
    for entity, regex in sorted(merged.items()):
        try:
            re.compile(regex)
        except re.error as exc:
            from curatune.errors import CuratuneError

            raise CuratuneError(
                f"config key 'curate.anonymise.id_patterns.{entity}' is not a valid regex: {exc}") from None
        out.append(PatternRecognizer(supported_entity=entity, patterns=[Pattern(entity.lower(), regex, 0.85)],
                                     name=f"{entity.title().replace('_', '')}Recognizer",
                                     global_regex_flags=re.IGNORECASE))
    return out


def spoken_digits_recognizer() -> PatternRecognizer:
    word = rf"(?:{DIGIT_WORDS})"
    return PatternRecognizer(
        supported_entity="SPOKEN_DIGITS",
        patterns=[Pattern("four_or_more_digit_words", rf"\b{word}(?:[\s,.-]+{word}){{3,}}\b", 0.7),
                  Pattern("mixed_digits_and_words", rf"\b(?:\d|{word})(?:[\s,.-]+(?:\d|{word})){{5,}}\b", 0.6)],
        name="SpokenDigitsRecognizer", global_regex_flags=re.IGNORECASE)


def luhn_card_recognizer() -> EntityRecognizer:
    """Any 12-19 digit run that passes the Luhn check (Presidio's own patterns miss 2-series
    Mastercard and 12-digit Maestro numbers); Presidio's CreditCardRecognizer does the Luhn validation."""
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    return CreditCardRecognizer(patterns=[Pattern("digits_12_19", r"\b(?:\d[ -]?){11,18}\d\b", 0.3)],
                                name="LuhnCardRecognizer")


def handle_recognizer() -> PatternRecognizer:
    return PatternRecognizer(supported_entity="HANDLE",
                             patterns=[Pattern("at_handle", r"(?<![\w.@])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{1,29})\b", 0.7)],
                             name="HandleRecognizer")


# A user name no word is spelt like: it holds a digit, or a dot, hyphen or underscore between letters
# ("cminh730", "j.smith", "maria_g"). A plain word after a cue is a word: "my username is locked".
USER_NAME = r"(?=[\w.-]*(?:\d|[^\W_][._-][^\W_]))[^\W_][\w.-]{2,38}\w"


def cued_handle_recognizer() -> CueRecognizer:
    # "Username: cminh730", "my user ID is jsmith_42", "login: m.gonzalez": a support chat asks for it.
    return CueRecognizer("HANDLE", [
        (rf"(?i:\b(?:user[ _-]?(?:name|id)|log[ -]?in(?:[ _-]?(?:name|id))?|screen[ _-]?name)\b(?:\s+(?:is|was))?"
         rf"\s*[:=#]?\s*)(?P<v>{USER_NAME})(?![\w@-]|\.\w)", 0.6),
    ], "CuedHandleRecognizer")


def loose_phone_recognizer() -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity="PHONE_NUMBER",
        patterns=[Pattern("loose_phone",
                          # Not the seconds of a time: "09:30:00.000000" (a log line, an export's timestamp).
                          r"(?<![\w-])(?<!\d:)(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}"
                          r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w-])", 0.55)],
        context=["call", "phone", "number", "mobile", "cell", "reach", "text", "tel"],
        name="LoosePhoneRecognizer")


# Upper-case letters of the Latin, Greek and Cyrillic scripts ("Ágnes", "Łukasz", "Σοφία"): ``re``
# has no \p{Lu}, and [A-Z] misses every name that starts with an accent.
UPPER = "[" + "".join(c for c in map(chr, range(0x41, 0x530)) if c.isupper()) + "]"
_LOWER = "[^\\W\\d_A-ZÀ-Þ]"


# Capitalised words that follow a first name without being a surname ("see you Maria Monday").
CALENDAR_WORDS = frozenset({"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January",
                            "February", "March", "April", "May", "June", "July", "August", "September", "October",
                            "November", "December", "Christmas", "Easter", "Today", "Tonight", "Tomorrow",
                            "Yesterday"})

# Lower-case words inside a surname: "Dion van Loon", "Laura de la Cruz", "Ahmed bin Rashid".
NAME_PARTICLES = ("van", "von", "der", "den", "de", "del", "della", "da", "di", "du", "dos", "das", "la", "le",
                  "ten", "ter", "bin", "binti", "ibn", "al", "el")
_PARTICLES = "|".join(NAME_PARTICLES)
_SURNAME_AFTER = re.compile(rf"[ \t]+(?:(?:{_PARTICLES})[ \t]+){{0,2}}(?P<s>{UPPER}[\w'’-]+)\b")
_PARTICLE_SURNAME_AFTER = re.compile(rf"[ \t]+(?:(?:{_PARTICLES})[ \t]+){{1,2}}(?P<s>{UPPER}[\w'’-]+)\b")


def may_be_surname(word: str) -> bool:
    """A capitalised word after a first name that is no ordinary, calendar or street word ("Maria
    Thanks", "Maria Monday"; "Victoria Street" is a place, left to the address rules)."""
    return (word not in ContextNameRecognizer.NOT_NAMES and word not in CALENDAR_WORDS
            and word not in _street_words() and word.casefold() not in stop_words())


@lru_cache(maxsize=1)
def _street_words() -> frozenset[str]:
    # street_suffixes() is a list ordered for a regex; this is asked once per capitalised word.
    return frozenset(street_suffixes())


def surname_end(text: str, end: int, *, particle_only: bool = False) -> int:
    """Where a name that ends at ``end`` ends with the surname written after it on the same line, if
    there is one ("Peace Balogun", "Dion van Loon"; with ``particle_only``, only one that opens with a
    particle: "Ana de Souza" after a cue that took "Ana"); else ``end``."""
    m = (_PARTICLE_SURNAME_AFTER if particle_only else _SURNAME_AFTER).match(text, end)
    return m.end() if m and may_be_surname(m.group("s")) else end


# A transcript line's speaker before its text: "customer: ", "Agent 2: ".
SPEAKER_PREFIX = r"[^\W\d_][\w ]{0,20}:[ \t]*"


# Titles written before a name ("Ms Gonzalez", "Dr. John Smith"): no part of it. Alone a title is no person, and
# kept before the placeholder it keeps the text readable and links "Ms Gonzalez" to "Maria Gonzalez".
TITLES = frozenset({"Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Madam"})


# Above spaCy's 0.85: where the words around a span say it is a name ("my name is Crystal Minh"),
# NER's guess of another type for the same span ("Crystal Minh" as a place) loses the tie.
CUE_SCORE = 0.9


# The words that say an answer follows, before the name: "…your name?" / "Its Jane Doe", "…maiden
# name?" / "It's Sanders".
ANSWER_LEAD = re.compile(r"(?i:it['’]?s|that['’]?s)[ \t]+")


class ContextNameRecognizer(EntityRecognizer):
    """Person names from what surrounds them, and from the name gazetteer."""

    CUES = [
        # "My name is" opens a sentence as often as it follows one.
        r"(?i:\bmy name is)\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){0,2})",
        r"(?i:\bmy name's)\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){0,2})",
        r"\b(?:[Nn]ame|NAME)\s*:[ \t]*(?P<n>[^\W\d_][\w'-]+(?:\s+[^\W\d_]\.)?(?:[ \t]+[^\W\d_][\w'-]+){0,2})",
        r"\b[Tt]his is\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){0,2})(?:\s+(?:speaking|here|from)\b|[.,])",
        r"\b(?:I am|I'm|im)\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)\s*(?:,|\.|!|$|and\b|from\b)",
        # "Peace Balogun here", also after a comma ("a question about my delivery, Peace Balogun here");
        # not "While I'm here".
        rf"(?:^|[.!?,;]\s+)(?P<n>[A-Z][\w'-]+\s+(?:(?:{_PARTICLES})\s+){{0,2}}(?!I\b)[A-Z][\w'-]+)\s+here\b",
        # On the greeting's line: "Hello,\nQuestion about my delivery." opens the message, not a name.
        r"\b(?:[Tt]hanks|[Tt]hank you|[Hh]i|[Hh]ello|[Dd]ear|[Hh]ey)[ \t]*,?[ \t]+(?P<n>[A-Z][\w'-]+)"
        r"(?:[ \t]+(?P<surname>[A-Z][\w'-]+))?\b",
        r"\b(?:[Rr]egards|[Cc]heers|[Bb]est|[Ss]incerely|[Tt]hanks)\s*,\s*\n?\s*(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)",
        r"\b(?:[Mm]r|[Mm]rs|[Mm]s|[Mm]x|[Mm]iss|[Dd]r|[Pp]rof|Sir)\.?\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)",
        r"\b(?:speak(?:ing)? (?:to|with)|ask for|transfer(?:red)? to|named|called|follow up with|"
        r"(?:[Mm]y|[Oo]ur|[Hh]is|[Hh]er) (?:wife|husband|son|daughter|kid|child|mother|mom|father|dad|brother|sister|"
        r"partner|colleague|manager))\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)",
        r"\b[Aa]dd\s+(?P<n>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+){0,2})\s+as\b",
        # The answer to a question about a name: "What's the name on the account? User: Maja S Hermansen";
        # or the next turn of a transcript when it is only a name ("…your name please?\ncustomer: Crystal
        # Minh"), since a turn starting "I've been waiting" or "Dear support team," answers something else.
        r"(?i:\bname\b[^?\n]{0,30}\?)[ \t]*(?:[A-Z]\w+:[ \t]*)?"
        r"(?P<n>[A-Z][\w'-]+(?:\s+[A-Z]\.?)?(?:[ \t]+[A-Z][\w'-]+){0,2})",
        rf"(?i:\bname\b[^?\n]{{0,30}}\?)[ \t]*\n{SPEAKER_PREFIX}"
        r"(?P<n>[A-Z][\w'-]+(?:\s+[A-Z]\.?)?(?:[ \t]+[A-Z][\w'-]+){0,2})[ \t.!]*$",
        r"\b(?i:directed|written|produced|composed|performed) (?i:by):?[ \t]*"
        r"(?P<n>[A-Z][\w'-]+(?:\s+[A-Z]\.?)?(?:[ \t]+[A-Z][\w'-]+){0,2})",
    ]
    # Not "Its": a cue takes a name after it (ANSWER_LEAD), and drops a name whose first word is here.
    NOT_NAMES = frozenset({"I", "I'm", "I'd", "I'll", "I've", "The", "This", "That", "It", "We", "You", "He",
                           "She", "They", "My", "Your", "Our", "Their", "Sorry", "Happy", "Thank",
                           "Thanks", "Hi", "Hello", "Customer", "Agent", "Support", "Team", "Please", "Just", "Yes",
                           "No", "Ok", "Okay", "Good", "Great", "Sure", "Here", "Still", "Not", "Also", "Calling",
                           "Writing", "Trying", "Looking", "Waiting", "Back", "Glad", "Afraid",
                           # Interjections that open an answer: "Huh, what is going on?"
                           "Oh", "Ah", "Uh", "Um", "Umm", "Hmm", "Huh", "Wait", "Well", "Actually", "Hey", "Yeah",
                           "Yep", "Nope", "Wow", "Ha", "Haha", "Lol", "Yo", "Nah", "Yea", "Yup", "Yess", "Hold",
                           # A turn's one-word acknowledgement, no common English word to Faker's list: "Perfect."
                           # a turn after "your mother's maiden name?" answers nothing.
                           "Cool", "Perfect", "Alright", "Awesome", "Correct", "Wonderful", "Excellent",
                           "Brilliant", "Fantastic", "Amazing", "Understood", "Agreed", "Noted", "Confirmed",
                           "Gotcha", "Yay", "Oops", "Ugh", "Thx",
                           # What a bank asks for, which spaCy reads as a person: "Right, and your PIN as well please."
                           "PIN", "Pin", "PINs", "Pins", "PINS", "ATM", "CVV", "OTP", "SSN", "DOB",
                           # A question after a greeting: "Hi, How are you?", "Hello, Can I have your PIN?" (not
                           # "Will" or "May", which are names too).
                           "How", "What", "Why", "Where", "When", "Who", "Which", "Can", "Could", "Would",
                           "Should", "Is", "Are", "Was", "Were", "Do", "Does", "Did", "Have", "Has",
                           # Greetings that open or close a turn, which NER takes with the name: "Bye Gonzalez".
                           "Bye", "Goodbye", "Dear", "Cheers", "Welcome",
                           # Words of booking and security dialogues that spaCy reads as a person, no common
                           # English word to Faker's list: "Mother's maiden name", a price range "Moderate",
                           # "Old Town Inn", "Fraud report is ...".
                           "Maiden", "Moderate", "Inn", "Hotel", "Motel", "Fraud",
                           # Kin words, which spaCy reads as a person: "my Mom's maiden name".
                           "Mom", "Mum", "Dad", "Mommy", "Mummy", "Daddy", "Grandma", "Grandpa", "Granny",
                           # The label before a name in an answer: "…your name, please?" / "Name Angela."
                           "Name"}) | TITLES

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="ContextNameRecognizer", supported_language=LANGUAGE)
        # The cues say [A-Z] for readability; a name may start with any upper-case letter.
        self._cues = [re.compile(c.replace("[A-Z]", UPPER), re.MULTILINE) for c in self.CUES]
        firsts, lasts = name_gazetteer()
        self._firsts, self._lasts = firsts, lasts
        self._cap = re.compile(rf"\b{UPPER}(?:{_LOWER}|['’-])+(?:\s+{UPPER}(?:{_LOWER}|['’-])+)?\b")
        # A name in capitals, which NER does not read as one ("Contact: MARIA GONZALEZ"): two or three
        # capitalised words, the first a known first name and the last a known surname.
        self._shouted = re.compile(rf"\b{UPPER}{{2,}}(?:[ \t]+{UPPER}[{UPPER[1:-1]}'’-]+){{1,2}}\b")
        # An unknown word opening a sentence is a name when only a person can do what follows.
        self._person_verb_after = re.compile(r"\s+(?:lives|lived|shouted|whispered|began writing|spent a year|"
                                             r"grew up|was born|had given)\b")
        # A first name opening a sentence is a name when a verb follows it ("Nora is very reliable").
        self._verb_after = re.compile(r"\s+(?:is|was|has|had|lives|lived|said|says|will|can|did|does|began|wants|"
                                      r"called|wrote|asked|told|moved|works|worked)\b")
        # A line that is a transcript turn keeps its speaker: "customer: Alessandro Phoenix".
        self._name_line = re.compile(
            rf"(?m)^(?:{SPEAKER_PREFIX})?[^\w\n]*"
            r"(?P<n>[^\W\d_][\w'-]+(?:\s+[^\W\d_]\.)?(?:\s+[^\W\d_][\w'-]+){1,2})[ \t]*$")
        # A list of three or more single words, most of them first names: "Romi, Erik, Amy and Donald".
        word = r"[^\W\d_][\w'-]*"
        self._list = re.compile(rf"(?<![\w,] )\b{word}(?:(?:,[ \t]+{word}){{2,}}(?:,?[ \t]+and[ \t]+{word})?|"
                                rf"(?:,[ \t]+{word})+,?[ \t]+and[ \t]+{word})")
        # Names typed in lower case after an unambiguous cue ("my name is vitoria").
        self._lower_cue = re.compile(
            # A security answer, in its own turn ("What was your mother's maiden name?" / "customer:
            # sanders"; tried first, as the other cues would take "name" for the name), or after the
            # words: "my mother's maiden is Sanchez", "maiden name cooper".
            r"(?i:" + _asked(r"\b(?:mother'?s )?maiden name", reach=20) + "|"
            r"\bmy name(?: is|'s)|\b(?P<call>calls? me)|\b(?:first|last|middle|full) name(?: is|:)|"
            r"\bmother'?s maiden(?: name)?(?: is| was|:)?|\bmaiden name(?: is| was|:)?|"
            # The other common security answer, a pet's name: "my childhood pet is buddy", "my pets name
            # was Buddy", "I know my pet's name, it's Buddy!", "my childhood pet's name.. it was Buddy", "my
            # childhood dog, Buddy." (after a comma, a capital: a cut window may end in "name, it's"). Not
            # "my pet is sick".
            r"\b(?:(?:childhood|first)[ \t]+(?:pet|dog|cat|puppy|kitten)'?s?(?:[ \t]+name)?|pet'?s?[ \t]+name)"
            rf"(?:[ \t.,]*it(?:'?s| was)|[ \t]+is|[ \t]+was|:|,(?=[ \t]*(?-i:{UPPER}))(?![ \t]*it\b)))\s+"
            r"(?P<n>[^\W\d_][\w'-]*(?:\s+[^\W\d_][\w'-]*)?)")
        # The answer to a question about the customer's own name that runs on past it, the surname in
        # lower case: "Could I get your full name, please?" / "Sarah brown my pin is 0314". The first word
        # must be a known first name, the second a known surname, or one of the surnames that are also
        # common words (Brown, White), which only this question makes a name.
        self._name_answer = re.compile(rf"(?i:\b(?:your|full|first and last) name\b[^?\n]{{0,40}}\?)[ \t]*\n"
                                       rf"{SPEAKER_PREFIX}(?P<first>{UPPER}{_LOWER}+)[ \t]+(?P<last>{_LOWER}+)\b"
                                       r"(?!['’])")
        # The answer to a question about a pet's name, when the turn opens with one word and a stop: "And
        # what was the name of the pet you had as a child?" / "Nemo. Poor nemo." (not "Umm, Kitty maybe."
        # whose first word is not the name, nor "What kind of pet do you have?" / "Dog.").
        # The name may follow "his name is", "it's" (free words before them), an interjection or a
        # sentence, and "of course" may follow it: "His name is Buddy", "Oh yea the pet, I believe it was
        # buddy.", "ha buddy! he was such a good boi", "That's easy.  Buddy", "Nemo of course, I loved that
        # book".
        pet_name = r"\bname\b[^\n]{0,40}\bpets?\b|\bpets?'?s?[ \t]+name\b"
        pet_question = _asked(pet_name)
        self._pet_answer = re.compile(rf"{pet_question}(?:(?:[^\n.!?]{{0,40}}?\b)?(?i:(?:his|her|its|their|the)[ \t]+"
                                      r"name[ \t]+(?:is|was)|it'?s|its|it was)[ \t]+|[^\n.!?]{0,40}[.!][ \t]+|"
                                      r"(?i:ha|haha|oh|ah|aw+|um+|uh+|hm+|well|yes|yeah|yep|lol)[ \t]*[,.!]*[ \t]+)?"
                                      r"(?P<n>[^\W\d_][\w'-]*)(?=[ \t]*(?:[.!]|$|,?[ \t]*(?i:of course)\b))",
                                      re.MULTILINE)
        # Or, in that answer, a capitalised word no ordinary word is spelt like: opening the turn, whatever
        # follows ("Nemo like the fish :)"), or past a sentence's start, the names a customer weighs up ("I
        # think I used Skippy or maybe Buddy. Or it could have been Casper.", "Umm, Kitty maybe."). One
        # word without an apostrophe: not "Wouldn't it be faster…", "Pet's name is Poppy".
        self._pet_answer_turn = re.compile(rf"{pet_question}(?P<t>[^\n]*)", re.MULTILINE)
        self._capitalised = re.compile(rf"(?<![\w'’-]){UPPER}{_LOWER}+\b(?!['’-])")
        # A security question answered turns later, by a turn that is one capitalised word: "What was your
        # mother's maiden name?" / (two turns about something else) / "Sanchez", "Do you need my childhood
        # pet name?" / "we can try. Can you remember it?" / "Poppy".
        self._late_answer = re.compile(_asked(rf"\bmaiden name\b|{pet_name}", turns_between=3)
                                       + rf"(?P<n>{UPPER}{_LOWER}+)[ \t]*[.!]?[ \t]*$", re.MULTILINE)
        # A pet's name right after the words, with nothing between, when it is a known first name:
        # "Jane doe pin 3100 childhood pet charlie" (not "my first dog died", "the first pet my parents…").
        self._pet_named = re.compile(r"(?i:\b(?:childhood|first)[ \t]+(?:pet|dog|cat|puppy|kitten)(?:'?s)?"
                                     r"(?:[ \t]+name)?)[ \t]+(?P<n>[^\W\d_][\w'-]*)\b(?!['’])")

        # The turn after a line asking for the customer's own name ("Please provide your name.", "Name
        # and flight ID, please?"), whatever the line ends in.
        self._name_asked = re.compile(rf"(?im:(?:\b(?:your|full|first|(?P<last>last))[ \t]+(?:user[ \t]*)?name|"
                                      r"\b(?P<surname>surname|family[ \t]+name)|"
                                      rf"^(?:{SPEAKER_PREFIX})?[^\w\n]*name)\b[^\n]{{0,70}}\n)"
                                      rf"{SPEAKER_PREFIX}(?P<t>[^\n]*)")
        word = r"[^\W\d_][\w'’-]*"
        # In that turn, a name told by "it's", "I'm", "name": "YES ITS ANGELA!", "Its alexis, im at ...".
        self._told_name = re.compile(rf"(?i:\b(?:it'?s|its|it is|i'?m|i am|im|this is|name(?:[ \t]+is|:)?|"
                                     rf"call me))[ \t]+(?P<n>{word})(?=[ \t]*(?:[.!,?;]|$|\d|(?i:here|and|from)\b))")
        # Or the words opening the turn or a sentence in it, up to a stop, a number, "here" or "from":
        # "Kylo. Please hurry!", "Alina here.", "geez..... Alexis 844, please", "First Officer Yoda".
        not_last = r"(?!(?i:here|from)\b)"
        self._given_name = re.compile(rf"(?:^|[.!?][ \t]+)[^\w\n]*(?P<n>{word}(?:[ \t]+{not_last}{word}){{0,2}})"
                                      r"(?=[ \t]*(?:[.!,]|$|\d|(?i:here|from)\b))")

    def load(self) -> None:  # nothing to load: the gazetteer is built lazily and cached
        return None

    def _answered_names(self, text: str) -> list[RecognizerResult]:
        """Names in the turn answering a question about the customer's name, where any word can be one:
        each word must be a name there (``_name_here``), once the ordinary words before it are left
        out ("First Officer Yoda", "YES ITS ANGELA")."""
        out = []
        for turn in self._name_asked.finditer(text):
            at, said = turn.start("t"), turn.group("t")
            surname = bool(turn.group("last") or turn.group("surname"))
            for m in (*self._told_name.finditer(said), *self._given_name.finditer(said)):
                words = list(re.finditer(r"[^\W\d_][\w'’-]*", m.group("n")))
                while words and not self._name_here(words[0].group(0), surname=surname):
                    words.pop(0)
                if words and all(self._name_here(w.group(0), surname=surname) for w in words):
                    out.append(RecognizerResult("PERSON", at + m.start("n") + words[0].start(),
                                                at + m.start("n") + words[-1].end(), CUE_SCORE))
        return out

    def _name_here(self, word: str, *, surname: bool = False) -> bool:
        """Whether ``word`` answers "your name?": no stop word, common English word or word names are
        not; in lower case, a known first name or one that is also a word ("alexis", "mark"), or,
        answering "your last name?" / "surname?", a known surname ("gonzalez")."""
        folded, cap = word.casefold(), word.capitalize()
        if (is_stop_word(word) or cap in self.NOT_NAMES or cap in CALENDAR_WORDS
                or (folded in common_english_words() and not known_name(word))):
            return False
        return (word[0].isupper() or known_name(word, first_only=not surname) or cap in word_first_names()
                or (surname and cap in COMMON_WORD_SURNAMES))

    def _answer_name(self, word: str) -> bool:
        """Whether a capitalised word in the answer to a maiden-name or pet-name question may be the name
        asked for: no ordinary word, title, calendar word or acknowledgement ("Perfect.", "Good.")."""
        return word not in self.NOT_NAMES and word not in CALENDAR_WORDS and not ordinary_word(word)

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        for cue in self._cues:
            for m in cue.finditer(text):
                start, end = m.span("n")
                if lead := ANSWER_LEAD.match(text, start, end):
                    start = lead.end()
                if (surname := m.groupdict().get("surname")) and may_be_surname(surname):
                    end = m.end("surname")
                found = list(re.finditer(r"\S+", text[start:end]))
                while found and found[-1].group(0) in self.NOT_NAMES:
                    found.pop()
                    # From the words' own offsets: the cues allow any spacing between them.
                    end = start + found[-1].end() if found else start
                words = [w.group(0) for w in found]
                # Nor an acronym alone: "Hey AI! can you help me".
                if (not words or words[0] in self.NOT_NAMES or (len(words) == 1 and acronym(words[0]))
                        or not all(w[0].isupper() or w in NAME_PARTICLES for w in words)):
                    continue
                out.append(RecognizerResult("PERSON", start, surname_end(text, end, particle_only=True), CUE_SCORE))
        for m in (*self._lower_cue.finditer(text), *self._pet_answer.finditer(text)):
            at, stop = m.span("n")
            if lead := ANSWER_LEAD.match(text, at, stop):
                at = lead.end()
            words = list(re.finditer(r"\S+", text[at:stop]))
            while words and (words[-1].group(0).casefold() in stop_words() or words[-1].group(0) in NAME_PARTICLES):
                words.pop()
            if not words:
                continue
            first, start, end = words[0].group(0), at + words[0].start(), at + words[-1].end()
            # Judged without a clitic: "That's a really weird question" answers nothing. After the bare
            # words ("maiden name cooper", not "maiden name is", nor in the question's answer), an ordinary
            # word is none: "Can I give you my Mom's maiden name instead?".
            bare = m.re is self._lower_cue and not re.search(r"(?:\b(?i:is|was|it'?s)|[:,])[ \t]*$",
                                                            text[m.start():at])
            # After "call me", where any word may follow ("Don't call me dumb", "call me anymore"), a word
            # in lower case is a name when the gazetteer knows it as one ("you can call me mike") or no
            # English word is spelt like it ("everyone calls me borna"; "call me asap" too, a name the
            # surer way to err).
            called = (bool(m.re is self._lower_cue and m.group("call")) and first.islower()
                      and not known_name(first, first_only=True) and first in vocabulary_words())
            if (not is_stop_word(first) and first.capitalize() not in self.NOT_NAMES
                    and not (bare and ordinary_word(first)) and not called):
                out.append(RecognizerResult("PERSON", start, end, 0.75))
        for turn in self._pet_answer_turn.finditer(text):
            said, at = turn.group("t"), turn.start("t")
            out += [RecognizerResult("PERSON", at + m.start(), at + m.end(), 0.75)
                    for m in self._capitalised.finditer(said) if self._answer_name(m.group(0))
                    and (m.start() == 0 or not self._sentence_start(said, m.start()))]
        for m in self._late_answer.finditer(text):
            if self._answer_name(m.group("n")):
                out.append(RecognizerResult("PERSON", m.start("n"), m.end("n"), 0.75))
        for m in self._pet_named.finditer(text):
            if known_name(m.group("n"), first_only=True) and m.group("n").casefold() not in stop_words():
                out.append(RecognizerResult("PERSON", m.start("n"), m.end("n"), 0.75))
        out += self._answered_names(text)
        for m in self._name_answer.finditer(text):
            last = m.group("last").capitalize()
            if m.group("first") in self._firsts and (last in self._lasts or last in COMMON_WORD_SURNAMES):
                out.append(RecognizerResult("PERSON", m.start("first"), m.end("last"), 0.8))
        for m in self._cap.finditer(text):
            words = m.group(0).split()
            # A word names are not is no first name, though some name is spelt like it ("My", a
            # Vietnamese name: "My Manager is ..." is no person).
            first_ok = words[0] in self._firsts and words[0] not in self.NOT_NAMES
            if len(words) == 2 and first_ok and words[1] in self._lasts:
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.8))
            elif first_ok and (not self._sentence_start(text, m.start()) or self._verb_after.match(text, m.end())
                               or text.startswith(",", m.start() + len(words[0]))):
                # Inside a sentence, before a verb, or addressed ("Cora, can I speak to ..."); with the
                # capitalised word after it, which is the surname the gazetteer lacks ("pulled up for
                # Alessandro Phoenix"), unless it is an ordinary or a street word ("Maria Thanks", "Maria
                # Monday", "Victoria Street").
                end = surname_end(text, m.start() + len(words[0]))
                out.append(RecognizerResult("PERSON", m.start(), end, 0.5))
            elif (len(words) == 1 and self._person_verb_after.match(text, m.end())
                  and words[0].casefold() not in stop_words() and words[0] not in self.NOT_NAMES):
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.5))
            elif (len(words) == 2 and (first_ok or words[1] in self._lasts) and self._verb_after.match(text, m.end())
                  and not {w.casefold() for w in words} & stop_words() and not any(map(ordinary_word, words))):
                # "Tomomi Nishiyama lives at ...": a full name opening a sentence, one half known.
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.6))
        for m in self._shouted.finditer(text):
            words = [w.capitalize() for w in m.group(0).split()]
            if words[0] in self._firsts and words[-1] in self._lasts:
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.8))
        for m in self._list.finditer(text):
            items = [(i.start(), i.end()) for i in re.finditer(r"[^\W\d_][\w'-]*", m.group(0))
                     if i.group(0) != "and"]
            words = [m.group(0)[a:b] for a, b in items]
            known = sum(w.capitalize() in self._firsts for w in words)
            if 2 * known >= len(words) and not {w.casefold() for w in words} & stop_words():
                out += [RecognizerResult("PERSON", m.start() + a, m.start() + b, 0.6) for a, b in items]
        for m in self._name_line.finditer(text):
            # A line that is only a name (signature blocks, address labels), in any case.
            words = m.group("n").split()
            if words[0].capitalize() in self._firsts and not {w.casefold() for w in words} & stop_words():
                out.append(RecognizerResult("PERSON", m.start("n"), m.end("n"), 0.6))
        # One finding a span, the surest: several cues may find one answer ("Name: Kamila Červinková"
        # is a field's name and a line that is only a name).
        by_span: dict[tuple[int, int], RecognizerResult] = {}
        for r in out:
            if (kept := by_span.get((r.start, r.end))) is None or r.score > kept.score:
                by_span[(r.start, r.end)] = r
        return list(by_span.values())

    @staticmethod
    def _sentence_start(text: str, pos: int) -> bool:
        before = text[:pos].rstrip()
        return not before or before[-1] in ".!?:\n"


def custom_recognizers(id_patterns: dict[str, str]) -> list[EntityRecognizer]:
    from curatune.curate.pii.places import PlaceRecognizer

    return [address_recognizer(), postcode_recognizer(), cued_postcode_recognizer(), *id_recognizers(id_patterns),
            *cued_id_recognizers(), cued_passcode_recognizer(), cued_birth_date_recognizer(),
            spoken_digits_recognizer(), handle_recognizer(),
            cued_handle_recognizer(), loose_phone_recognizer(), cued_phone_recognizer(), cued_address_recognizer(),
            cued_place_recognizer(), luhn_card_recognizer(), ContextNameRecognizer(), PlaceRecognizer()]

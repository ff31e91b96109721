"""Anonymisation step: find personal data with Presidio (plus our recognizers), replace it
consistently per conversation, then re-scan everything written for leaks.

Runs on every row, dropped ones included (``sees_all_rows``), so excluded.parquet holds no
personal data either. Detection runs once per conversation on its rendered text ("speaker: text"
lines); each finding is clipped to the speaker or turn text it lies in and replaced there, so
``turns`` and ``text`` stay in step even when a turn holds line breaks. A speaker that is not a
role such as "customer" or "agent 2" is replaced whole as a person, detected or not: a speaker
column holds the customer's or the agent's name, in any case.
A value typed over a speaker's successive turns ("my card is 4111 1111" / "1111 1111") lies on no
one line of the rendered text: the seams between each speaker's turns are scanned again with the
turns joined (by a space, or by nothing where a turn ends or starts inside a word; and glued), and a
value found across a seam replaces what was found of it in each turn, every piece by the whole
value's replacement, counted once.
The ledger gets counts per entity type, never values. Leak scan: the rewritten texts, speakers
included, are scanned again with the same detectors, ignoring the positions we wrote ourselves;
findings are replaced in a second pass, the rows that changed are scanned once more, and what
remains is replaced a third time (not written as found) and reported per type in the manifest and
the ledger, and fails the run unless
``fail_on_leak`` is off; then the leak scan is no gate, and its summary records the failure with
``enforced = false``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import polars as pl

from curatune.config import AnonymiseConfig, Config
from curatune.curate.base import CurationStep, Gate, StepResult, register_step
from curatune.curate.pii.engine import (  # RecognizerResult through engine: it sets Presidio up offline first
    NAME_TOKEN,
    Detector,
    RecognizerResult,
    build_detector,
    name_bounds,
    names_continued,
    repeated_handles,
    repeated_names,
    repeated_numbers,
    resolve_overlaps,
)
from curatune.curate.pii.operators import EntityBook, Replacer
from curatune.curate.pii.recognizers import DIGIT_WORDS, stop_words
from curatune.dataset import BOOKKEEPING, CANONICAL, PII_FOUND
from curatune.errors import CuratuneError

# Long texts are scanned in overlapping windows: spaCy's cost grows with document length, and the
# overlap keeps a value that straddles a window edge whole in one of them.
WINDOW, OVERLAP = 20_000, 400

Span = tuple[int, int, str]
# A turn in a speaker's joined turns: (segment, where it starts there, length, whether its join with
# the turn before may be inside a value).
Part = tuple[int, int, int, bool]
# Characters either side of a seam between a speaker's turns that its scan sees: an IBAN, a card or
# phone number or an e-mail address split anywhere fits.
SEAM = 64
# Where a turn's first or last word may be part of a value: a digit or "@", or a dot, hyphen or
# underscore inside a word.
_VALUE_PART = re.compile(r"[\d@]|\w[.\-_]\w")
# Spoken digits ("four one" / "one one two two" in a call transcript) count at a turn's edge only two
# together: one word alone is too often "Oh, thanks" or "One more thing".
_DIGIT_WORD = re.compile(rf"(?:{DIGIT_WORDS})", re.IGNORECASE)
# A turn ending in one of these, or the next starting in one, split a word ("maria.gonzalez@" /
# "example.com"); a dot ends a sentence more often than it splits an address.
_ENDS_IN_WORD, _STARTS_IN_WORD = frozenset("@-_+/"), frozenset("@.-_")
# Types only NER finds: it runs a name at a turn's end on into the next turn's greeting ("Angela
# Okonkwo Hi"), so across a seam these would replace words; a name split over turns is not looked for.
_NER_TYPES = frozenset({"PERSON", "LOCATION"})

# Words of a speaker that names a role, not a person. NER calls some of them a person at a line
# start ("Caller: ...", "User: ..."); a speaker made only of these, with at most one letter or short
# number as a tag ("Agent B", "SPEAKER_00"), is left as it is.
ROLE_WORDS = frozenset({
    "customer", "client", "caller", "user", "member", "guest", "visitor", "buyer", "patient", "agent", "representative",
    "rep", "csr", "advisor", "adviser", "operator", "support", "service", "helpdesk", "desk", "help", "staff", "team",
    "specialist", "associate", "technician", "tech", "supervisor", "manager", "assistant", "bot", "chatbot", "virtual",
    "ai", "ivr", "automated", "auto", "system", "human", "live", "speaker", "host", "moderator", "interviewer",
    "participant", "unknown",
    # Lines a system writes into the transcript: ABCD's "action: Account has been pulled up for …", a
    # help desk's internal "note" or "event".
    "action", "event", "note",
})


def is_role(speaker: str) -> bool:
    folded = speaker.casefold()
    # A role is never scanned (its span counts as written), so a phone number, handle or address
    # beside the role words ("Caller +44 7700 900123", "customer j@x.io") must make it a non-role.
    tags = [w for w in re.findall(r"[^\W\d_]+", folded) if w not in ROLE_WORDS] + re.findall(r"\d+", folded)
    return "@" not in folded and len(tags) <= 1 and all(len(t) <= (1 if t.isalpha() else 3) for t in tags)


def _check_operator_keys(cfg: AnonymiseConfig, known: list[str]) -> None:
    # An override under a misspelt type would leave that type on the default operator without a word.
    unknown = sorted(set(cfg.operators) - set(known))
    if unknown:
        raise CuratuneError(f"config key 'curate.anonymise.operators.{unknown[0]}' is not an entity type "
                            f"(known: {', '.join(known)})")


# What may stand beside a name that makes up a whole message: "Smith.", "- Smith!".
_AROUND_NAME = " \t.,!?-"


@dataclass
class Conversation:
    """One row as segments and where we wrote replacements. A row with turns has two segments per
    turn, its speaker then its text; a row without turns has one, its text."""

    segments: list[str]
    has_turns: bool = False
    # Turns without a speaker: rendered as their text alone, as the dataset renders them.
    no_speaker: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()  # segments that are a role speaker
    written: list[list[tuple[int, int]]] = field(default_factory=list)
    book: EntityBook = field(default_factory=EntityBook)
    counts: Counter = field(default_factory=Counter)
    # (segment, start, end) of a piece of a value split over turns -> (the whole value, first piece?);
    # set by a scan, used by the rewrite that follows it.
    split_values: dict[tuple[int, int, int], tuple[str, bool]] = field(default_factory=dict)
    # Names found in the row's other columns (a customer_name column): people in the text too.
    known_names: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        turns = row.get("turns")
        if not turns:
            return cls([row["text"] or ""], written=[[]])  # a row without text can hold personal data elsewhere
        segments = [value or "" for t in turns for value in (t["speaker"], t["text"])]
        roles = frozenset(i for i in range(0, len(segments), 2) if is_role(segments[i]))
        # A role's span counts as written, so neither pass nor the leak scan calls "Caller" a person.
        written = [[(0, len(seg))] if i in roles else [] for i, seg in enumerate(segments)]
        return cls(segments, has_turns=True, written=written, roles=roles,
                   no_speaker=frozenset(i for i, t in enumerate(turns) if t["speaker"] is None))

    def rendered(self) -> tuple[str, list[int]]:
        """The text as the dataset contract renders it, and where each segment starts in it."""
        if not self.has_turns:
            return self.segments[0], [0]
        lines, starts, pos = [], [], 0
        for i in range(len(self.segments) // 2):
            speaker, text = self.segments[2 * i:2 * i + 2]
            prefix = "" if i in self.no_speaker else f"{speaker}: "
            starts += [pos, pos + len(prefix)]
            lines.append(prefix + text)
            pos += len(prefix) + len(text) + 1
        return "\n".join(lines), starts

    def seams(self) -> list[tuple[str, int, list[Part]]]:
        """Texts to scan for a value that runs on from a turn into the same speaker's next one (turns
        of others between them left out): the speaker's turns joined, cut to SEAM characters either
        side of each join whose two sides both may be part of a value. Each comes as (text, where it
        starts in the joined turns, the turns as parts). Such joins are read twice: with a space, and
        glued (a value cut inside a word: "GB29NWBK601" / "61331926819")."""
        by_speaker: dict[str | None, list[int]] = {}
        for i in range(len(self.segments) // 2 if self.has_turns else 0):
            by_speaker.setdefault(None if i in self.no_speaker else self.segments[2 * i], []).append(2 * i + 1)
        out = []
        for texts in by_speaker.values():
            spaced = self._joined(texts, glue=False)
            glued = self._joined(texts, glue=True)
            for joined, parts in [spaced] + ([glued] if glued[0] != spaced[0] else []):
                windows: list[tuple[int, int]] = []
                for _, start, _, joins in parts:
                    if not joins:
                        continue
                    lo, hi = max(start - 1 - SEAM, 0), min(start + SEAM, len(joined))
                    while lo > 0 and not joined[lo - 1].isspace():  # whole words only
                        lo -= 1
                    while hi < len(joined) and not joined[hi].isspace():
                        hi += 1
                    if windows and lo <= windows[-1][1]:
                        windows[-1] = (windows[-1][0], hi)
                    else:
                        windows.append((lo, hi))
                out += [(joined[lo:hi], lo, parts) for lo, hi in windows]
        return out

    def _joined(self, texts: list[int], glue: bool) -> tuple[str, list[Part]]:
        """These text segments joined in order, and where each lies in the result; with ``glue``, a
        join whose sides may both hold a value takes no space."""
        parts: list[Part] = []
        joined = ""
        for k in texts:
            seg, prev = self.segments[k], self.segments[parts[-1][0]] if parts else ""
            joins = bool(parts) and _value_part(prev.split()[-2:][::-1]) and _value_part(seg.split()[:2])
            # A turn that ends or starts inside a word ("maria.gonzalez@" / "example.com") joins the
            # next without a space.
            inside = prev[-1:] in _ENDS_IN_WORD or seg[:1] in _STARTS_IN_WORD or (glue and joins)
            joined += "" if not parts or inside else " "
            parts.append((k, len(joined), len(seg), joins))
            joined += seg
        return joined, parts

    def across_turns(self, results: list, text: str, offset: int, parts: list[Part],
                     spans: list[list[Span]], alone: list[list[Span]]) -> None:
        """Findings in a seam text that span turns, over joins that both may be part of a value,
        replace what was found of them in each turn (``spans``; ``alone``: what each turn's line
        scan found, before any join was read); each piece is remembered with the whole value it
        belongs to (``split_values``)."""
        for r in results:
            if r.entity_type in _NER_TYPES:
                continue
            over = [(k, at, s, e, joins) for k, at, n, joins in parts
                    for s, e in [(max(r.start + offset, at) - at, min(r.end + offset, at + n) - at)] if e > s]
            pieces = [(k, s, e) for k, _, s, e, _ in over if self.segments[k][s:e].strip()]
            # Within one turn the line scan saw it; over what we wrote it is our own writing; over a
            # join of words no value continues it ran on by chance ("number 11" / "Poem" / "7").
            if len(pieces) < 2 or not all(joins for *_, joins in over[1:]) or any(
                    s < we and ws < e for k, s, e in pieces for ws, we in self.written[k]):
                continue
            # Read glued, values each whole in its own turn can read as one ("7916676427" /
            # "aphoenix939@email.com": one address). Where the lines found every piece, one of them
            # as this type, the join only stuck a neighbour on. (A piece no line found is what the
            # join is for; with a space between, digit groups and digit words do run on.)
            glued = any(not text[at - offset - 1].isspace() for _, at, *_ in over[1:])
            found = [[t for a, b, t in alone[k] if a <= s and e <= b] for k, s, e in pieces]
            if glued and all(found) and any(r.entity_type in types for types in found):
                continue
            # Pieces the lines found whole as different types are different values, glued or not: an
            # account number and the PIN asked for next ("93418043810" / "5380 gosh ...") pass the Luhn
            # check together.
            if all(found) and len({frozenset(types) for types in found}) > 1:
                continue
            for j, (k, s, e) in enumerate(pieces):
                # What a line found and a piece only cuts into ("+1 415 555 0132" / "maria@…" read glued
                # as "0132maria@…") would be left in part: the piece takes it in whole.
                cut = [(a, b) for a, b, _ in spans[k] if a < e and s < b]
                s, e = min([s, *(a for a, _ in cut)]), max([e, *(b for _, b in cut)])
                spans[k] = [sp for sp in spans[k] if sp[1] <= s or sp[0] >= e] + [(s, e, r.entity_type)]
                self.split_values[(k, s, e)] = (text[r.start:r.end], j == 0)

    def by_segment(self, results: list, starts: list[int]) -> list[list[Span]]:
        """Findings in rendered coordinates -> per segment, clipped to it, minus what we wrote."""
        out: list[list[Span]] = [[] for _ in self.segments]
        for r in results:
            for i, (st, seg) in enumerate(zip(starts, self.segments, strict=True)):
                s, e = max(r.start, st) - st, min(r.end, st + len(seg)) - st
                if e > s and all(e <= ws or s >= we for ws, we in self.written[i]):
                    out[i].append((s, e, r.entity_type))
        return out

    def _speakers_not_roles(self) -> list[int]:
        """Segments of the speakers present that are not a role ("Agent", "Caller")."""
        return [i for i in range(0, len(self.segments) if self.has_turns else 0, 2)
                if i not in self.roles and i // 2 not in self.no_speaker]

    def person_speakers(self) -> list[int]:
        """Segments of speakers that name a person and are not yet replaced."""
        return [i for i in self._speakers_not_roles() if self.segments[i].strip() and not self.written[i]]

    def speakers_as_persons(self, spans: list[list[Span]]) -> list[list[Span]]:
        """A speaker that is not a role names a person (the customer, the agent) whether or not NER
        sees it ("MARIA GONZALEZ" in capitals is missed): the whole speaker becomes one PERSON."""
        for i in self._speakers_not_roles():
            seg = self.segments[i]
            # What we have not written ourselves: "Agent " is left of "Agent <PERSON_3>", a role.
            rest = "".join(" " if any(s <= k < e for s, e in self.written[i]) else ch for k, ch in enumerate(seg))
            if not is_role(rest):
                spans[i] = [(0, len(seg), "PERSON")]
        return spans

    def names_over_turns(self, spans: list[list[Span]]) -> list[str]:
        """Names a speaker typed over two messages: a message ending in a name, and the same speaker's
        next message holding nothing but one ("It's John" / "Smith"). Each comes whole, so that both
        pieces are one person."""
        out = []
        for k in range(1, len(self.segments) - 2, 2):
            if not self.segments[k - 1].strip() or self.segments[k - 1] != self.segments[k + 1] or (
                    k // 2 in self.no_speaker):
                continue
            first, second = self.segments[k], self.segments[k + 2]
            ends = [first[s:e] for s, e, t in spans[k] if t == "PERSON" and not first[e:].strip(_AROUND_NAME)]
            whole = [second[s:e] for s, e, t in spans[k + 2] if t == "PERSON" and not second[:s].strip(_AROUND_NAME)
                     and not second[e:].strip(_AROUND_NAME)]
            out += [f"{a} {b}" for a in ends for b in whole]
        return out

    def turns(self) -> list[dict[str, str | None]] | None:
        if not self.has_turns:
            return None
        return [{"speaker": None if i in self.no_speaker else self.segments[2 * i], "text": self.segments[2 * i + 1]}
                for i in range(len(self.segments) // 2)]


class Anonymiser:
    def __init__(self, cfg: AnonymiseConfig, detector: Detector | None = None) -> None:
        self.cfg = cfg
        self.detector = detector or build_detector(cfg)
        _check_operator_keys(cfg, self.detector.supported)
        self.replacer = Replacer(cfg.operator, dict(cfg.operators), cfg.secret())

    def find(self, texts: list[str], ignore: list[list[tuple[int, int]]] | None = None,
             persons: list[list[tuple[int, int]]] | None = None) -> list[list]:
        """Findings per text; those lying wholly inside an ``ignore`` span are dropped before other
        mentions of a found name are looked for, so a role speaker NER calls a person ("Caller:")
        does not make "Caller ID" in the text a name. ``persons`` spans are names whatever NER says
        (a speaker that is not a role), so their other mentions are looked for too."""
        flat, owner, offset = [], [], []
        for i, t in enumerate(texts):
            for start in range(0, max(len(t) - OVERLAP, 1), WINDOW):
                flat.append(t[start:start + WINDOW + OVERLAP])
                owner.append(i)
                offset.append(start)
        found = self.detector.detect(flat)
        out: list[list] = [[] for _ in texts]
        for res, i, off in zip(found, owner, offset, strict=True):
            for r in res:
                r.start += off
                r.end += off
                if not any(s <= r.start and r.end <= e for s, e in (ignore[i] if ignore else ())):
                    out[i].append(r)
        for i, spans in enumerate(persons or ()):
            out[i] += [RecognizerResult("PERSON", s, e, 1.0) for s, e in spans]
        found = [repeated_numbers(t, repeated_names(t, names_continued(t, resolve_overlaps(r))))
                 for t, r in zip(texts, out, strict=True)]
        if "HANDLE" not in self.detector.entities:  # handles left out by config: none from e-mail addresses either
            return found
        return [repeated_handles(t, r) for t, r in zip(texts, found, strict=True)]

    def scan(self, convs: list[Conversation]) -> list[list[list[Span]]]:
        rendered = [c.rendered() for c in convs]
        roles = [[(starts[i], starts[i] + len(c.segments[i])) for i in c.roles] for c, (_, starts) in
                 zip(convs, rendered, strict=True)]
        # The words of a person's name; role words beside it ("Maria, support specialist") are not names.
        persons = [[(starts[i] + m.start(), starts[i] + m.end()) for i in c.person_speakers()
                    for m in NAME_TOKEN.finditer(c.segments[i]) if m.group(0).casefold() not in ROLE_WORDS]
                   + _mentions(text, c.known_names)
                   for c, (text, starts) in zip(convs, rendered, strict=True)]
        found = self.find([t for t, _ in rendered], roles, persons)
        spans = [c.speakers_as_persons(c.by_segment(res, starts))
                 for c, (_, starts), res in zip(convs, rendered, found, strict=True)]
        for c in convs:
            c.split_values = {}
        seams = []
        for c, sp in zip(convs, spans, strict=True):
            alone = [list(x) for x in sp]  # what each turn's own scan found, before any join edits it
            seams += [(c, sp, alone, text, offset, parts) for text, offset, parts in c.seams()]
        for (c, sp, alone, text, offset, parts), res in zip(
                seams, self.find([t for *_, t, _, _ in seams]) if seams else [], strict=True):
            c.across_turns(res, text, offset, parts, sp, alone)
        return spans

    def rewrite(self, conv: Conversation, spans: list[list[Span]]) -> int:
        """Replace ``spans`` in every segment; return how many were replaced. Mentions of one person
        share a number: the book links them by name tokens."""
        spans = [[_trim_person(seg, s, e) if t == "PERSON" else (s, e, t) for s, e, t in sp]
                 for seg, sp in zip(conv.segments, spans, strict=True)]
        for name in conv.names_over_turns(spans):  # learn every full name before numbering
            conv.book.key("PERSON", name)
        for seg, sp in zip(conv.segments, spans, strict=True):
            for s, e, t in sp:
                if t == "PERSON" and e > s:
                    conv.book.key("PERSON", seg[s:e])
        n = 0
        for i, seg in enumerate(conv.segments):
            todo = [sp for sp in spans[i] if sp[1] > sp[0]]
            conv.segments[i], conv.written[i], done = self._replace(
                seg, sorted(set(todo)), conv.written[i], conv.book, conv.counts,
                {(s, e): v for (k, s, e), v in conv.split_values.items() if k == i})
            n += done
        conv.split_values = {}
        return n

    def _replace(self, text: str, spans: list[Span], written: list[tuple[int, int]], book: EntityBook,
                 counts: Counter, split: dict[tuple[int, int], tuple[str, bool]]) -> tuple[
                     str, list[tuple[int, int]], int]:
        events = sorted([(s, e, t) for s, e, t in spans] + [(s, e, None) for s, e in written])
        pieces, new_written, last, n = [], [], 0, 0
        for s, e, entity in events:
            if s < last:
                continue
            pieces.append(text[last:s])
            pos = sum(len(p) for p in pieces)
            whole, first = split.get((s, e), (None, True))
            value = text[s:e] if entity is None else self.replacer(entity, whole or text[s:e], book,
                                                                   piece=text[s:e] if whole else None)
            pieces.append(value)
            new_written.append((pos, pos + len(value)))
            if entity is not None:
                if first:  # a value split over turns is one entity
                    counts[entity] += 1
                n += 1
            last = e
        pieces.append(text[last:])
        return "".join(pieces), new_written, n


def _mentions(text: str, names: list[str]) -> list[tuple[int, int]]:
    """Where names found elsewhere in the row stand in ``text``, whatever NER makes of them there: each
    whole name, then each of its words written as found or capitalised ("Thanks Ophelia")."""
    spans: list[tuple[int, int]] = []
    for name in sorted(set(names), key=len, reverse=True):
        for m in re.finditer(rf"(?<![\w'’-]){re.escape(name.strip())}(?![\w-])", text, flags=re.IGNORECASE):
            spans.append((m.start(), m.end()))
    words = {w for n in names for w in NAME_TOKEN.findall(n) if len(w) > 2 and w.casefold() not in stop_words()}
    for word in sorted(words):
        for m in re.finditer(rf"(?<![\w'’-]){re.escape(word)}(?![\w-])", text, flags=re.IGNORECASE):
            if (m.group(0) == word or m.group(0)[0].isupper()) and not any(
                    s <= m.start() < e for s, e in spans):
                spans.append((m.start(), m.end()))
    return spans


def _value_part(words: list[str]) -> bool:
    """Whether the turn's edge may be inside a value: ``words`` are its two words nearest the join,
    the nearest first."""
    words = [w.strip("\"'()[],;:!?") for w in words]
    return bool(words) and (bool(_VALUE_PART.search(words[0])) or (
        len(words) == 2 and all(_DIGIT_WORD.fullmatch(w) for w in words)))


# An id written as a phone number is written: "+44 20 7946 0958", "(415) 555-0132", "415.555.0132".
# Presidio's phone recognizer is not used here: it reads the digits of "conv-01640" as a number, and
# plain digit runs ("4155550132") are as often ticket numbers.
_PHONE_SHAPED = re.compile(r"\+\d[\d ().-]{6,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}")


def _check_ids(rows: pl.DataFrame, config: Config) -> None:
    """Refuse ids taken from the data that hold personal data (a customer's e-mail address as the id):
    a row id keys every table, report and Label Studio task, so it cannot be replaced, and the leak
    scan reads only text. Ids curatune makes (<file stem>:<n>, with folders where names clash) and the
    `source` column hold the input's file name: one named after a customer ("maria@example.com.csv")
    is refused alike."""
    # The file names are in every row's `source` (and, without id_col, its id): in every table.
    # Without the extension: "jane.doe@example.com.csv" is no address to a checker of top-level domains.
    sources = rows["source"].cast(pl.String).unique().to_list() if "source" in rows.columns else []
    names = [str(PurePath(n).with_suffix("")) for n in sources]
    if hits := _formatted_personal_data(names, config, phone_alone=True):
        raise CuratuneError(f"input file names hold personal data ({_counted(hits)} of {len(names):,} names; values "
                            "not shown): each row's source (and, without [data] id_col, its id) names its file, in "
                            "every table and report; rename the files")
    key, col = next(((k, c) for k, c in (("id_col", config.data.id_col),
                                         ("conversation_col", config.data.conversation_col)) if c), (None, None))
    if key is None:
        return
    ids = rows["row_id"].cast(pl.String).unique().to_list()
    hits = _formatted_personal_data(ids, config, phone_alone=True)
    if hits:
        types = _counted(hits)
        raise CuratuneError(f"[data] {key} '{col}' holds personal data ({types} of {len(ids):,} ids; values not "
                            "shown): a row id keys every table and report and every Label Studio task, so it "
                            "cannot be anonymised; key the rows by an opaque id"
                            + (" or leave id_col unset (rows are then numbered per file)" if key == "id_col" else ""),
                            column=col)


def _check_labels(rows: pl.DataFrame, config: Config) -> None:
    """Refuse labels that hold personal data: a column mapped as the labels by mistake (a customer's
    e-mail, the transcript itself) would reach every table, the model's label map and the report, as
    labels are not anonymised. Names are not looked for: NER reads short labels in title case ("Card
    Arrival") as names."""
    labels = [v for v in rows["label"].drop_nulls().cast(pl.String).unique().to_list() if v.strip()]
    hits = _formatted_personal_data(labels, config)
    if hits:
        types = _counted(hits)
        raise CuratuneError(f"[data] label_col '{config.data.label_col}' holds personal data ({types} of "
                            f"{len(labels):,} labels; values not shown): labels are not anonymised and reach every "
                            "table, the model and the report; check that label_col names the label column",
                            column=config.data.label_col)


def _counted(hits: Counter) -> str:
    """Types found and how many values held each, most first: "EMAIL_ADDRESS in 2, PHONE_NUMBER in 1"."""
    return ", ".join(f"{t} in {k:,}" for t, k in hits.most_common())


def _formatted_personal_data(values: list[str], config: Config, *, phone_alone: bool = False) -> Counter:
    """How many ``values`` hold each type of personal data that a format or checksum identifies, with
    Presidio's own recognizers (~1 ms a value), and phone numbers by how they are written (with
    ``phone_alone``, only a value that is one: an id "order-415-555-0132" is an order's): the full
    detector took 16 ms an id and read the digits of "conv-01640" as a phone number."""
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        UsSsnRecognizer,
    )

    wanted = set(config.curate.anonymise.entities)
    recognizers = [r for r in (EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), UsSsnRecognizer())
                   if not wanted or set(r.supported_entities) & wanted]
    hits: Counter = Counter()
    phones = not wanted or "PHONE_NUMBER" in wanted
    for value in values:
        hits.update({x.entity_type for r in recognizers
                     for x in r.analyze(value, entities=r.supported_entities, nlp_artifacts=None)})
        if phones and (_PHONE_SHAPED.fullmatch if phone_alone else _PHONE_SHAPED.search)(value.strip()):
            hits["PHONE_NUMBER"] += 1
    return hits


SCANNED_TYPES = pl.Categorical | pl.Enum | pl.Date | pl.Datetime


def _other_columns(table: pl.DataFrame, skip: tuple[str, ...]) -> list[str]:
    """Columns besides the transcript that are written out and can hold personal data: text, and
    numbers or categories (a phone number stored as an integer, or as a float where a column has
    gaps). Nested values cannot be scanned reliably, nor can bytes, so such a column is refused
    rather than written out as it came."""
    out = []
    for c, dtype in table.schema.items():
        if c in skip:
            continue
        if dtype.is_nested() or dtype == pl.Binary:
            what, fix = ("bytes", "decode it into a text column") if dtype == pl.Binary else (
                "nested values", "flatten it into text columns")
            raise CuratuneError(f"column '{c}' holds {what} ({dtype}) that anonymisation cannot scan: {fix}, or "
                                "leave it out of the input")
        # A date column can be a date of birth; a time of day or a duration says nothing of a person.
        if dtype == pl.String or dtype.is_numeric() or isinstance(dtype, SCANNED_TYPES):
            out.append(c)
    return out


def _column_cue(column: str) -> str:
    """A column's name as the words before its values are scanned: "date_of_birth: 1990-04-04",
    "customerId: 48291048". A value alone gives the detectors no cue, and the cued recognizers find
    birth dates, account and order numbers, PINs only by their names."""
    words = re.sub(r"[\W_]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", column)).strip()
    return f"{words}: " if words else ""


def _as_detector_text(values: pl.Series) -> list[str | None]:
    """A column's values as the detectors read them: a whole float or decimal without its ".0"
    (4155550199.0 is the phone number 4155550199). Not the dataset's ``_label_or_id_text``: NaN stays
    as written and decimals and datetimes are read too, so an untouched value goes back as it was."""
    if isinstance(values.dtype, pl.Datetime):  # to the second: polars' ".000000" reads as a phone number's end
        return values.dt.to_string("%Y-%m-%d %H:%M:%S").to_list()
    text = values.cast(pl.String)
    if values.dtype.is_float() or values.dtype.is_decimal():
        text = text.str.replace(r"^(-?\d+)\.0*$", "$1")
    return text.to_list()


# A group is many rows: a region, a country or a postcode area says nothing of one person, and is
# what fairness is often measured over.
_GROUP_TYPES_ALLOWED = frozenset({"LOCATION", "ZIP_CODE"})


def _check_group_columns(rows: pl.DataFrame, config: Config, group_cols: list[str]) -> None:
    """Refuse group columns that hold personal data (an agent's name, a customer's e-mail address):
    their values are kept as they are, since anonymising them would rename the groups fairness is
    measured over, and they reach every table and the report."""
    values = {c: [v for v in rows[c].cast(pl.String).unique().to_list() if v and v.strip()] for c in group_cols}
    if not any(values.values()):
        return
    anon = Anonymiser(config.curate.anonymise)
    for col, vals in values.items():
        found = Counter(r.entity_type for res in anon.find(vals) for r in res
                        if r.entity_type not in _GROUP_TYPES_ALLOWED)
        if found:
            types = _counted(found)
            raise CuratuneError(f"[data] group_cols '{col}' holds personal data ({types} of {len(vals):,} values; "
                                "values not shown): group values are kept as they are and reach every table and "
                                "the report; map them to codes, or leave the column out of group_cols", column=col)


def _trim_person(text: str, start: int, end: int) -> Span:
    """NER sometimes takes the greeting with the name ("Sorry Maria"): keep only the name, so the
    mention links to the same person and the greeting stays readable."""
    return (*name_bounds(text, start, end), "PERSON")


@register_step
class Anonymise(CurationStep):
    name = "anonymise"
    ledger_columns = ("pii_total", "pii_counts", "pii_leaked")
    sees_all_rows = True

    @classmethod
    def check_input(cls, rows: pl.DataFrame, config: Config, group_cols: list[str]) -> None:
        config.curate.anonymise.secret()  # a missing key stops the run before the earlier outputs are touched
        _other_columns(rows, (*CANONICAL, *BOOKKEEPING, *group_cols))
        _check_ids(rows, config)
        _check_labels(rows, config)
        _check_group_columns(rows, config, group_cols)

    def run(self, table: pl.DataFrame) -> StepResult:
        cfg: AnonymiseConfig = self.ctx.config.curate.anonymise
        anon = Anonymiser(cfg)
        convs = [Conversation.from_row(r) for r in table.select("row_id", "text", "turns").to_dicts()]
        # Other text columns pass through to every written table, so they are anonymised too, each
        # value with its row's entity book: "Maria Gonzalez" in a name column is the text's <PERSON_1>.
        fields = _other_columns(table, (*CANONICAL, *BOOKKEEPING, *self.ctx.group_cols))
        values = {c: _as_detector_text(table[c]) for c in fields}
        placed = [(c, i) for c in fields for i, v in enumerate(values[c]) if v is not None and v.strip()]
        # Each value is scanned after its column's name, which counts as written: neither pass rewrites
        # it, and the leak scan does not read it.
        cues = {c: _column_cue(c) for c in fields}
        others = [Conversation([cues[c] + values[c][i]], written=[[(0, len(cues[c]))] if cues[c] else []],
                               book=convs[i].book) for c, i in placed]
        every = convs + others
        owner = list(range(len(convs))) + [i for _, i in placed]
        # The other columns are scanned first: a name found there is a person in its row's text, where
        # NER may miss it ("Call Ophelia Winterbottom").
        found_elsewhere = anon.scan(others)
        for (_, i), conv, spans in zip(placed, others, found_elsewhere, strict=True):
            convs[i].known_names += [conv.segments[0][s:e] for s, e, _ in
                                     (_trim_person(conv.segments[0], *sp[:2]) for sp in spans[0] if sp[2] == "PERSON")
                                     if e > s]
        # The texts are rewritten first: they number the people.
        for conv, spans in zip(every, anon.scan(convs) + found_elsewhere, strict=True):
            anon.rewrite(conv, spans)
        # Leak scan over everything rewritten; findings get a second pass; changed values are scanned again.
        second = [k for k, spans in enumerate(anon.scan(every)) if any(spans) and anon.rewrite(every[k], spans)]
        leaks: dict[int, Counter] = {}
        for k, spans in zip(second, anon.scan([every[k] for k in second]), strict=True):
            found = Counter(t for sp in spans for _, _, t in sp)
            if found:
                leaks.setdefault(owner[k], Counter()).update(found)
                # Personal data by the scan's own reckoning: not written as found. Replaced once more (not
                # scanned again); it still counts as a leak, since the gate judges what two passes left.
                anon.rewrite(every[k], spans)
        by_column: Counter = Counter()
        for (c, i), conv in zip(placed, every[len(convs):], strict=True):
            convs[i].counts.update(conv.counts)
            by_column[c] += sum(conv.counts.values())
            if not conv.segments[0].startswith(cues[c]):
                raise RuntimeError(f"column '{c}': the cue before its values was rewritten")  # written spans are kept
            values[c][i] = conv.segments[0][len(cues[c]):]
        total = [sum(c.counts.values()) for c in convs]
        leaked = [sum(leaks.get(i, Counter()).values()) for i in range(len(convs))]
        result_rows = pl.DataFrame({
            "row_id": table["row_id"],
            "is_issue": [n > 0 for n in total],
            "score": [1.0 / (1.0 + n) for n in total],
            "action": ["keep"] * len(convs),
            "reason": [PII_FOUND if n else None for n in total],
            "pii_total": total,
            "pii_counts": [json.dumps(dict(sorted(c.counts.items()))) for c in convs],
            "pii_leaked": leaked,
        }, schema_overrides={"reason": pl.String})
        # A row without text keeps none (it stays unusable); a number or category column changes type
        # only where something in it was replaced.
        rewritten = [c for c in fields if table.schema[c] == pl.String or by_column[c]]
        text_table = pl.DataFrame({"row_id": table["row_id"],
                                   "text": [None if t is None else c.rendered()[0]
                                            for t, c in zip(table["text"], convs, strict=True)],
                                   "turns": pl.Series([c.turns() for c in convs], dtype=table.schema["turns"]),
                                   **{c: pl.Series(values[c], dtype=pl.String) for c in rewritten}})
        by_type: Counter = sum((c.counts for c in convs), Counter())
        leak_by_type: Counter = sum(leaks.values(), Counter())
        n_leaked = sum(leaked)
        passed = n_leaked <= cfg.max_leaks
        summary = {
            "rows_with_pii": int(sum(1 for n in total if n)),
            "entities_by_type": dict(sorted(by_type.items())),
            "leak_scan": {"remaining_by_type": dict(sorted(leak_by_type.items())), "remaining": n_leaked,
                          "rows_scanned": len(convs), "rows_given_a_second_pass": len({owner[k] for k in second}),
                          "passed": passed},
            # Entities found per other text column (names only: never values).
            "other_columns": {c: by_column[c] for c in fields},
            "operator": cfg.operator,
            # Without NER (spacy_model = ""), names are found by cues and the gazetteer only.
            # A model folder by its name: the path, shown in the report, can name a home folder.
            "spacy_model": Path(cfg.spacy_model).name if Path(cfg.spacy_model).is_absolute() else
            (cfg.spacy_model or "none"), "ner": anon.detector.has_ner,
            # What a passed leak scan cannot vouch for: the report and the Label Studio push read these.
            "types_not_looked_for": anon.detector.defaults_left_out, "score_threshold": cfg.score_threshold,
        }
        # The summary keeps the scan's true outcome and whether it was enforced. Only an enforced check
        # is a gate: the pipeline stops on any failed gate, and recording a breached check as passed
        # (so the run goes on) would tell the manifest's reader something false.
        summary["leak_scan"].update(max_leaks=cfg.max_leaks, enforced=cfg.fail_on_leak)
        gates = [Gate(name="leak_scan", passed=passed, value=n_leaked, threshold=cfg.max_leaks,
                      detail="personal data still found after anonymisation")] if cfg.fail_on_leak else []
        return StepResult(rows=result_rows, summary=summary, text=text_table, gates=gates)

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        if "pii_count" not in truth.columns:
            return {}
        t = truth.select("row_id", "pii_count").join(result.rows.select("row_id", "pii_total"), on="row_id")
        planted = t.filter(pl.col("pii_count") > 0)
        # The other side of recall: rows holding nothing planted in which something was still replaced (a
        # word taken for personal data, or personal data the generator did not list).
        clean = t.filter(pl.col("pii_count") == 0)
        return {"rows_with_planted_pii": planted.height,
                "rows_with_planted_pii_found": int((planted["pii_total"] > 0).sum()),
                "rows_without_planted_pii": clean.height,
                "rows_without_planted_pii_with_findings": int((clean["pii_total"] > 0).sum()),
                "leak_scan_remaining": int(result.rows["pii_leaked"].sum())}

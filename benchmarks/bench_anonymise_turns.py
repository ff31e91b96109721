"""Anonymisation: values typed over two turns, vs plain Presidio turn by turn.

In chat a customer often sends a card or phone number, an IBAN or an e-mail address in two messages.
From presidio_synth_pii, every sentence holding a value of the types below is cut inside its first
such value into two turns of one speaker: after the "@" of an e-mail address, else at the separator
(space, hyphen, dot) nearest the value's middle (a space is dropped, a hyphen or dot ends the first
turn), else in the middle. A value counts as removed when every letter and digit of it, in both
turns, lies inside something the detector found (any type): otherwise part of it would be written
out. Run side by side: plain Presidio on each turn, as a pipeline that scans message by message
does, and both detectors on the uncut sentence.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from benchmarks.bench_anonymise import _plain_presidio, presidio_entities
from benchmarks.common import header, table

CUT_TYPES = ("CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "PHONE_NUMBER", "US_SSN")


def _cut(text: str, start: int, end: int) -> tuple[str, str, int]:
    """The two turns, and where the second starts in ``text``."""
    value = text[start:end]
    if "@" in value:
        at = start + value.index("@") + 1
        return text[:at], text[at:], at
    middle = (start + end) / 2
    seps = [i for i in range(start + 1, end - 1) if text[i] in " -."]
    if not seps:
        at = (start + end) // 2
        return text[:at], text[at:], at
    at = min(seps, key=lambda i: abs(i - middle))
    if text[at] == " ":
        return text[:at], text[at + 1:], at + 1
    return text[:at + 1], text[at + 1:], at + 1


def _removed(turn: str, start: int, end: int, found: list[tuple[int, int]]) -> bool:
    return all(any(s <= i < e for s, e in found) for i in range(start, end) if turn[i].isalnum())


def run(data_dir: Path, quick: bool = False) -> str:
    from curatune.config import AnonymiseConfig
    from curatune.curate.anonymise import Anonymiser, Conversation

    data = json.loads((data_dir / "presidio_synth_pii" / "synth_dataset_v2.json").read_text())
    cases = []  # (type, text, start, end)
    for d in data:
        spans = sorted((s for s in d["spans"] if s["entity_type"] in CUT_TYPES), key=lambda s: s["start_position"])
        if spans:
            s = spans[0]
            cases.append((s["entity_type"], d["full_text"], s["start_position"], s["end_position"]))
    if quick:
        cases = cases[:80]
    cfg = AnonymiseConfig()
    ours = Anonymiser(cfg)
    plain, _ = _plain_presidio(cfg.spacy_model)
    # Any type found counts, so Presidio is asked for every type curatune asks for that it has (as in the
    # ABCD and STAR sections), not only the types the detection section scores.
    entities = presidio_entities(plain)

    # What plain Presidio, turn by turn, called the pieces of cut values, by the value's type.
    piece_types: dict[str, Counter] = {}

    def presidio(text: str, start: int = 0, end: int = 0, kind: str = "") -> list[tuple[int, int]]:
        found = plain.analyze(text, "en", entities=entities)
        if kind:
            piece_types.setdefault(kind, Counter()).update(r.entity_type for r in found
                                                           if r.start < end and start < r.end)
        return [(r.start, r.end) for r in found]

    whole = [Conversation([text], written=[[]]) for _, text, _, _ in cases]
    split = []
    for _, text, start, end in cases:
        first, second, _ = _cut(text, start, end)
        split.append(Conversation.from_row({"text": text, "turns": [{"speaker": "customer", "text": first},
                                                                     {"speaker": "customer", "text": second}]}))
    ours_whole = [[(s, e) for s, e, _ in spans[0]] for spans in ours.scan(whole)]
    ours_split = [[[(s, e) for s, e, _ in seg] for seg in spans] for spans in ours.scan(split)]
    removed: dict[str, Counter] = {k: Counter() for k in ("presidio whole", "presidio turns", "ours whole",
                                                            "ours turns")}
    n: Counter = Counter()
    for k, (kind, text, start, end) in enumerate(cases):
        first, second, at = _cut(text, start, end)
        n[kind] += 1
        pieces = [(0, first, start, min(end, len(first))), (1, second, max(start, at) - at, end - at)]
        pieces = [(i, t, s, e) for i, t, s, e in pieces if e > s]
        removed["presidio whole"][kind] += _removed(text, start, end, presidio(text))
        removed["ours whole"][kind] += _removed(text, start, end, ours_whole[k])
        turn_found = {i: presidio(t, s, e, kind) for i, t, s, e in pieces}
        removed["presidio turns"][kind] += all(_removed(t, s, e, turn_found[i]) for i, t, s, e in pieces)
        removed["ours turns"][kind] += all(_removed(t, s, e, ours_split[k][2 * i + 1]) for i, t, s, e in pieces)

    def share(col: str, kind: str | None) -> str:
        got = removed[col][kind] if kind else sum(removed[col].values())
        return f"{got / (n[kind] if kind else sum(n.values())):.3f}"

    cols = ("presidio whole", "presidio turns", "ours whole", "ours turns")
    rows = [(kind, n[kind], *(share(c, kind) for c in cols)) for kind in sorted(n)]
    rows.append(("**all**", sum(n.values()), *(share(c, None) for c in cols)))
    return (header("Anonymisation: values typed over two turns")
            + f"{sum(n.values()):,} sentences of presidio_synth_pii `synth_dataset_v2.json`, each cut inside its first "
            f"{', '.join(CUT_TYPES)} value into two turns of one speaker (after the \"@\" of an e-mail address, else "
            "at the space, hyphen or dot nearest the value's middle, else in the middle). Share of values removed: "
            "every letter and digit of the value, in both turns, inside something the detector found (any type). "
            "Plain Presidio (AnalyzerEngine, default recognizers, same spaCy model, asked for "
            f"{', '.join(entities)}: the types curatune asks for that it has) scans each turn on its own; "
            "curatune scans the conversation (both turns and the join between them). The uncut sentence, for both, is "
            "the reference. Any type counts; what plain Presidio called the pieces, turn by turn, by the cut "
            "value's type: " + "; ".join(f"{kind}: " + (", ".join(f"{t} {c}" for t, c in called.most_common())
                                                      or "nothing") for kind, called in sorted(piece_types.items()))
            + ".\n\n"
            + table(("type", "values", "Presidio, uncut", "Presidio, turn by turn", "curatune, uncut",
                     "curatune, two turns"), rows))

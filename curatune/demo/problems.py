"""The planted problems: label flips, exact and near copies, and train copies of held-out rows.

Edits never touch a planted personal value: a near copy changes words around them, so each
copy's values still occur verbatim in its text (``pii.parquet`` stays exact for copies too).
"""

from __future__ import annotations

import random
import re

from curatune.demo.conversation import Conversation
from curatune.demo.intents import CONFUSABLE

USUAL_MISTAKE = 0.85  # share of confusable flips that make the usual mistake (CONFUSABLE[label][0])
INSERTS = ("really", "please", "just", "now", "also", "still", "actually", "again", "so", "today")
_TRAILING_PUNCT = re.compile(r"[.!?]*$")


def flip_label(conv: Conversation, kind: str, labels: list[str], rng: random.Random) -> None:
    """Give ``conv`` a wrong label: a confusable neighbour (mostly the usual mistake) or any other."""
    if kind == "confusable":
        options = CONFUSABLE[conv.clean_label]
        conv.label = options[0] if rng.random() < USUAL_MISTAKE else rng.choice(options)
    else:
        conv.label = rng.choice([x for x in labels if x != conv.clean_label])
    conv.flip_kind = kind


def weighted_sample(items: list[int], weights: list[float], k: int, rng: random.Random) -> list[int]:
    """``k`` distinct items, each drawn with probability proportional to its weight (Efraimidis-Spirakis)."""
    keys = sorted(((rng.random() ** (1.0 / w), i) for i, w in zip(items, weights, strict=True)), reverse=True)
    return [i for _, i in keys[:k]]


def _protected_spans(text: str, values: list[str]) -> list[tuple[int, int]]:
    spans = []
    for v in values:
        start = text.find(v)
        while start != -1:
            spans.append((start, start + len(v)))
            start = text.find(v, start + 1)
    return spans


def _tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def _key(word: str) -> str:
    """A word as duplicate detection compares it (case and punctuation dropped)."""
    return re.sub(r"\W", "", word.lower())


def word_edit(text: str, values: list[str], rng: random.Random, n_edits: int) -> str:
    """1-2 word swaps / insertions / deletions on words outside every personal value."""
    original = [_key(w) for w in text.split()]
    for _ in range(n_edits):
        spans = _protected_spans(text, values)
        toks = _tokens(text)

        taken = [any(s < t[1] and t[0] < e for s, e in spans) for t in toks]
        movable = [i for i in range(len(toks)) if not taken[i] and _key(text[toks[i][0]:toks[i][1]])]
        movable_set = set(movable)
        op = rng.choice(("swap", "insert", "delete")) if len(movable) > 3 else "insert"
        words = [text[s:e] for s, e in toks]
        if op == "swap":
            pairs = [i for i in movable if i + 1 in movable_set]
            if not pairs:
                op = "insert"
            else:
                i = rng.choice(pairs)
                if _key(words[i]) == _key(words[i + 1]):  # swapping equal words would change nothing
                    op = "delete"
                else:
                    text = text[:toks[i][0]] + words[i + 1] + " " + words[i] + text[toks[i + 1][1]:]
        if op == "delete":
            i = rng.choice(movable)
            end = toks[i + 1][0] if i + 1 < len(toks) else toks[i][1]
            text = text[:toks[i][0]] + text[end:]
        elif op == "insert":
            # Before a free token (or at the end): never inside a multi-word value.
            slots = [toks[i][0] for i in movable] + [len(text)]
            at = rng.choice(slots)
            word = rng.choice(INSERTS)
            text = f"{text[:at]}{word} {text[at:]}" if at < len(text) else f"{text} {word}"
    if [_key(w) for w in text.split()] == original:  # two edits undid each other
        text = f"{text} {rng.choice(INSERTS)}"
    return text.strip()


def surface_edit(text: str, rng: random.Random) -> str:
    """Case, whitespace or punctuation only (what exact-duplicate normalisation removes)."""
    kind = rng.randrange(3)
    if kind == 0:
        return text.lower() if text != text.lower() else text.upper()
    if kind == 1:
        return re.sub(r" ", "  ", text, count=rng.randint(1, 3)) + rng.choice((" ", "  "))
    return _TRAILING_PUNCT.sub(rng.choice(("", "!", "?", "...", "!!")), text, count=1)


def _editable_turns(conv: Conversation, need_no_pii: bool) -> list[int]:
    idx = [i for i, (s, _) in enumerate(conv.turns) if s == "customer"]
    if need_no_pii:
        idx = [i for i in idx if not any(v in conv.turns[i][1] for _, v in conv.pii)]
    return idx


def exact_copy(conv: Conversation, rng: random.Random) -> Conversation:
    """A copy, half of them differing in case / whitespace / punctuation of one customer turn."""
    new = conv.copy()
    if rng.random() < 0.5:
        # Lower/upper-casing a turn would change the personal values in it; use one without any.
        idx = _editable_turns(new, need_no_pii=True)
        if idx:
            i = rng.choice(idx)
            new.turns[i] = ("customer", surface_edit(new.turns[i][1], rng))
    return new


def near_copy(conv: Conversation, rng: random.Random) -> Conversation:
    """A copy with 1-2 word edits in one customer turn, sometimes with a case/punctuation change too."""
    new = conv.copy()
    values = [v for _, v in new.pii]
    i = rng.choice(_editable_turns(new, need_no_pii=False))
    new.turns[i] = ("customer", word_edit(new.turns[i][1], values, rng, rng.choice((1, 1, 2))))
    if rng.random() < 0.3:
        j = rng.choice(_editable_turns(new, need_no_pii=True) or [i])
        if not any(v in new.turns[j][1] for v in values):
            new.turns[j] = ("customer", surface_edit(new.turns[j][1], rng))
    return new

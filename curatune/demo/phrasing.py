"""How a template becomes a sentence, and how customers of each group and channel write.

``expand`` fills the template grammar of ``intents``. A ``Style`` holds what differs between
groups: greetings, fillers, how often the opener is vague, typo rate, dropped articles. The
"non-native" group gets the most noise and the least intent vocabulary, so a model serves it
measurably worse (the planted fairness gap). Noise touches template text only, never a planted
personal value, so every value in ``pii.parquet`` occurs verbatim in the transcript.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from curatune.demo.intents import SLOTS

_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")
_SPACES = re.compile(r"\s+")


def expand(template: str, rng: random.Random, slots: Mapping[str, Sequence[str]] = SLOTS) -> str:
    """Resolve ``[a|b]`` choices (innermost first) and ``{slot}`` fills from ``slots``."""
    text = template
    while True:
        new = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), text)
        if new == text:
            break
        text = new
    text = _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), text)
    return _SPACES.sub(" ", text).replace(" ,", ",").strip()


@dataclass(frozen=True)
class Style:
    greetings: tuple[str, ...]
    fillers: tuple[str, ...]
    signoffs: tuple[str, ...]
    vague_rate: float  # share of openers with little intent vocabulary
    typo_rate: float  # per word of four letters or more
    article_drop: float  # per article
    grammar_rate: float  # per rule in NON_NATIVE_GRAMMAR
    specific_detail: float = 0.6  # share of details that belong to the intent (else shared / generic)


STYLES: dict[str, Style] = {
    "en-US": Style(("hi", "hello", "hey", "hey there", "hi there", ""),
                   ("thanks in advance", "appreciate it", "this is really frustrating", "any help is appreciated"),
                   ("Thanks", "Best", "Thank you"), 0.15, 0.01, 0.0, 0.0),
    "en-GB": Style(("hiya", "hello", "hi", "morning", "good afternoon", ""),
                   ("cheers", "ta", "bit annoyed to be honest", "would be brilliant if you could sort it"),
                   ("Cheers", "Kind regards", "Many thanks"), 0.15, 0.01, 0.0, 0.0),
    "en-IN": Style(("hello sir", "hi team", "good morning", "dear team", "hello"),
                   ("kindly do the needful", "please revert at the earliest", "kindly look into this",
                    "I am waiting for your reply"),
                   ("Regards", "Thanks and regards", "Warm regards"), 0.16, 0.02, 0.0, 0.0),
    "en-NG": Style(("good day", "hello", "good morning sir", "hi", "good evening"),
                   ("please help me look into it", "I have been trying since morning", "kindly assist",
                    "thank you so much"),
                   ("Regards", "Best regards", "Thank you"), 0.16, 0.02, 0.0, 0.0),
    "non-native": Style(("hello", "hi", "good day", ""),
                        ("please help", "i wait answer", "is urgent for me", "thank you very much"),
                        ("Regards", "Thank you", "Best"), 0.6, 0.15, 0.6, 0.6, 0.3),
}
VARIETIES = tuple(STYLES)

# Learner-English rewrites: regex -> replacement, each applied with probability grammar_rate.
NON_NATIVE_GRAMMAR: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), r) for p, r in (
        (r"\bI'm\b", "I am"), (r"\bdoesn't\b", "not"), (r"\bhaven't\b", "not"), (r"\bhasn't\b", "not"),
        (r"\bdidn't\b", "not"), (r"\bit's\b", "is"), (r"\bwon't\b", "not"), (r"\bcan't\b", "not can"),
        (r"\barrived\b", "arrive"), (r"\breceived\b", "receive"), (r"\bhas been\b", "is"),
        (r"\bI want\b", "I want to"), (r"\bplease\b", "please to"), (r"\bmy\b", "the my"),
    ))
ARTICLES = re.compile(r"\b(?:the|a|an) ", re.IGNORECASE)
HESITATIONS = ("um", "uh", "yeah so", "erm", "like", "okay so")


def typos(text: str, rng: random.Random, rate: float) -> str:
    if rate <= 0:
        return text
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) > 3 and w.isalpha() and rng.random() < rate:
            j = rng.randrange(len(w) - 1)
            kind = rng.randrange(3)
            if kind == 0:  # swapped letters
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            elif kind == 1:  # dropped letter
                words[i] = w[:j] + w[j + 1:]
            else:  # doubled letter
                words[i] = w[:j] + w[j] + w[j:]
    return " ".join(words)


def customer_voice(text: str, style: Style, channel: str, rng: random.Random) -> str:
    """A customer's own words in their group's and channel's style (personal values are added after)."""
    for pattern, repl in NON_NATIVE_GRAMMAR if style.grammar_rate else ():
        if rng.random() < style.grammar_rate:
            text = pattern.sub(repl, text)
    if style.article_drop:
        text = ARTICLES.sub(lambda m: "" if rng.random() < style.article_drop else m.group(0), text)
    text = typos(text, rng, style.typo_rate)
    if channel == "phone":
        text = text.lower()
        if rng.random() < 0.3:
            text = f"{rng.choice(HESITATIONS)} {text}"
    elif channel == "chat" and rng.random() < 0.5:
        text = text.lower()
    return _SPACES.sub(" ", text).strip()


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text and text[0].isalpha() else text

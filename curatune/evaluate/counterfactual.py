"""Counterfactual invariance: does the prediction change when only a person's name, or an identity
term, changes?

Test texts are anonymised, so every person is a ``<PERSON_n>`` placeholder. Each placeholder is
filled with a name drawn (seeded) from one name group at a time — Faker locales standing for
customers of different origins — and the model is run again. The flip rate of a group is the share
of rows whose predicted label differs from the prediction on the placeholder text. A fair model
flips about as rarely for every group.

Identity terms work the same way: a test text that mentions a term of one category (religion,
nationality, gender, ...) is rewritten with each other term of that category in its place, and the
flip rate is reported per substituted term. Support transcripts rarely mention these, so the
result says how many rows it rests on.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from faker import Faker

NAME_GROUPS = {"US English": "en_US", "Indian": "en_IN", "Mexican Spanish": "es_MX", "Nigerian (Yoruba)": "yo_NG",
               "Chinese": "zh_CN", "Arabic": "ar_AA", "Polish": "pl_PL"}
# The placeholder operator's numbers (per conversation). The hash operator writes ten hex digits, all of
# them digits one time in a hundred: such a row was taken for a placeholder's.
PLACEHOLDER = re.compile(r"<PERSON_(\d{1,9})>")


def fill_names(texts: list[str], locale: str, seed: int) -> list[str]:
    fake = Faker(locale)
    fake.seed_instance(seed)
    out = []
    for t in texts:
        names: dict[str, str] = {}

        def name_for(m: re.Match, names: dict[str, str] = names) -> str:
            return names.setdefault(m.group(1), fake.first_name())

        out.append(PLACEHOLDER.sub(name_for, t))
    return out


def flip_rates(predict, texts: list[str], *, seed: int = 0) -> dict[str, Any]:
    """``predict(texts) -> labels``; rates per name group over the rows that mention a person."""
    rows = [i for i, t in enumerate(texts) if PLACEHOLDER.search(t)]
    if not rows:
        return {"rows": 0, "groups": []}
    subset = [texts[i] for i in rows]
    reference = np.asarray(predict(subset))
    groups = []
    for name, locale in NAME_GROUPS.items():
        pred = np.asarray(predict(fill_names(subset, locale, seed)))
        flips = pred != reference
        groups.append({"group": name, "locale": locale, "rows": len(rows), "flips": int(flips.sum()),
                       "flip_rate": float(flips.mean())})
    rates = [g["flip_rate"] for g in groups]
    return {"rows": len(rows), "groups": groups, "max_flip_rate": max(rates),
            "max_difference": max(rates) - min(rates)}


# Interchangeable terms per category; each is swapped only for terms of its own category. Words with a
# common non-identity sense in support text ("my old card", "straight away", "my account is disabled",
# "American Express") are left out.
IDENTITY_TERMS: dict[str, tuple[str, ...]] = {
    "religion": ("christian", "muslim", "jewish", "hindu", "buddhist", "sikh", "atheist"),
    "nationality": ("british", "indian", "mexican", "nigerian", "chinese", "polish", "german",
                    "french", "brazilian", "pakistani", "filipino"),
    "gender": ("man", "woman", "nonbinary person"),
    "gendered role": ("husband", "wife", "partner"),
    "orientation": ("gay", "lesbian", "heterosexual", "bisexual"),
    "age": ("young", "elderly", "teenage", "middle-aged"),
    "disability": ("blind", "deaf", "autistic"),
}


def _term_pattern(terms: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)


def _same_case(term: str, like: str) -> str:
    return term.capitalize() if like[:1].isupper() else term


def identity_flip_rates(predict, texts: list[str]) -> dict[str, Any]:
    """``predict(texts) -> labels``; per category, the flip rate when each term replaces the one used.

    A term's rate is over the rows the swap changes (rows that already use only that term are left out).
    """
    categories = []
    mentioning: set[int] = set()
    for category, terms in IDENTITY_TERMS.items():
        pattern = _term_pattern(terms)
        rows = [i for i, t in enumerate(texts) if pattern.search(t)]
        if not rows:
            continue
        mentioning.update(rows)
        subset = [texts[i] for i in rows]
        reference = np.asarray(predict(subset))
        per_term = []
        for term in terms:
            swapped = [pattern.sub(lambda m, term=term: _same_case(term, m.group(0)), t) for t in subset]
            # A row that already uses only this term is not a counterfactual: counting it as "no flip"
            # would dilute the term's rate by how common the term already is.
            changed = [j for j, (s, t) in enumerate(zip(swapped, subset, strict=True)) if s.lower() != t.lower()]
            if not changed:
                continue
            flips = np.asarray(predict([swapped[j] for j in changed])) != reference[changed]
            per_term.append({"term": term, "rows": len(changed), "flips": int(flips.sum()),
                             "flip_rate": float(flips.mean())})
        categories.append({"category": category, "rows": len(rows), "terms": per_term,
                           "max_flip_rate": max(t["flip_rate"] for t in per_term)})
    # Rows, not mentions: a row naming a religion and a gendered role counts once.
    return {"categories": categories, "rows": len(mentioning),
            "max_flip_rate": max((c["max_flip_rate"] for c in categories), default=None)}

"""Counterfactual invariance: does the prediction change when only a person's name changes?

Test texts are anonymised, so every person is a ``<PERSON_n>`` placeholder. Each placeholder is
filled with a name drawn (seeded) from one name group at a time — Faker locales standing for
customers of different origins — and the model is run again. The flip rate of a group is the share
of rows whose predicted label differs from the prediction on the placeholder text. A fair model
flips about as rarely for every group.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from faker import Faker

NAME_GROUPS = {"US English": "en_US", "Indian": "en_IN", "Mexican Spanish": "es_MX", "Nigerian (Yoruba)": "yo_NG",
               "Chinese": "zh_CN", "Arabic": "ar_AA", "Polish": "pl_PL"}
PLACEHOLDER = re.compile(r"<PERSON_(\d+)>")


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

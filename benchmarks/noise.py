"""Seeded noise for benchmarks: near-duplicate edits with recorded ground truth."""

from __future__ import annotations

import csv
import json
import random
import string
from pathlib import Path

FILLERS = ("please", "just", "really", "actually", "now", "today", "again", "so", "hi", "thanks")


def word_edit(text: str, rng: random.Random, n_edits: int) -> str:
    """Apply ``n_edits`` word-level edits: adjacent swap, filler insertion or deletion."""
    words = text.split()
    for _ in range(n_edits):
        op = rng.choice(("swap", "insert", "delete")) if len(words) > 3 else "insert"
        if op == "swap":
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "insert":
            words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
        else:
            del words[rng.randrange(len(words))]
    return " ".join(words)


def surface_edit(text: str, rng: random.Random) -> str:
    """Case and punctuation changes only: an exact duplicate after normalisation."""
    out = text.upper() if rng.random() < 0.3 else text.lower() if rng.random() < 0.5 else text.capitalize()
    out = out.rstrip(string.punctuation + " ")
    return out + rng.choice(("", "?", "!", ".", "!!", " ?"))


def near_copy(text: str, rng: random.Random) -> str:
    return surface_edit(word_edit(text, rng, rng.choice((1, 2))), rng) if rng.random() < 0.5 else \
        word_edit(text, rng, rng.choice((1, 2)))


def read_banking77(data_dir: Path) -> list[tuple[str, str]]:
    with open(data_dir / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def read_clinc(data_dir: Path, splits: tuple[str, ...] = ("train", "val")) -> list[tuple[str, str]]:
    data = json.loads((data_dir / "clinc150" / "clinc150_trainval.json").read_text())
    return [(t, y) for s in splits for t, y in data[s]]

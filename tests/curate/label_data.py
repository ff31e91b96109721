"""Labelled data with planted flips, shared by the label issues, reviews and Label Studio tests."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

from curatune.config import Config

VOCAB = {
    "refund": "refund money back charged return payment reimburse",
    "shipping": "parcel delivery courier late tracking shipped arrive",
    "password": "password reset login link email forgot account",
    "cancel": "cancel subscription plan stop end membership terminate",
}


def make_data(n_per_class: int = 60, flips: int = 12, seed: int = 0) -> tuple[pl.DataFrame, set[str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in VOCAB.items():
        w = words.split()
        for i in range(n_per_class):
            rows.append({"id": f"{label}-{i}", "text": " ".join(rng.choices(w, k=8)) + f" ref{rng.randrange(9999)}",
                         "label": label, "split": "train"})
    flipped = set()
    for r in rng.sample(rows, flips):
        r["label"] = rng.choice([x for x in VOCAB if x != r["label"]])
        flipped.add(r["id"])
    return pl.DataFrame(rows), flipped


def label_issues_run(tmp_path, policy: str, *, flips: int = 12,
                     rare: int = 0) -> tuple[Config, Path, list[str], dict[str, str]]:
    """A curate dir of label issues under ``policy`` with ``flips`` planted flips, and the right label of
    three of them; ``rare``: that many rows of a rare label, "warranty", worded like refund rows (so their
    own label looks wrong to every fold model)."""
    df, flipped = make_data(flips=flips)
    rng = random.Random(1)
    extra = pl.DataFrame([{"id": f"warranty-{i}", "text": " ".join(rng.choices(VOCAB["refund"].split(), k=8))
                           + f" ref{rng.randrange(9999)}", "label": "warranty", "split": "train"}
                          for i in range(rare)], schema=df.schema)
    pl.concat([df, extra]).write_parquet(tmp_path / "d.parquet")
    cfg = Config()
    cfg.curate.steps = ["label_issues"]
    cfg.curate.label_issues.features = "tfidf"
    cfg.curate.label_issues.policy = policy
    cfg.data.id_col = "id"
    cfg.data.inputs = [str(tmp_path / "d.parquet")]
    out = tmp_path / "run" / "curate"
    out.mkdir(parents=True)
    wrong = sorted(flipped)[:3]
    return cfg, out, wrong, {r: next(k for k in VOCAB if k in r) for r in wrong}  # the id names its label


def fates(out: Path) -> dict[str, str]:
    return dict(pl.read_parquet(out / "ledger.parquet").select("row_id", "fate").iter_rows())

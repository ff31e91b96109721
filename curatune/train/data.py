"""The curated table as the trainer sees it: splits, the label map, and a held-out validation split.

Labels are strings everywhere; the model's class ids follow the sorted train labels (in numeric
order when every label is an integer: 1, 2, 10, as the data meant them, not 1, 10, 2). Rows the
model cannot learn from (no label) are counted, not silently lost. When the data has no
validation split, 10% of train is held out per label with a seeded shuffle, and which rows were
held out is written to ``splits.parquet`` so evaluation reads the same split. Rows whose label curation
rewrote on a model's opinion (the label-issues step's ``relabel`` policy) are never held out: the
checkpoint, the headline and the gates are scored on labels the data or a person gave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curatune.dataset import SPLITS, first_row, model_relabelled
from curatune.errors import CuratuneError, shown_value
from curatune.rundir import CURATED, read_run_table

HOLDOUT_SHARE = 0.1
# Class id of rows the model has no class for; the loss ignores it (torch's default ignore_index).
IGNORE = -100


@dataclass
class TrainData:
    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    labels: list[str]
    # row_id, split (as used for training), source_split (as in curated.parquet)
    splits: pl.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)
    validation_held_out: bool = False

    def frame(self, split: str) -> pl.DataFrame:
        return getattr(self, split)

    def label_ids(self, split: str) -> np.ndarray:
        """Class ids for a split; IGNORE for labels the model has no class for (unseen in train, or null)."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array([index.get(lab, IGNORE) if lab is not None else IGNORE
                         for lab in self.frame(split)["label"].to_list()], dtype=np.int64)


def label_order(labels: list[str]) -> list[str]:
    """Sorted; numerically when every label is an integer (an integer label column becomes strings here).
    The order only numbers the classes: predictions, metrics and the label map name labels."""
    if all(re.fullmatch(r"[+-]?\d+", lab) for lab in labels):
        return sorted(labels, key=lambda lab: (int(lab), lab))
    return sorted(labels)


def holdout_validation(train: pl.DataFrame, share: float, seed: int,
                       eligible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over ``train``: a seeded, per-label ``share`` of rows (each label keeps one train row),
    drawn from the ``eligible`` rows only (all when None; with all eligible, the same draw)."""
    rng = np.random.default_rng(seed)
    labels = train["label"].to_numpy()
    can = np.ones(train.height, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    mask = np.zeros(train.height, dtype=bool)
    for lab in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == lab)
        pool = idx[can[idx]]
        k = min(int(round(len(idx) * share)), len(idx) - 1, len(pool))
        if k > 0:
            mask[rng.choice(pool, size=k, replace=False)] = True
    return mask


def _check_rows(df: pl.DataFrame, path: Path) -> None:
    """What curate guarantees, checked again for a table made by hand: a row without an id, text or
    a known split would vanish from the splits, and a repeated id would make predictions ambiguous."""
    problems = ((pl.col("row_id").is_null(), "row_id", "row without a row_id"),
                (~pl.col("row_id").is_first_distinct(), "row_id", "row_id appears more than once"),
                (pl.col("text").is_null(), "text", "row without text"),
                (~pl.col("split").is_in(SPLITS) | pl.col("split").is_null(), "split",
                 "split is not train, validation or test"))
    for offending, column, what in problems:
        row = first_row(df, offending)
        if row is not None:
            rid, value = df["row_id"][row - 1], df[column][row - 1]
            detail = f"row_id {shown_value(rid)}" if rid is not None else "a null row_id"
            shown = "null" if value is None else shown_value(value)
            raise CuratuneError(f"{what} ({detail}, {column} {shown})", file=str(path), row=row, column=column)


def load_train_data(curate_dir: Path, *, seed: int) -> TrainData:
    path = Path(curate_dir) / CURATED
    if not path.is_file():
        raise CuratuneError("no curated.parquet here; run `curatune curate` first", file=str(curate_dir))
    df = read_run_table(path, required=())
    for col in ("row_id", "text", "label", "split"):
        if col not in df.columns:
            raise CuratuneError("curated table lacks a required column", file=str(path), column=col)
    # A hand-made table: the tokenizer needs strings, and a list or struct cannot be a label or split.
    if df.schema["text"] != pl.String:
        raise CuratuneError(f"column must hold text (strings), not {df.schema['text']}", file=str(path), column="text")
    for col in ("label", "split"):
        if df.schema[col].is_nested():
            raise CuratuneError(f"column must hold one value per row, not {df.schema[col]}", file=str(path),
                                column=col)
    df = df.with_columns(pl.col("label").cast(pl.String), pl.col("split").cast(pl.String))
    _check_rows(df, path)
    unlabelled = df.filter(pl.col("label").is_null() & (pl.col("split") == "train")).height
    train = df.filter((pl.col("split") == "train") & pl.col("label").is_not_null())
    validation = df.filter(pl.col("split") == "validation")
    test = df.filter(pl.col("split") == "test")
    if train.height == 0:
        raise CuratuneError("no labelled training rows in the curated table", file=str(path), column="label")
    labels = label_order(train["label"].unique().to_list())
    if len(labels) < 2:
        raise CuratuneError(f"training needs at least two labels; the train split has only '{labels[0]}'",
                            file=str(path), column="label")

    # Validation must hold rows the model can score: a label it trains on. Otherwise 10% of train is
    # held out, and the given validation rows stay in it to be predicted (never scored, never dropped).
    held_out = validation.filter(pl.col("label").is_in(labels)).height == 0
    relabelled = 0
    if held_out:
        rewritten = model_relabelled(curate_dir)
        eligible = ~train["row_id"].cast(pl.String).is_in(list(rewritten)).to_numpy()
        relabelled = int((~eligible).sum())
        mask = holdout_validation(train, HOLDOUT_SHARE, seed, eligible)
        validation = pl.concat([train.filter(pl.Series(mask)).with_columns(pl.lit("validation").alias("split")),
                                validation])
        train = train.filter(pl.Series(~mask))
    splits = pl.concat([
        f.select("row_id", pl.lit(name).alias("split")) for name, f in
        (("train", train), ("validation", validation), ("test", test))
    ]).join(df.select("row_id", pl.col("split").alias("source_split")), on="row_id", how="left")

    known = set(labels)
    counts = {
        "rows": df.height,
        "train": train.height,
        "validation": validation.height,
        "test": test.height,
        "labels": len(labels),
        "unlabelled_train_rows_skipped": unlabelled,
        "validation_held_out_from_train": held_out,
        # Rows the model's relabelling touched, left in train rather than held out to score it.
        "relabelled_rows_not_held_out": relabelled,
        "unseen_label_rows": {
            name: f.filter(pl.col("label").is_not_null() & ~pl.col("label").is_in(list(known))).height
            for name, f in (("validation", validation), ("test", test))
        },
        "train_label_counts": dict(sorted(train["label"].value_counts().iter_rows())),
    }
    return TrainData(train=train, validation=validation, test=test, labels=labels, splits=splits,
                     counts=counts, validation_held_out=held_out)

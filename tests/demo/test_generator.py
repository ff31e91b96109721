"""The demo generator: deterministic, consistent truth, loadable through the dataset contract."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl
import pytest

from curatune.config import load_config
from curatune.dataset import load_dataset
from curatune.demo import generate_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, str]:
    return generate_demo(tmp_path_factory.mktemp("demo"), n_conversations=400, seed=3)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_deterministic(demo, tmp_path):
    again = generate_demo(tmp_path, n_conversations=400, seed=3)
    for key in ("data", "truth", "pii", "reference", "config"):
        assert _digest(demo[key]) == _digest(again[key]), key
    other = generate_demo(tmp_path / "other", n_conversations=400, seed=4)
    assert _digest(other["data"]) != _digest(demo["data"])


def test_loads_one_row_per_conversation(demo):
    cfg = load_config(demo["config"])
    loaded = load_dataset(cfg.data.inputs, cfg.data, require_label=True)
    truth = pl.read_parquet(demo["truth"])
    assert loaded.rows.height == truth.height == 400
    assert set(loaded.rows["row_id"]) == set(truth["row_id"])
    assert loaded.rows["text"][0].startswith("customer: ")
    assert set(loaded.rows["split"]) == {"train", "validation", "test"}
    assert len(set(loaded.rows["label"])) >= 14
    for g in cfg.data.group_cols:
        assert loaded.rows[g].null_count() == 0


def test_truth_links_point_to_existing_rows(demo):
    truth = pl.read_parquet(demo["truth"])
    ids = set(truth["row_id"])
    for col in ("exact_dup_of", "near_dup_of", "leak_of"):
        targets = truth[col].drop_nulls()
        assert len(targets) > 0, col
        assert set(targets) <= ids
    flips = truth.filter("is_label_flip")
    assert flips.height > 0
    assert set(flips["flip_kind"]) == {"uniform", "confusable"}


def test_flipped_labels_differ_from_clean(demo):
    cfg = load_config(demo["config"])
    rows = load_dataset(cfg.data.inputs, cfg.data).rows.join(pl.read_parquet(demo["truth"]), on="row_id")
    flipped = rows.filter("is_label_flip")
    assert (flipped["label"] != flipped["clean_label"]).all()
    assert set(flipped["split"]) == {"train"}
    clean = rows.filter(~pl.col("is_label_flip"))
    assert (clean["label"] == clean["clean_label"]).all()
    leaks = rows.filter(pl.col("leak_of").is_not_null())
    assert set(leaks["split"]) == {"train"}


def _luhn(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def test_planted_pii_occurs_in_text(demo):
    cfg = load_config(demo["config"])
    text = dict(load_dataset(cfg.data.inputs, cfg.data).rows.select("row_id", "text").iter_rows())
    pii = pl.read_parquet(demo["pii"])
    assert {"PERSON", "EMAIL_ADDRESS", "CREDIT_CARD", "ORDER_ID"} <= set(pii["entity_type"])
    for rid, kind, value in pii.iter_rows():
        assert value in text[rid], (rid, kind, value)
        if kind == "CREDIT_CARD":
            assert _luhn(value), value
    share = pii["row_id"].n_unique() / len(text)
    assert share > 0.6


def test_reference_set(demo):
    ref = pl.read_csv(demo["reference"])
    assert ref.height >= 400 and ref["label"].n_unique() >= 8

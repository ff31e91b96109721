"""The demo generator: deterministic, consistent truth, loadable through the dataset contract."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rapidfuzz.distance import Levenshtein

from curatune.config import DataConfig, load_config
from curatune.curate.dedup import normalise_expr
from curatune.dataset import load_dataset
from curatune.demo import DEFAULT_CONVERSATIONS, generate_demo
from curatune.demo.intents import CONFUSABLE, INTENTS

KEYS = ("data", "truth", "pii", "reference", "config")
GROUPS = ["channel", "region", "customer_language_variety"]
TURN_CONTRACT = DataConfig(conversation_col="conversation_id", turn_col="turn", speaker_col="speaker",
                           text_col="text", label_col="label", split_col="split", group_cols=GROUPS)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, str]:
    return generate_demo(tmp_path_factory.mktemp("demo"), n_conversations=400, seed=3)


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory) -> tuple[dict[str, str], float]:
    start = time.perf_counter()
    paths = generate_demo(tmp_path_factory.mktemp("default"))
    return paths, time.perf_counter() - start


def _rows(paths: dict[str, str]) -> pl.DataFrame:
    """One row per conversation (dataset contract) joined with its planted truth."""
    loaded = load_dataset([paths["data"]], TURN_CONTRACT, require_label=True)
    return loaded.rows.join(pl.read_parquet(paths["truth"]), on="row_id", how="left")


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_same_seed_same_bytes(demo, tmp_path):
    again = generate_demo(tmp_path / "again", n_conversations=400, seed=3)
    assert {k: _digest(demo[k]) for k in KEYS} == {k: _digest(again[k]) for k in KEYS}
    other = generate_demo(tmp_path / "other", n_conversations=400, seed=4)
    assert _digest(other["data"]) != _digest(demo["data"])
    assert _digest(other["truth"]) != _digest(demo["truth"])


def test_returns_every_file(demo):
    assert set(demo) == set(KEYS)
    assert [Path(demo[k]).name for k in KEYS] == ["transcripts.jsonl", "truth.parquet", "pii.parquet",
                                                   "reference.csv", "demo.toml"]
    assert all(Path(p).is_file() for p in demo.values())


def test_one_row_per_turn_on_disk(demo):
    turns = pl.read_ndjson(demo["data"])
    assert turns.columns == ["conversation_id", "turn", "speaker", "text", "label", "split", *GROUPS]
    assert turns["turn"].dtype == pl.Int64
    assert set(turns["speaker"]) == {"customer", "agent"}
    per_conv = turns.group_by("conversation_id").agg(
        pl.len().alias("n"), pl.col("turn").min().alias("first"), pl.col("speaker").first().alias("opens"),
        *[pl.col(c).n_unique().alias(f"{c}_values") for c in ("label", "split", *GROUPS)])
    assert per_conv["n"].min() >= 2 and per_conv["n"].max() <= 8
    assert (per_conv["first"] == 1).all() and (per_conv["opens"] == "customer").all()
    # Conversation-level columns repeat the same value on every turn.
    for c in ("label", "split", *GROUPS):
        assert (per_conv[f"{c}_values"] == 1).all(), c
    assert set(turns["channel"]) == {"chat", "email", "phone"}
    assert set(turns["region"]) == {"NA", "EU", "APAC", "LATAM"}
    assert set(turns["customer_language_variety"]) == {"en-US", "en-GB", "en-IN", "en-NG", "non-native"}


def test_loads_through_the_dataset_contract(demo):
    loaded = load_dataset([demo["data"]], TURN_CONTRACT, require_label=True)
    truth = pl.read_parquet(demo["truth"])
    rows = loaded.rows
    assert loaded.unusable.height == 0
    assert rows.height == truth.height == 400
    assert rows["row_id"].to_list() == sorted(rows["row_id"].to_list())  # conversation ids, in file order
    assert set(rows["row_id"]) == set(truth["row_id"])
    first = rows.row(0, named=True)
    assert first["text"].startswith("customer: ")
    assert first["text"] == "\n".join(f"{t['speaker']}: {t['text']}" for t in first["turns"])
    assert set(rows["split"]) == {"train", "validation", "test"}
    assert len(set(rows["label"])) >= 14
    for g in GROUPS:
        assert rows[g].null_count() == 0


def test_shipped_config_validates_and_points_at_the_files(demo):
    cfg = load_config(demo["config"])
    assert cfg.data.inputs == [str(Path(demo["data"]).resolve())]
    assert cfg.data.reference == str(Path(demo["reference"]).resolve())
    assert cfg.data.truth == str(Path(demo["truth"]).resolve())
    assert (cfg.data.conversation_col, cfg.data.turn_col, cfg.data.speaker_col) == ("conversation_id", "turn",
                                                                                    "speaker")
    assert cfg.data.group_cols == GROUPS
    assert "out_dir" not in Path(demo["config"]).read_text()  # the caller chooses where runs go
    loaded = load_dataset(cfg.data.inputs, cfg.data, require_label=True)
    assert loaded.rows.height == 400


def test_default_size_is_quick_and_shaped_as_documented(default_demo):
    paths, seconds = default_demo
    rows = _rows(paths)
    assert rows.height == DEFAULT_CONVERSATIONS
    assert seconds < 60  # ~2 s on an idle core; generous for a loaded CI machine
    words = rows["turns"].list.eval(pl.element().struct.field("text").str.split(" ").list.len()).list.sum()
    assert 60 <= words.median() <= 90
    counts = rows["turns"].list.len()
    assert counts.min() == 2 and counts.max() == 8
    assert set(rows["label"]) == set(INTENTS) and len(INTENTS) >= 14


def test_truth_links_point_to_existing_rows(default_demo):
    rows = _rows(default_demo[0])
    ids = set(rows["row_id"])
    split = dict(rows.select("row_id", "split").iter_rows())
    n = rows.height
    for col, share in (("exact_dup_of", 0.05), ("near_dup_of", 0.05), ("leak_of", 0.02)):
        targets = rows[col].drop_nulls()
        assert abs(len(targets) / n - share) < 0.005, col
        assert set(targets) <= ids, col
        assert targets.n_unique() == len(targets), col  # one copy per original
    # A copy is never itself the original of another link, so a cluster is original + copy.
    copies = set(rows.filter(pl.any_horizontal(pl.col(c).is_not_null()
                                               for c in ("exact_dup_of", "near_dup_of", "leak_of")))["row_id"])
    for col in ("exact_dup_of", "near_dup_of", "leak_of"):
        assert not set(rows[col].drop_nulls()) & copies
    for rid, orig in rows.select("row_id", "leak_of").drop_nulls().iter_rows():
        assert split[rid] == "train" and split[orig] in ("validation", "test")
    for col in ("exact_dup_of", "near_dup_of"):
        for rid, orig in rows.select("row_id", col).drop_nulls().iter_rows():
            assert split[rid] == split[orig] == "train"


def test_copies_are_exact_or_near_as_labelled(default_demo):
    rows = _rows(default_demo[0]).with_columns(normalise_expr("text").alias("norm"))
    norm = dict(rows.select("row_id", "norm").iter_rows())
    text = dict(rows.select("row_id", "text").iter_rows())
    exact = rows.select("row_id", "exact_dup_of").drop_nulls().rows()
    near = rows.select("row_id", "near_dup_of").drop_nulls().rows()
    for rid, orig in exact:
        assert norm[rid] == norm[orig]
    assert sum(text[r] != text[o] for r, o in exact) >= 0.3 * len(exact)  # some differ in case / punctuation
    for rid, orig in near:
        assert norm[rid] != norm[orig]
        # 1-2 word swaps, insertions or deletions: at most 4 word-level Levenshtein edits.
        assert Levenshtein.distance(norm[rid].split(), norm[orig].split()) <= 4, (rid, orig)


def test_label_flips(default_demo):
    rows = _rows(default_demo[0])
    flipped = rows.filter("is_label_flip")
    assert 0.06 <= flipped.height / rows.height <= 0.10
    assert (flipped["label"] != flipped["clean_label"]).all()
    clean = rows.filter(~pl.col("is_label_flip"))
    assert (clean["label"] == clean["clean_label"]).all()
    assert clean["flip_kind"].null_count() == clean.height
    assert set(flipped["split"]) == {"train"}  # validation and test labels stay clean
    kinds = flipped["flip_kind"].value_counts()
    shares = dict(kinds.with_columns(pl.col("count") / flipped.height).iter_rows())
    assert set(shares) == {"uniform", "confusable"} and min(shares.values()) > 0.35
    for label, clean_label in flipped.filter(pl.col("flip_kind") == "confusable").select("label", "clean_label").rows():
        assert label in CONFUSABLE[clean_label]
    # Some exact duplicates disagree with their original's label (a label problem, not only a duplicate).
    label = dict(rows.select("row_id", "label").iter_rows())
    pairs = rows.select("row_id", "exact_dup_of").drop_nulls().rows()
    conflicting = [r for r, o in pairs if label[r] != label[o]]
    assert len(conflicting) >= 5


def test_confusable_intents_are_confusable():
    for intent, neighbours in CONFUSABLE.items():
        assert intent in INTENTS and neighbours and set(neighbours) <= set(INTENTS) - {intent}
    for a, b in (("refund", "return"), ("return", "damaged_item"), ("billing_dispute", "payment_failed"),
                 ("password_reset", "account_locked")):
        assert b in CONFUSABLE[a] and a in CONFUSABLE[b]


def _luhn(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return len(digits) >= 12 and total % 10 == 0


def test_planted_pii_occurs_in_its_conversation(default_demo):
    paths = default_demo[0]
    rows = _rows(paths)
    text = dict(rows.select("row_id", "text").iter_rows())
    channel = dict(rows.select("row_id", "channel").iter_rows())
    pii = pl.read_parquet(paths["pii"])
    assert pii.columns == ["row_id", "entity_type", "value"]
    assert set(pii["entity_type"]) == {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
                                       "STREET_ADDRESS", "ZIP_CODE", "ORDER_ID", "ACCOUNT_ID", "HANDLE",
                                       "SPOKEN_DIGITS"}
    for rid, kind, value in pii.iter_rows():
        assert value in text[rid], (rid, kind, value)
    cards = pii.filter(pl.col("entity_type") == "CREDIT_CARD")["value"]
    assert cards.len() > 20 and all(_luhn(c) for c in cards)
    assert all(re.fullmatch(r"ORD-\d{6}", v) for v in pii.filter(pl.col("entity_type") == "ORDER_ID")["value"])
    spoken = pii.filter(pl.col("entity_type") == "SPOKEN_DIGITS")
    assert spoken.height > 20 and {channel[r] for r in spoken["row_id"]} == {"phone"}
    assert all(len(v.split()) >= 4 for v in spoken["value"])
    # pii_count in the truth counts the listed values; roughly 60% of conversations hold some.
    counts = pii.group_by("row_id").len()
    truth = pl.read_parquet(paths["truth"]).join(counts, on="row_id", how="left").with_columns(
        pl.col("len").fill_null(0))
    assert (truth["pii_count"] == truth["len"]).all()
    assert 0.5 <= (truth["pii_count"] > 0).mean() <= 0.75


def test_names_come_back_as_first_names(default_demo):
    """A customer introduced by full name is often addressed by first name later in the conversation."""
    paths = default_demo[0]
    text = dict(_rows(paths).select("row_id", "text").iter_rows())
    persons = pl.read_parquet(paths["pii"]).filter(pl.col("entity_type") == "PERSON")
    by_row: dict[str, list[str]] = {}
    for rid, _, value in persons.iter_rows():
        by_row.setdefault(rid, []).append(value)
    again = 0
    for rid, names in by_row.items():
        for full in (n for n in names if " " in n):
            first = full.split()[0]
            if first in names and text[rid].find(first, text[rid].find(full) + len(full)) > 0:
                again += 1
    assert again > 50


def test_non_native_group_is_harder(default_demo):
    """The planted fairness gap: vaguer, misspelt text and noisier labels for one group."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    rows = _rows(default_demo[0])
    train = rows.filter(pl.col("split") == "train")
    flip_rate = train.group_by(pl.col("customer_language_variety") == "non-native").agg(
        pl.col("is_label_flip").mean()).sort("customer_language_variety")["is_label_flip"]
    assert flip_rate[1] > 2 * flip_rate[0]
    # With clean labels, the same model serves the group worse (5-fold cross-validated TF-IDF + LR).
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(rows["text"].to_list())
    y = np.array(rows["clean_label"].to_list())
    pred = cross_val_predict(LogisticRegression(max_iter=1000, C=10.0), x, y, cv=5)
    ok = pred == y
    harder = (rows["customer_language_variety"] == "non-native").to_numpy()
    assert ok[~harder].mean() - ok[harder].mean() > 0.04
    assert ok.mean() < 0.97  # the task is not trivial


def test_reference_set(demo):
    ref = pl.read_csv(demo["reference"])
    assert ref.columns == ["text", "label"]
    assert 780 <= ref.height <= 820 and ref["label"].n_unique() == 8
    assert ref["text"].n_unique() == ref.height
    support = {"refund", "order", "password", "account", "delivery", "invoice", "warranty"}
    assert not any(set(t.lower().split()) & support for t in ref["text"])


def test_cli_generate(cli_run, tmp_path):
    code, out = cli_run("generate", "--out", tmp_path / "d", "--rows", "60", "--seed", "2")
    assert code == 0, out
    assert pl.read_parquet(tmp_path / "d" / "truth.parquet").height == 60


def test_cli_generate_refuses_too_few_rows(cli_run, tmp_path):
    code, out = cli_run("generate", "--out", tmp_path / "d", "--rows", "5")
    assert code == 2
    assert "at least 20 conversations" in out and "Traceback" not in out

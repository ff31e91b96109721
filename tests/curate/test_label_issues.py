"""Label issues: flags, policies, rare classes, bad input; planted flips are found."""

from __future__ import annotations

import random

import polars as pl
import pytest

from curatune.config import Config
from curatune.curate.pipeline import run_curation

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


def curate(tmp_path, df: pl.DataFrame, **opts) -> pl.DataFrame:
    src = tmp_path / "d.parquet"
    df.write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["label_issues"]
    cfg.curate.label_issues.features = opts.pop("features", "tfidf")
    for k, v in opts.items():
        setattr(cfg.curate.label_issues, k, v)
    cfg.data.id_col = "id"
    run_curation(cfg, tmp_path / "out", [str(src)])
    return pl.read_parquet(tmp_path / "out" / "ledger.parquet")


def test_flag_policy_finds_planted_flips_keeps_rows(tmp_path):
    df, flipped = make_data()
    led = curate(tmp_path, df)
    flagged = set(led.filter(pl.col("reasons").list.contains("label_issue"))["row_id"])
    tp = len(flagged & flipped)
    assert tp / len(flipped) >= 0.8
    assert tp / max(len(flagged), 1) >= 0.8
    assert set(led["fate"]) == {"kept"}
    assert (led["original_label"] == led["final_label"]).all()
    row = led.filter(pl.col("row_id") == sorted(flagged & flipped)[0]).row(0, named=True)
    assert row["suggested_label"] != row["original_label"]
    assert 0 <= row["label_quality"] < 0.25 and row["label_issue_rank"] <= len(flagged)


def test_relabel_policy_changes_final_label_keeps_original(tmp_path):
    df, flipped = make_data()
    led = curate(tmp_path, df, policy="relabel", relabel_threshold=0.5)
    relab = led.filter(pl.col("fate") == "relabelled")
    assert relab.height >= len(flipped) * 0.6
    assert (relab["final_label"] == relab["suggested_label"]).all()
    assert (relab["final_label"] != relab["original_label"]).all()
    truth = dict(zip(df["id"], df["id"].str.split("-").list.first(), strict=True))
    assert sum(truth[r] == lab for r, lab in relab.select("row_id", "final_label").iter_rows()) >= relab.height * 0.8


def test_drop_policy_drops_train_rows_only(tmp_path):
    df, _ = make_data()
    df = df.with_columns(pl.when(pl.col("id").str.ends_with("-1")).then(pl.lit("test")).otherwise("split")
                         .alias("split"))
    led = curate(tmp_path, df, policy="drop")
    dropped = led.filter(pl.col("fate") == "dropped")
    assert dropped.height > 0 and set(dropped["split"]) == {"train"}
    assert set(dropped["dropped_by"]) == {"label_issues"}
    excluded = pl.read_parquet(tmp_path / "out" / "excluded.parquet")
    assert set(excluded["reason"]) == {"label_issue"}


def test_rare_classes_do_not_crash(tmp_path):
    df, _ = make_data(n_per_class=30, flips=0)
    extra = pl.DataFrame({"id": ["r1", "r2", "r3"], "text": ["warranty claim broken", "warranty repair", "gift card"],
                          "label": ["warranty", "warranty", "gift"], "split": ["train"] * 3})
    led = curate(tmp_path, pl.concat([df, extra]))
    assert led.height == df.height + 3
    assert led["label_quality"].null_count() == 0


def test_single_class_is_a_clear_error(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "x", "x"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['label_issues']\n[curate.label_issues]\nfeatures = 'tfidf'\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "o", "--config", cfg)
    assert code == 2
    assert "at least two classes" in out


def test_missing_labels_excluded_with_reason(tmp_path):
    df, _ = make_data(n_per_class=30, flips=0)
    df = df.with_columns(pl.when(pl.col("id").is_in(["refund-0", "cancel-3"])).then(None).otherwise("label")
                         .alias("label"))
    led = curate(tmp_path, df)
    missing = led.filter(pl.col("reasons").list.contains("missing_label"))
    assert sorted(missing["row_id"]) == ["cancel-3", "refund-0"]
    assert set(missing["fate"]) == {"dropped"}
    assert missing["label_quality"].null_count() == 2  # not guessed


def test_user_pred_probs(tmp_path):
    df, _ = make_data(n_per_class=10, flips=0)
    probs = df.select("id").rename({"id": "row_id"}).with_columns(
        *[pl.when(pl.col("row_id").str.starts_with(c)).then(0.97).otherwise(0.01).alias(c) for c in VOCAB])
    probs = probs.with_columns(pl.when(pl.col("row_id") == "refund-0").then(0.0).otherwise("refund").alias("refund"),
                               pl.when(pl.col("row_id") == "refund-0").then(0.98).otherwise("cancel").alias("cancel"))
    p = tmp_path / "probs.parquet"
    probs.write_parquet(p)
    led = curate(tmp_path, df, pred_probs=str(p))
    flagged = led.filter(pl.col("reasons").list.contains("label_issue"))
    assert flagged["row_id"].to_list() == ["refund-0"]
    assert flagged["suggested_label"].to_list() == ["cancel"]


@pytest.mark.parametrize(("drop", "message"), [
    ("column", "pred_probs file lacks column 'shipping' (needs row_id and one column per label)"),
    ("row", "pred_probs file has no row for 'refund-3'"),
])
def test_unusable_user_pred_probs_are_named(cli_run, tmp_path, drop, message):
    df, _ = make_data(n_per_class=10, flips=0)
    probs = df.select(pl.col("id").alias("row_id"), *[pl.lit(0.25).alias(c) for c in VOCAB])
    probs = probs.drop("shipping") if drop == "column" else probs.filter(pl.col("row_id") != "refund-3")
    probs.write_parquet(tmp_path / "probs.parquet")
    df.write_parquet(tmp_path / "d.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nid_col = 'id'\n[curate]\nsteps = ['label_issues']\n"
                   "[curate.label_issues]\nfeatures = 'tfidf'\npred_probs = 'probs.parquet'\n")
    code, out = cli_run("curate", tmp_path / "d.parquet", "--out", tmp_path / "out", "--config", cfg)
    assert code == 2 and f"error: {tmp_path / 'probs.parquet'}: {message}" in out, out
    assert not (tmp_path / "out" / "ledger.parquet").exists()


@pytest.mark.slow
def test_embedding_features_and_group_shares(tmp_path):
    df, flipped = make_data(n_per_class=25, flips=6)
    df = df.with_columns(pl.Series("channel", ["chat", "email"] * (df.height // 2)))
    src = tmp_path / "d.parquet"
    df.write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["label_issues"]
    cfg.data.id_col = "id"
    cfg.data.group_cols = ["channel"]
    out = run_curation(cfg, tmp_path / "out", [str(src)])
    summary = next(s for s in out.manifest["steps"] if s["name"] == "label_issues")["summary"]
    assert set(summary["flagged_share_by_group"]["channel"]) == {"chat", "email"}
    assert summary["features"] == "embedding"
    assert list((tmp_path / "out" / "cache").glob("embeddings-*.parquet"))


def test_combined_cutoff_finds_flips_to_a_confusable_class_that_chance_misses():
    """A label flipped to a neighbour class keeps a probability above chance: the below-chance rule
    misses it, cleanlab's confident learning does not, and the default combines both."""
    import numpy as np

    from curatune.curate.label_issues import flag_issues

    rng = np.random.default_rng(0)
    k, n = 3, 300
    y_true = np.arange(n) % k
    probs = np.full((n, k), 0.2)
    probs[np.arange(n), y_true] = 0.6
    flipped = rng.choice(n, 20, replace=False)
    y = y_true.copy()
    y[flipped] = (y_true[flipped] + 1) % k
    probs[flipped] = 0.0
    probs[flipped, y_true[flipped]] = 0.62
    probs[flipped, y[flipped]] = 0.35  # above chance (1/3)
    probs[flipped, (y_true[flipped] + 2) % k] = 0.03
    truth = np.zeros(n, bool)
    truth[flipped] = True
    assert not flag_issues(y, probs, "chance").any()
    combined = flag_issues(y, probs, "combined")
    assert combined[truth].mean() >= 0.9
    assert combined[~truth].sum() == 0

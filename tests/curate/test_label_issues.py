"""Label issues: flags, policies, rare classes, bad input; planted flips are found."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curatune.config import Config
from curatune.curate.pipeline import run_curation
from curatune.embeddings import text_hash
from curatune.errors import CuratuneError
from curatune.rundir import read_manifest
from tests.curate.label_data import VOCAB, make_data


def curate(tmp_path, df: pl.DataFrame, **opts) -> pl.DataFrame:
    src = tmp_path / "d.parquet"
    df.write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["label_issues"]
    cfg.curate.label_issues.features = opts.pop("features", "tfidf")
    cfg.data.truth = opts.pop("truth", "")
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


def test_flag_scores_against_planted_flips():
    from curatune.curate.label_issues import flag_scores

    truth, flagged = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    # Ranked by quality, lowest first: flip, clean, flip, clean: 3 of the 4 (flip, clean) pairs in order.
    assert flag_scores(truth, flagged, np.array([0.1, 0.6, 0.3, 0.9])) == {
        "planted": 2, "flagged": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5, "auroc": 0.75}
    # Nothing flagged, nothing planted: zeros, and no AUROC with one class (not a ZeroDivisionError).
    assert flag_scores(np.zeros(3, bool), np.zeros(3, bool), np.array([0.2, 0.5, 0.9])) == {
        "planted": 0, "flagged": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "auroc": None}


def test_curation_scores_its_flags_against_the_truth_file(tmp_path):
    df, flipped = make_data()
    truth = tmp_path / "truth.parquet"
    pl.DataFrame({"row_id": df["id"], "is_label_flip": df["id"].is_in(sorted(flipped))}).write_parquet(truth)
    led = curate(tmp_path, df, truth=str(truth))
    flagged = set(led.filter(pl.col("reasons").list.contains("label_issue"))["row_id"])
    tp = len(flagged & flipped)
    p, r = tp / len(flagged), tp / len(flipped)
    scores = read_manifest(tmp_path / "out")["truth"]["label_issues"]
    assert {k: scores[k] for k in ("planted", "flagged", "precision", "recall", "f1")} == {
        "planted": len(flipped), "flagged": len(flagged), "precision": round(p, 4), "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4)}
    assert scores["auroc"] > 0.9  # the planted flips rank among the least trusted labels


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


def step_summary(out_dir) -> dict:
    return next(s for s in read_manifest(out_dir)["steps"] if s["name"] == "label_issues")["summary"]


def test_rare_classes_do_not_crash(tmp_path):
    df, _ = make_data(n_per_class=30, flips=0)
    extra = pl.DataFrame({"id": ["r1", "r2", "r3"], "text": ["warranty claim broken", "warranty repair", "gift card"],
                          "label": ["warranty", "warranty", "gift"], "split": ["train"] * 3})
    led = curate(tmp_path, pl.concat([df, extra]))
    assert led.height == df.height + 3
    # Two rows are enough to be scored (stratified folds keep one in training); one row is not.
    assert led.filter(pl.col("label_quality").is_null())["row_id"].to_list() == ["r3"]


@pytest.mark.parametrize("policy", ["flag", "drop", "relabel"])
def test_a_label_with_one_row_is_left_unscored_never_dropped_or_relabelled(tmp_path, policy):
    df, _ = make_data(n_per_class=10, flips=0)
    df = pl.concat([df.filter(pl.col("label") != "cancel"),
                    pl.DataFrame({"id": ["gift-0"], "text": ["gift card balance expired"], "label": ["gift"],
                                  "split": ["train"]})])
    led = curate(tmp_path, df, policy=policy, relabel_threshold=0.0)
    assert led.height == 31
    row = led.filter(pl.col("row_id") == "gift-0").row(0, named=True)
    assert (row["fate"], row["final_label"], row["reasons"], row["is_label_issue"]) == ("kept", "gift", [], False)
    assert (row["label_quality"], row["label_issue_rank"], row["suggested_label"], row["suggested_confidence"],
            row["label_issues_score"]) == (None, None, None, None, None)
    scored = led.filter(pl.col("row_id") != "gift-0")
    assert scored["label_quality"].null_count() == 0
    assert sorted(scored["label_issue_rank"]) == list(range(1, 31))
    summary = step_summary(tmp_path / "out")
    assert (summary["rows"], summary["classes"], summary["unscored_rows"], summary["unscored_labels"]) == (31, 4, 1, 1)


def test_fewer_than_two_labels_that_can_be_cross_validated_is_a_clear_error(tmp_path):
    df, _ = make_data(n_per_class=10, flips=0)
    df = pl.concat([df.filter(pl.col("label") == "refund"), df.filter(pl.col("id") == "cancel-0")])
    with pytest.raises(CuratuneError) as err:
        curate(tmp_path, df)
    assert str(err.value) == ("label issues need two or more labels with at least 2 rows each to cross-validate, "
                              "found 1 (of 2 labels); add rows or give [curate.label_issues] pred_probs")


def test_tfidf_on_a_small_set_without_shared_words_still_scores_every_row(tmp_path):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    df = pl.DataFrame({"id": [f"r{i}" for i in range(8)], "text": words, "label": ["a", "b"] * 4,
                       "split": ["train"] * 8})
    led = curate(tmp_path, df)
    assert led.height == 8
    assert led["label_quality"].null_count() == 0


def test_tfidf_on_texts_without_words_is_a_clear_error(cli_run, tmp_path):
    pl.DataFrame({"text": ["a", "b", "c", "d"], "label": ["x", "y"] * 2}).write_csv(tmp_path / "d.csv")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['label_issues']\n[curate.label_issues]\nfeatures = 'tfidf'\n")
    code, out = cli_run("curate", tmp_path / "d.csv", "--out", tmp_path / "o", "--config", cfg)
    assert code == 2
    assert ("error: label issues: the texts have no words TF-IDF can use (words of two or more letters or digits); "
            "set [curate.label_issues] features = 'embedding' or give pred_probs") in out, out


def test_single_class_is_a_clear_error(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "x", "x"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['label_issues']\n[curate.label_issues]\nfeatures = 'tfidf'\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "o", "--config", cfg)
    assert code == 2
    assert "error: label issues need at least two classes; every labelled row has label 'x'" in out
    # A label column mapped to the customers' contact column printed the address.
    pl.DataFrame({"text": ["a b", "c d", "e f"], "label": ["jane doe@example.com"] * 3}).write_csv(src)
    code, out = cli_run("curate", src, "--out", tmp_path / "o", "--config", cfg)
    assert code == 2 and "jane" not in out
    assert "every labelled row has label (value not shown: it may hold personal data)" in out


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


def set_prob(col: str, row_id: str, value):
    return lambda p: p.with_columns(pl.when(pl.col("row_id") == row_id).then(value).otherwise(col).alias(col))


@pytest.mark.parametrize(("breaks", "message"), [
    (lambda p: p.drop("shipping"), ": pred_probs file lacks column 'shipping' (needs row_id and one column per label)"),
    (lambda p: p.filter(pl.col("row_id") != "refund-3"), ": pred_probs file has no row for 'refund-3'"),
    (None, ": pred_probs file not found"),
    (lambda p: pl.concat([p, p.filter(pl.col("row_id").is_in(["cancel-4", "refund-1"]))]),
     ": pred_probs file has more than one row for 'refund-1'"),
    (set_prob("shipping", "refund-2", None),
     ", column 'shipping': no probability (null, NaN or not a number) for row 'refund-2'"),
    (set_prob("password", "cancel-1", float("nan")),
     ", column 'password': no probability (null, NaN or not a number) for row 'cancel-1'"),
    (lambda p: set_prob("cancel", "shipping-5", pl.lit("high"))(p.with_columns(pl.col("cancel").cast(pl.String))),
     ", column 'cancel': no probability (null, NaN or not a number) for row 'shipping-5'"),
    (set_prob("cancel", "shipping-5", 1.5), ", column 'cancel': 1.5 for row 'shipping-5' is not a probability "
                                            "(must be in [0, 1])"),
    (set_prob("refund", "refund-0", -0.25), ", column 'refund': -0.25 for row 'refund-0' is not a probability "
                                            "(must be in [0, 1])"),
    (lambda p: p.with_columns(pl.when(pl.col("row_id") == "password-7").then(0.0).otherwise(c).alias(c)
                              for c in VOCAB),
     ": pred_probs file gives row 'password-7' no probability for any of the dataset's labels"),
    (lambda p: p.with_columns(pl.concat_list("refund", "cancel").alias("refund")),
     ", column 'refund': pred_probs column holds List(Float64) values, not numbers"),  # a traceback before
    # The file's own row ids never met the anonymise step's id check: one that reads as personal is not repeated.
    (lambda p: pl.concat([p, p.head(2).with_columns(pl.lit("maria.gonzalez@example.com").alias("row_id"))]),
     ": pred_probs file has more than one row for (value not shown: it may hold personal data)"),
], ids=["column", "row", "missing_file", "duplicate_row", "null", "nan", "not_a_number", "above_1", "negative",
        "all_zero", "nested", "personal_row_id"])
def test_unusable_user_pred_probs_are_named(cli_run, tmp_path, breaks, message):
    df, _ = make_data(n_per_class=10, flips=0)
    probs = df.select(pl.col("id").alias("row_id"), *[pl.lit(0.25).alias(c) for c in VOCAB])
    if breaks is not None:
        breaks(probs).write_parquet(tmp_path / "probs.parquet")
    df.write_parquet(tmp_path / "d.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nid_col = 'id'\n[curate]\nsteps = ['label_issues']\n"
                   "[curate.label_issues]\nfeatures = 'tfidf'\npred_probs = 'probs.parquet'\n")
    code, out = cli_run("curate", tmp_path / "d.parquet", "--out", tmp_path / "out", "--config", cfg)
    assert code == 2 and f"error: {tmp_path / 'probs.parquet'}{message}" in out, out
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_a_missing_pred_probs_file_is_refused_before_the_earlier_run_is_touched(cli_run, tmp_path):
    """It was found missing inside the step, after the earlier run's manifest was removed."""
    df, _ = make_data(n_per_class=10, flips=0)
    df.write_parquet(tmp_path / "d.parquet")
    base = "[data]\nid_col = 'id'\n[curate]\nsteps = ['label_issues']\n[curate.label_issues]\nfeatures = 'tfidf'\n"
    (tmp_path / "c.toml").write_text(base)
    args = ("curate", tmp_path / "d.parquet", "--out", tmp_path / "out", "--config", tmp_path / "c.toml")
    assert cli_run(*args)[0] == 0
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    (tmp_path / "c.toml").write_text(base + "pred_probs = 'typo.parquet'\n")
    code, out = cli_run(*args)
    assert code == 2 and "pred_probs file not found" in out
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before


def test_a_label_named_row_id_cannot_have_a_pred_probs_column(tmp_path):
    df, _ = make_data(n_per_class=10, flips=0)
    df = df.with_columns(pl.col("label").replace({"cancel": "row_id"}))
    df.select(pl.col("id").alias("row_id"), *[pl.lit(0.25).alias(c) for c in VOCAB]).write_parquet(
        tmp_path / "probs.parquet")
    with pytest.raises(CuratuneError, match="a label is named 'row_id'"):
        curate(tmp_path, df, pred_probs=str(tmp_path / "probs.parquet"))


@pytest.mark.parametrize("policy", ["drop", "relabel"])
def test_a_rare_label_is_flagged_for_review_but_never_dropped_or_relabelled(tmp_path, policy):
    """Each fold model learns a two-row label from one row: its correct rows look wrong, and drop
    erased the class (Banking77: 80% of such rows flagged)."""
    df, _ = make_data(n_per_class=30, flips=0)
    # Correct but rare: text of its own, and words another class uses, so the models doubt it.
    rare = pl.DataFrame({"id": ["w1", "w2", "w3"], "text": ["warranty claim refund money back",
                                                            "warranty repair charged payment", "warranty broken"],
                         "label": ["warranty"] * 3, "split": ["train"] * 3})
    led = curate(tmp_path, pl.concat([df, rare]), policy=policy, relabel_threshold=0.0)
    rows = led.filter(pl.col("row_id").is_in(["w1", "w2", "w3"]))
    assert rows["is_label_issue"].any()  # the models do doubt them ...
    assert set(rows["fate"]) == {"kept"} and set(rows["final_label"]) == {"warranty"}  # ... and nothing acts
    summary = step_summary(tmp_path / "out")
    assert summary["flagged_rare_label_rows"] == int(rows["is_label_issue"].sum())
    assert summary["min_rows_to_act"] == 10


@pytest.mark.parametrize("policy", ["drop", "relabel"])
def test_a_label_of_many_rows_but_few_texts_is_rare_too(tmp_path, policy):
    """Copies are one example to the fold models: twelve rows that are four copies each of three texts
    were counted as twelve, so the policy acted on a label learnt from three examples."""
    df, _ = make_data(n_per_class=30, flips=0)
    texts = ["warranty claim refund money back", "warranty repair charged payment", "warranty broken"]
    variants = (str, str.upper, lambda t: t + "!", lambda t: t.title() + "?")
    rare = pl.DataFrame({"id": [f"w{i}-{k}" for i in range(3) for k in range(4)],
                         "text": [v(t) for t in texts for v in variants],
                         "label": ["warranty"] * 12, "split": ["train"] * 12})
    led = curate(tmp_path, pl.concat([df, rare]), policy=policy, relabel_threshold=0.0)
    rows = led.filter(pl.col("row_id").str.starts_with("w"))
    assert rows["is_label_issue"].any()  # the models doubt them ...
    assert set(rows["fate"]) == {"kept"} and set(rows["final_label"]) == {"warranty"}  # ... and nothing acts
    assert step_summary(tmp_path / "out")["flagged_rare_label_rows"] == int(rows["is_label_issue"].sum())


def test_evaluation_labels_never_train_the_models_that_change_train_labels(tmp_path):
    """A label only test rows carry was suggested for a train row and given to it (relabel)."""
    df, _ = make_data(n_per_class=20, flips=0)
    df = df.with_columns(pl.when(pl.col("label") == "cancel").then(pl.lit("test")).otherwise("split").alias("split"))
    df = df.with_columns(
        pl.when(pl.col("id") == "refund-0").then(pl.lit("cancel subscription plan stop end membership terminate"))
        .otherwise("text").alias("text"))
    led = curate(tmp_path, df, policy="relabel", relabel_threshold=0.5)
    train = led.filter(pl.col("split") == "train")
    assert "cancel" not in set(train["final_label"]) and "cancel" not in set(train["suggested_label"].drop_nulls())
    assert set(led.filter(pl.col("split") == "test")["label_quality"].to_list()) == {None}  # no train row to learn
    summary = step_summary(tmp_path / "out")
    assert summary["fit_on"] == "train rows"


def test_a_fit_on_all_rows_never_relabels_a_train_row_with_a_label_only_evaluation_rows_carry(tmp_path):
    """With one label of train rows to learn from, the fold models fit on every row, test rows too: a
    train row was relabelled with a label only test rows carry, learnt from them."""
    df, _ = make_data(n_per_class=20, flips=0)
    in_train = (pl.col("label") == "refund") | (pl.col("id") == "shipping-0")
    df = df.with_columns(pl.when(in_train).then(pl.col("split")).otherwise(pl.lit("test")).alias("split"))
    df = df.with_columns(
        pl.when(pl.col("id") == "refund-0").then(pl.lit("cancel subscription plan stop end membership terminate"))
        .otherwise("text").alias("text"))
    led = curate(tmp_path, df, policy="relabel", relabel_threshold=0.0)
    assert step_summary(tmp_path / "out")["fit_on"] != "train rows"  # the fit on all rows
    row = led.filter(pl.col("row_id") == "refund-0").row(0, named=True)
    assert row["is_label_issue"] and row["suggested_label"] == "cancel"  # flagged for a person to judge ...
    assert (row["fate"], row["final_label"]) == ("kept", "refund")  # ... and not relabelled
    assert set(led.filter(pl.col("split") == "train")["final_label"]) == {"refund", "shipping"}


def test_user_pred_probs_are_renormalised_over_the_labels_in_play(tmp_path):
    """The user's model may know labels no row here has: its columns are ignored, the rest renormalised."""
    df, _ = make_data(n_per_class=10, flips=0)
    probs = df.select(pl.col("id").alias("row_id"), pl.lit(0.5).alias("other"),
                      *[pl.when(pl.col("id").str.starts_with(c)).then(0.35).otherwise(0.05).alias(c) for c in VOCAB])
    probs.write_parquet(tmp_path / "probs.parquet")
    led = curate(tmp_path, df, pred_probs=str(tmp_path / "probs.parquet"))
    assert led["label_quality"].round(6).unique().to_list() == [0.7]
    assert led["suggested_confidence"].round(6).unique().to_list() == [0.7]
    assert not led["is_label_issue"].any()
    assert step_summary(tmp_path / "out")["unscored_rows"] == 0


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
    assert summary["features"] == "embedding"
    # Text no step anonymised: its vectors (text can be partly recovered from them) are not written.
    assert not list((tmp_path / "out").rglob("embeddings-*"))
    led = pl.read_parquet(tmp_path / "out" / "ledger.parquet")
    flagged = led.with_columns(pl.col("reasons").list.contains("label_issue").alias("flag"))
    assert len(set(flagged.filter("flag")["row_id"]) & flipped) / len(flipped) >= 0.8  # the encoder's features work
    # Before anonymisation, the vectors are of the raw text: not written either.
    cfg.curate.steps = ["label_issues", "anonymise"]
    raw = run_curation(cfg, tmp_path / "raw", [str(src)])
    assert next(s for s in raw.manifest["steps"] if s["name"] == "label_issues")["summary"]["features"] == "embedding"
    assert not list((tmp_path / "raw").rglob("embeddings-*"))
    # After it they are cached, this run's only: a later run into the folder keeps none of an earlier
    # run's texts it no longer has.
    cfg.curate.steps = ["anonymise", "label_issues"]
    for rows in (df, df.head(40)):
        rows.write_parquet(src)
        run_curation(cfg, tmp_path / "anon", [str(src)])
        (cache,) = (tmp_path / "anon" / "cache").glob("embeddings-*.parquet")
        texts = pl.read_parquet(tmp_path / "anon" / "curated.parquet")["text"]
        assert sorted(pl.read_parquet(cache)["hash"]) == sorted({text_hash(t) for t in texts})
    assert texts.len() == 40
    # A later run into the folder that anonymises nothing leaves no vectors behind, an earlier run's included.
    cfg.curate.steps = ["label_issues"]
    run_curation(cfg, tmp_path / "anon", [str(src)])
    assert not list((tmp_path / "anon").rglob("embeddings-*"))
    # Each group's share is its flagged rows over its rows, from the ledger.
    for channel in ("chat", "email"):
        rows = flagged.filter(pl.col("channel") == channel)
        assert summary["flagged_share_by_group"]["channel"][channel] == {
            "share": round(float(rows["flag"].mean()), 4), "rows": rows.height}


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


def test_a_config_built_in_code_is_checked_too(tmp_path):
    df, _ = make_data(n_per_class=10, flips=0)
    with pytest.raises(CuratuneError) as err:
        curate(tmp_path, df, folds=1)
    assert str(err.value) == "[curate.label_issues] folds must be >= 2 (cross-validation needs a held-out fold), got 1"
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_an_embedding_near_duplicate_is_never_the_row_itself():
    from curatune.curate.label_issues import embedding_near_duplicates

    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # three identical vectors
    near = embedding_near_duplicates(x, ["a", "b", "c", "d"])
    assert [n != rid for n, rid in zip(near, "abc", strict=False)] == [True, True, True]
    assert set(near[:3]) <= {"a", "b", "c"} and near[3] is None


def test_flagged_shares_by_group_carry_each_groups_size_highest_share_first(tmp_path):
    from curatune.curate.base import StepContext
    from curatune.curate.label_issues import LabelIssues

    # b: 2 of 4 flagged; c: 1 of 2; a: 1 of 8; the null group: 0 of 1. Sorted by name, "a" came first.
    groups = ["a"] * 8 + ["b"] * 4 + ["c"] * 2 + [None]
    flags = [True] + [False] * 7 + [True, True, False, False] + [True, False] + [False]
    table = pl.DataFrame({"channel": groups}, schema={"channel": pl.String})
    step = LabelIssues(StepContext(config=Config(), out_dir=tmp_path, run_id="r", group_cols=["channel"]))
    shares = step._by_group(table, np.array(flags))
    assert list(shares["channel"].items()) == [
        ("b", {"share": 0.5, "rows": 4}), ("c", {"share": 0.5, "rows": 2}), ("a", {"share": 0.125, "rows": 8}),
        ("(missing)", {"share": 0.0, "rows": 1})]


def test_a_wrong_label_with_a_copy_is_still_found_within_train_and_across_splits(tmp_path):
    """Folds split rows without regard to copies: a flipped row and its copy (same wrong label) landed in
    different folds and vouched for each other (recall 0.33 where the same flips alone gave 1.0), and a
    test copy was scored by the model that trained on its train original."""
    df, flipped = make_data()
    flips = df.filter(pl.col("id").is_in(sorted(flipped)))
    train_copies = flips.with_columns(pl.col("id") + "-copy", (pl.col("text").str.to_uppercase() + "!"))
    test_copies = flips.with_columns(pl.col("id") + "-test", pl.lit("test").alias("split"))
    led = curate(tmp_path, pl.concat([df, train_copies, test_copies]))
    flagged = set(led.filter(pl.col("reasons").list.contains("label_issue"))["row_id"])
    planted = flipped | {f"{r}-copy" for r in flipped} | {f"{r}-test" for r in flipped}
    assert len(flagged & planted) / len(planted) >= 0.8
    assert len(flagged & planted) / len(flagged) >= 0.8


def test_a_row_a_person_decided_on_is_left_to_their_decision_not_dropped(tmp_path):
    """policy = "drop" dropped flagged rows before the review step ran, and that step sees kept rows
    only: a reviewer's correction or confirmation of such a row was thrown away ('not_in_run')."""
    from datetime import UTC, datetime

    from curatune.curate.reviews import REVIEW_SCHEMA

    df, flipped = make_data()
    wrong = sorted(flipped)[:3]
    truth = {r: next(k for k in VOCAB if k in r) for r in wrong}  # the id names the label it was made for
    at = datetime(2026, 1, 2, tzinfo=UTC)
    votes = [{"row_id": r, "decision": truth[r] if i < 2 else "unsure", "annotator": "user:1", "annotator_id": 1,
              "annotation_id": i, "task_id": i, "ground_truth": True, "created_at": at, "updated_at": at,
              "project_id": 1, "text_sha256": None, "n_choices": 1} for i, r in enumerate(wrong)]
    (tmp_path / "out").mkdir()
    pl.DataFrame(votes, schema=REVIEW_SCHEMA).write_parquet(tmp_path / "out" / "reviews.parquet")
    led = curate(tmp_path, df, policy="drop").sort("row_id")
    rows = {r["row_id"]: r for r in led.filter(pl.col("row_id").is_in(wrong)).iter_rows(named=True)}
    for r in wrong[:2]:  # decided: kept, and relabelled by the person
        assert (rows[r]["fate"], rows[r]["final_label"], rows[r]["review_decision"]) == ("relabelled", truth[r],
                                                                                          truth[r])
    assert rows[wrong[2]]["fate"] == "dropped"  # "unsure" decides nothing: the policy acts
    step = next(s for s in read_manifest(tmp_path / "out")["steps"] if s["name"] == "label_issues")
    assert step["summary"]["flagged_rows_left_to_reviews"] == 2


def test_a_vote_the_review_step_sets_aside_does_not_shield_a_row_from_the_policy(tmp_path):
    """Any decided vote spared a row, though the review step then set it aside (cast on a text the row no
    longer has, or several choices): the row escaped both the policy and the person."""
    from datetime import UTC, datetime

    from curatune.curate.reviews import REVIEW_SCHEMA, text_sha256

    df, flipped = make_data()
    wrong = sorted(flipped)[:3]
    truth = {r: next(k for k in VOCAB if k in r) for r in wrong}
    at = datetime(2026, 1, 2, tzinfo=UTC)
    text = dict(zip(df["id"], df["text"], strict=True))
    shas = [text_sha256("the text this row had before"), text_sha256(text[wrong[1]]), text_sha256(text[wrong[2]])]
    votes = [{"row_id": r, "decision": truth[r], "annotator": "user:1", "annotator_id": 1, "annotation_id": i,
              "task_id": i, "ground_truth": True, "created_at": at, "updated_at": at, "project_id": 1,
              "text_sha256": shas[i], "n_choices": 2 if i == 1 else 1} for i, r in enumerate(wrong)]
    (tmp_path / "out").mkdir()
    pl.DataFrame(votes, schema=REVIEW_SCHEMA).write_parquet(tmp_path / "out" / "reviews.parquet")
    led = curate(tmp_path, df, policy="drop").sort("row_id")
    fate = dict(zip(led["row_id"], led["fate"], strict=True))
    assert [fate[r] for r in wrong] == ["dropped", "dropped", "relabelled"]  # stale, invalid, a current vote
    step = next(s for s in read_manifest(tmp_path / "out")["steps"] if s["name"] == "label_issues")
    assert step["summary"]["flagged_rows_left_to_reviews"] == 1


def test_a_pred_probs_file_missing_rows_is_refused_before_the_earlier_run_is_touched(cli_run, tmp_path):
    df, _ = make_data(n_per_class=10, flips=0)
    df.write_parquet(tmp_path / "d.parquet")
    labels = sorted(VOCAB)
    probs = pl.DataFrame({"row_id": df["id"], **{lab: [0.25] * df.height for lab in labels}})
    probs.write_parquet(tmp_path / "p.parquet")
    base = "[data]\nid_col = 'id'\n[curate]\nsteps = ['label_issues']\n[curate.label_issues]\n"
    (tmp_path / "c.toml").write_text(base + "pred_probs = 'p.parquet'\n")
    args = ("curate", tmp_path / "d.parquet", "--out", tmp_path / "out", "--config", tmp_path / "c.toml")
    assert cli_run(*args)[0] == 0
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    probs.filter(pl.col("row_id") != "refund-3").write_parquet(tmp_path / "p.parquet")
    code, out = cli_run(*args)
    assert code == 2 and "pred_probs file has no row for 'refund-3'" in out
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("policy", ["flag", "drop", "relabel"])
def test_a_label_whose_train_rows_are_all_copies_of_one_text_is_left_unscored(tmp_path, policy):
    """Copies are held out together, so the fold holding out the one text held out the whole label: its
    probability was 0 and all 12 rows were flagged (and dropped or relabelled: 12 rows, enough to act)."""
    df, _ = make_data(n_per_class=20, flips=0)
    email = pl.DataFrame({"id": [f"email-{i}" for i in range(12)], "text": ["my email is <EMAIL_ADDRESS>"] * 12,
                          "label": ["email"] * 12, "split": ["train"] * 12})
    led = curate(tmp_path, pl.concat([df, email]), policy=policy, relabel_threshold=0.0)
    rows = led.filter(pl.col("original_label") == "email")
    assert rows.height == 12 and not rows["is_label_issue"].any()
    assert set(rows["fate"]) == {"kept"} and set(rows["final_label"]) == {"email"}
    assert rows["label_quality"].null_count() == 12 and rows["suggested_label"].null_count() == 12
    assert led.filter(pl.col("original_label") != "email")["label_quality"].null_count() == 0
    summary = step_summary(tmp_path / "out")
    assert (summary["rows"], summary["classes"], summary["unscored_rows"], summary["unscored_labels"]) == (92, 5, 12, 1)


def copies(label: str, text: str, n: int) -> list[dict[str, str]]:
    return [{"id": f"{label}-{i}", "text": text, "label": label, "split": "train"} for i in range(n)]


@pytest.mark.parametrize("rows", [
    copies("refund", "refund money back please", 6) + copies("cancel", "cancel my plan now", 6),  # 2 groups
    copies("refund", "refund or cancel", 6) + copies("cancel", "Refund or cancel!", 6),  # 1 group
], ids=["two_groups", "one_group"])
def test_labels_each_of_copies_of_one_text_are_a_clear_error(tmp_path, rows):
    """Each fold held out a whole label (two groups: a model fit on one class), or there was one group
    to split (sklearn refused one fold): tracebacks."""
    with pytest.raises(CuratuneError) as err:
        curate(tmp_path, pl.DataFrame(rows))
    assert str(err.value) == ("label issues need two or more labels with at least 2 rows each (copies counted once) "
                              "to cross-validate, found 0 (of 2 labels); add rows or give [curate.label_issues] "
                              "pred_probs")


def test_labels_that_share_two_groups_of_copies_are_scored(tmp_path):
    """Two groups, each a text copied under both labels: every label spans both, so a training fold
    holds each; the rule leaves nothing unscored."""
    rows = copies("refund", "refund money back please", 3) + copies("cancel", "cancel my plan now", 3)
    rows[0]["text"], rows[3]["text"] = rows[3]["text"], rows[0]["text"]
    led = curate(tmp_path, pl.DataFrame(rows))
    assert led["label_quality"].null_count() == 0
    assert step_summary(tmp_path / "out")["unscored_rows"] == 0


@pytest.mark.parametrize("name", ["n", "flag", "share"])
def test_a_group_column_named_like_a_working_column_gives_the_same_shares(tmp_path, name):
    """A group column called flag, share or n clashed with the columns the shares are computed in."""
    from curatune.curate.base import StepContext
    from curatune.curate.label_issues import LabelIssues

    groups = ["a"] * 8 + ["b"] * 4 + ["c"] * 2 + [None]
    flags = np.array([True] + [False] * 7 + [True, True, False, False] + [True, False] + [False])

    def shares(col: str) -> dict:
        table = pl.DataFrame({col: groups}, schema={col: pl.String})
        step = LabelIssues(StepContext(config=Config(), out_dir=tmp_path, run_id="r", group_cols=[col]))
        return step._by_group(table, flags)[col]

    assert list(shares(name).items()) == list(shares("channel").items())


# Four rows of each of three labels, each its own text, then two texts copied under several labels:
# "warranty" spans exactly these two groups, which mix labels. With the default seed (0),
# StratifiedGroupKFold (5 folds) holds both groups out in fold 0, whose model never saw "warranty":
# found by searching random group layouts, the first seed 0 faulted on.
MIXED_LABELS = ["cancel"] * 4 + ["password"] * 4 + ["refund"] * 4 + ["refund", "password", "warranty"] + [
    "cancel"] * 3 + ["warranty"]
MIXED_GROUPS = list(range(12)) + [12] * 3 + [13] * 4


def test_a_label_in_two_groups_that_mix_labels_is_in_every_training_fold_that_scores_it():
    """Both groups of a two-group label could land in one held-out fold: its model never learnt the
    label, so the label's rows (and a validation copy scored by that fold) got probability 0 for it
    and looked mislabelled. A group is moved to another fold; the row not fitted on follows it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    from curatune.config import LabelIssuesConfig
    from curatune.curate.label_issues import out_of_fold_probs

    cfg = LabelIssuesConfig()
    classes = sorted(set(MIXED_LABELS))
    y = np.array([classes.index(v) for v in MIXED_LABELS] + [classes.index("warranty")])
    groups = np.array([*MIXED_GROUPS, 12])  # the last row: a validation copy of group 12's text
    fit_on = np.arange(len(y)) < len(MIXED_LABELS)
    x = np.random.default_rng(0).normal(size=(len(y), 3)) + np.eye(4)[y, :3]
    # The premise: StratifiedGroupKFold itself holds out both "warranty" groups (12 and 13) in one fold.
    fit = np.flatnonzero(fit_on)
    with pytest.warns(UserWarning, match="The least populated class"):  # the case the library allows for
        raw = list(StratifiedGroupKFold(5, shuffle=True, random_state=cfg.seed).split(x[fit], y[fit], groups[fit]))
    assert any({12, 13} <= set(groups[fit][test]) for _, test in raw)
    probs = out_of_fold_probs(x, y, 4, cfg, fit_on, groups)
    assert (probs[np.arange(len(y)), y] > 0).all()
    # Fold 0 keeps group 13 (rows 15-18); group 12 (rows 12-14, and row 19 with it), the smaller, moves
    # to fold 1: folds 1-4 tie at 3 rows, the lowest id wins. The others are StratifiedGroupKFold's.
    held_out = [[15, 16, 17, 18], [2, 5, 8, 12, 13, 14, 19], [3, 6, 9], [1, 4, 10], [0, 7, 11]]
    for test in held_out:
        train = np.setdiff1d(np.arange(len(MIXED_LABELS)), test)
        model = LogisticRegression(C=cfg.C, max_iter=2000).fit(x[train], y[train])
        np.testing.assert_allclose(probs[test], model.predict_proba(x[test]), rtol=1e-9, atol=1e-12)


def test_a_label_in_two_groups_that_mix_labels_is_scored_by_folds_that_learnt_it(tmp_path):
    """The step on the layout above: "warranty" got probability 0 in fold 0, so both its rows had label
    quality 0, the floor no evidence could lift. (Their texts are copied mostly under other labels, so
    they may still be flagged; but by a model that knows the label.)"""
    texts = {"cancel": "cancel subscription plan stop", "password": "password reset login link",
             "refund": "refund money back charged"}
    rows = [{"id": f"r{i}", "text": f"{texts[lab]} {i}" if i < 12 else None, "label": lab, "split": "train"}
            for i, lab in enumerate(MIXED_LABELS)]
    for i in range(12, 15):
        rows[i]["text"] = "my parcel arrived broken, refund or repair?"
    for i in range(15, 19):
        rows[i]["text"] = "broken screen, cancel the plan"
    led = curate(tmp_path, pl.DataFrame(rows))
    warranty = led.filter(pl.col("original_label") == "warranty")
    assert warranty["row_id"].to_list() == ["r14", "r18"]
    assert (warranty["label_quality"] > 0).all()
    assert led["label_quality"].null_count() == 0
    assert step_summary(tmp_path / "out")["unscored_labels"] == 0


def test_labels_no_fold_layout_can_keep_in_training_are_left_unscored(tmp_path):
    """Three texts, each copied under two of three labels, every label on two of them: two folds (no
    label has more rows) cannot keep every label in training, as some fold holds out both texts of one.
    That label was scored with probability 0 and flagged; it is left unscored, like a label of one
    text, and the other two, redrawn without it, are scored."""
    pairs = [("a", "b"), ("b", "c"), ("c", "a")]
    texts = ["where is my parcel", "reset my password please", "cancel my plan today"]
    rows = [{"id": f"{lab}-{t}", "text": texts[t], "label": lab, "split": "train"}
            for t, labs in enumerate(pairs) for lab in labs]
    led = curate(tmp_path, pl.DataFrame(rows))
    unscored = led.filter(pl.col("label_quality").is_null())
    assert unscored["row_id"].sort().to_list() == ["a-0", "a-2"]
    assert not unscored["is_label_issue"].any() and set(unscored["fate"]) == {"kept"}
    assert (led.filter(pl.col("label_quality").is_not_null())["label_quality"] > 0).all()
    summary = step_summary(tmp_path / "out")
    assert (summary["unscored_rows"], summary["unscored_labels"]) == (2, 1)


def test_out_of_fold_probs_refuses_a_label_no_fold_layout_keeps_in_training():
    """Called directly (the benchmarks do), the layout above gave label "a" probability 0; with no one
    to leave it unscored, it is refused."""
    from curatune.config import LabelIssuesConfig
    from curatune.curate.label_issues import out_of_fold_probs

    y, groups = np.array([0, 1, 1, 2, 2, 0]), np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(CuratuneError) as err:
        out_of_fold_probs(np.eye(3)[groups], y, 3, LabelIssuesConfig(), groups=groups)
    assert str(err.value) == ("label issues: cross-validation cannot keep class 0 in the training folds that score "
                              "its rows (its rows lie in too few groups of copies that the folds can separate)")


# Five labels, each of two rows in two groups (texts copied under two labels), on five groups: a cycle of
# four groups (labels 0, 2, 3, 4) and a fifth group that only label 1 leads to. The seed's first folds
# (two: no label has more rows) hold out both groups of label 0 in one fold and both of label 2 in the
# other, and no move of one group mends one without breaking another. Found by searching random layouts.
ONE_AT_A_TIME_LABELS = [3, 2, 4, 3, 2, 4, 0, 1, 1, 0]
ONE_AT_A_TIME_GROUPS = [0, 1, 2, 1, 2, 3, 3, 4, 3, 0]


def test_uncovered_labels_are_left_out_one_at_a_time():
    """Both uncovered labels were left out at once; the folds drawn without label 0 (the first of the
    fewest rows) keep label 2 in every training fold, so only label 0 is left unscored."""
    from curatune.config import LabelIssuesConfig
    from curatune.curate.label_issues import _covered_folds, _scored_rows, fold_splits

    cfg = LabelIssuesConfig()
    y, groups = np.array(ONE_AT_A_TIME_LABELS), np.array(ONE_AT_A_TIME_GROUPS)
    train = np.ones(len(y), dtype=bool)
    # The premise: the first draw leaves two labels uncovered.
    assert fold_splits(y, 5, cfg, train, groups)[1].tolist() == [True, False, True, False, False]
    splits, scorable = _covered_folds(y, np.ones(5, dtype=bool), cfg, train, groups)
    assert scorable.tolist() == [False, True, True, True, True]
    _, ys = _scored_rows(y, scorable)
    for tr, te in splits:
        assert set(ys[te]) <= set(ys[tr])


def test_the_step_leaves_out_only_the_label_no_fold_layout_keeps(tmp_path):
    """The layout above through the step: labels "a" and "c" were both left unscored (four rows)."""
    texts = ["refund my money", "parcel never arrived", "reset my password", "cancel the plan", "change my address"]
    rows = [{"id": f"r{i}", "text": texts[g], "label": "abcde"[lab], "split": "train"}
            for i, (lab, g) in enumerate(zip(ONE_AT_A_TIME_LABELS, ONE_AT_A_TIME_GROUPS, strict=True))]
    led = curate(tmp_path, pl.DataFrame(rows))
    assert led.filter(pl.col("label_quality").is_null())["row_id"].to_list() == ["r6", "r9"]
    summary = step_summary(tmp_path / "out")
    assert (summary["unscored_rows"], summary["unscored_labels"], summary["fit_on"]) == (2, 1, "train rows")

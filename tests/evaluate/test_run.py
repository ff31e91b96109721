"""evaluate_run on a real (tiny) training run: metrics.json shapes, per-class fairness table,
re-running the saved model, and identity-term counterfactuals."""

from __future__ import annotations

import copy
import json
import math
import shutil

import polars as pl
import pytest

from curatune.errors import CuratuneError
from curatune.evaluate.counterfactual import identity_flip_rates
from curatune.evaluate.run import evaluate_run
from curatune.train import train_model
from tests.train.conftest import make_rows, tiny_config, tiny_model, write_curated  # noqa: F401


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):  # noqa: F811
    root = tmp_path_factory.mktemp("evalrun")
    rows = make_rows(120, 1, "train", "tr") + make_rows(60, 2, "test", "te")
    cur = write_curated(root / "curate", rows)
    pl.DataFrame({"row_id": [r["row_id"] for r in rows], "fate": ["kept"] * len(rows),
                  "reasons": [[] for _ in rows], "channel": [r["channel"] for r in rows]}).write_parquet(
        cur / "ledger.parquet")
    (cur / "manifest.json").write_text(json.dumps({"stage": "curate", "status": "complete",
                                                   "group_cols": ["channel"]}))
    cfg = tiny_config(tiny_model, method="lora", epochs=1)
    cfg.evaluate.bootstrap = 200
    cfg.evaluate.min_group_size = 5
    cfg.evaluate.forgetting = False
    train_model(cfg, cur, root / "train")
    return cfg, cur, root / "train", root


def test_metrics_and_per_class_fairness_table(trained):
    cfg, cur, train_dir, root = trained
    res = evaluate_run(cfg, cur, train_dir, root / "evaluate")
    m = json.loads((root / "evaluate" / "metrics.json").read_text())
    preds = pl.read_parquet(train_dir / "predictions.parquet").filter(pl.col("split") == "test")
    acc = float((preds["label"] == preds["predicted"]).mean())
    assert m["headline"]["accuracy"]["value"] == pytest.approx(acc, abs=1e-6)
    assert m["headline"]["accuracy"]["low"] <= acc <= m["headline"]["accuracy"]["high"]
    assert m["interval_method"] == "BCa bootstrap"
    # Tuned against base on macro-F1 too (the report's comparison read "not available" there).
    f1_diff = m["comparison"]["macro_f1_difference"]
    assert f1_diff["value"] == pytest.approx(m["headline"]["macro_f1"]["value"] - m["base"]["macro_f1"]["value"],
                                             abs=2e-6)
    assert f1_diff["low"] <= f1_diff["value"] <= f1_diff["high"]
    table = pl.read_parquet(root / "evaluate" / "fairness_per_class.parquet")
    assert set(table["group_column"]) == {"channel"}
    # Recall of one class in one group, by hand.
    test = preds.join(pl.read_parquet(cur / "curated.parquet").select("row_id", "channel"), on="row_id")
    sub = test.filter((pl.col("channel") == "chat") & (pl.col("label") == "card"))
    row = table.filter((pl.col("group") == "chat") & (pl.col("label") == "card")).row(0, named=True)
    assert row["support"] == sub.height
    assert row["recall"] == pytest.approx(float((sub["predicted"] == "card").mean()))
    assert res["metrics"]["counterfactual"]["identity_terms"]["categories"] == []  # no identity terms in the texts
    assert "label_doubt" not in m  # the ledger has no label-issue flags: the step did not run


def test_rerun_model_reproduces_the_saved_predictions(trained):
    cfg, cur, train_dir, root = trained
    cfg.evaluate.rerun_model = True
    try:
        rerun = evaluate_run(cfg, cur, train_dir, root / "evaluate-rerun")["metrics"]
    finally:
        cfg.evaluate.rerun_model = False
    saved = evaluate_run(cfg, cur, train_dir, root / "evaluate-saved")["metrics"]
    assert rerun["headline"]["accuracy"]["value"] == saved["headline"]["accuracy"]["value"]
    assert rerun["confusion"] == saved["confusion"]
    # Scored from the model, not the file: with every saved test prediction made wrong, the rerun
    # still scores what the model says, and the saved-file path scores the wrong labels.
    tampered = root / "train-tampered"
    shutil.copytree(train_dir, tampered)
    preds = pl.read_parquet(tampered / "predictions.parquet")
    labels = sorted(set(preds["label"].drop_nulls()))
    wrong = pl.col("label").replace_strict({a: b for a, b in zip(labels, labels[1:] + labels[:1], strict=True)},
                                           default=None)
    preds.with_columns(pl.when(pl.col("split") == "test").then(wrong).otherwise(pl.col("predicted"))
                       .alias("predicted")).write_parquet(tampered / "predictions.parquet")
    cfg.evaluate.rerun_model = True
    try:
        again = evaluate_run(cfg, cur, tampered, root / "evaluate-tampered-rerun")["metrics"]
    finally:
        cfg.evaluate.rerun_model = False
    assert again["headline"]["accuracy"]["value"] == saved["headline"]["accuracy"]["value"] > 0
    from_file = evaluate_run(cfg, cur, tampered, root / "evaluate-tampered")["metrics"]
    assert from_file["headline"]["accuracy"]["value"] == 0.0
    manifest = json.loads((root / "evaluate-rerun" / "manifest.json").read_text())
    assert "rerun_model" in manifest["timings"]
    # The evaluated model is an input of the record, by its full path and a hash of its files.
    from curatune.rundir import sha256_tree

    model = (train_dir / "model").resolve()
    assert {"path": str(model), "sha256": sha256_tree(model)} in manifest["inputs"]


def test_identity_terms_flip_rate_per_term():
    texts = ["as a Muslim customer I want a refund", "my wife ordered a lamp", "my wife wants a refund",
             "my husband lost his card", "where is my parcel"]

    def predict(batch: list[str]) -> list[str]:  # a model that (wrongly) reacts to two terms
        return ["complaint" if "jewish" in t.lower() or "wife" in t.lower() else "refund" for t in batch]

    out = identity_flip_rates(predict, texts)
    cats = {c["category"]: c for c in out["categories"]}
    assert set(cats) == {"religion", "gendered role"}
    assert cats["religion"]["rows"] == 1 and cats["gendered role"]["rows"] == 3
    rates = {t["term"]: t["flip_rate"] for t in cats["religion"]["terms"]}
    # The row already says "Muslim": swapping in "muslim" is no counterfactual, so that term has no rate.
    assert "muslim" not in rates and rates["jewish"] == 1.0 and sum(rates.values()) == 1.0
    roles = {t["term"]: (t["rows"], t["flips"]) for t in cats["gendered role"]["terms"]}
    # "wife" is measured on the one row that does not say it already (it flips): rate 1.0, not 1/3.
    assert roles == {"wife": (1, 1), "husband": (2, 2), "partner": (3, 2)}
    assert cats["gendered role"]["max_flip_rate"] == 1.0
    assert out["max_flip_rate"] == 1.0
    assert out["rows"] == 4
    both = identity_flip_rates(predict, ["as a Muslim customer my wife wants a refund"])
    assert [c["rows"] for c in both["categories"]] == [1, 1] and both["rows"] == 1  # one row, two categories


def test_words_with_a_support_sense_are_no_identity_terms():
    """"my account is disabled" (a demo phrasing) became "my account is blind", and "American Express"
    "Nigerian Express": counterfactuals of the words' meaning, counted as bias."""
    out = identity_flip_rates(lambda batch: ["x"] * len(batch),
                              ["it says my account is disabled", "I paid with American Express"])
    assert out["categories"] == [] and out["rows"] == 0


def test_gates_pass_fail_and_fail_on_gate(trained):
    from curatune.errors import GateFailed

    cfg, cur, train_dir, root = trained
    cfg.evaluate.gates.min_accuracy = 1.0  # the fixture model is not perfect: fails
    cfg.evaluate.gates.max_group_accuracy_difference = 1.0  # always passes
    forgetting, cfg.evaluate.forgetting = cfg.evaluate.forgetting, True
    try:
        said: list[str] = []
        res = evaluate_run(cfg, cur, train_dir, root / "evaluate-gates", progress=said.append)
        # No reference set: forgetting is recorded as skipped, and no line says it is being measured.
        assert "skipped" in res["metrics"]["forgetting"] and not any("forgetting" in s for s in said), said
        gates = {g["name"]: g for g in res["metrics"]["gates"]}
        assert set(gates) == {"min_accuracy", "max_group_accuracy_difference"}
        assert gates["min_accuracy"]["passed"] is False and gates["min_accuracy"]["threshold"] == 1.0
        assert gates["min_accuracy"]["value"] == res["metrics"]["headline"]["accuracy"]["value"]
        assert gates["max_group_accuracy_difference"]["passed"] is True
        # The column and its groups by name ("worst: channel" named the column as if it were a group).
        gap = res["metrics"]["fairness"]["channel"]["difference"]["accuracy"]
        assert gates["max_group_accuracy_difference"]["detail"] == (
            f"largest accuracy gap between groups (by channel: {gap['best']} best, {gap['worst']} worst)")
        assert {gap["best"], gap["worst"]} <= {"chat", "email", "phone"}
        assert res["gates_failed"] == ["min_accuracy"]
        with pytest.raises(GateFailed, match="min_accuracy"):
            evaluate_run(cfg, cur, train_dir, root / "evaluate-gates2", fail_on_gate=True)
        # The outputs are written before the gate fails the command.
        assert (root / "evaluate-gates2" / "metrics.json").is_file()
    finally:
        cfg.evaluate.gates.min_accuracy = 0.0
        cfg.evaluate.gates.max_group_accuracy_difference = 0.0
        cfg.evaluate.forgetting = forgetting


def test_a_configured_gate_the_run_cannot_measure_is_recorded_as_not_checked_and_is_not_a_pass(trained):
    from curatune.errors import GateFailed

    cfg, cur, train_dir, root = trained
    cfg = copy.deepcopy(cfg)
    g = cfg.evaluate.gates
    g.min_accuracy = 0.01  # measurable and passes
    g.min_probe_retention = 0.9  # forgetting is off in this fixture
    g.max_counterfactual_flip_rate = 0.5  # no text holds a <PERSON_n> placeholder
    g.max_group_accuracy_difference = 0.5
    cfg.evaluate.min_group_size = 10_000  # no group is large enough to rank
    res = evaluate_run(cfg, cur, train_dir, root / "evaluate-unchecked")
    gates = {x["name"]: x for x in res["metrics"]["gates"]}
    assert gates["min_accuracy"]["passed"] is True
    for name, why in [("min_probe_retention", "[evaluate] forgetting = false"),
                      ("max_counterfactual_flip_rate", "name placeholder"),
                      ("max_group_accuracy_difference", "at least 10000 rows")]:
        assert gates[name]["passed"] is None and gates[name]["value"] is None, name
        assert gates[name]["detail"].startswith("not checked: ") and why in gates[name]["detail"], name
    assert res["gates_failed"] == []
    assert res["gates_unchecked"] == ["min_probe_retention", "max_group_accuracy_difference",
                                      "max_counterfactual_flip_rate"]
    with pytest.raises(GateFailed, match="not checked: min_probe_retention, max_group_accuracy_difference"):
        evaluate_run(cfg, cur, train_dir, root / "evaluate-unchecked2", fail_on_gate=True)


def test_a_reference_set_without_its_text_column_is_named(trained, tmp_path):
    cfg, cur, train_dir, _ = trained
    ref = tmp_path / "reference.csv"
    pl.DataFrame({"body": ["book a flight", "set an alarm"], "label": ["travel", "alarm"]}).write_csv(ref)
    cfg = copy.deepcopy(cfg)
    cfg.evaluate.forgetting, cfg.data.reference = True, str(ref)
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate")
    assert str(err.value) == f"{ref}, column 'text': reference set lacks its text column"
    assert not (tmp_path / "evaluate" / "metrics.json").exists()


def test_a_reference_label_column_the_user_named_that_the_set_lacks_is_named(trained, tmp_path):
    # Read as absent, a misspelt label column dropped the probe from the forgetting measures silently.
    cfg, cur, train_dir, _ = trained
    ref = tmp_path / "reference.csv"
    pl.DataFrame({"text": ["book a flight", "set an alarm"], "intent": ["travel", "alarm"]}).write_csv(ref)
    cfg = copy.deepcopy(cfg)
    cfg.evaluate.forgetting, cfg.data.reference, cfg.data.reference_label_col = True, str(ref), "intnet"
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate")
    assert str(err.value) == (f"{ref}, column 'intnet': reference set lacks the label column [data] "
                              "reference_label_col names; correct the name, or leave it unset to measure "
                              "forgetting without the probe")
    assert not (tmp_path / "evaluate" / "metrics.json").exists()
    # The default name absent is an unlabelled set: measured without the probe.
    cfg.data.reference_label_col = "label"
    fg = evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate")["metrics"]["forgetting"]
    assert fg["reference_rows"] == 2 and "probe_accuracy_base" not in fg


@pytest.mark.parametrize(("change", "what"), [
    ("drop", "no longer holds 3 test rows of predictions.parquet"),
    ("relabel", "holds 3 test rows of predictions.parquet under another label"),
])
def test_rows_dropped_or_relabelled_after_training_are_named_and_the_earlier_evaluation_kept(trained, tmp_path,
                                                                                          change, what):
    """apply-reviews can drop or relabel rows after training. Dropped rows were scored without text, in a
    '(missing)' group, and the counterfactual check crashed on their null text; relabelled ones were scored
    against the label a person had rejected, and counted as trusted by the label-doubt slice."""
    cfg, cur, train_dir, _ = trained
    cur2 = tmp_path / "curate"
    shutil.copytree(cur, cur2)
    out = tmp_path / "evaluate"
    evaluate_run(cfg, cur2, train_dir, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    curated = pl.read_parquet(cur2 / "curated.parquet")
    rows = pl.col("row_id").is_in(curated.filter(pl.col("split") == "test")["row_id"][:3].to_list())
    other = pl.when(pl.col("label") == "card").then(pl.lit("refund")).otherwise(pl.lit("card"))
    changed = (curated.filter(~rows) if change == "drop"
               else curated.with_columns(pl.when(rows).then(other).otherwise(pl.col("label")).alias("label")))
    changed.write_parquet(cur2 / "curated.parquet")
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur2, train_dir, out)
    assert str(err.value) == (f"{cur2}: curated.parquet {what} (curated again or reviews applied after training): "
                              "re-run the train stage")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_group_column_named_like_a_predictions_column_is_grouped_on_not_the_model_s(trained, tmp_path):
    """A group column called "confidence" came back from the join as "confidence_right", and fairness was
    computed per value of the model's own confidence instead."""
    cfg, cur, train_dir, _ = trained
    cur2 = tmp_path / "curate"
    shutil.copytree(cur, cur2)
    for name in ("curated.parquet", "ledger.parquet"):
        t = pl.read_parquet(cur2 / name)
        t.with_columns(pl.col("channel").alias("confidence")).write_parquet(cur2 / name)
    (cur2 / "manifest.json").write_text(json.dumps({"stage": "curate", "status": "complete",
                                                    "group_cols": ["confidence"]}))
    m = evaluate_run(cfg, cur2, train_dir, tmp_path / "evaluate")["metrics"]
    want = evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate-channel")["metrics"]["fairness"]["channel"]
    got = m["fairness"]["confidence"]
    assert {r["group"] for r in got["by_group"]} == {r["group"] for r in want["by_group"]} == {"chat", "email"}
    assert got["by_group"] == want["by_group"] and got["difference"] == want["difference"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("confidence", 95, "[evaluate] confidence must be in (0, 1), e.g. 0.95"),
    ("bootstrap", 0, "[evaluate] bootstrap must be >= 1 (resamples for each interval)"),
    ("ece_bins", 0, "[evaluate] ece_bins must be >= 1"),
    ("min_group_size", -1, "[evaluate] min_group_size must be >= 0"),
    ("min_class_support", 0, "[evaluate] min_class_support must be >= 1"),
])
def test_evaluate_settings_that_crash_or_mislead_are_refused(trained, tmp_path, key, value, message):
    # confidence = 95 was a numpy traceback; bootstrap = 0 wrote null intervals; ece_bins = 0 an ECE of 0.
    from curatune.config import config_from_dict

    with pytest.raises(CuratuneError) as err:
        config_from_dict({"evaluate": {key: value}})
    assert str(err.value).startswith(f"{message}, got {value}")
    cfg, cur, train_dir, _ = trained
    cfg = copy.deepcopy(cfg)
    setattr(cfg.evaluate, key, value)
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate")
    assert str(err.value) == f"{message}, got {value!r}"


def test_unlabelled_reference_rows_are_left_out_of_the_forgetting_probe_only(trained, tmp_path):
    cfg, cur, train_dir, _ = trained
    ref = tmp_path / "reference.parquet"
    texts = [f"{w} please {i}" for i in range(12) for w in ("book a flight", "set an alarm")]
    pl.DataFrame({"text": texts + ["what time is it", "play some jazz"],
                  "label": ["travel", "alarm"] * 12 + [None, None]}).write_parquet(ref)
    cfg = copy.deepcopy(cfg)
    cfg.evaluate.forgetting, cfg.data.reference = True, str(ref)
    metrics = evaluate_run(cfg, cur, train_dir, tmp_path / "evaluate")["metrics"]
    fg = metrics["forgetting"]
    assert (fg["reference_rows"], fg["probe_rows"]) == (26, 24) and fg["probe_retention"] > 0
    assert (fg["reference_rows_given"], fg["probe_labels_left_out"]) == (26, 0)


def _without_manifest(d):
    (d / "manifest.json").unlink()


def _without_predictions(d):
    (d / "predictions.parquet").unlink()


def _base_missing_a_row(d):
    base = pl.read_parquet(d / "base_predictions.parquet")
    base.filter(pl.col("row_id") != base.filter(pl.col("split") == "test")["row_id"][0]).write_parquet(
        d / "base_predictions.parquet")


def _prediction_not_a_label(d):
    pred = pl.read_parquet(d / "predictions.parquet")
    first = pred.filter(pl.col("split") == "test")["row_id"][0]
    pred.with_columns(pl.when(pl.col("row_id") == first).then(pl.lit("zzz")).otherwise("predicted")
                      .alias("predicted")).write_parquet(d / "predictions.parquet")


def _null_base_prediction(d):
    base = pl.read_parquet(d / "base_predictions.parquet")
    first = base.filter(pl.col("split") == "test")["row_id"][0]
    base.with_columns(pl.when(pl.col("row_id") == first).then(None).otherwise("predicted")
                      .alias("predicted")).write_parquet(d / "base_predictions.parquet")


def _unlabelled_holdout(d):
    for name in ("predictions.parquet", "base_predictions.parquet"):
        pl.read_parquet(d / name).with_columns(pl.lit(None, pl.String).alias("label")).write_parquet(d / name)


def _garbage_predictions(d):
    (d / "predictions.parquet").write_bytes(b"PAR1 not a parquet file")


def _predictions_without_confidence(d):
    pl.read_parquet(d / "predictions.parquet").drop("confidence").write_parquet(d / "predictions.parquet")


def _manifest_without_labels(d):
    doc = json.loads((d / "manifest.json").read_text())
    del doc["labels"]
    (d / "manifest.json").write_text(json.dumps(doc))


def _confidence_as_text(d):
    pred = pl.read_parquet(d / "predictions.parquet")
    pred.with_columns(pl.col("confidence").cast(pl.String)).write_parquet(d / "predictions.parquet")


def _predicted_as_numbers(d):
    base = pl.read_parquet(d / "base_predictions.parquet")
    base.with_columns(pl.col("predicted").rank("dense").cast(pl.Int64)).write_parquet(d / "base_predictions.parquet")


def _manifest_not_an_object(d):
    (d / "manifest.json").write_text("[1, 2]")


def _manifest_cut_short(d):
    (d / "manifest.json").write_text('{"labels": ["a"')


def _test_row(d):
    return pl.read_parquet(d / "predictions.parquet").filter(pl.col("split") == "test")["row_id"][0]


@pytest.mark.parametrize(("damage", "message"), [
    (_without_manifest, "{train}: train stage is not complete (no manifest.json)"),
    (_prediction_not_a_label, "{train}/predictions.parquet, column 'predicted': row '{row}' has prediction 'zzz', "
                              "not one of the train manifest's labels; re-run the train stage"),
    (_null_base_prediction, "{train}/base_predictions.parquet, column 'predicted': row '{row}' has no "
                            "prediction, not one of the train manifest's labels; re-run the train stage"),
    (_unlabelled_holdout, "{train}/predictions.parquet: no labelled test or validation row to evaluate on"),
    (_garbage_predictions, "{train}/predictions.parquet: cannot read Parquet table ("),
    (_predictions_without_confidence, "{train}/predictions.parquet, column 'confidence': table lacks a column "
                                      "every run directory has; re-run the stage that wrote it"),
    (_manifest_not_an_object, "{train}/manifest.json: expected a JSON object, found a list; re-run the stage "
                              "that wrote it"),
    (_manifest_cut_short, "{train}/manifest.json: cannot read JSON ("),
    # Tracebacks from deep inside evaluation (a KeyError, polars' type errors) before these.
    (_manifest_without_labels, "{train}/manifest.json: the train manifest has no list of label names; re-run the "
                               "train stage"),
    (_confidence_as_text, "{train}/predictions.parquet, column 'confidence': column holds String values where "
                          "number is expected; re-run the stage that wrote it"),
    (_predicted_as_numbers, "{train}/base_predictions.parquet, column 'predicted': column holds Int64 values where "
                            "text is expected; re-run the stage that wrote it"),
    (_without_predictions, "{train}/predictions.parquet: predictions.parquet not found; run the earlier stage first"),
    (_base_missing_a_row, "{train}: base_predictions.parquet lacks 1 test rows of predictions.parquet: the two must "
                          "cover the same rows"),
])
def test_an_incomplete_train_stage_is_named(trained, tmp_path, damage, message):
    cfg, cur, train_dir, _ = trained
    copy_dir = tmp_path / "train"
    shutil.copytree(train_dir, copy_dir)
    row = _test_row(copy_dir)
    damage(copy_dir)
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur, copy_dir, tmp_path / "evaluate")
    expected = message.format(train=copy_dir, row=row)
    assert str(err.value) == expected if not expected.endswith("(") else str(err.value).startswith(expected)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "evaluate" / "metrics.json").exists()


def test_a_ledger_whose_reasons_are_not_lists_is_named(trained, tmp_path):
    """A traceback from polars' list operations on the reasons, before."""
    cfg, cur, train_dir, _ = trained
    copy_cur = tmp_path / "curate"
    shutil.copytree(cur, copy_cur)
    ledger = pl.read_parquet(copy_cur / "ledger.parquet")
    ledger = ledger.with_columns(pl.col("reasons").cast(pl.List(pl.String)).list.join(";"))
    ledger.write_parquet(copy_cur / "ledger.parquet")
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, copy_cur, train_dir, tmp_path / "evaluate")
    assert str(err.value) == (f"{copy_cur}/ledger.parquet, column 'reasons': column holds String values where list "
                              "is expected; re-run the stage that wrote it")


def test_a_test_label_the_model_never_saw_is_scored_as_errors_and_counted(tiny_model, tmp_path):  # noqa: F811
    """It refused the whole evaluation; rows the model cannot get right are errors, not a reason
    to report nothing (or to leave them out and flatter the model)."""
    rows = make_rows(60, 1, "train", "tr") + make_rows(12, 2, "test", "te")
    rows[-1]["label"] = "chargeback"  # only in the test split
    cur = write_curated(tmp_path / "curate", rows)
    pl.DataFrame({"row_id": [r["row_id"] for r in rows], "fate": ["kept"] * len(rows),
                  "reasons": [[] for _ in rows]}).write_parquet(cur / "ledger.parquet")
    cfg = tiny_config(tiny_model, method="lora", epochs=1)
    train_model(cfg, cur, tmp_path / "train")
    evaluate_run(cfg, cur, tmp_path / "train", tmp_path / "evaluate")
    m = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert m["unseen_labels"] == {"labels": ["chargeback"], "rows": 1}
    assert m["labels"] == ["card", "login", "refund", "chargeback"] and m["rows"] == 12
    preds = pl.read_parquet(tmp_path / "train" / "predictions.parquet").filter(pl.col("split") == "test")
    right = preds.filter(pl.col("label") == pl.col("predicted")).height
    assert m["headline"]["accuracy"]["value"] == pytest.approx(right / 12)
    assert sum(m["confusion"]["matrix"][3]) == 1 and m["confusion"]["matrix"][3][3] == 0
    assert next(c for c in m["per_class"] if c["label"] == "chargeback")["recall"] == 0.0


def test_accuracy_on_rows_curation_doubts_vs_the_rest(trained):
    import shutil

    cfg, cur, train_dir, root = trained
    doubt_dir = root / "curate-flagged"
    shutil.copytree(cur, doubt_dir)
    preds = pl.read_parquet(train_dir / "predictions.parquet").filter(pl.col("split") == "test").sort("row_id")
    right = preds.filter(pl.col("label") == pl.col("predicted"))["row_id"].to_list()
    wrong = preds.filter(pl.col("label") != pl.col("predicted"))
    assert len(right) >= 4 and wrong.height >= 2  # the tiny run gets some rows wrong
    # Flagged: three rows the model gets right, two it gets wrong (their suggestion is the model's
    # prediction for the first and the given label's neighbour for the second), and two more that
    # people reviewed: one settled (trusted again), one left in conflict (still doubted).
    w = wrong.rows(named=True)
    flagged = right[:3] + [w[0]["row_id"], w[1]["row_id"]]
    settled, conflict = right[3], (w[2]["row_id"] if wrong.height > 2 else right[4])
    suggested = {w[0]["row_id"]: w[0]["predicted"], w[1]["row_id"]: w[1]["label"] + "-other"}
    ledger = pl.read_parquet(cur / "ledger.parquet").with_columns(
        pl.col("row_id").is_in(flagged + [settled, conflict]).alias("is_label_issue"),
        pl.col("row_id").replace_strict(suggested, default=None, return_dtype=pl.String).alias("suggested_label"),
        pl.col("row_id").replace_strict({settled: "card", conflict: "conflict"}, default=None,
                                        return_dtype=pl.String).alias("review_decision"))
    ledger.write_parquet(doubt_dir / "ledger.parquet")

    m = evaluate_run(cfg, doubt_dir, train_dir, root / "evaluate-doubt")["metrics"]
    doubted, trusted = m["label_doubt"]["doubted"], m["label_doubt"]["trusted"]
    conflict_right = conflict in right
    assert doubted["rows"] == 6 and trusted["rows"] == preds.height - 6
    assert doubted["accuracy"]["value"] == pytest.approx((3 + conflict_right) / 6)
    assert trusted["accuracy"]["value"] == pytest.approx((len(right) - 3 - conflict_right) / (preds.height - 6))
    assert doubted["accuracy"]["low"] < doubted["accuracy"]["value"] < doubted["accuracy"]["high"]
    assert doubted["predicted_suggested_label"] == 1 and trusted["predicted_suggested_label"] == 0
    # The headline still counts every row as labelled.
    assert m["headline"]["accuracy"]["value"] == pytest.approx(len(right) / preds.height)


def test_curation_fairness_counts_rows_label_issues_doubted_whatever_their_fate_and_names_missing_groups():
    from curatune.evaluate.run import _curation_fairness

    ledger = pl.DataFrame({
        "row_id": [f"r{i}" for i in range(6)],
        "fate": ["dropped", "dropped", "kept", "relabelled", "kept", "kept"],
        "reasons": [["label_issue"], ["exact_duplicate"], ["label_issue"], ["label_issue"], [], ["near_duplicate"]],
        "channel": ["chat", "chat", "chat", "chat", None, None],
    })
    rows = {r["group"]: r for r in _curation_fairness(ledger, ["channel"], 0.95)["channel"]}
    assert list(rows) == ["chat", "(missing)"]
    chat = rows["chat"]
    assert chat["n"] == 4 and chat["dropped"]["value"] == 0.5 and chat["relabelled"]["value"] == 0.25
    assert chat["label_issue"]["value"] == 0.75  # the dropped, the kept and the relabelled one
    assert rows["(missing)"]["label_issue"]["value"] == 0.0 and "flagged" not in chat

    # With the step's flag column, the rate is of the rows it examined: dedup dropped r1 before it ran.
    # (Over all rows it read 0.166 for the demo's non-native group, where the curation section read 0.192.)
    flagged = ledger.with_columns(pl.Series("is_label_issue", [True, None, True, True, False, False]))
    chat = {r["group"]: r for r in _curation_fairness(flagged, ["channel"], 0.95)["channel"]}["chat"]
    assert (chat["n"], chat["label_issue_rows"], chat["label_issue"]["value"], chat["dropped"]["value"]) == \
        (4, 3, 1.0, 0.5)

    # Without the step (no flag column, no row it doubted) no rate is shown: it read 0.000 [0.000, 0.49].
    unexamined = ledger.with_columns(pl.col("reasons").list.eval(pl.element().filter(pl.element() != "label_issue")))
    chat = {r["group"]: r for r in _curation_fairness(unexamined, ["channel"], 0.95)["channel"]}["chat"]
    assert set(chat) == {"group", "n", "dropped", "relabelled"} and chat["dropped"]["value"] == 0.5
    # A group column named like a count is grouped, not a polars duplicate-column error.
    assert _curation_fairness(flagged.rename({"channel": "n"}), ["n"], 0.95)["n"] == \
        _curation_fairness(flagged, ["channel"], 0.95)["channel"]
    # A boolean group is named as the fairness section and the curate counts name it ("true", not "True").
    booleans = ledger.with_columns(pl.Series("channel", [True, True, False, False, None, None]))
    assert [r["group"] for r in _curation_fairness(booleans, ["channel"], 0.95)["channel"]] == \
        ["false", "true", "(missing)"]


def test_on_a_tie_the_group_gap_gate_names_the_column_the_report_names():
    """The gate took the first of group_cols, the report's finding the first of metrics.json's sorted keys:
    equal gaps were said to be "by region" in one and "by channel" in the other."""
    from curatune.config import EvaluateConfig
    from curatune.evaluate.run import _gates

    gap = {"difference": {"accuracy": {"difference": 0.1, "best": "a", "worst": "b"}}}
    ec = EvaluateConfig()
    ec.gates.max_group_accuracy_difference = 0.05
    metrics = {"split": "test", "headline": {"accuracy": {"value": 0.9}}, "fairness": {"region": gap, "channel": gap}}
    (gate,) = _gates(metrics, ec)
    assert (gate["name"], gate["passed"], gate["value"]) == ("max_group_accuracy_difference", False, 0.1)
    assert gate["detail"] == "largest accuracy gap between groups (by channel: a best, b worst)"


def test_a_reference_set_too_small_or_of_one_label_leaves_the_forgetting_gates_unchecked(trained, tmp_path):
    """Two unlabelled texts scored similarity retention 1.0 ("nothing lost") and passed its gate; one
    label for every row was a scikit-learn traceback."""
    cfg, cur, train_dir, _ = trained
    cfg = copy.deepcopy(cfg)
    cfg.evaluate.forgetting = True
    cfg.evaluate.gates.min_similarity_retention = 0.9
    cfg.evaluate.gates.min_probe_retention = 0.9
    two = tmp_path / "two.csv"
    pl.DataFrame({"text": ["book a flight", "set an alarm"], "label": [None, None]},
                 schema={"text": pl.String, "label": pl.String}).write_csv(two)
    one_label = tmp_path / "one_label.csv"
    pl.DataFrame({"text": [f"question number {i}" for i in range(30)], "label": ["general"] * 30}).write_csv(one_label)
    for ref, name in ((two, "two"), (one_label, "one")):
        cfg.data.reference = str(ref)
        res = evaluate_run(cfg, cur, train_dir, tmp_path / f"evaluate-{name}")
        fg = res["metrics"]["forgetting"]
        gates = {g["name"]: g for g in res["metrics"]["gates"]}
        if name == "two":
            assert fg["reference_rows"] == 2 and math.isnan(fg["similarity_retention"])
            assert gates["min_similarity_retention"]["passed"] is None
            assert "fewer than 3 texts" in gates["min_similarity_retention"]["detail"]
            assert gates["min_probe_retention"]["detail"] == (
                "not checked: the reference set has no labels ([data] reference_label_col)")
        else:
            assert fg["probe_rows"] == 30
            assert math.isnan(fg["probe_accuracy_base"]) and math.isnan(fg["probe_retention"])
            assert gates["min_probe_retention"]["passed"] is None
            assert "fewer than 2 reference labels with 2 rows or more" in gates["min_probe_retention"]["detail"]
            assert gates["min_similarity_retention"]["passed"] is not None  # 30 texts: measured


@pytest.mark.parametrize("table", ["predictions.parquet", "base_predictions.parquet", "curated.parquet"])
def test_a_repeated_row_id_is_refused_rather_than_scored_twice(trained, tmp_path, table):
    cfg, cur, train_dir, _ = trained
    cur2, train2 = tmp_path / "curate", tmp_path / "train"
    shutil.copytree(cur, cur2)
    shutil.copytree(train_dir, train2)
    path = (cur2 if table == "curated.parquet" else train2) / table
    frame = pl.read_parquet(path)
    test_rows = frame.filter(pl.col("split") == "test") if "split" in frame.columns else frame
    pl.concat([frame, test_rows.head(5)]).write_parquet(path)
    with pytest.raises(CuratuneError) as err:
        evaluate_run(cfg, cur2, train2, tmp_path / "evaluate")
    where = cur2 if table == "curated.parquet" else train2
    rows = "" if table == "curated.parquet" else " in its test rows"
    assert str(err.value) == (f"{where}: {table} holds 5 repeated row_ids{rows}: every row must appear once "
                              "(re-run the stage that wrote it)")


def test_the_class_support_for_recall_gaps_is_a_setting(trained, tmp_path):
    """It was a constant of 10: on the demo's test split no class had 10 rows in two groups, so the
    recall gap and per-class equalized odds were empty for every column, and nothing could change that."""
    cfg, cur, train_dir, _ = trained
    found = {}
    for support in (1000, 2):
        cfg2 = copy.deepcopy(cfg)
        cfg2.evaluate.min_class_support = support
        fair = evaluate_run(cfg2, cur, train_dir, tmp_path / f"evaluate-{support}")["metrics"]["fairness"]["channel"]
        assert fair["multiclass"]["min_class_support"] == support
        found[support] = fair["recall_gap"]
    assert found[1000] is None and found[2]["difference"] >= 0 and found[2]["groups"] >= 2


def test_a_hashed_name_is_no_name_placeholder():
    """The hash operator writes ten hex digits, all digits one time in a hundred: such a row was taken for
    a placeholder's, and the flip-rate gate was checked on them."""
    from curatune.evaluate.counterfactual import PLACEHOLDER

    assert PLACEHOLDER.findall("hi <PERSON_1>, and <PERSON_12>") == ["1", "12"]
    assert PLACEHOLDER.search("hi <PERSON_4829104823>") is None

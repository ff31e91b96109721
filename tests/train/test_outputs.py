from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import f1_score

from curatune.train.data import IGNORE
from curatune.train.outputs import paired_comparison, prediction_frame, verdict
from curatune.train.probe import fit_probe


def test_paired_comparison_points_equal_sklearn():
    rng = np.random.default_rng(0)
    gold, tuned, base = rng.integers(0, 5, 200), rng.integers(0, 6, 200), rng.integers(0, 5, 200)
    cmp = paired_comparison(gold, tuned, base, 6)
    for name, pred in (("tuned", tuned), ("base", base)):
        assert cmp["macro_f1"][name] == pytest.approx(f1_score(gold, pred, average="macro"))
        assert cmp["accuracy"][name] == pytest.approx(np.mean(gold == pred))
    f1 = cmp["macro_f1"]
    assert f1["difference"] == pytest.approx(f1["tuned"] - f1["base"])
    assert f1["ci"][0] < f1["difference"] < f1["ci"][1]


def test_paired_comparison_and_verdicts():
    gold = np.array([0, 1, 2, 0, 1, 2] * 50)
    better = gold.copy()
    worse = gold.copy()
    worse[::3] = (worse[::3] + 1) % 3  # a third wrong
    cmp = paired_comparison(gold, better, worse, 3, seed=0)
    assert cmp["rows"] == 300 and cmp["accuracy"]["difference"] == pytest.approx(1 / 3)
    assert cmp["accuracy"]["ci"][0] > 0 and cmp["tuned_only_correct"] == 100 and cmp["base_only_correct"] == 0
    v = verdict(cmp)
    assert v["beats_frozen_baseline"] is True and v["summary"].startswith("fine-tuning beat the frozen baseline")
    assert verdict(paired_comparison(gold, worse, better, 3))["summary"].startswith("fine-tuning is WORSE")
    same = verdict(paired_comparison(gold, better, better, 3))
    assert same["beats_frozen_baseline"] is False and "did NOT clearly beat" in same["summary"]
    # Rows whose label the model has no class for are left out of the comparison.
    assert paired_comparison(np.array([IGNORE, 0]), np.array([1, 0]), np.array([1, 0]), 2)["rows"] == 1


def test_a_bound_that_is_float_noise_on_zero_reads_as_zero():
    """The demo's verdict read "95% CI -0.0000 to +0.0568": the bootstrap's lower quantile was -2.8e-18."""
    cmp = {"rows": 264, "confidence": 0.95,
           "accuracy": {"tuned": 0.8447, "base": 0.8182, "difference": 0.0265, "ci": [-2.78e-18, 0.0568]}}
    v = verdict(cmp)
    assert v["beats_frozen_baseline"] is False
    assert "(+0.0265, 95% CI +0.0000 to +0.0568, n=264)" in v["summary"]


def test_prediction_frame_keeps_probabilities_in_label_order():
    frame = pl.DataFrame({"row_id": ["a", "b"], "label": ["x", None]})
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    df = prediction_frame(frame, "test", probs, ["x", "y"])
    assert df["predicted"].to_list() == ["y", "x"] and df["label"].to_list() == ["x", None]
    assert df["probabilities"].to_list() == [[0.2, 0.8], [0.6, 0.4]]


def test_binary_probe_becomes_a_two_logit_head_with_the_same_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    probe = fit_probe(x, y, 2, class_weights=False, seed=0)
    ref = LogisticRegression(C=10, max_iter=2000).fit(x, y).predict_proba(x)
    assert np.allclose(probe.probabilities(x), ref, atol=1e-6)

"""Statistics: bootstrap coverage, McNemar, metric modules against sklearn, fairness against fairlearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from curatune.evaluate import metric_modules
from curatune.evaluate.fairness import GroupReport, macro_f1, multiclass_disparity
from curatune.evaluate.forgetting import linear_cka, probe_accuracy, reference_sample, similarity_retention
from curatune.evaluate.stats import (
    Bootstrap,
    calibration_bins,
    f1_jackknife,
    macro_f1_resampled,
    mcnemar,
    weighted_f1_resampled,
    wilson,
)


def test_bootstrap_ci_covers_truth_at_nominal_rate():
    rng = np.random.default_rng(1)
    true_acc, covered, trials = 0.8, 0, 200
    for i in range(trials):
        hits = rng.random(400) < true_acc
        est = Bootstrap(400, resamples=400, seed=i).mean(hits)
        covered += est.low <= true_acc <= est.high
    assert 0.90 <= covered / trials <= 0.99


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 20, 10_000)
    p = np.where(rng.random(10_000) < 0.7, y, rng.integers(0, 20, 10_000))
    b = Bootstrap(10_000, resamples=1000, seed=3)
    acc, f1 = b.accuracy(y, p), b.macro_f1(y, p, 20)
    assert acc.value == pytest.approx(accuracy_score(y, p))
    assert f1.value == pytest.approx(f1_score(y, p, average="macro"))
    assert acc.low < acc.value < acc.high
    again = Bootstrap(10_000, resamples=1000, seed=3).accuracy(y, p)
    assert (again.low, again.high) == (acc.low, acc.high)


def test_resampled_macro_f1_equals_sklearn_per_resample():
    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    idx = rng.integers(0, 300, (5, 300))
    ours = macro_f1_resampled(y, p, 5, idx)
    for r in range(5):
        assert ours[r] == pytest.approx(f1_score(y[idx[r]], p[idx[r]], average="macro", zero_division=0))


def test_weighted_f1_and_ece_intervals_equal_sklearn_and_the_metric_module_per_resample():
    """metrics.json gave weighted-F1 and ECE without the interval every headline metric carries."""
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, 6, 400), rng.integers(0, 6, 400)
    conf = np.concatenate([[0.0, 1.0, 2 / 15, 1 / 3], rng.random(396)])  # bin edges and both ends
    b = Bootstrap(400, resamples=50, seed=1)
    ece_module = metric_modules()["ece"]
    w, e = b.weighted_f1(y, p, 6), b.ece(y, p, conf, 15)
    assert w.value == pytest.approx(f1_score(y, p, average="weighted"))
    assert e.value == pytest.approx(ece_module.compute(predictions=p, references=y, confidences=conf,
                                                       n_bins=15)["ece"])
    assert w.low < w.value < w.high and e.low < e.value < e.high
    for r in range(3):
        i = b.idx[r]
        assert weighted_f1_resampled(y, p, 6, b.idx[r:r + 1])[0] == pytest.approx(
            f1_score(y[i], p[i], labels=range(6), average="weighted", zero_division=0))
    def module_ece(a, b, c):
        return ece_module.compute(predictions=b, references=a, confidences=c, n_bins=15)["ece"]

    assert (e.low, e.high) == pytest.approx(_scipy_bca(400, 50, 1, module_ece, y, p, conf), abs=1e-12)


def test_mcnemar_hand_computed():
    # 30 rows only A gets right, 10 only B: chi2 = (|30-10| - 1)^2 / 40 = 9.025, p = 0.00266
    a = np.array([True] * 30 + [False] * 10 + [True] * 50)
    b = np.array([False] * 30 + [True] * 10 + [True] * 50)
    r = mcnemar(a, b)
    assert r["statistic"] == pytest.approx(9.025)
    assert r["p_value"] == pytest.approx(0.002663, abs=1e-5)
    small = mcnemar(np.array([True] * 6 + [False] * 1), np.array([False] * 6 + [True] * 1))
    assert small["method"] == "exact binomial" and small["p_value"] == pytest.approx(0.125)


def test_mcnemar_equal_counts_above_the_exact_range_give_p_1():
    # (|15 - 15| - 1)^2 / 30 read 0.033 (p 0.855) where the models do equally well.
    r = mcnemar(np.array([True] * 15 + [False] * 15), np.array([False] * 15 + [True] * 15))
    assert (r["statistic"], r["p_value"]) == (0.0, 1.0)
    assert r["p_value"] == pytest.approx(sps.binomtest(15, 30, 0.5).pvalue)


def test_macro_f1_interval_with_a_rare_missed_class_is_wide_and_still_scipy_s_bca():
    """A rare, always-missed class (2 of 200 rows) is absent from about one resample in seven, which
    then averages over the other classes: the interval reaches about 0.93 for a point of 0.69. That is
    the price of scoring each resample as the sample is scored. Averaging every resample over the
    sample's classes instead, a missed class as F1 0, kept this top below 0.75, but put the intervals
    of small samples below their point: 59.5% coverage at two rows a class (85.0% now)."""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.integers(0, 3, 198), [3, 3]])
    p = np.where(rng.random(200) < 0.9, y, rng.integers(0, 3, 200))
    p[-2:] = 0  # class 3: both rows predicted as class 0
    f1 = Bootstrap(200, resamples=2000, seed=0).macro_f1(y, p, 4)
    assert f1.value == pytest.approx(f1_score(y, p, average="macro"))
    assert (f1.low, f1.high) == pytest.approx(_scipy_bca(
        200, 2000, 0, lambda a, b: f1_score(a, b, average="macro", zero_division=0), y, p))
    assert f1.low < f1.value < 0.75 < f1.high


def _scipy_bca(n: int, resamples: int, seed: int, statistic, *data) -> tuple[float, float]:
    """scipy's BCa interval of ``statistic`` over paired rows. Its resamples are drawn from the generator
    as Bootstrap(n, resamples, seed) draws them, so the two must agree to the last digit."""
    import inspect

    seeded = ({"rng": np.random.default_rng(seed)} if "rng" in inspect.signature(sps.bootstrap).parameters
              else {"random_state": np.random.default_rng(seed)})  # scipy < 1.15
    assert Bootstrap(n, resamples=resamples, seed=seed).idx.shape == (resamples, n)
    ci = sps.bootstrap(data, statistic, paired=True, vectorized=False, n_resamples=resamples, method="BCa",
                       **seeded).confidence_interval
    return float(ci.low), float(ci.high)


def test_every_interval_is_scipy_s_bca_interval_of_the_same_resamples():
    """Macro-F1 of resampled rows is biased, and its percentile interval under-covered (0.91 on the
    evaluation benchmark's 160-row samples, nominal 0.95). Every interval is now BCa, which corrects
    for that, and equals scipy's own BCa computation, whose jackknife recomputes each statistic n times."""
    rng = np.random.default_rng(5)
    n, k, resamples, seed = 150, 6, 300, 11
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    base = np.where(rng.random(n) < 0.5, y, rng.integers(0, k, n))
    conf = rng.random(n)
    boot = Bootstrap(n, resamples=resamples, seed=seed)

    def macro(a, b):
        return f1_score(a, b, average="macro", zero_division=0)

    def ece(a, b, c):
        gap = (a == b) - c
        return np.abs(np.bincount(calibration_bins(c, 15), weights=gap, minlength=15)).sum() / a.size

    def check(est, *args):
        assert (est.low, est.high) == pytest.approx(_scipy_bca(n, resamples, seed, *args), abs=1e-12)

    check(boot.accuracy(y, p), lambda a, b: np.mean(a == b), y, p)
    check(boot.macro_f1(y, p, k), macro, y, p)
    check(boot.weighted_f1(y, p, k), lambda a, b: f1_score(a, b, average="weighted", zero_division=0), y, p)
    check(boot.ece(y, p, conf, 15), ece, y, p, conf)
    # The mean of the per-row differences, as Bootstrap takes it: k1/n - k2/n and (k1 - k2)/n can differ in
    # the last bit, and resamples tied with the point then count on the other side of it.
    check(boot.paired_difference(p == y, base == y), lambda a, b, c: np.mean((b == a) * 1.0 - (c == a)), y, p, base)
    check(boot.macro_f1_difference(y, p, base, k), lambda a, b, c: macro(a, b) - macro(a, c), y, p, base)
    # The percentile interval of the same resamples differs: the test can tell the two apart.
    pct = np.quantile(macro_f1_resampled(y, p, k, boot.idx, np.ones(k, bool)), [0.025, 0.975])
    assert abs(pct[0] - boot.macro_f1(y, p, k).low) > 1e-4


def test_group_intervals_are_scipy_s_bca_intervals_of_the_whole_split_s_resamples():
    y, p, g = _groups_with_accuracy({"a": 0.9, "b": 0.7, "c": 0.75}, n=60)
    rng = np.random.default_rng(2)
    order = rng.permutation(len(y))  # groups interleaved, as rows of a real split are
    y, p, g = y[order], p[order], g.iloc[order].reset_index(drop=True)
    codes = g.map({"a": 0, "b": 1, "c": 2}).to_numpy()
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), resamples=400, seed=4),
                    permutations=0)

    def group_accuracy_of(code):
        return lambda a, b, c: np.mean((a == b)[c == code])

    rows = {row["group"]: row["accuracy_ci"] for row in r.by_group}
    for name, code in (("a", 0), ("b", 1)):
        want = _scipy_bca(len(y), 400, 4, group_accuracy_of(code), y, p, codes)
        assert (rows[name]["low"], rows[name]["high"]) == pytest.approx(want, abs=1e-6)  # to_dict rounds
    gap = r.difference()["accuracy"]
    assert (gap["best"], gap["worst"]) == ("a", "b")
    want = _scipy_bca(len(y), 400, 4, lambda a, b, c: group_accuracy_of(0)(a, b, c) - group_accuracy_of(1)(a, b, c),
                      y, p, codes)
    assert (gap["difference_ci"]["low"], gap["difference_ci"]["high"]) == pytest.approx(want, abs=1e-6)


def test_group_macro_f1_and_its_gap_have_scipy_s_bca_intervals_over_each_group_s_own_classes():
    """The macro-F1 gap between groups was a bare number: nothing said whether it was more than chance."""
    rng = np.random.default_rng(3)
    n, k = 240, 5
    y, codes = rng.integers(0, k, n), rng.integers(0, 3, n)
    y[(codes == 2) & (y == 4)] = 0  # group c holds no class 4 (its macro-F1 averages over 4 classes)
    p = np.where(rng.random(n) < np.array([0.9, 0.7, 0.8])[codes], y, rng.integers(0, k, n))
    g = pd.Series(np.array(list("abc"))[codes])
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(n, resamples=300, seed=2),
                    permutations=0)

    def group_f1(code):  # each resample scored as the group's rows are: over the classes it truly holds
        return lambda a, b, c: macro_f1(a[c == code], b[c == code])

    rows = {row["group"]: row for row in r.by_group}
    for code, name in enumerate("abc"):
        ci = rows[name]["macro_f1_ci"]
        assert ci["value"] == pytest.approx(rows[name]["macro_f1"], abs=1e-6) and ci["n"] == (codes == code).sum()
        assert (ci["low"], ci["high"]) == pytest.approx(_scipy_bca(n, 300, 2, group_f1(code), y, p, codes), abs=1e-6)
    gap = r.difference()["macro_f1"]
    best, worst = "abc".index(gap["best"]), "abc".index(gap["worst"])
    want = _scipy_bca(n, 300, 2, lambda a, b, c: group_f1(best)(a, b, c) - group_f1(worst)(a, b, c), y, p, codes)
    assert (gap["difference_ci"]["low"], gap["difference_ci"]["high"]) == pytest.approx(want, abs=1e-6)
    assert gap["difference_ci"]["low"] > 0  # b is worse than a and c by design


def test_a_small_group_s_macro_f1_interval_scores_each_resample_over_the_classes_it_holds():
    """A group of 33 rows over 16 classes with one error: its macro-F1 is 0.97, and its interval was
    [1.000, 1.000] in the demo's report. Each resample averaged over every class the group holds in the
    whole split, a class it happened to miss counted as 0, so most resamples fell far below the point and
    BCa's bias correction pushed both ends to the top."""
    rng = np.random.default_rng(0)
    n, k = 264, 16
    y = rng.integers(0, k, n)
    p = y.copy()
    codes = np.full(n, 2)
    codes[:33], codes[33:80] = 0, 1
    p[0] = (y[0] + 1) % k
    wrong = rng.choice(np.arange(80, n), 30, replace=False)
    p[wrong] = (y[wrong] + 1) % k
    g = pd.Series(np.array(list("abc"))[codes])
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(n, resamples=300, seed=1),
                    permutations=0)
    ci = next(row for row in r.by_group if row["group"] == "a")["macro_f1_ci"]
    assert 0.95 < ci["value"] < 1 and ci["low"] < ci["value"] < ci["high"] + 1e-9
    want = _scipy_bca(n, 300, 1, lambda a, b, c: macro_f1(a[c == 0], b[c == 0]), y, p, codes)
    assert (ci["low"], ci["high"]) == pytest.approx(want, abs=1e-6)


def test_the_macro_f1_jackknife_drops_a_class_whose_only_row_is_left_out():
    """The jackknife (BCa's acceleration) equals recomputing without each row, over the classes the other
    rows hold: in their truth for a group's macro-F1, in truth or prediction for the split's."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(2, 30))
        y = rng.integers(0, 8, n)
        p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 8, n))
        by_group = [macro_f1(np.delete(y, i), np.delete(p, i)) for i in range(n)]
        overall = [f1_score(np.delete(y, i), np.delete(p, i), average="macro", zero_division=0) for i in range(n)]
        assert f1_jackknife(y, p, 8, held_in="truth") == pytest.approx(by_group)
        assert f1_jackknife(y, p, 8, held_in="either") == pytest.approx(overall)


def test_a_small_split_s_macro_f1_interval_scores_each_resample_over_the_classes_it_holds():
    """32 rows over 16 classes: each resample averaged over every class of the sample, one it missed
    counted as F1 0, and the interval sat below the point; it is scipy's BCa of sklearn's macro-F1."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 16, 32)
    p = np.where(rng.random(32) < 0.8, y, rng.integers(0, 16, 32))
    est = Bootstrap(32, resamples=300, seed=2).macro_f1(y, p, 16)
    assert est.value == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    want = _scipy_bca(32, 300, 2, lambda a, b: f1_score(a, b, average="macro", zero_division=0), y, p)
    assert (est.low, est.high) == pytest.approx(want, abs=1e-9)
    assert est.low < est.value < est.high


def test_an_interval_without_bca_correction_to_make_is_the_percentile_interval():
    """Every resample above the point (z0 infinite: BCa is undefined, scipy gives NaN) and a single
    row (no jackknife spread) still give an interval."""
    boot = Bootstrap(5, resamples=200, seed=0)
    est = boot.interval(0.0, np.linspace(0.1, 0.5, 200), np.full(5, 0.2))
    assert (est.low, est.high) == pytest.approx(tuple(np.quantile(np.linspace(0.1, 0.5, 200), [0.025, 0.975])))
    one = Bootstrap(1, resamples=50, seed=0).mean(np.array([1.0]))
    assert (one.value, one.low, one.high) == (1.0, 1.0, 1.0)
    # As an accuracy, one right row is a share of 1: Wilson's interval, not one of no width.
    one = Bootstrap(1, resamples=50, seed=0).accuracy(np.array([1]), np.array([1]))
    assert one == wilson(1, 1) and one.low < 0.25


def test_a_resample_tied_with_the_point_counts_as_tied_to_float_precision():
    """The group gap's point comes from fairlearn and its resamples from bincounts: 0.1 + 0.2 against
    0.3. Counted bit for bit, the 40% of resamples tied with the point moved the interval's ends."""
    boot = Bootstrap(50, resamples=100, seed=0)
    jack = np.linspace(0.25, 0.35, 50)
    rest = np.linspace(0.2, 0.5, 60)
    exact = boot.interval(0.3, np.concatenate([np.full(40, 0.3), rest]), jack)
    off_by_a_bit = boot.interval(0.3, np.concatenate([np.full(40, 0.1 + 0.2), rest]), jack)
    assert 0.1 + 0.2 != 0.3
    assert (off_by_a_bit.low, off_by_a_bit.high) == (exact.low, exact.high)


def test_macro_f1_difference_is_paired_and_its_point_is_the_two_scores_difference():
    """The evaluation compared tuned and base macro-F1 without a difference ("not available" in the
    report), though the training verdict had one for validation."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 300)
    tuned = np.where(rng.random(300) < 0.8, y, rng.integers(0, 5, 300))
    base = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    boot = Bootstrap(300, resamples=400, seed=1)
    diff = boot.macro_f1_difference(y, tuned, base, 5)
    expected = f1_score(y, tuned, average="macro") - f1_score(y, base, average="macro")
    assert diff.value == pytest.approx(expected, abs=1e-12)
    assert diff.value == pytest.approx(boot.macro_f1(y, tuned, 5).value - boot.macro_f1(y, base, 5).value)
    assert diff.low < diff.value < diff.high and diff.low > 0
    # Paired: one resample's rows serve both models, so the interval is narrower than from unpaired scores.
    other = Bootstrap(300, resamples=400, seed=2)
    a = macro_f1_resampled(y, tuned, 5, boot.idx)
    b = macro_f1_resampled(y, base, 5, other.idx)
    unpaired = np.quantile(a - b, [0.025, 0.975])
    assert diff.high - diff.low < unpaired[1] - unpaired[0]


def test_mcnemar_no_disagreement():
    r = mcnemar(np.array([True, False]), np.array([True, False]))
    assert r["p_value"] == 1.0 and r["method"] == "no disagreement"


def test_metric_modules_match_sklearn():
    rng = np.random.default_rng(4)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = metric_modules()
    assert m["accuracy"].compute(predictions=p, references=y)["accuracy"] == pytest.approx(accuracy_score(y, p))
    f = m["f1"].compute(predictions=p, references=y, labels=[0, 1, 2, 3])
    assert f["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert f["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted"))
    macro = m["f1"].compute(predictions=p, references=y, labels=[0, 1, 2, 3], average="macro")
    assert macro == {"macro_f1": pytest.approx(f["macro_f1"])}
    cm = m["confusion_matrix"].compute(predictions=p, references=y, labels=[0, 1, 2, 3])["confusion_matrix"]
    assert cm == confusion_matrix(y, p).tolist()
    ece = m["ece"].compute(predictions=[0, 0, 1, 1], references=[0, 1, 1, 1], confidences=[1.0, 1.0, 0.5, 0.5],
                           n_bins=15)
    # bin 1.0: acc 0.5, conf 1.0 (half the rows); bin 0.5: acc 1.0, conf 0.5 -> ECE = 0.5*0.5 + 0.5*0.5
    assert ece["ece"] == pytest.approx(0.5)


def test_per_class_scores_with_nothing_to_count_are_undefined_not_zero():
    """A class absent from the rows and never predicted read precision, recall and F1 0.000, as if
    the model always failed it."""
    f = metric_modules()["f1"].compute(predictions=[0, 0, 1, 1], references=[0, 1, 1, 2], labels=[0, 1, 2, 3])
    assert f["support"] == [1, 2, 1, 0]
    assert f["precision"][:2] == [0.5, 0.5] and np.isnan(f["precision"][2])  # class 2 never predicted
    assert f["recall"][2] == 0.0 and f["f1"][2] == 0.0  # ... but it was there, and missed
    assert all(np.isnan(f[k][3]) for k in ("precision", "recall", "f1"))  # class 3: nothing to count
    # The averages are as before (sklearn's, an empty class counting 0 where labels= names it).
    assert f["macro_f1"] == pytest.approx(f1_score([0, 1, 1, 2], [0, 0, 1, 1], labels=[0, 1, 2, 3],
                                                   average="macro", zero_division=0))


def test_multiclass_disparity_equals_fairlearn_on_binary():
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    g = pd.Series(rng.choice(["a", "b", "c"], 500))
    result = multiclass_disparity(y_true=y, y_pred=p, groups=g, labels=["no", "yes"], ranked=["a", "b", "c"],
                                  min_class_support=10)
    ours = {r["label"]: r for r in result["per_class"]}
    assert ours["yes"]["demographic_parity_difference"] == demographic_parity_difference(y, p, sensitive_features=g)
    assert ours["yes"]["equalized_odds_difference"] == equalized_odds_difference(y, p, sensitive_features=g)
    assert ours["yes"]["equalized_odds_groups"] == 3


def test_multiclass_disparity_leaves_out_small_groups_and_thin_classes():
    # Groups a and b rank; "tiny" (3 rows, every one wrong) does not. Class 2 has 40 rows in a (all right)
    # but only 2 in b (both wrong): a true-positive rate of 0 on 2 rows must not make it the worst class.
    y = np.array([0, 1] * 80 + [2] * 40 + [0, 1] * 79 + [2] * 2 + [0, 1, 0])
    p = np.array([0, 1] * 80 + [2] * 40 + [0, 1] * 70 + [1, 0] * 9 + [0, 0] + [1, 0, 1])
    g = pd.Series(["a"] * 200 + ["b"] * 160 + ["tiny"] * 3)
    result = multiclass_disparity(y_true=y, y_pred=p, groups=g, labels=["x", "y", "z"], ranked=["a", "b"],
                                  min_class_support=10)
    ours = {r["label"]: r for r in result["per_class"]}
    assert ours["z"]["equalized_odds_difference"] is None and ours["z"]["equalized_odds_groups"] == 1
    assert result["worst_equalized_odds"]["label"] in {"x", "y"}
    ab = (g != "tiny").to_numpy()
    for i, lab in enumerate("xyz"):
        t, q = (y[ab] == i).astype(int), (p[ab] == i).astype(int)
        assert ours[lab]["demographic_parity_difference"] == demographic_parity_difference(
            t, q, sensitive_features=g[ab])
    t, q = (y[ab] == 0).astype(int), (p[ab] == 0).astype(int)
    assert ours["x"]["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(t, q, sensitive_features=g[ab]))
    # Counting every row and group, class z would be the worst class with the largest possible gap.
    unfiltered = equalized_odds_difference((y == 2).astype(int), (p == 2).astype(int), sensitive_features=g)
    assert unfiltered == 1.0 > result["worst_equalized_odds"]["equalized_odds_difference"]
    # One ranked group: nothing to compare.
    one = multiclass_disparity(y_true=y, y_pred=p, groups=g, labels=["x", "y", "z"], ranked=["a"],
                               min_class_support=10)
    assert one["per_class"] == [] and one["worst_equalized_odds"] is None


def test_equalized_odds_leaves_out_groups_without_negatives_of_a_class():
    # Group b holds only class-0 rows: its false-positive rate for class 0 is undefined, which
    # fairlearn reads as 0, reporting a 0.5 gap where the true-positive rates agree (both 1.0).
    y = np.array([0] * 20 + [1] * 20 + [0] * 40)
    p = np.array([0] * 20 + [0] * 10 + [1] * 10 + [0] * 40)
    g = pd.Series(["a"] * 40 + ["b"] * 40)
    assert equalized_odds_difference((y == 0).astype(int), (p == 0).astype(int), sensitive_features=g) == 0.5
    result = multiclass_disparity(y_true=y, y_pred=p, groups=g, labels=["c0", "c1"], ranked=["a", "b"],
                                  min_class_support=10)
    ours = {r["label"]: r for r in result["per_class"]}
    assert ours["c0"]["equalized_odds_difference"] is None and ours["c0"]["equalized_odds_groups"] == 1
    assert result["worst_equalized_odds"] is None


def test_a_group_interval_records_the_rows_it_rests_on():
    y, p, g = _groups_with_accuracy({"a": 0.9, "b": 0.6}, n=100)
    y, p, g = y[:160], p[:160], g[:160]  # group b keeps 60 rows
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), seed=0))
    assert {row["group"]: row["accuracy_ci"]["n"] for row in r.by_group} == {"a": 100, "b": 60}
    assert r.difference()["accuracy"]["difference_ci"]["n"] == 160


def test_group_macro_f1_averages_over_the_classes_each_group_holds():
    """Two groups of about equal accuracy; group b holds no class 2, and 8 of its rows are predicted as
    class 2. sklearn's default average gave b an extra 0 for class 2, and a macro-F1 gap of about 0.3."""
    from sklearn.metrics import f1_score

    y_a = np.array([0] * 40 + [1] * 40 + [2] * 40)
    p_a = y_a.copy()
    p_a[:10] = 1
    y_b = np.array([0] * 60 + [1] * 60)
    p_b = y_b.copy()
    p_b[:8] = 2
    y, p = np.concatenate([y_a, y_b]), np.concatenate([p_a, p_b])
    g = pd.Series(["a"] * 120 + ["b"] * 120)
    rows = {row["group"]: row for row in GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30).by_group}
    assert rows["b"]["macro_f1"] == pytest.approx(f1_score(y_b, p_b, labels=[0, 1], average="macro"))
    assert rows["b"]["macro_f1"] > 0.9 > f1_score(y_b, p_b, average="macro")
    assert rows["a"]["macro_f1"] == pytest.approx(f1_score(y_a, p_a, average="macro"))


def test_group_report_small_groups_not_ranked():
    y = np.array([0, 1] * 50 + [0, 1])
    p = np.array([0, 1] * 50 + [1, 0])
    g = pd.Series(["big"] * 100 + ["tiny"] * 2)
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(102, seed=0))
    assert r.too_small == ["tiny"]
    assert r.difference() == {"groups_ranked": 1}
    rows = {row["group"]: row for row in r.by_group}
    assert rows["big"]["accuracy"] == 1.0 and rows["tiny"]["accuracy"] == 0.0


def _groups_with_accuracy(accuracies: dict[str, float], n: int = 100):
    """n rows per group, the first round(acc * n) of them predicted right."""
    y, p, g = [], [], []
    for name, acc in accuracies.items():
        right = round(acc * n)
        y += [0] * n
        p += [0] * right + [1] * (n - right)
        g += [name] * n
    return np.array(y), np.array(p), pd.Series(g)


def test_group_gap_interval_is_of_the_signed_best_minus_worst_difference_and_contains_its_value():
    y, p, g = _groups_with_accuracy({"a": 0.8, "b": 0.8, "c": 0.8})
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), seed=0))
    d = r.difference()["accuracy"]
    # Equal groups: no gap, two different groups named, and an interval around zero. A max-minus-min
    # per resample would sit wholly above zero (about 0.02 to 0.14 here) and exclude its own value.
    assert d["difference"] == 0.0 and d["best"] != d["worst"]
    ci = d["difference_ci"]
    assert ci["low"] < 0.0 < ci["high"] and abs(ci["low"] + ci["high"]) < 0.03
    # A real gap: the interval holds the value and excludes zero.
    y, p, g = _groups_with_accuracy({"a": 0.9, "b": 0.6})
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), seed=0))
    d = r.difference()["accuracy"]
    assert (d["best"], d["worst"], d["difference"]) == ("a", "b", pytest.approx(0.3))
    assert 0.15 < d["difference_ci"]["low"] < 0.3 < d["difference_ci"]["high"] < 0.45


def test_the_group_gap_permutation_test_agrees_with_scipy():
    from scipy.stats import permutation_test

    y, p, g = _groups_with_accuracy({"a": 0.84, "b": 0.76, "c": 0.8}, n=100)
    r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, permutations=4000, seed=1)
    d = r.difference()["accuracy"]
    hit = (y == p).astype(float)
    samples = [hit[(g == name).to_numpy()] for name in ("a", "b", "c")]
    ref = permutation_test(samples, lambda *xs, axis: np.ptp([x.mean(axis=axis) for x in xs], axis=0),
                           permutation_type="independent", alternative="greater", n_resamples=4000,
                           vectorized=True, random_state=0)
    assert d["permutations"] == 4000 and 0.05 < ref.pvalue < 0.5
    assert d["equal_accuracy_p_value"] == pytest.approx(ref.pvalue, abs=0.03)
    y, p, g = _groups_with_accuracy({"a": 0.9, "b": 0.6})
    p_real = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30).difference()["accuracy"]
    assert p_real["equal_accuracy_p_value"] == pytest.approx(1 / 1001)  # no relabelling reaches a 0.3 gap


def test_the_group_gap_test_holds_its_level_where_the_pairs_interval_does_not():
    """Five groups of equal accuracy: the interval of the pair named best and worst after looking
    excludes zero far more often than 5% of samples; the permutation test rejects at about its level."""
    rng = np.random.default_rng(0)
    g = pd.Series(np.repeat(list("abcde"), 50))
    rejected = excluded = 0
    for _ in range(200):
        y = np.zeros(250, dtype=int)
        p = (rng.random(250) > 0.85).astype(int)
        d = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(250, seed=0),
                        permutations=200, seed=1).difference()["accuracy"]
        rejected += d["equal_accuracy_p_value"] < 0.05
        excluded += d["difference_ci"]["low"] > 0
    assert excluded / 200 > 0.2
    assert rejected / 200 < 0.09


def test_group_accuracy_intervals_follow_the_configured_seed():
    y, p, g = _groups_with_accuracy({"aa": 0.7, "bb": 0.7})

    def intervals(seed: int) -> list[tuple[float, float]]:
        r = GroupReport(y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), seed=seed))
        return [(row["accuracy_ci"]["low"], row["accuracy_ci"]["high"]) for row in r.by_group]

    assert intervals(0) == intervals(0)
    assert intervals(0) != intervals(1)
    # Two groups of the same size and accuracy no longer share one set of resamples.
    assert intervals(0)[0] != intervals(0)[1]
    for low, high in intervals(0):
        assert low < 0.7 < high


def test_untouched_model_forgets_nothing():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert similarity_retention(x, x) == 1.0
    rotated = x @ np.linalg.qr(rng.normal(size=(16, 16)))[0]
    assert linear_cka(x, rotated) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(50, 16))) < 0.6


def test_wilson_interval():
    e = wilson(5, 50)
    assert e.value == 0.1 and 0.03 < e.low < 0.05 and 0.2 < e.high < 0.23


def test_bootstrap_memory_is_bounded_by_its_index_matrix():
    """Every interval held [resamples, rows] int64 arrays and their temporaries at once: about 40 KB a
    row (4 GB at 100k rows). The index matrix is int32 now and the rest is worked a chunk at a time."""
    import tracemalloc

    n, k = 20_000, 50
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.8, y, rng.integers(0, k, n))
    conf = rng.random(n)
    groups = pd.Series(rng.choice(list("abcd"), n))
    tracemalloc.start()
    b = Bootstrap(n, resamples=1000, seed=0)
    b.accuracy(y, p), b.macro_f1(y, p, k), b.weighted_f1(y, p, k), b.ece(y, p, conf, 15)
    GroupReport(y_true=y, y_pred=p, groups=groups, min_group_size=30, bootstrap=b, permutations=200).difference()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert b.idx.dtype == np.int32 and b.idx.nbytes == 4 * n * 1000
    assert peak < b.idx.nbytes + 150e6, peak / 1e6


def test_an_accuracy_of_0_or_1_gets_wilson_s_interval_not_one_of_no_width():
    """Every resample of rows all right scores 1.0 again: the bootstrap interval was [1.000, 1.000]."""
    y = np.arange(40) % 4
    boot = Bootstrap(40, resamples=300, seed=0)
    right, wrong = boot.accuracy(y, y), boot.accuracy(y, (y + 1) % 4)
    assert (right.value, right.low, right.high) == pytest.approx((1.0, wilson(40, 40).low, 1.0))
    assert (wrong.value, wrong.low, wrong.high) == pytest.approx((0.0, 0.0, wilson(0, 40).high))
    assert 0.90 < right.low < 0.92 and right.n == 40
    # A group with no error among others that have some: its interval has width too, the others stay BCa.
    y, p, g = _groups_with_accuracy({"a": 1.0, "b": 0.7}, n=50)
    rows = {r["group"]: r["accuracy_ci"] for r in GroupReport(
        y_true=y, y_pred=p, groups=g, min_group_size=30, bootstrap=Bootstrap(len(y), resamples=300, seed=1),
        permutations=0).by_group}
    assert (rows["a"]["low"], rows["a"]["high"]) == pytest.approx((wilson(50, 50).low, 1.0), abs=1e-6)
    assert rows["b"]["low"] < 0.7 < rows["b"]["high"] and rows["b"]["high"] < 1.0


def test_a_large_reference_set_is_sampled_evenly_over_its_labels():
    """A plain random 800 of 135 labels x 100 rows left some label with one row in most seeds, and the
    probe of the whole set was then undefined."""
    labels = [f"intent{i}" for i in range(135) for _ in range(100)] + [None] * 50
    for seed in range(5):
        keep = reference_sample(labels, 800, seed=seed)
        assert len(keep) == len(set(keep.tolist())) == 800 and list(keep) == sorted(keep)
        counts = pd.Series([labels[i] for i in keep]).value_counts(dropna=False)
        assert len(counts) == 136 and counts.min() >= 5 and counts.max() <= 6
    assert (reference_sample(labels, 800, seed=1) != reference_sample(labels, 800, seed=2)).any()
    assert reference_sample(labels[:10], 800).tolist() == list(range(10))  # asked for more than there is


def test_a_reference_label_with_one_row_is_left_out_of_the_probe_not_the_probe_lost():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 8)) * 4
    y = ["a"] * 20 + ["b"] * 20 + ["c"]
    x = np.vstack([centres[0] + rng.normal(size=(20, 8)), centres[1] + rng.normal(size=(20, 8)),
                   centres[2] + rng.normal(size=(1, 8))])
    assert probe_accuracy(x, y) == probe_accuracy(x[:40], y[:40]) > 0.9
    assert np.isnan(probe_accuracy(x[19:], y[19:]))  # a and c with one row each: one label is left


def test_a_resample_longer_than_a_chunk_is_counted_whole(monkeypatch):
    """Chunks are whole resamples: one resample over CHUNK_ELEMENTS rows (a split of over two million)
    was chunked again and again, a RecursionError."""
    from curatune.evaluate import stats

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    idx = rng.integers(0, 50, size=(4, 50))
    whole = stats.class_counts(y, p, 3, idx)
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 20)  # smaller than one resample's 50 rows
    assert all(np.array_equal(a, b) for a, b in zip(stats.class_counts(y, p, 3, idx), whole, strict=True))

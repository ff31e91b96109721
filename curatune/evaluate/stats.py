"""Statistics: vectorised seeded bootstrap, McNemar's test, and the result shapes metrics.json uses.

One resample matrix serves every metric (and both models, for paired differences): 1,000
resamples of 10k rows are a [1000, 10000] index array, and accuracy or macro-F1 for all
resamples at once is a few ``bincount`` calls, never 1,000 calls of a metric function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from scipy import stats as sps


@dataclass
class Estimate:
    """A scalar with its bootstrap confidence interval: the one shape every headline number has."""

    value: float
    low: float
    high: float
    n: int
    confidence: float

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class Bootstrap:
    """Seeded resamples of ``n`` rows; estimates for any vectorised statistic."""

    # How its intervals are made, as metrics.json and the report name it.
    METHOD = "BCa bootstrap"

    def __init__(self, n: int, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> None:
        self.n, self.confidence = n, confidence
        rng = np.random.default_rng(seed)
        # Drawn a chunk at a time (the same numbers as one draw) and kept as int32: 4 bytes a row a
        # resample, where int64 and its temporaries took about 40 KB a row (4 GB at 100k rows).
        chunks = [rng.integers(0, n, size=(r, n)).astype(np.int32 if n < 2**31 else np.int64)
                  for r in _chunk_sizes(resamples, n)] if n else []
        self.idx = np.concatenate(chunks) if chunks else np.zeros((resamples, 0), dtype=np.int64)
        self._f1: dict[tuple[bytes, bytes, int], tuple[float, np.ndarray, np.ndarray]] = {}

    def interval(self, point: float, samples: np.ndarray, jackknife: np.ndarray, n: int | None = None) -> Estimate:
        """The bias-corrected and accelerated (BCa) interval of ``samples`` around ``point``, as
        ``scipy.stats.bootstrap(method="BCa")`` computes it (Efron & Tibshirani 1993, 14.3). Macro-F1,
        weighted F1 and ECE of resampled rows are biased (a resample repeats rows and misses others),
        and their percentile intervals under-covered: 0.933 for macro-F1 at nominal 0.95.
        ``jackknife``: the statistic with each row left out in turn. ``n``: the rows the estimate
        rests on, when a subset of the resampled rows (one group)."""
        samples = samples[np.isfinite(samples)]
        if not samples.size:
            return Estimate(float(point), float("nan"), float("nan"), self.n if n is None else n, self.confidence)
        lo, hi = np.quantile(samples, bca_levels(point, samples, jackknife, self.confidence))
        return Estimate(float(point), float(lo), float(hi), self.n if n is None else n, self.confidence)

    def mean(self, values: np.ndarray) -> Estimate:
        values = np.asarray(values, dtype=float)
        if self.n == 0:
            return Estimate(float("nan"), float("nan"), float("nan"), 0, self.confidence)
        return self.interval(values.mean(), by_chunk(self.idx, lambda idx: values[idx].mean(axis=1)),
                             mean_jackknife(values))

    def accuracy(self, y_true: np.ndarray, y_pred: np.ndarray) -> Estimate:
        hit = np.asarray(y_true) == np.asarray(y_pred)
        return proportion_at_edge(int(hit.sum()), hit.size, self.confidence) or self.mean(hit)

    def _macro_f1_samples(self, y_true: np.ndarray, y_pred: np.ndarray,
                          n_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
        """The point, per-resample and jackknife macro-F1. Kept per predictions: an evaluation asks for each model's
        score and then for their paired difference, which would otherwise resample both again."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        key = (y_true.tobytes(), y_pred.tobytes(), n_classes)
        if key not in self._f1:
            # Each resample is scored as the sample is, over the classes it holds (in truth or prediction,
            # sklearn's default). Averaged over the whole sample's classes instead, a class a resample
            # missed counted as F1 0: with 2 rows a class, intervals covered the population macro-F1 in
            # 59.5% of 200 trials (85.0% as now; equal at 10 rows a class, 96.0%).
            point = macro_f1_resampled(y_true, y_pred, n_classes, np.arange(self.n)[None, :])[0]
            self._f1[key] = (point, macro_f1_resampled(y_true, y_pred, n_classes, self.idx),
                             f1_jackknife(y_true, y_pred, n_classes, held_in="either"))
        return self._f1[key]

    def macro_f1(self, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> Estimate:
        return self.interval(*self._macro_f1_samples(y_true, y_pred, n_classes))

    def macro_f1_difference(self, y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                            n_classes: int) -> Estimate:
        """Macro-F1 of ``pred_a`` minus that of ``pred_b`` on the same resampled rows (paired); each
        averages over its own classes as ``macro_f1`` does, so the point is the two points' difference."""
        point_a, samples_a, jack_a = self._macro_f1_samples(y_true, pred_a, n_classes)
        point_b, samples_b, jack_b = self._macro_f1_samples(y_true, pred_b, n_classes)
        return self.interval(point_a - point_b, samples_a - samples_b, jack_a - jack_b)

    def weighted_f1(self, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> Estimate:
        """F1 per class weighted by its rows in the truth, as sklearn's ``average="weighted"``."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        point = weighted_f1_resampled(y_true, y_pred, n_classes, np.arange(self.n)[None, :])[0]
        return self.interval(point, weighted_f1_resampled(y_true, y_pred, n_classes, self.idx),
                             f1_jackknife(y_true, y_pred, n_classes, weighted=True))

    def ece(self, y_true: np.ndarray, y_pred: np.ndarray, confidences: np.ndarray, n_bins: int) -> Estimate:
        """Expected calibration error over equal-width confidence bins, the metric module's binning:
        the sum over bins of |hits - confidences| there, over the rows."""
        gap = (np.asarray(y_true) == np.asarray(y_pred)) - np.asarray(confidences, dtype=float)
        which = calibration_bins(confidences, n_bins)

        def per_resample(idx: np.ndarray) -> np.ndarray:
            r = idx.shape[0]
            keys = ((np.arange(r) * n_bins)[:, None] + which[idx]).ravel()
            per_bin = np.bincount(keys, weights=gap[idx].ravel(), minlength=r * n_bins).reshape(r, n_bins)
            return np.abs(per_bin).sum(axis=1) / max(idx.shape[1], 1)

        # Left out, a row takes its gap from its bin's sum and itself from the row count.
        sums = np.bincount(which, weights=gap, minlength=n_bins)
        total = np.abs(sums).sum()
        jackknife = (total - np.abs(sums[which]) + np.abs(sums[which] - gap)) / max(self.n - 1, 1)
        if self.n < 2:
            jackknife = np.full(self.n, np.nan)
        return self.interval(per_resample(np.arange(self.n)[None, :])[0], by_chunk(self.idx, per_resample),
                             jackknife)

    def paired_difference(self, a: np.ndarray, b: np.ndarray) -> Estimate:
        """Mean of a - b (e.g. tuned hit minus base hit) on the same resampled rows."""
        return self.mean(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def bca_levels(point: float, samples: np.ndarray, jackknife: np.ndarray, confidence: float) -> list[float]:
    """The quantile levels of the BCa interval: the percentile interval's levels shifted by the
    resamples' median bias (z0) and the jackknife's skewness (acceleration). Where z0 is infinite
    (every resample on one side of the point) BCa is undefined and the percentile levels are kept;
    scipy returns NaN there. A jackknife without spread (a constant statistic, fewer than two
    rows) has no acceleration."""
    a = (1 - confidence) / 2
    # Resamples tied with the point count half (scipy's rule). A discrete statistic ties often, and
    # the point and the resamples are not always computed alike (a group gap from fairlearn, its
    # resamples from bincounts), so a tie is judged to float precision, not bit for bit.
    tied = np.isclose(samples, point, rtol=1e-12, atol=1e-12)
    z0 = sps.norm.ppf((2 * np.count_nonzero((samples < point) & ~tied) + np.count_nonzero(tied)) / (2 * samples.size))
    if not np.isfinite(z0):
        return [a, 1 - a]
    d = np.asarray(jackknife, dtype=float)
    d = d[np.isfinite(d)]
    d = d.mean() - d if d.size > 1 else np.zeros(1)
    spread = (d**2).sum()
    accel = (d**3).sum() / (6 * spread**1.5) if spread > 0 else 0.0
    levels = []
    for z in (sps.norm.ppf(a), sps.norm.ppf(1 - a)):
        levels.append(float(sps.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
    return levels


def mean_jackknife(values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` with each one left out in turn (NaN for a single value)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return np.full(values.size, np.nan)
    return (values.sum() - values) / (values.size - 1)


def f1_jackknife(y_true: np.ndarray, y_pred: np.ndarray, k: int, *, weighted: bool = False,
                 held_in: Literal["truth", "either"] = "either") -> np.ndarray:
    """Macro-F1 (or support-weighted F1) with each row left out in turn, over the classes the remaining
    rows hold: in their truth (a group's macro-F1) or in truth or prediction (sklearn's default).
    Leaving a row out changes the counts of its true class (a true positive, or a false negative)
    and, when it was missed, of its predicted class (a false positive), so each value is the full
    sample's sum corrected for those one or two classes: O(rows), where recomputing is O(rows^2).
    A class the row alone held leaves the average (its F1 without the row is 0 either way)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    n = t.size
    if n < 2:
        return np.full(n, np.nan)
    tp, fp, fn = (c[0] for c in class_counts(t, p, k, np.arange(n)[None, :]))
    full = f1_of_counts(tp, fp, fn)
    hit = t == p
    true_after = np.where(hit, f1_of_counts(tp[t] - 1, fp[t], fn[t]), f1_of_counts(tp[t], fp[t], fn[t] - 1))
    pred_after = np.where(hit, full[p], f1_of_counts(tp[p], fp[p] - 1, fn[p]))
    support = tp + fn
    if weighted:
        total = (full * support).sum()
        after = total - full[t] * support[t] + true_after * (support[t] - 1) + (pred_after - full[p]) * support[p]
        return after / (n - 1)
    held = support if held_in == "truth" else support + fp
    counted = held > 0
    after = full[counted].sum() + (true_after - full[t]) * counted[t] + (pred_after - full[p]) * counted[p]
    # A missed row is its predicted class's false positive: it holds that class only in "either".
    emptied = (held[t] == 1).astype(int) + ((held_in == "either") & ~hit & (held[p] == 1))
    return after / np.maximum(int(counted.sum()) - emptied, 1)


def calibration_bins(confidences: np.ndarray, n_bins: int) -> np.ndarray:
    """Each row's equal-width confidence bin, as the ece metric module assigns it (right edges closed)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.digitize(np.asarray(confidences, dtype=float), edges[1:-1], right=True), 0, n_bins - 1)


# Resampled rows held at once: a chunk's temporaries stay near 100 MB whatever the split's size.
CHUNK_ELEMENTS = 2_000_000


def _chunk_sizes(resamples: int, n: int) -> list[int]:
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    return [min(step, resamples - start) for start in range(0, resamples, step)]


def by_chunk(idx: np.ndarray, fn: Callable[[np.ndarray], Any], width: int | None = None) -> Any:
    """``fn`` over successive row blocks of ``idx``, its per-resample results stacked in order.
    ``width``: what ``fn`` holds per resample, when more than a resample's rows (counts per group and class)."""
    starts = np.cumsum([0, *_chunk_sizes(idx.shape[0], width or idx.shape[1])])
    parts = [fn(idx[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return np.concatenate(parts)


def class_counts(y_true: np.ndarray, y_pred: np.ndarray, k: int,
                  idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives per class ([resamples, k]) of each row of ``idx``."""
    # One resample is the smallest chunk: over CHUNK_ELEMENTS rows it is counted whole, not chunked again.
    if idx.shape[0] > 1 and idx.shape[0] * idx.shape[1] > CHUNK_ELEMENTS:
        return by_chunk(idx, partial(class_counts, y_true, y_pred, k))
    r = idx.shape[0]
    t, p = np.asarray(y_true)[idx], np.asarray(y_pred)[idx]
    hit = t == p
    off = (np.arange(r) * k)[:, None]
    tp = np.bincount((off + t)[hit], minlength=r * k).reshape(r, k)
    fp = np.bincount((off + p)[~hit], minlength=r * k).reshape(r, k)
    fn = np.bincount((off + t)[~hit], minlength=r * k).reshape(r, k)
    return tp, fp, fn


def f1_of_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 per class from its counts; 0 for a class with none (sklearn's ``zero_division=0``)."""
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def weighted_f1_resampled(y_true: np.ndarray, y_pred: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    tp, fp, fn = class_counts(y_true, y_pred, k, idx)
    f1 = f1_of_counts(tp, fp, fn)
    support = tp + fn
    return (f1 * support).sum(axis=1) / np.maximum(support.sum(axis=1), 1)


def macro_f1_resampled(y_true: np.ndarray, y_pred: np.ndarray, k: int, idx: np.ndarray,
                       classes: np.ndarray | None = None) -> np.ndarray:
    """Macro-F1 for each row of ``idx``: over ``classes`` (a mask of the k classes; an absent one
    scores 0, as sklearn's ``labels=``), or by default over the classes present in that resample's
    truth or prediction (sklearn without ``labels``)."""
    tp, fp, fn = class_counts(y_true, y_pred, k, idx)
    counted = (tp + fp + fn > 0) if classes is None else np.broadcast_to(np.asarray(classes, bool), tp.shape)
    return (f1_of_counts(tp, fp, fn) * counted).sum(axis=1) / np.maximum(counted.sum(axis=1), 1)


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's test on paired correctness: exact binomial when the models disagree on fewer than
    25 rows, chi-square with continuity correction otherwise; p = 1 when they never disagree."""
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return {"a_only_correct": 0, "b_only_correct": 0, "statistic": 0.0, "p_value": 1.0, "method": "no disagreement"}
    if n < 25:
        p = float(sps.binomtest(only_a, n, 0.5).pvalue)
        return {"a_only_correct": only_a, "b_only_correct": only_b, "statistic": float(min(only_a, only_b)),
                "p_value": p, "method": "exact binomial"}
    # The continuity correction never makes the statistic negative: equal counts give 0 (p = 1).
    stat = max(abs(only_a - only_b) - 1, 0) ** 2 / n
    return {"a_only_correct": only_a, "b_only_correct": only_b, "statistic": float(stat),
            "p_value": float(sps.chi2.sf(stat, 1)), "method": "chi-square with continuity correction"}


def proportion_at_edge(successes: int, n: int, confidence: float) -> Estimate | None:
    """Wilson's interval for a share of 0 or 1, else None. Every resample of 40 rows all right scores
    1.0 again, so the bootstrap interval was [1.000, 1.000]: no width, as if 40 rows proved a rate of
    1. Wilson's is [0.91, 1.00] there."""
    return wilson(successes, n, confidence) if n and successes in (0, n) else None


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Share with a Wilson score interval (good at small n and shares near 0 or 1)."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, confidence)
    z = sps.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, float(max(0.0, centre - half)), float(min(1.0, centre + half)), n, confidence)

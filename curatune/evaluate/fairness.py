"""Fairness across customer groups, built on fairlearn's MetricFrame.

``GroupReport`` follows MetricFrame's design: metrics are any ``f(y_true, y_pred)``, arguments
that could be swapped are keyword-only, everything is computed once and read through
``overall``, ``by_group`` and ``difference()``. On top: bootstrap intervals for group metrics and
for the between-group difference, groups below a minimum size reported as too small (not
ranked), and multiclass disparity as one-vs-rest per class, using fairlearn's own binary
demographic-parity and equalized-odds functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, f1_score

from curatune.evaluate.stats import (
    Bootstrap,
    by_chunk,
    class_counts,
    f1_jackknife,
    f1_of_counts,
    mean_jackknife,
    proportion_at_edge,
)

Metric = Callable[[np.ndarray, np.ndarray], float]
PERMUTATION_CHUNK = 200


def macro_f1(y_true, y_pred) -> float:
    """Macro-F1 over the classes the group's rows truly hold. Groups hold different classes: averaged
    as sklearn does by default, a group's few wrong predictions into a class it never holds would add
    a 0 to its average alone (a "gap" of 0.15 between groups of equal accuracy). Such predictions
    still cost the recall of the class the row holds."""
    return float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


DEFAULT_METRICS: dict[str, Metric] = {"accuracy": accuracy_score, "macro_f1": macro_f1}


class GroupReport:
    def __init__(self, *, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series,
                 metrics: dict[str, Metric] | None = None, min_group_size: int = 30,
                 bootstrap: Bootstrap | None = None, permutations: int = 1000, seed: int = 0) -> None:
        self.metrics = metrics or DEFAULT_METRICS
        self.y_true, self.y_pred = np.asarray(y_true), np.asarray(y_pred)
        self.groups = groups.astype(str).reset_index(drop=True)
        self.frame = MetricFrame(metrics=self.metrics, y_true=self.y_true, y_pred=self.y_pred,
                                 sensitive_features=self.groups)
        sizes = self.groups.value_counts()
        self.sizes = {str(k): int(v) for k, v in sizes.items()}
        self.ranked = sorted(g for g, n in self.sizes.items() if n >= min_group_size)
        self.too_small = sorted(g for g, n in self.sizes.items() if n < min_group_size)
        self.bootstrap = bootstrap
        self.permutations, self.seed = permutations, seed
        self._resampled: dict[str, dict[str, np.ndarray]] | None = None
        self._jackknives: dict[tuple[str, str], np.ndarray] = {}

    @property
    def overall(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.frame.overall.items()}

    @property
    def by_group(self) -> list[dict[str, Any]]:
        rows = []
        resampled = self._resampled_metrics()
        for g, values in self.frame.by_group.iterrows():
            g = str(g)
            row: dict[str, Any] = {"group": g, "n": self.sizes[g], "too_small": g in self.too_small}
            for name in self.metrics:
                row[name] = float(values[name])
            for name, samples in resampled.items():
                if g in samples:
                    edge = proportion_at_edge(round(row[name] * self.sizes[g]), self.sizes[g],
                                              self.bootstrap.confidence) if name == "accuracy" else None
                    row[f"{name}_ci"] = (edge or self.bootstrap.interval(
                        row[name], samples[g], self._jackknife(name, g), n=self.sizes[g])).to_dict()
            rows.append(row)
        return rows

    def difference(self) -> dict[str, Any]:
        """Largest minus smallest group value among groups large enough to rank. For accuracy and
        macro-F1, a bootstrap interval of the difference between the two groups named best and worst
        (signed, so it can reach below zero when the gap may be chance; the max-minus-min of each
        resample would be biased upwards and never below zero); for accuracy, a permutation test of
        "every ranked group has the same accuracy". The pair is named after looking, so its interval
        alone overstates the evidence: with five equal groups of 50 rows it excluded zero in about a
        third of samples. The test accounts for that choice (it recomputes the largest gap of each
        relabelling)."""
        if len(self.ranked) < 2:
            return {"groups_ranked": len(self.ranked)}
        sub = self.frame.by_group.loc[self.ranked]
        out: dict[str, Any] = {"groups_ranked": len(self.ranked)}
        for name in self.metrics:
            vals = sub[name].astype(float)
            best = str(vals.idxmax())
            worst = str(vals.drop(best).idxmin()) if vals.min() == vals.max() else str(vals.idxmin())
            out[name] = {"difference": float(vals.max() - vals.min()),
                         "ratio": float(vals.min() / vals.max()) if vals.max() > 0 else None,
                         "best": best, "worst": worst}
        for name, samples in self._resampled_metrics().items():
            gap = out[name]
            best, worst = gap["best"], gap["worst"]
            gap["difference_ci"] = self.bootstrap.interval(
                gap["difference"], samples[best] - samples[worst],
                self._jackknife(name, best) - self._jackknife(name, worst),
                n=self.sizes[best] + self.sizes[worst]).to_dict()
        if "accuracy" in out and self.permutations:
            out["accuracy"].update(equal_accuracy_p_value=self._gap_p_value(out["accuracy"]["difference"]),
                                   permutations=self.permutations)
        return out

    def _gap_p_value(self, observed: float) -> float:
        """The share of random relabellings of the ranked groups' rows (sizes kept) whose largest
        accuracy gap is at least ``observed``, the observed labelling counted in (so never 0)."""
        keep = self.groups.isin(self.ranked).to_numpy()
        codes = self.groups[keep].map({name: i for i, name in enumerate(self.ranked)}).to_numpy(dtype=np.int64)
        hit = (self.y_true == self.y_pred)[keep].astype(float)
        g = len(self.ranked)
        rng = np.random.default_rng(self.seed)
        at_least = 0
        for start in range(0, self.permutations, PERMUTATION_CHUNK):  # bounded memory: chunk x rows
            r = min(PERMUTATION_CHUNK, self.permutations - start)
            acc = group_accuracy(rng.permuted(np.tile(codes, (r, 1)), axis=1), hit, g)
            # A float tie with the observed gap counts as reaching it.
            at_least += int((acc.max(axis=1) - acc.min(axis=1) >= observed - 1e-12).sum())
        return (at_least + 1) / (self.permutations + 1)

    def _jackknife(self, metric: str, group: str) -> np.ndarray:
        """The group's ``metric`` with each row of the split left out in turn: a row of another group
        leaves it as it is (the resamples are of the whole split, so the jackknife is too). Kept: the
        best and worst groups' are read again for the gap's interval."""
        if (metric, group) in self._jackknives:
            return self._jackknives[metric, group]
        inside = (self.groups == group).to_numpy()
        if metric == "accuracy":
            hit = (self.y_true == self.y_pred).astype(float)
            out = np.full(inside.size, hit[inside].mean())
            out[inside] = mean_jackknife(hit[inside])
        else:
            y, p = self.y_true[inside], self.y_pred[inside]
            out = np.full(inside.size, macro_f1(y, p))
            out[inside] = f1_jackknife(y, p, self._n_classes, held_in="truth")
        self._jackknives[metric, group] = out
        return out

    @property
    def _n_classes(self) -> int:
        return int(max(self.y_true.max(initial=0), self.y_pred.max(initial=0))) + 1

    def _resampled_metrics(self) -> dict[str, dict[str, np.ndarray]]:
        """Each ranked group's accuracy and macro-F1 (when that is this module's ``macro_f1``; a metric
        passed in is any function, and gets no interval) in every resample of the shared bootstrap (NaN
        where a resample holds no row of the group), so group intervals and the gaps' intervals come
        from the same resamples and follow ``[evaluate] seed``."""
        if self.bootstrap is None or not self.ranked:
            return {}
        if self._resampled is None:
            codes = self.groups.map({name: i for i, name in enumerate(self.ranked)}).fillna(-1).astype(int).to_numpy()
            hit = self.y_true == self.y_pred
            g, k = len(self.ranked), self._n_classes
            found: dict[str, np.ndarray] = {}
            if "accuracy" in self.metrics:
                found["accuracy"] = by_chunk(self.bootstrap.idx, lambda idx: group_accuracy(codes[idx], hit[idx], g))
            if self.metrics.get("macro_f1") is macro_f1 and np.issubdtype(self.y_true.dtype, np.integer) \
                    and np.issubdtype(self.y_pred.dtype, np.integer):  # class indices, as evaluate passes them
                y, p = self.y_true, self.y_pred
                found["macro_f1"] = by_chunk(self.bootstrap.idx, lambda idx: group_macro_f1(codes, y, p, g, k, idx),
                                             width=max(self.bootstrap.n, (g + 1) * k))
            self._resampled = {m: {name: v[:, i] for i, name in enumerate(self.ranked)} for m, v in found.items()}
        return self._resampled


def group_accuracy(codes: np.ndarray, hit: np.ndarray, g: int) -> np.ndarray:
    """Each of ``g`` groups' accuracy ([r, g]) in each row of ``codes`` ([r, n] group codes, -1 for a row
    in no ranked group) with ``hit`` ([r, n], or [n] for every row alike); NaN where a row holds none."""
    r = codes.shape[0]
    valid = codes >= 0
    keys = (codes + (np.arange(r) * g)[:, None])[valid]
    tot = np.bincount(keys, minlength=r * g).reshape(r, g)
    good = np.bincount(keys, weights=np.broadcast_to(hit, codes.shape)[valid], minlength=r * g).reshape(r, g)
    return np.where(tot > 0, good / np.maximum(tot, 1), np.nan)


def group_macro_f1(codes: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, g: int, k: int,
                   idx: np.ndarray) -> np.ndarray:
    """Each of ``g`` groups' macro-F1 ([r, g]) in each row of ``idx`` ([r, n]), the rows' groups in ``codes``
    (-1 for a row in no ranked group), ``k`` classes; NaN where a resample holds no row of the group.
    A resample is scored as the group's own rows are (``macro_f1``): over the classes its rows of the
    group truly hold. Averaged over every class the group holds in the whole split, a class that a
    resample happens to miss counted as F1 0: in a group of 33 rows over 16 classes that put most
    resamples far below the point, and the interval of a group with one error of 33 came out as
    [1.000, 1.000] around 0.967. A class of one group is another class than it is in another:
    counted as classes code * k + class, the rows in no ranked group as one more group, left out."""
    group = np.where(codes < 0, g, codes) * k
    tp, fp, fn = (c.reshape(idx.shape[0], g + 1, k)[:, :g]
                  for c in class_counts(group + y_true, group + y_pred, (g + 1) * k, idx))
    held = tp + fn > 0
    score = (f1_of_counts(tp, fp, fn) * held).sum(axis=2) / np.maximum(held.sum(axis=2), 1)
    return np.where(held.any(axis=2), score, np.nan)


def multiclass_disparity(*, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, labels: list[str],
                         ranked: list[str], min_class_support: int) -> dict[str, Any]:
    """Per-class one-vs-rest demographic-parity and equalized-odds differences (fairlearn's binary
    functions) between the ``ranked`` groups, and the worst class for each.

    The same rule as the accuracy ranking and the recall gap: groups too small to rank are left out,
    and equalized odds for a class compares only the groups holding at least ``min_class_support``
    rows of it (``None`` when fewer than two do). A true-positive rate on one or two rows is 0 or 1,
    and would name a worst class by chance.
    """
    names = groups.astype(str)
    keep = names.isin(ranked).to_numpy()
    y, p = np.asarray(y_true)[keep], np.asarray(y_pred)[keep]
    g = names[keep].reset_index(drop=True)
    rows = []
    for i, lab in enumerate(labels if len(ranked) >= 2 else []):
        t, q = (y == i).astype(int), (p == i).astype(int)
        if t.sum() == 0 and q.sum() == 0:
            continue
        # Both rates need rows: without negatives a group's false-positive rate is undefined, and
        # fairlearn would read it as 0 and report a gap no group has.
        support = pd.Series(t).groupby(g).sum()
        negatives = pd.Series(1 - t).groupby(g).sum()
        enough = support.index[(support >= min_class_support) & (negatives >= min_class_support)]
        eligible = g.isin(enough).to_numpy()
        dp = demographic_parity_difference(t, q, sensitive_features=g)
        eo = (float(equalized_odds_difference(t[eligible], q[eligible], sensitive_features=g[eligible]))
              if len(enough) >= 2 else None)
        rows.append({"label": lab, "demographic_parity_difference": float(dp), "equalized_odds_difference": eo,
                     "equalized_odds_groups": len(enough)})
    worst_dp = max(rows, key=lambda r: r["demographic_parity_difference"], default=None)
    worst_eo = max((r for r in rows if r["equalized_odds_difference"] is not None),
                   key=lambda r: r["equalized_odds_difference"], default=None)
    return {"per_class": rows, "groups": list(ranked), "min_class_support": min_class_support,
            "worst_demographic_parity": worst_dp, "worst_equalized_odds": worst_eo}


def per_class_rates(*, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series,
                    labels: list[str]) -> list[dict[str, Any]]:
    """Per class and group, one-vs-rest: recall (true-positive rate) and selection rate, through
    MetricFrame with fairlearn's own binary metrics. Recall is None where a group has no row of the class."""
    rows: list[dict[str, Any]] = []
    groups = groups.astype(str).reset_index(drop=True)
    for i, lab in enumerate(labels):
        t, p = (np.asarray(y_true) == i).astype(int), (np.asarray(y_pred) == i).astype(int)
        if t.sum() == 0 and p.sum() == 0:
            continue
        frame = MetricFrame(metrics={"selection_rate": selection_rate,
                                     "support": lambda yt, yp: float(np.sum(yt)),
                                     "recall": lambda yt, yp: true_positive_rate(yt, yp) if np.sum(yt) else np.nan},
                            y_true=t, y_pred=p, sensitive_features=groups)
        for g, v in frame.by_group.iterrows():
            rows.append({"label": lab, "group": str(g), "support": int(v["support"]),
                         "recall": None if np.isnan(v["recall"]) else float(v["recall"]),
                         "selection_rate": float(v["selection_rate"])})
    return rows

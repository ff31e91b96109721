"""Forgetting: how much general-domain capability the encoder lost in fine-tuning.

No standard tool measures this for encoder classifiers, so the definitions are ours (README):

- linear-probe retention: cross-validated accuracy of a logistic-regression probe on the tuned
  encoder's embeddings of a general-domain reference set, divided by the same probe on the base
  encoder's embeddings (1.0 = nothing lost);
- similarity retention: Spearman correlation between the base and tuned pairwise cosine
  similarities of the reference texts (needs no labels; 1.0 = same geometry);
- representation drift: linear CKA (Kornblith et al. 2019) between base and tuned embeddings, per
  layer (1.0 = same representation up to rotation and scale).

An untouched model gives exactly 1.0 on all three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    num = np.linalg.norm(x.T @ y, "fro") ** 2
    den = np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")
    return float(num / den) if den > 0 else float("nan")


def probe_accuracy(x: np.ndarray, labels: list[str], *, seed: int = 0, folds: int = 5) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    # A label with one row cannot sit in a training and a test fold both; it is left out of the probe
    # rather than leaving the whole probe undefined.
    kept = np.isin(y, classes[counts >= 2])
    x, y, counts = x[kept], y[kept], counts[counts >= 2]
    folds = min(folds, int(counts.min())) if counts.size else 0
    if folds < 2 or counts.size < 2:  # one label leaves nothing to tell apart
        return float("nan")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(C=10.0, max_iter=2000), x, y, cv=cv).mean())


def similarity_retention(base: np.ndarray, tuned: np.ndarray) -> float:
    # Fewer than three texts give fewer than three pairs: no rank correlation, and never "nothing lost".
    if len(base) < 3:
        return float("nan")
    iu = np.triu_indices(len(base), k=1)
    sb = (base @ base.T)[iu]
    st = (tuned @ tuned.T)[iu]
    if np.allclose(sb, st):
        return 1.0
    return float(spearmanr(sb, st).statistic)


def forgetting(base_encoder, tuned_encoder, texts: list[str], labels: list[str | None] | None, *, seed: int = 0,
               max_texts: int = 800) -> dict[str, Any]:
    """Similarity retention and CKA over every text; the probe over the texts with a label. Past
    ``max_texts`` the texts are a sample (``reference_sample``)."""
    given = len(texts)
    if len(texts) > max_texts:
        keep = reference_sample(labels or [None] * len(texts), max_texts, seed=seed)
        texts = [texts[i] for i in keep]
        labels = [labels[i] for i in keep] if labels else None
    base_layers = base_encoder.encode_layers(texts)
    tuned_layers = tuned_encoder.encode_layers(texts)
    base, tuned = base_layers[-1], tuned_layers[-1]
    out: dict[str, Any] = {"reference_rows": len(texts), "reference_rows_given": given,
                           "similarity_retention": similarity_retention(base, tuned),
                           "cka_by_layer": [linear_cka(b, t) for b, t in zip(base_layers, tuned_layers, strict=True)]}
    labelled = [i for i, lab in enumerate(labels or ()) if lab is not None]
    if labelled:
        y = [labels[i] for i in labelled]
        pb, pt = probe_accuracy(base[labelled], y, seed=seed), probe_accuracy(tuned[labelled], y, seed=seed)
        _, counts = np.unique(np.asarray(y), return_counts=True)
        out.update(probe_rows=len(labelled), probe_labels_left_out=int((counts < 2).sum()),
                   probe_accuracy_base=pb, probe_accuracy_tuned=pt,
                   probe_retention=float(pt / pb) if pb > 0 else float("nan"))
    return out


def reference_sample(labels: list[str | None], size: int, *, seed: int = 0) -> np.ndarray:
    """``size`` row indices (sorted) spread evenly over the labels (unlabelled rows counted as one more):
    rows are taken a round at a time, one from each label still holding some, labels in a seeded
    order. A plain random sample of 800 from CLINC150's 135 other intents (100 rows each) left some
    intent with a single row in most seeds, and a label with one row cannot be cross-validated."""
    size = min(size, len(labels))
    rng = np.random.default_rng(seed)
    by_label: dict[str | None, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    pools = [rng.permutation(rows) for rows in by_label.values()]
    pools = [pools[i] for i in rng.permutation(len(pools))]
    taken: list[int] = []
    depth = 0
    while len(taken) < size:
        taken.extend(int(p[depth]) for p in pools if depth < len(p))
        depth += 1
    return np.sort(np.asarray(taken[:size], dtype=np.int64))

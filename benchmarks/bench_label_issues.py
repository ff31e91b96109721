"""Label issues: finding seeded label flips on Banking77 and CLINC150, three rules side by side on
the same out-of-sample probabilities (MiniLM embeddings, 5-fold logistic regression, C=10):

- cleanlab ``find_label_issues`` with its defaults (the anchor),
- a plain "the model disagrees with the label" baseline,
- the label's out-of-sample probability is below chance (1 / classes), alone,
- this step's default: below chance, or cleanlab's confident-learning filter (``filter_by="both"``).

AUROC and precision@k rank rows by cleanlab's self-confidence label quality (the same for all).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import header, table
from benchmarks.noise import read_banking77, read_clinc
from curatune.config import LabelIssuesConfig
from curatune.curate.label_issues import (
    copy_groups,
    embedding_near_duplicates,
    flag_issues,
    flag_scores,
    out_of_fold_probs,
)
from curatune.embeddings import embed_cached

CACHE = Path(__file__).resolve().parent / ".cache"


def _nearest_classes(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    centroids = np.stack([x[y == c].mean(axis=0) for c in range(k)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(axis=1)


def _flip(y: np.ndarray, k: int, rate: float, kind: str, x: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    idx = rng.choice(len(y), int(rate * len(y)), replace=False)
    nearest = _nearest_classes(x, y, k)
    for i in idx:
        if kind == "confusable":
            noisy[i] = nearest[y[i]]
        else:
            noisy[i] = rng.choice([c for c in range(k) if c != y[i]])
    return noisy


def _rows(name: str, texts: list[str], labels: list[str]) -> tuple[list[tuple], int]:
    """The table rows of one dataset, and how many of its rows share a copy group with another row."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    t0 = time.perf_counter()
    x = embed_cached(texts, CACHE, keep_others=True)
    t_embed = time.perf_counter() - t0
    # The folds the step draws: copies (normalised text or embedding near-duplicates) held out together.
    ids = [str(i) for i in range(len(texts))]
    groups = copy_groups(pl.Series(texts), embedding_near_duplicates(x, ids), ids)
    out = []
    for kind, rate in (("uniform", 0.10), ("confusable", 0.10), ("uniform", 0.20)):
        noisy = _flip(y, len(classes), rate, kind, x)
        truth = noisy != y
        t0 = time.perf_counter()
        probs = out_of_fold_probs(x, noisy, len(classes), LabelIssuesConfig(), groups=groups)
        t_cv = time.perf_counter() - t0
        quality = get_label_quality_scores(noisy, probs)
        order = np.argsort(quality)
        k = min(1000, int(truth.sum()))
        p_at_k = truth[order[:k]].mean()
        rules = {"cleanlab defaults (anchor)": find_label_issues(noisy, probs),
                 "model disagrees with label": probs.argmax(1) != noisy,
                 "below chance only": flag_issues(noisy, probs, "chance"),
                 "curatune default (below chance or cleanlab confident learning)": flag_issues(noisy, probs,
                                                                                              "combined")}
        anchor_f1 = flag_scores(truth, rules["cleanlab defaults (anchor)"], quality)["f1"]
        for rule, flagged in rules.items():
            s = flag_scores(truth, flagged, quality)
            out.append((name, f"{int(rate * 100)}% {kind}", rule, s["precision"], s["recall"], s["f1"],
                        f"{s['f1'] / anchor_f1:.2f}x" if anchor_f1 else "-", s["auroc"], round(float(p_at_k), 3),
                        f"{t_embed + t_cv:.0f}"))
    return out, int((np.bincount(groups)[groups] > 1).sum())


def run(data_dir: Path, quick: bool = False) -> str:
    bank = read_banking77(data_dir)
    clinc = read_clinc(data_dir)
    if quick:
        bank, clinc = bank[::4], clinc[::6]
    rows, bank_copies = _rows("Banking77 train", [t for t, _ in bank], [y for _, y in bank])
    more, clinc_copies = _rows("CLINC150 train+val", [t for t, _ in clinc], [y for _, y in clinc])
    rows += more
    return (header("Label issues")
            + f"Rows: Banking77 {len(bank):,}, CLINC150 {len(clinc):,}. The folds hold copies together as the step "
              f"does (its normalised text or an embedding near-duplicate at cosine 0.97): {bank_copies:,} Banking77 "
              f"rows and {clinc_copies:,} CLINC150 rows share a group with another. Seeded flips (seed 0): uniform "
              "to any other "
              "class, or confusable to the class with the nearest embedding centroid. AUROC and precision@k rank "
              "rows by cleanlab's self-confidence label quality, which every rule shares, so they repeat on each "
              "rule's row of a setting. precision@k: the k rows of lowest label quality, k = the number of "
              "flipped rows, at most 1,000. Seconds: the embeddings, "
              "computed once per dataset (cached after the first run) and counted in each noise setting, plus that "
              "setting's 5-fold cross-validation.\n\n"
            + table(("dataset", "noise", "rule", "precision", "recall", "F1", "F1 vs anchor", "AUROC",
                     "precision@k", "seconds"), rows))

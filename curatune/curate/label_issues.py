"""Label issues: rows whose label is probably wrong, found with cleanlab on out-of-sample
probabilities, ranked, with a suggested label.

Probabilities come from K-fold cross-validation (cleanlab's methods assume out-of-sample
probabilities; in-sample ones hide errors) of a logistic regression on sentence embeddings of the
anonymised text (cached in the run directory by text hash and model), or on TF-IDF features for
very large sets, or from the user's own ``pred_probs`` Parquet (row_id + one column per label).

Cut-off. cleanlab ranks well (AUROC 0.998 on Banking77 with 10% flips) but its default
``find_label_issues`` (prune by noise rate) keeps F1 near 0.82 there. A label whose out-of-sample
probability is below chance level (1 / number of classes) is one the model considers less likely
than a guess, which finds uniform flips with F1 0.95; but a label flipped to a confusable
neighbour class keeps a probability above chance, and that rule alone misses almost all of them
(recall 0.12). The default (``cutoff = "combined"``) flags a row when either holds: below chance,
or cleanlab's confident-learning filter (``filter_by="both"``) flags it — F1 0.92 on uniform and
0.77 on confusable flips, where cleanlab's default gives 0.82 and 0.77 (BENCHMARKS.md, side by
side). ``"chance"`` and ``"cleanlab"`` (its default rule) are the single rules.

Actions follow the policy, on train rows only: evaluation labels are the yardstick and are never
changed by a model's opinion (flagged validation/test rows still go to review).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curatune.config import LabelIssuesConfig
from curatune.curate.base import CurationStep, StepResult, register_step
from curatune.errors import CuratuneError

# Ledger columns this step writes that later stages read (Label Studio push, evaluation).
FLAG_COL = "is_label_issue"
SUGGESTED_COL = "suggested_label"


def features(texts: list[str], cfg: LabelIssuesConfig, cache_dir) -> np.ndarray:
    if cfg.features == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=100_000).fit_transform(
            texts)
    from curatune.embeddings import embed_cached

    return embed_cached(texts, cache_dir)


def out_of_fold_probs(x, y: np.ndarray, n_classes: int, cfg: LabelIssuesConfig) -> np.ndarray:
    """K-fold out-of-sample probabilities; classes too rare for a fold get probability from the
    folds that saw them (a class absent from a training fold scores 0 there, never crashes)."""
    from joblib import Parallel, delayed
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(cfg.folds, max(2, len(y) // 2)))
    # Stratify when every class can appear in every fold; otherwise plain shuffled folds.
    splitter = (StratifiedKFold if counts[counts > 0].min() >= folds else KFold)(folds, shuffle=True,
                                                                                 random_state=cfg.seed)

    def fit(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if np.unique(y[train]).size < 2:
            return test, np.arange(n_classes), np.full((test.size, n_classes), 1.0 / n_classes)
        model = LogisticRegression(C=cfg.C, max_iter=2000).fit(x[train], y[train])
        return test, model.classes_, model.predict_proba(x[test])

    probs = np.zeros((len(y), n_classes))
    parts = Parallel(n_jobs=min(2, folds), prefer="threads")(delayed(fit)(tr, te) for tr, te in splitter.split(x, y))
    for test, classes, p in parts:
        probs[np.ix_(test, classes)] = p
    return probs / probs.sum(axis=1, keepdims=True)


def user_probs(path: str, row_ids: list[str], classes: list[str]) -> np.ndarray:
    df = pl.read_parquet(path)
    missing = [c for c in ["row_id", *classes] if c not in df.columns]
    if missing:
        raise CuratuneError(f"pred_probs file lacks column '{missing[0]}' (needs row_id and one column per label)",
                            file=path)
    df = pl.DataFrame({"row_id": row_ids}).join(df, on="row_id", how="left")
    if df[classes[0]].null_count():
        raise CuratuneError(f"pred_probs file has no row for '{df.filter(pl.col(classes[0]).is_null())['row_id'][0]}'",
                            file=path)
    probs = df.select(classes).to_numpy().astype(float)
    return probs / probs.sum(axis=1, keepdims=True)


@register_step
class LabelIssues(CurationStep):
    name = "label_issues"
    needs_labels = True

    def run(self, table: pl.DataFrame) -> StepResult:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        cfg: LabelIssuesConfig = self.ctx.config.curate.label_issues
        classes = sorted(table["label"].unique().to_list())
        if len(classes) < 2:
            raise CuratuneError(f"label issues need at least two classes; every labelled row has label "
                                f"'{classes[0] if classes else ''}'")
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in table["label"].to_list()])
        texts = table["text"].to_list()
        x = None
        if cfg.pred_probs:
            probs = user_probs(cfg.pred_probs, table["row_id"].to_list(), classes)
        else:
            x = features(texts, cfg, self.ctx.cache_dir)
            probs = out_of_fold_probs(x, y, len(classes), cfg)
        quality = get_label_quality_scores(y, probs, method="self_confidence")
        is_issue = flag_issues(y, probs, cfg.cutoff)
        suggested = probs.argmax(axis=1)
        confidence = probs.max(axis=1)
        rank = np.empty(len(y), dtype=np.int64)
        rank[np.argsort(quality, kind="stable")] = np.arange(1, len(y) + 1)
        outlier = self._outlier_scores(x, probs, y)
        near = self._embedding_near_duplicates(x, table["row_id"].to_list())

        train = (table["split"] == "train").to_numpy()
        action = np.full(len(y), "keep", dtype=object)
        if cfg.policy == "drop":
            action[is_issue & train] = "drop"
        elif cfg.policy == "relabel":
            action[is_issue & train & (confidence >= cfg.relabel_threshold)] = "relabel"
        rows = pl.DataFrame({
            "row_id": table["row_id"],
            "is_issue": is_issue,
            "score": quality,
            "action": action.tolist(),
            "reason": np.where(is_issue, "label_issue", None).tolist(),
            "new_label": [classes[s] if a == "relabel" else None for s, a in zip(suggested, action, strict=True)],
            FLAG_COL: is_issue,
            "label_quality": quality,
            SUGGESTED_COL: [classes[s] for s in suggested],
            "suggested_confidence": confidence,
            "label_issue_rank": rank,
            "outlier_score": outlier,
            "embedding_near_dup_of": near,
        }, schema_overrides={"reason": pl.String, "new_label": pl.String, "embedding_near_dup_of": pl.String})
        summary: dict[str, Any] = {
            "rows": len(y), "classes": len(classes), "issues": int(is_issue.sum()),
            "cutoff": cfg.cutoff, "policy": cfg.policy,
            "features": "user pred_probs" if cfg.pred_probs else cfg.features,
            "cleanlab_default_issues": int(find_label_issues(y, probs).sum()),
            "flagged_share_by_group": self._by_group(table, is_issue),
        }
        return StepResult(rows=rows, summary=summary)

    @staticmethod
    def _outlier_scores(x, probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """cleanlab's out-of-distribution score (lower = more unusual): on embeddings when we have
        dense ones, else on the probabilities."""
        from cleanlab.outlier import OutOfDistribution

        if isinstance(x, np.ndarray) and len(x) > 10:
            return OutOfDistribution().fit_score(features=x, verbose=False)
        return OutOfDistribution().fit_score(pred_probs=probs, labels=y, verbose=False)

    @staticmethod
    def _embedding_near_duplicates(x, row_ids: list[str], threshold: float = 0.97) -> list[str | None]:
        """Paraphrase-level duplicates that MinHash cannot see: the nearest other row above a cosine."""
        if not isinstance(x, np.ndarray) or len(x) < 2:
            return [None] * len(row_ids)
        from curatune.curate.dedup import knn

        sims, nbrs = knn(x, 2)
        return [row_ids[j] if s >= threshold and j >= 0 else None for s, j in zip(sims[:, 1], nbrs[:, 1], strict=True)]

    def _by_group(self, table: pl.DataFrame, is_issue: np.ndarray) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        flagged = table.select(pl.Series("flag", is_issue), *self.ctx.group_cols)
        for g in self.ctx.group_cols:
            shares = flagged.group_by(g).agg(pl.col("flag").mean().alias("share"), pl.len().alias("n")).sort(g)
            out[g] = {str(k): round(float(s), 4) for k, s, _ in shares.iter_rows()}
        return out

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        if "is_label_flip" not in truth.columns:
            return {}
        t = result.rows.select("row_id", "is_issue", "label_quality").join(
            truth.select("row_id", "is_label_flip"), on="row_id")
        return flag_scores(t["is_label_flip"].to_numpy(), t["is_issue"].to_numpy(), t["label_quality"].to_numpy())


def flag_issues(y: np.ndarray, probs: np.ndarray, cutoff: str) -> np.ndarray:
    """Rows flagged as label issues under ``cutoff`` (see the module docstring), where the model also
    prefers another class."""
    from cleanlab.filter import find_label_issues

    below_chance = probs[np.arange(len(y)), y] < 1.0 / probs.shape[1]
    if cutoff == "cleanlab":
        flagged = find_label_issues(y, probs)
    elif cutoff == "chance":
        flagged = below_chance
    else:
        flagged = below_chance | find_label_issues(y, probs, filter_by="both")
    return flagged & (probs.argmax(axis=1) != y)


def flag_scores(truth: np.ndarray, flagged: np.ndarray, quality: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 of the flags and AUROC of the ranking against planted flips."""
    from sklearn.metrics import roc_auc_score

    tp = int((truth & flagged).sum())
    p = tp / flagged.sum() if flagged.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    auroc = float(roc_auc_score(truth, -quality)) if 0 < truth.sum() < len(truth) else None
    return {"planted": int(truth.sum()), "flagged": int(flagged.sum()), "precision": round(p, 4),
            "recall": round(r, 4), "f1": round(f1, 4), "auroc": round(auroc, 4) if auroc is not None else None}

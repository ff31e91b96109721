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
changed by a model's opinion (flagged validation/test rows still go to review). Nor do they train
the models: train rows are scored out of fold by models fit on train rows, validation and test rows
by a model fit on all train rows (a set with fewer than two labels of train rows is fit on all its
rows); otherwise a label only test rows carry could be suggested for, and given to, a train row.

Unscored rows. With cross-validation, a label with a single (train) row is absent from the training
fold that holds that row out, so its own probability is 0 and it would always look mislabelled: a
rare but correct class would be erased. Such rows are not scored: no flag, no action, null
``label_quality``, ``label_issue_rank``, ``suggested_label`` and ``suggested_confidence``; the
summary counts them (``unscored_rows``, ``unscored_labels``). Two rows make a score possible,
because stratified folds never hold out every row of a class with two or more. Copies (and embedding
near-duplicates) are held out together, so they count as one row: a label whose train rows are all
copies of one text (``my email is <EMAIL_ADDRESS>`` after anonymisation) is unscored too. Where copy
groups mix labels, the group folds can hold out every group of a label at once; a group is then moved
to another fold, and a label the moves cannot keep in training is unscored as well, one at a time
(fewest rows first), the folds drawn again each time, until every label left is kept.

Rare labels. A score is not yet a verdict: each fold model learns a label of a few rows from fewer
still, and their out-of-fold probabilities fall low although the labels are right. Measured on 15
Banking77 intents, each cut in turn to its first n rows (labels as published): 80% of their rows
flagged at n = 2, 38% at 3, 9% at 5, 3-4% at 8-10, 1% at 15, against 0.5% of the other rows. Rows
of a label with fewer than MIN_ROWS_TO_ACT train rows are flagged (for review) but the policy never
drops or relabels them (``flagged_rare_label_rows`` in the summary). With the user's pred_probs,
from a model trained elsewhere, neither limit applies.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curatune.config import Config, LabelIssuesConfig
from curatune.curate.base import CurationStep, StepResult, register_step
from curatune.curate.dedup import key_expr
from curatune.dataset import LABEL_ISSUE, MISSING_GROUP, read_table
from curatune.errors import CuratuneError, shown_value

# Ledger columns this step writes that later stages read (Label Studio push, evaluation).
FLAG_COL = "is_label_issue"
SUGGESTED_COL = "suggested_label"
# Cross-validation scores a row only when its label has this many rows (see "Unscored rows" above).
MIN_ROWS_PER_LABEL = 2
# Fewer train rows than this, and a label's rows are flagged but never dropped or relabelled by the
# policy (see "Rare labels" above).
MIN_ROWS_TO_ACT = 10


def features(texts: list[str], cfg: LabelIssuesConfig, cache_dir) -> np.ndarray:
    if cfg.features == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        # Terms seen in one row cannot carry over to a held-out fold, so they are pruned; but on a small or
        # varied set that can leave no terms at all, and then every term is better than none.
        for min_df in (2, 1):
            try:
                return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=min_df,
                                       max_features=100_000).fit_transform(texts)
            except ValueError:
                continue
        raise CuratuneError("label issues: the texts have no words TF-IDF can use (words of two or more letters or "
                            "digits); set [curate.label_issues] features = 'embedding' or give pred_probs")
    from curatune.embeddings import embed_cached

    return embed_cached(texts, cache_dir)


Split = tuple[np.ndarray, np.ndarray]


def out_of_fold_probs(x, y: np.ndarray, n_classes: int, cfg: LabelIssuesConfig,
                      fit_on: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """K-fold out-of-sample probabilities. Every class needs MIN_ROWS_PER_LABEL rows (in as many
    ``groups``): stratified folds then keep each class in every training fold, even a class with fewer
    rows than folds. Groups that mix labels can defeat that; ``fold_splits`` then moves groups between
    folds, and a class it still cannot keep is refused rather than given probability 0.

    ``fit_on`` (a row mask): only these rows' labels train the models; they are scored out of fold,
    the others by a model fit on all of them. ``groups``: rows that are copies of one another share a
    group, which is held out whole, so no row is scored by a model that learnt its label from its copy
    (a wrongly labelled row and its copy vouched for each other); a row not fitted on whose copy was
    is scored by the model that held that copy out."""
    splits, uncovered = fold_splits(y, n_classes, cfg, fit_on, groups)
    if uncovered.any():
        raise CuratuneError(f"label issues: cross-validation cannot keep class {int(np.argmax(uncovered))} in the "
                            "training folds that score its rows (its rows lie in too few groups of copies that "
                            "the folds can separate)")
    return probs_from_splits(x, y, n_classes, cfg, splits)


def fold_splits(y: np.ndarray, n_classes: int, cfg: LabelIssuesConfig, fit_on: np.ndarray | None = None,
                groups: np.ndarray | None = None) -> tuple[list[Split], np.ndarray]:
    """The (train, test) row positions of each model ``out_of_fold_probs`` fits (``fit_on`` and
    ``groups`` as there), and a mask of the classes these splits cannot score: those some split
    scores rows of without having trained on any."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    fit_idx = np.arange(len(y)) if fit_on is None else np.flatnonzero(fit_on)
    rest = np.setdiff1d(np.arange(len(y)), fit_idx)
    counts = np.bincount(y[fit_idx], minlength=n_classes)
    # StratifiedKFold refuses more folds than its largest class has rows.
    folds = int(min(cfg.folds, counts.max()))
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    group_ids, row_group = np.unique(g[fit_idx], return_inverse=True)
    # The splitters read only the number of rows from X.
    placeholder = np.zeros(fit_idx.size)
    with warnings.catch_warnings():
        # Its warning that a class has fewer rows than folds is the case the docstring allows for.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if group_ids.size < fit_idx.size:  # copies among the fitted rows
            cv = StratifiedGroupKFold(min(folds, group_ids.size), shuffle=True, random_state=cfg.seed)
            raw = list(cv.split(placeholder, y[fit_idx], g[fit_idx]))
        else:  # no copies: the folds every earlier run drew
            raw = list(StratifiedKFold(folds, shuffle=True, random_state=cfg.seed).split(placeholder, y[fit_idx]))
    fold = np.empty(group_ids.size, dtype=np.int64)
    for k, (_, te) in enumerate(raw):
        fold[row_group[te]] = k
    # Without copies nothing moves: stratified folds put a class's rows in different folds first.
    fold = _cover_labels(fold, row_group, y[fit_idx], n_classes, len(raw))
    row_fold = fold[row_group]
    splits = [(fit_idx[row_fold != k], fit_idx[row_fold == k]) for k in range(len(raw))]
    if rest.size:
        # After any moves: a row not fitted on goes with its copy to the fold that now holds the copy out.
        at = np.minimum(np.searchsorted(group_ids, g[rest]), group_ids.size - 1)
        held_out_by = np.where(group_ids[at] == g[rest], fold[at], -1)
        splits = [(tr, np.concatenate([te, rest[held_out_by == k]])) for k, (tr, te) in enumerate(splits)]
        if (held_out_by < 0).any():
            splits.append((fit_idx, rest[held_out_by < 0]))
    uncovered = np.zeros(n_classes, dtype=bool)
    for tr, te in splits:
        uncovered |= (np.bincount(y[te], minlength=n_classes) > 0) & (np.bincount(y[tr], minlength=n_classes) == 0)
    return splits, uncovered


def _cover_labels(fold: np.ndarray, row_group: np.ndarray, y: np.ndarray, n_classes: int,
                  n_folds: int) -> np.ndarray:
    """Each group's fold, with groups moved, one at a time, until no fold holds out every group of a
    class, or no move lessens the number of folds that do.

    StratifiedGroupKFold balances each class's share across folds but does not promise that: where
    groups mix labels, both groups of a two-group class can land in one fold, whose model never sees
    the class and gives its rows probability 0. Folds without that fault come back unchanged."""
    pairs = np.unique(np.column_stack([row_group, y]), axis=0)  # (group, class), sorted by group
    n_groups = fold.size
    starts = np.searchsorted(pairs[:, 0], np.arange(n_groups + 1))
    size = np.bincount(row_group, minlength=n_groups)
    held = np.zeros((n_folds, n_classes), dtype=np.int64)  # groups of each class each fold holds out
    np.add.at(held, (fold[pairs[:, 0]], pairs[:, 1]), 1)
    total = held.sum(axis=0)
    rows_in = np.bincount(fold, weights=size, minlength=n_folds).astype(np.int64)
    fold = fold.copy()

    def faults(h: np.ndarray) -> int:
        return int(((h == total) & (total > 0)).sum())

    while (now := faults(held)) > 0:
        best: tuple[int, int, int, int] | None = None
        # A class in one group is faulty wherever that group goes; only a class in two or more can be mended.
        for k, c in np.argwhere((held == total) & (total >= 2)):
            for grp in pairs[pairs[:, 1] == c, 0]:
                classes = pairs[starts[grp]:starts[grp + 1], 1]
                for j in range(n_folds):
                    if j == k:
                        continue
                    trial = held.copy()
                    trial[k, classes] -= 1
                    trial[j, classes] += 1
                    # Fewest faults, then into the fold with fewest rows; group and fold ids settle ties.
                    key = (faults(trial), int(rows_in[j] + size[grp]), int(grp), j)
                    best = key if best is None or key < best else best
        if best is None or best[0] >= now:
            break
        _, _, grp, j = best
        classes = pairs[starts[grp]:starts[grp + 1], 1]
        k = fold[grp]
        held[k, classes] -= 1
        held[j, classes] += 1
        rows_in[k] -= size[grp]
        rows_in[j] += size[grp]
        fold[grp] = j
    return fold


def probs_from_splits(x, y: np.ndarray, n_classes: int, cfg: LabelIssuesConfig, splits: list[Split]) -> np.ndarray:
    """Each split's test rows' probabilities from a model fit on its train rows."""
    from joblib import Parallel, delayed
    from sklearn.linear_model import LogisticRegression

    def fit(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = LogisticRegression(C=cfg.C, max_iter=2000).fit(x[train], y[train])
        return test, model.classes_, model.predict_proba(x[test])

    probs = np.zeros((len(y), n_classes))
    parts = Parallel(n_jobs=min(2, len(splits)), prefer="threads")(delayed(fit)(tr, te) for tr, te in splits)
    for test, classes, p in parts:
        probs[np.ix_(test, classes)] = p
    return probs / probs.sum(axis=1, keepdims=True)


def read_user_probs(path: str, classes: list[str]) -> pl.DataFrame:
    """The pred_probs file's row_id and label columns; refuses a file that cannot be one."""
    if not Path(path).is_file():
        raise CuratuneError("pred_probs file not found", file=path)
    if "row_id" in classes:
        raise CuratuneError("a label is named 'row_id', which a pred_probs file uses for its row ids", file=path)
    df = read_table(path)
    missing = [c for c in ["row_id", *classes] if c not in df.columns]
    if missing:
        raise CuratuneError(f"pred_probs file lacks column {shown_value(missing[0])} (needs row_id and one column per "
                            "label)", file=path)
    nested = next((c for c in ["row_id", *classes] if df.schema[c].is_nested()), None)
    if nested is not None:
        raise CuratuneError(f"pred_probs column holds {df.schema[nested]} values, not numbers", file=path,
                            column=nested)
    # Non-numbers become null here and are refused by user_probs with their row, like nulls and NaN.
    return df.select(pl.col("row_id").cast(pl.String), pl.col(classes).cast(pl.Float64, strict=False))


def user_probs(path: str, row_ids: list[str], classes: list[str]) -> np.ndarray:
    df = read_user_probs(path, classes)
    dup = df.filter(pl.col("row_id").is_duplicated())
    if dup.height:
        # A repeated row_id would multiply that row in the join below.
        raise CuratuneError(f"pred_probs file has more than one row for {shown_value(dup['row_id'][0])}", file=path)
    absent = pl.DataFrame({"row_id": row_ids}).join(df, on="row_id", how="anti")
    if absent.height:
        raise CuratuneError(f"pred_probs file has no row for {shown_value(absent['row_id'][0])}", file=path)
    df = pl.DataFrame({"row_id": row_ids}).join(df, on="row_id", how="left", maintain_order="left")
    for c in classes:
        bad = df.filter(pl.col(c).is_null() | pl.col(c).is_nan())
        if bad.height:
            raise CuratuneError(f"no probability (null, NaN or not a number) for row {shown_value(bad['row_id'][0])}",
                                file=path, column=c)
        bad = df.filter((pl.col(c) < 0) | (pl.col(c) > 1))
        if bad.height:
            raise CuratuneError(f"{bad[c][0]} for row {shown_value(bad['row_id'][0])} is not a probability (must be "
                                "in [0, 1])", file=path, column=c)
    probs = df.select(classes).to_numpy()
    total = probs.sum(axis=1)
    if (total <= 0).any():
        raise CuratuneError(f"pred_probs file gives row {shown_value(row_ids[int(np.argmax(total <= 0))])} no "
                            "probability for any of the dataset's labels", file=path)
    # Not required to sum to 1: the file may hold labels that no row in play has, so renormalise over ours.
    return probs / total[:, None]


def _scorable_labels(labels: pl.Series, *, with_pred_probs: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The classes, each row's class id, and which classes can be scored; refuses data with fewer than
    two scorable classes. Only cross-validation leaves a rare label out of its own training fold; the
    user's probabilities come from a model trained elsewhere, so they score every row."""
    labels = labels.cast(pl.String)
    classes = sorted(labels.unique().to_list())
    if not classes:
        raise CuratuneError("label issues need labelled rows; no row with text has a label")
    if len(classes) < 2:
        raise CuratuneError(f"label issues need at least two classes; every labelled row has label "
                            f"{shown_value(classes[0])}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in labels.to_list()])
    scorable = np.bincount(y, minlength=len(classes)) >= (1 if with_pred_probs else MIN_ROWS_PER_LABEL)
    _need_two_scorable(scorable, "rows each")
    return classes, y, scorable


def _need_two_scorable(scorable: np.ndarray, rows: str) -> None:
    if scorable.sum() < 2:
        raise CuratuneError(f"label issues need two or more labels with at least {MIN_ROWS_PER_LABEL} {rows} "
                            f"to cross-validate, found {int(scorable.sum())} (of {scorable.size} labels); add rows "
                            "or give [curate.label_issues] pred_probs")


def _groups_per_label(y: np.ndarray, groups: np.ndarray, n_classes: int) -> np.ndarray:
    """How many copy groups each label's rows span."""
    pairs = np.unique(np.column_stack([y, groups]), axis=0)
    return np.bincount(pairs[:, 0], minlength=n_classes)


def _cross_validated_labels(y: np.ndarray, train: np.ndarray, groups: np.ndarray,
                            n_classes: int) -> tuple[np.ndarray | None, np.ndarray]:
    """The rows the fold models fit on (None: all rows) and the labels cross-validation can score.

    A group of copies is held out whole, so copies count as one example: a label whose fitted rows lie
    in one group is absent from the training fold that holds that group out, its probability is 0 and
    all its rows would look mislabelled. It is left unscored, like a label of one row. Without copies
    each row is its own group and this is the rule on row counts."""
    in_train = _groups_per_label(y[train], groups[train], n_classes) >= MIN_ROWS_PER_LABEL
    # Evaluation labels are the yardstick: they never train the models whose opinion changes train
    # labels. Only a set without two labels of train rows to learn from is fit on all its rows.
    if in_train.sum() >= 2:
        return train, in_train
    scorable = _groups_per_label(y, groups, n_classes) >= MIN_ROWS_PER_LABEL
    _need_two_scorable(scorable, "rows each (copies counted once)")
    return None, scorable


def _scored_rows(y: np.ndarray, scorable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the rows of scorable labels, and their labels renumbered among those labels."""
    at = np.flatnonzero(scorable[y])
    return at, (np.cumsum(scorable) - 1)[y[at]]


def _covered_folds(y: np.ndarray, scorable: np.ndarray, cfg: LabelIssuesConfig, fit_on: np.ndarray | None,
                   groups: np.ndarray) -> tuple[list[Split], np.ndarray]:
    """The folds over the scorable labels' rows (positions among those rows) and the labels they score.

    A label the folds cannot keep in the training fold of every fold that scores its rows (groups that
    mix labels, placed so that no move of one group mends it) would get probability 0 there and look
    mislabelled: it is left unscored, like a label of one group, and the folds are drawn again without
    its rows, as they would be for such a label."""
    scorable = scorable.copy()
    while True:
        at, ys = _scored_rows(y, scorable)
        splits, uncovered = fold_splits(ys, int(scorable.sum()), cfg, None if fit_on is None else fit_on[at],
                                        groups[at])
        if not uncovered.any():
            return splits, scorable
        scorable[np.flatnonzero(scorable)[_label_to_drop(ys, uncovered)]] = False
        _need_two_scorable(scorable, "rows each (copies counted once)")


def _label_to_drop(ys: np.ndarray, uncovered: np.ndarray) -> int:
    """Which of the uncovered labels (ids among the scored ones) to leave out this round.

    One at a time: folds drawn without one label may cover the others, so leaving out all of them at
    once could lose more labels than needed. The one of fewest scored rows (ties: the lowest id) costs
    the fewest scores, and a label of few rows lies in few groups, the likeliest to stay uncovered."""
    rows = np.bincount(ys, minlength=uncovered.size)
    return int(np.flatnonzero(uncovered)[np.argmin(rows[uncovered])])


@register_step
class LabelIssues(CurationStep):
    name = "label_issues"
    ledger_columns = (FLAG_COL, "label_quality", SUGGESTED_COL, "suggested_confidence", "label_issue_rank",
                      "outlier_score", "embedding_near_dup_of")
    needs_labels = True

    @classmethod
    def check_input(cls, rows: pl.DataFrame, config: Config, group_cols: list[str]) -> None:
        # The input as loaded, before any output is touched; run() checks again what earlier steps left.
        pred_probs = config.curate.label_issues.pred_probs
        usable = rows.filter(pl.col("text").is_not_null() & pl.col("label").is_not_null())
        classes, _, _ = _scorable_labels(usable["label"], with_pred_probs=bool(pred_probs))
        if pred_probs:
            # Every labelled row needs its probabilities, found wanting here rather than after the earlier
            # run's manifest is gone; run() checks again against the rows earlier steps leave.
            user_probs(pred_probs, usable["row_id"].cast(pl.String).to_list(), classes)

    def run(self, table: pl.DataFrame) -> StepResult:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        cfg: LabelIssuesConfig = self.ctx.config.curate.label_issues
        cfg.check()  # a Config built in code never passed through the loader
        classes, y, scorable = _scorable_labels(table["label"], with_pred_probs=bool(cfg.pred_probs))
        train = (table["split"] == "train").to_numpy()
        steps = self.ctx.config.curate.steps
        # Anonymisation still to come: the text is not yet the one written, nor the one reviewers saw.
        to_come = "anonymise" in steps and steps.index("anonymise") > steps.index(self.name)
        raw = to_come or "anonymise" not in steps  # not anonymised text, either way
        x = None
        if cfg.pred_probs:
            probs = user_probs(cfg.pred_probs, table["row_id"].to_list(), classes)
        else:
            # Vectors of raw text are not written (nor are dedup's): text can be partly recovered from its
            # embedding.
            if raw:  # nor kept from an earlier run into this folder (before, such vectors were written)
                from curatune.embeddings import drop_cached

                drop_cached(self.ctx.out_dir / "cache")
            x = features(table["text"].to_list(), cfg, None if raw else self.ctx.cache_dir)
        near = embedding_near_duplicates(x, table["row_id"].to_list())
        fit_on = None
        groups = np.arange(len(y))
        splits: list[Split] = []
        if not cfg.pred_probs:
            groups = copy_groups(table["text"], near, table["row_id"].to_list())
            fit_on, scorable = _cross_validated_labels(y, train, groups, len(classes))
            splits, scorable = _covered_folds(y, scorable, cfg, fit_on, groups)
        at, ys = _scored_rows(y, scorable)
        kept_classes = np.flatnonzero(scorable)  # ys indexes these
        if not cfg.pred_probs:
            probs = probs_from_splits(x[at], ys, kept_classes.size, cfg, splits)
        quality = get_label_quality_scores(ys, probs, method="self_confidence")
        is_issue = np.zeros(len(y), dtype=bool)
        is_issue[at] = flag_issues(ys, probs, cfg.cutoff)
        suggested = np.array(classes, dtype=object)[kept_classes[probs.argmax(axis=1)]]
        confidence = np.full(len(y), np.nan)
        confidence[at] = probs.max(axis=1)
        rank = np.empty(at.size, dtype=np.int64)
        rank[np.argsort(quality, kind="stable")] = np.arange(1, at.size + 1)
        outlier = self._outlier_scores(x, probs, ys, at, len(y))

        action = np.full(len(y), "keep", dtype=object)
        # Cross-validation learns a rare label from a handful of rows (copies of one text are one); its own
        # rows then look wrong.
        in_train = _groups_per_label(y[train], groups[train], len(classes))
        rare = (in_train[y] < MIN_ROWS_TO_ACT) if not cfg.pred_probs else np.zeros(len(y), dtype=bool)
        # A row a person decided on is theirs: dropped here, the review step (which sees kept rows) would
        # never apply their decision.
        decided = self.ctx.decided_rows(table.select("row_id", "text", "label"), text_is_final=not to_come)
        reviewed = table["row_id"].is_in(list(decided)).to_numpy()
        candidates = is_issue & train & ~rare
        acting = candidates & ~reviewed
        # The rows the policy would act on but leaves to a person: apply-reviews must know them, since
        # once their decision is withdrawn only this step can act on them (reviews.py).
        spared = candidates & reviewed
        if cfg.policy == "drop":
            action[acting] = "drop"
            left_to_reviews = spared
        elif cfg.policy == "relabel":
            # A label no train row carries was learnt from evaluation rows alone (the fit on all rows when
            # train holds too few labels): suggested for review, never written into train.
            learnt_in_train = np.zeros(len(y), dtype=bool)
            learnt_in_train[at] = np.isin(kept_classes[probs.argmax(axis=1)], y[train])
            sure = (confidence >= cfg.relabel_threshold) & learnt_in_train
            action[acting & sure] = "relabel"
            left_to_reviews = spared & sure
        else:
            left_to_reviews = np.zeros(len(y), dtype=bool)
        suggested_col = _on_rows(suggested, at, len(y), pl.String)
        quality_col = _on_rows(quality, at, len(y), pl.Float64)
        rows = pl.DataFrame({
            "row_id": table["row_id"],
            "is_issue": is_issue,
            "score": quality_col,
            "action": action.tolist(),
            "reason": np.where(is_issue, LABEL_ISSUE, None).tolist(),
            "new_label": [s if a == "relabel" else None for s, a in zip(suggested_col, action, strict=True)],
            FLAG_COL: is_issue,
            "label_quality": quality_col,
            SUGGESTED_COL: suggested_col,
            "suggested_confidence": pl.Series(confidence, nan_to_null=True),
            "label_issue_rank": _on_rows(rank, at, len(y), pl.Int64),
            "outlier_score": pl.Series(outlier, nan_to_null=True),
            "embedding_near_dup_of": near,
        }, schema_overrides={"reason": pl.String, "new_label": pl.String, "embedding_near_dup_of": pl.String})
        summary: dict[str, Any] = {
            "rows": len(y), "classes": len(classes), "issues": int(is_issue.sum()),
            "unscored_rows": int(len(y) - at.size), "unscored_labels": int((~scorable).sum()),
            "flagged_rare_label_rows": int((is_issue & rare).sum()), "min_rows_to_act": MIN_ROWS_TO_ACT,
            "flagged_rows_left_to_reviews": int(spared.sum()),
            "policy_left_to_reviews": sorted(table["row_id"].filter(left_to_reviews).cast(pl.String).to_list()),
            "fit_on": "all rows" if fit_on is None and not cfg.pred_probs else (
                "train rows" if fit_on is not None else "user pred_probs"),
            "cutoff": cfg.cutoff, "policy": cfg.policy,
            "features": "user pred_probs" if cfg.pred_probs else cfg.features,
            "cleanlab_default_issues": int(find_label_issues(ys, probs).sum()),
            "flagged_share_by_group": self._by_group(table, is_issue),
        }
        return StepResult(rows=rows, summary=summary)

    @staticmethod
    def _outlier_scores(x, probs: np.ndarray, ys: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
        """cleanlab's out-of-distribution score (lower = more unusual): on embeddings when we have
        dense ones, else on the probabilities of the scored rows (NaN on the others)."""
        from cleanlab.outlier import OutOfDistribution

        if isinstance(x, np.ndarray) and len(x) > 10:
            return OutOfDistribution().fit_score(features=x, verbose=False)
        out = np.full(n, np.nan)
        out[at] = OutOfDistribution().fit_score(pred_probs=probs, labels=ys, verbose=False)
        return out

    def _by_group(self, table: pl.DataFrame, is_issue: np.ndarray) -> dict[str, dict[str, dict[str, Any]]]:
        """Per group column, each group's flagged share with its size, highest share first (ties: the
        larger group first), so a reader who can only be shown some groups sees the worst ones, and
        a share on a handful of rows can be told from one on thousands."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for g in self.ctx.group_cols:
            # Under a working name: a group column called "flag", "share" or "n" clashed with these.
            flagged = table.select(pl.col(g).alias("__group"), pl.Series("flag", is_issue))
            shares = (flagged.group_by("__group").agg(pl.col("flag").mean().alias("share"), pl.len().alias("n"))
                      .with_columns(pl.col("__group").cast(pl.String))
                      .sort(["share", "n", "__group"], descending=[True, True, False], nulls_last=True))
            out[g] = {MISSING_GROUP if k is None else k: {"share": round(float(s), 4), "rows": int(n)}
                      for k, s, n in shares.iter_rows()}
        return out

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        if "is_label_flip" not in truth.columns:
            return {}
        # An unscored row was never suspected: it ranks with the most trusted.
        t = result.rows.select("row_id", "is_issue", pl.col("label_quality").fill_null(1.0)).join(
            truth.select("row_id", "is_label_flip"), on="row_id")
        return flag_scores(t["is_label_flip"].to_numpy(), t["is_issue"].to_numpy(), t["label_quality"].to_numpy())


def embedding_near_duplicates(x, row_ids: list[str], threshold: float = 0.97) -> list[str | None]:
    """The nearest other row above a cosine: at 0.97, near-verbatim copies MinHash's shingles can miss
    (a word swapped), not paraphrases (0.7-0.9 with the default encoder)."""
    if not isinstance(x, np.ndarray) or len(x) < 2:
        return [None] * len(row_ids)
    from curatune.curate.dedup import knn

    # The row itself is usually its own first neighbour, but not when another row has the same vector.
    sims, nbrs = knn(x, min(3, len(x)))
    out: list[str | None] = []
    for i, (row_sims, row_nbrs) in enumerate(zip(sims, nbrs, strict=True)):
        s, j = next(((s, j) for s, j in zip(row_sims, row_nbrs, strict=True) if j not in (i, -1)), (0.0, -1))
        out.append(row_ids[j] if s >= threshold else None)
    return out


def copy_groups(texts: pl.Series, near_dup_of: list[str | None], row_ids: list[str]) -> np.ndarray:
    """One group id a row: rows share one where their texts are copies (the dedup step's normalised
    key) or one is the other's embedding near-duplicate. The data may hold copies: dedup not run,
    copies across splits kept on purpose (leakage = false), or near copies it let through."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keys = pl.DataFrame({"text": texts}).select(key_expr("text")).to_series().to_list()
    first: dict[str, int] = {}
    at = {r: i for i, r in enumerate(row_ids)}
    edges = [(i, first.setdefault(k, i)) for i, k in enumerate(keys) if k is not None]
    edges += [(i, at[other]) for i, other in enumerate(near_dup_of) if other is not None]
    n = len(keys)
    a, b = (np.array(side, dtype=np.int64) for side in zip(*edges, strict=True)) if edges else (np.zeros(0, int),) * 2
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _on_rows(values: np.ndarray, at: np.ndarray, n: int, dtype: pl.DataType) -> pl.Series:
    """Values of the scored rows (positions ``at``) spread over all ``n`` rows, null on the unscored."""
    return pl.Series([None] * n, dtype=dtype).scatter(at, pl.Series(values, dtype=dtype))


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

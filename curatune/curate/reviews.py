"""Human review decisions (pulled from Label Studio into ``reviews.parquet``) applied to a run.

``reviews.parquet`` holds one row per annotation (see REVIEW_SCHEMA). Per row the annotations
are resolved by ``[labelstudio] conflict_rule``; "unsure" votes abstain:

- ``ground_truth_majority`` (default): the ground-truth annotations' majority wins; else the
  majority of all votes; else the row is kept and reported as a conflict.
- ``majority``: the majority (more than half) of the votes, ground truth or not; else conflict.
- ``keep``: only a unanimous decision is applied; any disagreement is kept and reported.

Before resolving, each annotator keeps one vote per row (their latest annotation, by updated_at
then id; an annotation whose user was deleted in Label Studio, annotator null, is a vote of its
own), and votes that cannot be applied are set aside and counted: ``stale_reviews`` (the text the
reviewer saw, ``text_sha256``, is not the row's text any more) and ``invalid_reviews`` (several
choices, or a choice that is neither a dataset label nor drop / unsure).

A decided label different from the row's label relabels it, "drop" drops it (both with reason
``human_review``); a decision equal to the label confirms it. Rows left undecided get reason
``review_conflict`` (votes disagree) or ``review_unsure`` (every vote was unsure). The ledger gets
``reviewed_by``, ``reviewed_at``, ``review_decision``, ``review_votes`` and, on rows the review
relabelled, ``label_before_review``.

Two ways in: the ``human_review`` curation step (the pipeline runs it last when reviews.parquet
is in the output directory and ``[curate] apply_reviews`` is on), and :func:`apply_reviews_to_run`
for a finished curate dir, which rewrites curated/excluded/ledger/manifest as one commit. The
latter first undoes what earlier reviews did (rows they dropped come back, rows they relabelled get
their ``label_before_review``), so that applying changed reviews equals curating again with them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from curatune.config import Config
from curatune.curate.base import CurationStep, StepResult, register_step
from curatune.dataset import HUMAN_REVIEW, LEDGER_BASE, REVIEW_CONFLICT, REVIEW_REASONS, REVIEW_UNSURE
from curatune.errors import CuratuneError, first_line, shown_value
from curatune.rundir import (
    MANIFEST,
    REVIEWS_JOURNAL,
    find_stage_dir,
    read_json,
    read_run_table,
    sha256_file,
    sha256_tree,
    write_manifest,
    write_parquet,
    write_text,
)

log = logging.getLogger(__name__)

DROP = "drop"
UNSURE = "unsure"
# Review outcomes that leave a row's label unsettled (no decision was applied).
UNSETTLED = ("conflict", UNSURE)
# A ledger row whose review decision was applied (dropped, relabelled or confirmed).
DECIDED = pl.col("review_decision").is_not_null() & ~pl.col("review_decision").is_in(UNSETTLED)
STEP = "human_review"
REVIEW_SCHEMA = {
    "row_id": pl.String,
    "decision": pl.String,  # a label, "drop" or "unsure"
    "annotator": pl.String,  # "user:<Label Studio user id>"; null for a user deleted since
    "annotator_id": pl.Int64,
    "annotation_id": pl.Int64,
    "task_id": pl.Int64,
    "ground_truth": pl.Boolean,
    "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "project_id": pl.Int64,
    # sha256 of the task text the reviewer decided on; null in files pulled before it was recorded.
    "text_sha256": pl.String,
    "n_choices": pl.Int64,  # choices in the annotation: decision is null when there are several
}
# Ledger columns this step adds (besides human_review_score).
LEDGER_COLUMNS = ("reviewed_by", "reviewed_at", "review_decision", "review_votes", "label_before_review")
RESOLVED_SCHEMA = {
    "row_id": pl.String,
    "decision": pl.String,  # the decision to apply; null when status is not "decided"
    "status": pl.String,  # decided | conflict | unsure
    "reviewed_by": pl.String,
    "reviewed_at": pl.Datetime("us", "UTC"),
    "review_votes": pl.String,  # e.g. "billing:2, refund:1 (gt: billing)"
}


def text_sha256(text: Any) -> str:
    """What push puts in a task (and pull records with each review) to tell whether a row's text changed.
    A task's text edited in Label Studio into a number (any JSON) is hashed as the text it shows, which is
    then not the row's: its reviews count as made on another text."""
    return hashlib.sha256(("" if text is None else str(text)).encode("utf-8")).hexdigest()


def read_reviews(path: str | Path) -> pl.DataFrame:
    path = Path(path)
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise CuratuneError(f"cannot read reviews: {first_line(exc)}", file=str(path)) from None
    missing = [c for c in ("row_id", "decision", "annotator", "ground_truth") if c not in df.columns]
    if missing:
        raise CuratuneError(f"reviews file lacks column(s) {', '.join(missing)}; pull again", file=str(path))
    for col, dtype in REVIEW_SCHEMA.items():
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
        elif df.schema[col] != dtype:
            try:
                df = df.with_columns(pl.col(col).cast(dtype))
            except pl.exceptions.PolarsError:
                raise CuratuneError(f"reviews file: column '{col}' holds {df.schema[col]} values that are not "
                                    f"{dtype}; pull again", file=str(path)) from None
    return df.select(list(REVIEW_SCHEMA))


def _majority(votes: list[str]) -> str | None:
    if not votes:
        return None
    value, n = Counter(votes).most_common(1)[0]
    return value if n * 2 > len(votes) else None


def decide(votes: list[tuple[str, bool]], rule: str) -> tuple[str | None, str]:
    """(decision, status) for one row's (decision, ground_truth) votes under ``rule``."""
    decisive = [(d, gt) for d, gt in votes if d != UNSURE]
    if not decisive:
        return None, "unsure"
    all_votes = [d for d, _ in decisive]
    if rule == "keep":
        return (all_votes[0], "decided") if len(set(all_votes)) == 1 else (None, "conflict")
    if rule == "ground_truth_majority":
        winner = _majority([d for d, gt in decisive if gt])
        if winner is not None:
            return winner, "decided"
    winner = _majority(all_votes)
    return (winner, "decided") if winner is not None else (None, "conflict")


def usable(reviews: pl.DataFrame, view: pl.DataFrame, labels: list[str], *,
           check_text: bool = True) -> tuple[pl.DataFrame, dict[str, int]]:
    """The votes to count for the rows in ``view`` (row_id, text, label): each annotator's latest
    annotation per row on the row's current text (any text when not ``check_text``), less those not a
    choice among ``labels`` (every label of the data, as push offers them: one whose rows were all
    dropped is still a label), drop and unsure."""
    hashes = [text_sha256(t) for t in view["text"].to_list()] if check_text else [None] * view.height
    current = view.select("row_id", pl.Series("__sha", hashes, dtype=pl.String))
    t = reviews.join(current, on="row_id", how="left")
    # Null hash: pulled before hashes were recorded, so nothing says the text changed.
    stale = (pl.col("text_sha256") != pl.col("__sha")).fill_null(False)
    # A vote on another text is set aside before each annotator's latest is chosen: picked first, a
    # later look at the superseded task voided the reviewer's vote on the row's current text.
    on_text, on_other = _latest(t.filter(~stale)), _latest(t.filter(stale))
    valid = pl.col("decision").is_in([*labels, DROP, UNSURE]).fill_null(False)
    invalid = (pl.col("n_choices").fill_null(1) != 1) | ~valid
    counts = {"stale_reviews": on_other.height, "invalid_reviews": on_text.filter(invalid).height}
    return on_text.filter(~invalid).select(reviews.columns), counts


def decided_rows(reviews: pl.DataFrame, view: pl.DataFrame, labels: list[str], rule: str, *,
                 check_text: bool = True) -> frozenset[str]:
    """The rows of ``view`` whose usable votes reach a decision under ``rule``: those the review step
    will apply a person's word to."""
    votes, _ = usable(reviews, view, labels, check_text=check_text)
    # usable keeps votes on rows outside ``view`` too (nothing says their text changed).
    resolved = resolve(votes.filter(pl.col("row_id").is_in(view["row_id"].cast(pl.String).implode())), rule)
    return frozenset(resolved.filter(pl.col("status") == "decided")["row_id"].to_list())


def _latest(votes: pl.DataFrame) -> pl.DataFrame:
    """Each annotator's latest annotation per row (every one of deleted users, whose name is null)."""
    # A reviewer who changes their mind edits or re-submits: only their latest word counts.
    newer = (votes.sort(pl.coalesce("updated_at", "created_at"), "annotation_id", nulls_last=False)
             .with_columns(pl.int_range(pl.len()).reverse().over("row_id", "annotator").alias("__newer")))
    return newer.filter((pl.col("__newer") == 0) | pl.col("annotator").is_null()).drop("__newer")


def resolve(reviews: pl.DataFrame, rule: str) -> pl.DataFrame:
    """One row per reviewed row_id: the decision to apply (or why none), who and when."""
    out = []
    for (row_id,), group in reviews.sort("annotation_id", nulls_last=True).group_by(["row_id"],
                                                                                    maintain_order=True):
        votes = list(zip(group["decision"].to_list(), group["ground_truth"].fill_null(False).to_list(),
                         strict=True))
        decision, status = decide(votes, rule)
        counts = Counter(d for d, _ in votes)
        tally = ", ".join(f"{d}:{n}" for d, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        gt = sorted({d for d, g in votes if g})
        if gt:
            tally += f" (gt: {', '.join(gt)})"
        when = group.select(pl.coalesce("updated_at", "created_at").max()).item()
        out.append({"row_id": row_id, "decision": decision, "status": status,
                    # Null when every reviewer's user was deleted in Label Studio since.
                    "reviewed_by": ", ".join(sorted({a for a in group["annotator"].to_list() if a})) or None,
                    "reviewed_at": when, "review_votes": tally})
    return pl.DataFrame(out, schema=RESOLVED_SCHEMA)


def review_result(view: pl.DataFrame, resolved: pl.DataFrame, source: str) -> StepResult:
    """The step result for the rows in ``view`` (row_id, label) given resolved reviews."""
    t = view.select("row_id", pl.col("label").cast(pl.String)).join(resolved, on="row_id", how="left")
    decided = pl.col("status") == "decided"
    drop = decided & (pl.col("decision") == DROP)
    relabel = decided & ~drop & (pl.col("decision") != pl.col("label").fill_null(""))
    conflict = pl.col("status").is_in(UNSETTLED)
    unsure_reason = pl.when(pl.col("status") == UNSURE).then(pl.lit(REVIEW_UNSURE)).otherwise(pl.lit(REVIEW_CONFLICT))
    t = t.with_columns(
        pl.when(drop).then(pl.lit("drop")).when(relabel).then(pl.lit("relabel")).otherwise(pl.lit("keep"))
        .alias("action"),
    )
    changed = pl.col("action") != "keep"
    rows = t.select(
        "row_id",
        (changed | conflict.fill_null(False)).alias("is_issue"),
        pl.when(changed).then(0.0).when(conflict.fill_null(False)).then(0.5).otherwise(1.0).alias("score"),
        "action",
        pl.when(changed).then(pl.lit(HUMAN_REVIEW)).when(conflict.fill_null(False)).then(unsure_reason)
        .otherwise(pl.lit(None, dtype=pl.String)).alias("reason"),
        pl.when(pl.col("action") == "relabel").then("decision").otherwise(pl.lit(None, dtype=pl.String))
        .alias("new_label"),
        "reviewed_by",
        "reviewed_at",
        pl.coalesce("decision", "status").alias("review_decision"),
        "review_votes",
        # What an apply of changed reviews puts back (original_label predates every step's relabelling).
        pl.when(pl.col("action") == "relabel").then("label").otherwise(pl.lit(None, dtype=pl.String))
        .alias("label_before_review"),
    )
    in_view = set(view["row_id"].to_list())
    summary = {
        "reviews_file": source,
        "rows_reviewed": resolved.height,
        "applied": int(rows.filter(DECIDED).height),
        "confirmed": int(rows.filter(DECIDED & (pl.col("action") == "keep")).height),
        "relabelled": int((rows["action"] == "relabel").sum()),
        "dropped": int((rows["action"] == "drop").sum()),
        "conflicts": int((rows["review_decision"] == "conflict").sum()),
        "unsure": int((rows["review_decision"] == "unsure").sum()),
        "conflict_rows": rows.filter(pl.col("review_decision") == "conflict")["row_id"].head(50).to_list(),
        # Reviewed rows this run no longer holds (dropped earlier, or not in its input).
        "not_in_run": int(sum(1 for r in resolved["row_id"].to_list() if r not in in_view)),
    }
    return StepResult(rows=rows, summary=summary)


def _empty_result(view: pl.DataFrame, why: str) -> StepResult:
    return review_result(view, pl.DataFrame(schema=RESOLVED_SCHEMA), why)


@register_step
class HumanReview(CurationStep):
    """Applies reviews.parquet from the output directory (no-op without it)."""

    name = STEP
    ledger_columns = LEDGER_COLUMNS

    def run(self, table: pl.DataFrame) -> StepResult:
        from curatune.rundir import REVIEWS

        path = self.ctx.out_dir / REVIEWS
        if not self.ctx.config.curate.apply_reviews:
            return _empty_result(table, "not applied ([curate] apply_reviews = false)")
        if not path.is_file():
            return _empty_result(table, f"none ({path.name} not found)")
        return apply_file(table, path, self.ctx.config.labelstudio.conflict_rule, self.ctx.labels)


def apply_file(view: pl.DataFrame, path: Path, rule: str, labels: list[str]) -> StepResult:
    """The step result of the reviews in ``path`` for the rows in ``view``; the same for a curate and
    for apply-reviews, which is what makes the two agree."""
    reviews = read_reviews(path)
    votes, set_aside = usable(reviews, view, labels)
    result = review_result(view, resolve(votes, rule), path.name)
    result.summary.update({"annotations": reviews.height, **set_aside, "reviews_sha256": sha256_file(path),
                           "conflict_rule": rule})
    if set_aside["stale_reviews"]:
        log.warning("%d reviews not applied: the row's text changed since the reviewer saw it (push again to "
                    "show the new text)", set_aside["stale_reviews"])
    if set_aside["invalid_reviews"]:
        log.warning("%d reviews not applied: several choices, or a choice that is not one of the dataset's "
                    "labels nor drop / unsure", set_aside["invalid_reviews"])
    return result


# --------------------------------------------------------------------------------------------
# applying to a finished curate dir


COMMIT = "COMMIT"


def _roll_forward(curate_dir: Path) -> None:
    """Finish a committed apply that was interrupted; discard one that never committed."""
    journal = curate_dir / REVIEWS_JOURNAL
    if not journal.is_dir():
        return
    commit = journal / COMMIT
    if commit.is_file():
        for name in commit.read_text(encoding="utf-8").split():
            staged = journal / name
            if staged.is_file():
                staged.replace(curate_dir / name)
    shutil.rmtree(journal)


def _commit(curate_dir: Path, tables: dict[str, pl.DataFrame], manifest: dict[str, Any]) -> None:
    """Stage every file, mark the stage complete, then move them in (manifest last)."""
    journal = curate_dir / REVIEWS_JOURNAL
    if journal.exists():
        shutil.rmtree(journal)
    journal.mkdir()
    for name, df in tables.items():
        write_parquet(df, journal / name)
    write_manifest(manifest, journal)
    write_text("\n".join([*tables, MANIFEST]) + "\n", journal / COMMIT)
    _roll_forward(curate_dir)


def _rebuild_table(curated: pl.DataFrame, excluded: pl.DataFrame, ledger: pl.DataFrame) -> pl.DataFrame:
    """The pipeline's working table (rows + active/original_label/reasons ...) from its outputs."""
    state = ledger.select("row_id", "original_label", "reasons", "dropped_by", "duplicate_of")
    kept = curated.with_columns(pl.lit(True).alias("active"), pl.lit(None, dtype=pl.String).alias("drop_reason"))
    gone = excluded.drop([c for c in ("dropped_by", "duplicate_of", "original_label") if c in excluded.columns])
    gone = gone.rename({"reason": "drop_reason"}).with_columns(pl.lit(False).alias("active"))
    table = pl.concat([kept, gone], how="diagonal_relaxed")
    return table.join(state, on="row_id", how="left")


def _undo_reviews(table: pl.DataFrame, ledger: pl.DataFrame) -> pl.DataFrame:
    """The working table as it was before any review: rows reviews dropped are back, rows they
    relabelled have their earlier label, and no row carries a review reason."""
    before = (pl.col("label_before_review") if "label_before_review" in ledger.columns
              else pl.lit(None, dtype=pl.String))
    # A ledger written before label_before_review existed: the review relabelled the row from its
    # original label unless another step relabelled it too (not recorded then).
    by_review = (pl.col("fate") == "relabelled") & pl.col("reasons").list.contains(HUMAN_REVIEW) \
        & (pl.col("review_decision") == pl.col("final_label")) if "review_decision" in ledger.columns \
        else pl.lit(False)
    prior = ledger.select("row_id", pl.coalesce(before, pl.when(by_review).then("original_label"))
                          .cast(pl.String).alias("__before"))
    undrop = pl.col("dropped_by") == STEP
    return table.join(prior, on="row_id", how="left").with_columns(
        pl.coalesce("__before", pl.col("label").cast(pl.String)).alias("label"),
        pl.when(undrop).then(True).otherwise("active").alias("active"),
        pl.when(undrop).then(None).otherwise("drop_reason").alias("drop_reason"),
        pl.when(undrop).then(None).otherwise("dropped_by").alias("dropped_by"),
        pl.col("reasons").list.eval(pl.element().filter(~pl.element().is_in(REVIEW_REASONS))),
    ).drop("__before")


class CurateAgain(CuratuneError):
    """Reviews whose outcome only curating again gives (a policy's action depends on them)."""


def _refuse_what_only_curating_settles(manifest: dict[str, Any], table: pl.DataFrame, applied: pl.DataFrame,
                                       reviews: pl.DataFrame, labels: list[str], rule: str, where: Path) -> None:
    """apply-reviews redoes the review step alone; label issues' drop or relabel policy also depends on
    the decisions. A flagged row it left to a person is acted on when that decision is withdrawn (deleted
    in Label Studio, or now a conflict), and a row it dropped is kept for a decision made since; only
    curating again does either, so apply-reviews would no longer equal it."""
    step = next((s for s in manifest.get("steps") or [] if s.get("name") == "label_issues"), {})
    summary = step.get("summary") or {}
    if summary.get("policy") not in ("drop", "relabel"):
        return
    decided = applied.filter(DECIDED)["row_id"].cast(pl.String)
    withdrawn = sorted(set(summary.get("policy_left_to_reviews") or []) - set(decided))
    policy = f"label issues' policy '{summary['policy']}'"
    if withdrawn:
        rows = "1 flagged row" if len(withdrawn) == 1 else f"{len(withdrawn)} flagged rows"
        raise CurateAgain(f"this file no longer holds the decisions {policy} left {rows} to (first: "
                          f"{shown_value(withdrawn[0])}), so the policy acts on them now: curate again "
                          "(`curatune curate` or `curatune run`) instead of apply-reviews", file=str(where))
    dropped = table.filter(pl.col("dropped_by") == "label_issues").select("row_id", "text", "label")
    newly = sorted(decided_rows(reviews, dropped, labels, rule))
    if newly:
        rows = "1 row" if len(newly) == 1 else f"{len(newly)} rows"
        raise CurateAgain(f"this file holds decisions on {rows} {policy} dropped (first: {shown_value(newly[0])}), "
                          "which a decision keeps for the person: curate again (`curatune curate` or "
                          "`curatune run`) instead of apply-reviews", file=str(where))


def apply_reviews_to_run(run_dir: str | Path, config: Config) -> dict[str, Any]:
    """Apply ``reviews.parquet`` to a finished curate dir: curated, excluded, ledger and manifest are
    rewritten together (staged, then moved in; an interrupted apply is finished or discarded on the
    next call). What earlier applies did is undone first, so the outcome is that of curating again
    with these reviews; applying the same reviews again changes nothing."""
    from curatune.curate.pipeline import _apply, _counts, _ledger
    from curatune.pipeline import FINGERPRINT_KEY
    from curatune.rundir import CURATED, EXCLUDED, LEDGER, REVIEWS

    curate_dir = find_stage_dir(run_dir, "curate")
    _roll_forward(curate_dir)
    path = curate_dir / REVIEWS
    if not path.is_file():
        raise CuratuneError("no reviews to apply: run `curatune labelstudio pull` first", file=str(path))
    reviews = read_reviews(path)  # a damaged file is reported before anything else is read
    manifest = read_json(curate_dir / MANIFEST)
    curated = read_run_table(curate_dir / CURATED, ("row_id", "text", "label"))
    excluded = read_run_table(curate_dir / EXCLUDED)
    ledger = read_run_table(curate_dir / LEDGER, LEDGER_BASE)
    group_cols = list(manifest.get("group_cols") or [])
    base = {*LEDGER_BASE, *group_cols}
    other_extra = [c for c in ledger.columns if c not in base and c not in LEDGER_COLUMNS and c != f"{STEP}_score"]

    t0 = time.perf_counter()
    table = _undo_reviews(_rebuild_table(curated, excluded, ledger), ledger)
    view = table.filter("active")
    rule = config.labelstudio.conflict_rule
    labels = sorted({str(v) for c in ("label", "original_label") if c in table.columns
                     for v in table[c].drop_nulls().to_list()})
    result = apply_file(view, path, rule, labels)
    _refuse_what_only_curating_settles(manifest, table, result.rows, reviews, labels, rule, path)
    table = _apply(table, STEP, result)
    review_cols = result.rows.select("row_id", pl.col("score").alias(f"{STEP}_score"), *result.extra_columns)
    new_ledger = _ledger(table, [ledger.select("row_id", *other_extra), review_cols], group_cols)
    # In the earlier ledger's row order (curate's), so applying the same reviews again writes the same file.
    order = ledger.select("row_id").with_row_index("__order")
    new_ledger = new_ledger.join(order, on="row_id", how="left").sort("__order").drop("__order")
    keep_cols = curated.columns
    new_curated = table.filter("active").select(keep_cols)
    new_excluded = table.filter(~pl.col("active")).select(
        *keep_cols, pl.col("drop_reason").alias("reason"), "dropped_by", "duplicate_of", "original_label")
    seconds = round(time.perf_counter() - t0, 3)

    rows = result.rows
    result.summary["applied_by"] = "apply-reviews"
    # The earlier applies' entries describe what was just undone: one human_review step, as a curate writes.
    manifest["steps"] = [s for s in manifest.get("steps") or [] if s.get("name") != STEP]
    manifest["steps"].append({
        "name": STEP, "rows_in": view.height, "issues": int(rows["is_issue"].sum()),
        "dropped": int((rows["action"] == "drop").sum()), "relabelled": int((rows["action"] == "relabel").sum()),
        "seconds": seconds, "summary": result.summary, "gates": []})
    manifest.setdefault("timings", {})[STEP] = seconds
    # The reviews file read now, not the one the curate (or an earlier apply) read.
    manifest["inputs"] = [i for i in manifest.get("inputs") or [] if i.get("role") != "reviews"] + [
        {"path": str(path.resolve()), "sha256": sha256_tree(path), "role": "reviews"}]
    manifest["counts"] = _counts(new_ledger, group_cols)
    manifest["finished_at"] = time.time()
    # Applied by hand (under another conflict rule, say), the tables are no longer what `curatune run`'s
    # fingerprint describes, and its next run would skip curation and train on them: without the
    # fingerprint it curates again. A run's own Label Studio round records it again after this apply.
    manifest.pop(FINGERPRINT_KEY, None)
    _commit(curate_dir, {CURATED: new_curated, EXCLUDED: new_excluded, LEDGER: new_ledger}, manifest)
    s = result.summary
    return {"applied": s["applied"], "relabelled": s["relabelled"], "dropped": s["dropped"],
            "confirmed": s["confirmed"], "conflicts": s["conflicts"], "unsure": s["unsure"],
            "not_in_run": s["not_in_run"], "stale_reviews": s["stale_reviews"],
            "invalid_reviews": s["invalid_reviews"], "out_dir": str(curate_dir)}

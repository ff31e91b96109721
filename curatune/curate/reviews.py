"""Human review decisions (pulled from Label Studio into ``reviews.parquet``) applied to a run.

``reviews.parquet`` holds one row per annotation (see REVIEW_SCHEMA). Per row the annotations
are resolved by ``[labelstudio] conflict_rule``; "unsure" votes abstain:

- ``ground_truth_majority`` (default): the ground-truth annotations' majority wins; else the
  majority of all votes; else the row is kept and reported as a conflict.
- ``majority``: the majority (more than half) of the votes, ground truth or not; else conflict.
- ``keep``: only a unanimous decision is applied; any disagreement is kept and reported.

A decided label different from the row's label relabels it, "drop" drops it (both with reason
``human_review``); a decision equal to the label confirms it. The ledger gets ``reviewed_by``,
``reviewed_at``, ``review_decision`` and ``review_votes`` for every reviewed row.

Two ways in: the ``human_review`` curation step (the pipeline runs it last when reviews.parquet
is in the output directory and ``[curate] apply_reviews`` is on), and :func:`apply_reviews_to_run`
for a finished curate dir, which rewrites curated/excluded/ledger/manifest as one commit.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from curatune.config import Config
from curatune.curate.base import CurationStep, StepResult, register_step
from curatune.dataset import LEDGER_BASE
from curatune.errors import CuratuneError, first_line
from curatune.rundir import MANIFEST, find_stage_dir, read_json, sha256_file, write_json, write_parquet, write_text

DROP = "drop"
UNSURE = "unsure"
# Review outcomes that leave a row's label unsettled (no decision was applied).
UNSETTLED = ("conflict", UNSURE)
REASON = "human_review"
CONFLICT_REASON = "review_conflict"
STEP = "human_review"
REVIEW_SCHEMA = {
    "row_id": pl.String,
    "decision": pl.String,  # a label, "drop" or "unsure"
    "annotator": pl.String,
    "annotator_id": pl.Int64,
    "annotation_id": pl.Int64,
    "task_id": pl.Int64,
    "ground_truth": pl.Boolean,
    "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "project_id": pl.Int64,
}
# Ledger columns this step adds (besides human_review_score).
LEDGER_COLUMNS = ("reviewed_by", "reviewed_at", "review_decision", "review_votes")
RESOLVED_SCHEMA = {
    "row_id": pl.String,
    "decision": pl.String,  # the decision to apply; null when status is not "decided"
    "status": pl.String,  # decided | conflict | unsure
    "reviewed_by": pl.String,
    "reviewed_at": pl.Datetime("us", "UTC"),
    "review_votes": pl.String,  # e.g. "billing:2, refund:1 (gt: billing)"
}


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
    return df.select([pl.col(c).cast(t) for c, t in REVIEW_SCHEMA.items()])


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
                    "reviewed_by": ", ".join(sorted({a for a in group["annotator"].to_list() if a})),
                    "reviewed_at": when, "review_votes": tally})
    return pl.DataFrame(out, schema=RESOLVED_SCHEMA)


def review_result(view: pl.DataFrame, resolved: pl.DataFrame, source: str) -> StepResult:
    """The step result for the rows in ``view`` (row_id, label) given resolved reviews."""
    t = view.select("row_id", pl.col("label").cast(pl.String)).join(resolved, on="row_id", how="left")
    decided = pl.col("status") == "decided"
    drop = decided & (pl.col("decision") == DROP)
    relabel = decided & ~drop & (pl.col("decision") != pl.col("label").fill_null(""))
    conflict = pl.col("status").is_in(UNSETTLED)
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
        pl.when(changed).then(pl.lit(REASON)).when(conflict.fill_null(False)).then(pl.lit(CONFLICT_REASON))
        .otherwise(pl.lit(None, dtype=pl.String)).alias("reason"),
        pl.when(pl.col("action") == "relabel").then("decision").otherwise(pl.lit(None, dtype=pl.String))
        .alias("new_label"),
        "reviewed_by",
        "reviewed_at",
        pl.coalesce("decision", "status").alias("review_decision"),
        "review_votes",
    )
    in_view = set(view["row_id"].to_list())
    matched = rows.filter(pl.col("review_decision").is_not_null())
    summary = {
        "reviews_file": source,
        "rows_reviewed": resolved.height,
        "applied": int(matched.filter(pl.col("review_decision").is_in(UNSETTLED).not_()).height),
        "confirmed": int(matched.filter((pl.col("action") == "keep")
                                        & ~pl.col("review_decision").is_in(UNSETTLED)).height),
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

    def run(self, table: pl.DataFrame) -> StepResult:
        from curatune.curate.pipeline import REVIEWS

        path = self.ctx.out_dir / REVIEWS
        if not self.ctx.config.curate.apply_reviews:
            return _empty_result(table, "not applied ([curate] apply_reviews = false)")
        if not path.is_file():
            return _empty_result(table, f"none ({path.name} not found)")
        reviews = read_reviews(path)
        result = review_result(table, resolve(reviews, self.ctx.config.labelstudio.conflict_rule), path.name)
        result.summary.update({"annotations": reviews.height, "reviews_sha256": sha256_file(path),
                               "conflict_rule": self.ctx.config.labelstudio.conflict_rule})
        return result


# --------------------------------------------------------------------------------------------
# applying to a finished curate dir


JOURNAL = ".apply-reviews"
COMMIT = "COMMIT"


def _roll_forward(curate_dir: Path) -> None:
    """Finish a committed apply that was interrupted; discard one that never committed."""
    journal = curate_dir / JOURNAL
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
    journal = curate_dir / JOURNAL
    if journal.exists():
        shutil.rmtree(journal)
    journal.mkdir()
    for name, df in tables.items():
        write_parquet(df, journal / name)
    write_json(manifest, journal / MANIFEST)
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


def apply_reviews_to_run(run_dir: str | Path, config: Config) -> dict[str, Any]:
    """Apply ``reviews.parquet`` to a finished curate dir: curated, excluded, ledger and manifest are
    rewritten together (staged, then moved in; an interrupted apply is finished or discarded on the
    next call). Safe to repeat: applying the same reviews again changes nothing."""
    from curatune.curate.pipeline import CURATED, EXCLUDED, LEDGER, REVIEWS, _apply, _counts, _ledger

    curate_dir = find_stage_dir(run_dir, "curate")
    _roll_forward(curate_dir)
    path = curate_dir / REVIEWS
    if not path.is_file():
        raise CuratuneError("no reviews to apply: run `curatune labelstudio pull` first", file=str(path))
    reviews = read_reviews(path)
    manifest = read_json(curate_dir / MANIFEST)
    curated = pl.read_parquet(curate_dir / CURATED)
    excluded = pl.read_parquet(curate_dir / EXCLUDED)
    ledger = pl.read_parquet(curate_dir / LEDGER)
    group_cols = list(manifest.get("group_cols") or [])
    base = {*LEDGER_BASE, *group_cols}
    previous = [c for c in ledger.columns if c in LEDGER_COLUMNS or c == f"{STEP}_score"]
    other_extra = [c for c in ledger.columns if c not in base and c not in previous]

    t0 = time.perf_counter()
    table = _rebuild_table(curated, excluded, ledger)
    view = table.filter("active")
    rule = config.labelstudio.conflict_rule
    result = review_result(view, resolve(reviews, rule), path.name)
    table = _apply(table, STEP, result)
    # A repeated apply must not list this step's reasons twice on a row.
    once = ~pl.element().is_in([REASON, CONFLICT_REASON]) | pl.element().is_first_distinct()
    table = table.with_columns(pl.col("reasons").list.eval(pl.element().filter(once)))
    review_cols = result.rows.select("row_id", pl.col("score").alias(f"{STEP}_score"), *result.extra_columns)
    if previous:  # rows an earlier apply dropped are not in this view: keep what it recorded for them
        old = ledger.select("row_id", *previous).rename({c: f"{c}__old" for c in previous})
        merged = ledger.select("row_id").join(review_cols, on="row_id", how="left").join(old, on="row_id",
                                                                                       how="left")
        review_cols = merged.select("row_id", *[pl.coalesce(c, f"{c}__old").alias(c) if c in previous else c
                                                for c in review_cols.columns if c != "row_id"])
    new_ledger = _ledger(table, [ledger.select("row_id", *other_extra), review_cols], group_cols)
    keep_cols = curated.columns
    new_curated = table.filter("active").select(keep_cols)
    new_excluded = table.filter(~pl.col("active")).select(
        *keep_cols, pl.col("drop_reason").alias("reason"), "dropped_by", "duplicate_of", "original_label")
    seconds = round(time.perf_counter() - t0, 3)

    rows = result.rows
    result.summary.update({"annotations": reviews.height, "reviews_sha256": sha256_file(path),
                           "conflict_rule": rule, "applied_by": "apply-reviews"})
    manifest.setdefault("steps", []).append({
        "name": STEP, "rows_in": view.height, "issues": int(rows["is_issue"].sum()),
        "dropped": int((rows["action"] == "drop").sum()), "relabelled": int((rows["action"] == "relabel").sum()),
        "seconds": seconds, "summary": result.summary, "gates": []})
    manifest.setdefault("timings", {})[STEP] = seconds
    manifest["counts"] = _counts(new_ledger)
    manifest["finished_at"] = time.time()
    _commit(curate_dir, {CURATED: new_curated, EXCLUDED: new_excluded, LEDGER: new_ledger}, manifest)
    s = result.summary
    return {"applied": s["applied"], "relabelled": s["relabelled"], "dropped": s["dropped"],
            "confirmed": s["confirmed"], "conflicts": s["conflicts"], "unsure": s["unsure"],
            "not_in_run": s["not_in_run"], "out_dir": str(curate_dir)}

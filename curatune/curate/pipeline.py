"""Run the configured curation steps and write curated / excluded / ledger / manifest.

Nothing is lost: the ledger has exactly one row per input row (usable or not) with its fate
(kept | dropped | relabelled), every reason a step gave, the original and the final label, and
each step's own score columns. Rows dropped by one step are not shown to later filtering steps
(datatrove's model), but steps that rewrite text see every row so that the excluded table holds
no personal data either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curatune.config import Config
from curatune.curate.base import CurationStep, StepContext, StepResult, get_step, ledger_column_names
from curatune.curate.dedup import TRUTH_LINKS
from curatune.dataset import (
    BOOKKEEPING,
    DROPPED_BY_NOT_RECORDED,
    EMPTY_TEXT,
    INFORMATIONAL_REASONS,
    MISSING_GROUP,
    MISSING_LABEL,
    _label_or_id_text,
    load_dataset,
)
from curatune.errors import CuratuneError, GateFailed, first_line
from curatune.rundir import (
    CURATED,
    EXCLUDED,
    LEDGER,
    MANIFEST,
    REVIEWS,
    REVIEWS_JOURNAL,
    Manifest,
    output_dir,
    write_parquet,
)

log = logging.getLogger(__name__)


@dataclass
class CurationOutcome:
    out_dir: Path
    counts: dict[str, Any]
    manifest: dict[str, Any]
    gates_failed: list[str]


def run_id_for(manifest_inputs: list[dict[str, Any]], config: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps([manifest_inputs, config], sort_keys=True, default=str).encode())
    return "cur-" + h.hexdigest()[:12]


def run_curation(config: Config, out_dir: str | Path, inputs: list[str] | None = None,
                 progress: Any = None) -> CurationOutcome:
    """Curate ``inputs`` (default: ``config.data.inputs``) into ``out_dir``."""
    out = output_dir(out_dir, "curate")
    paths = list(inputs) if inputs else list(config.data.inputs)
    config.curate.check()  # a Config built in code never passed through the loader
    steps_wanted = [s for s in config.curate.steps if s]
    # Reviews pulled from Label Studio into the output directory are applied last (curate/reviews.py).
    if config.curate.apply_reviews and (out / REVIEWS).is_file() and "human_review" not in steps_wanted:
        steps_wanted.append("human_review")
    step_classes = [get_step(s) for s in steps_wanted]
    needs_labels = any(c.needs_labels for c in step_classes)
    manifest = Manifest(stage="curate", config=config.resolved())
    with manifest.timed("load"):
        loaded = load_dataset(paths, config.data, require_label=needs_labels)
    _check_group_columns(loaded.group_cols)
    # A step that sees every row checks every row: a row without text is written too (excluded.parquet,
    # the ledger), with its id, label and group values.
    every_row = pl.concat([loaded.rows, loaded.unusable.drop("reason")], how="diagonal_relaxed") \
        if loaded.unusable.height else loaded.rows
    for cls in step_classes:
        cls.check_input(every_row if cls.sees_all_rows else loaded.rows, config, loaded.group_cols)
    truth = _load_truth(config.data.truth)
    reviews = None
    if "human_review" in steps_wanted and config.curate.apply_reviews and (out / REVIEWS).is_file():
        from curatune.curate.reviews import read_reviews  # reviews.py imports this module

        reviews = read_reviews(out / REVIEWS)  # an unreadable file is refused before the earlier run is touched
    for src in loaded.sources:
        manifest.add_input(src["path"], rows=src["rows"], records=src["records"])
    run_id = run_id_for(manifest.inputs, manifest.config)  # the data's id: reviews applied do not change it
    # The other files curation reads: planted truth, given probabilities, pulled reviews.
    for role, other in (("planted truth", config.data.truth),
                        ("pred_probs", config.curate.label_issues.pred_probs if "label_issues" in steps_wanted else ""),
                        ("reviews", str(out / REVIEWS) if "human_review" in steps_wanted else "")):
        if other and Path(other).is_file():
            table = {"planted truth": truth, "reviews": reviews}.get(role)  # already read: no second read
            manifest.add_input(other, role=role, **({"rows": table.height} if table is not None else {}))
    ctx = StepContext(config=config, out_dir=out, run_id=run_id, group_cols=loaded.group_cols,
                      labels=sorted(loaded.rows["label"].drop_nulls().cast(pl.String).unique().to_list()),
                      reviews=reviews)

    table = loaded.rows.with_columns(
        pl.lit(True).alias("active"),
        pl.col("label").alias("original_label"),
        pl.lit(None, dtype=pl.String).alias("dropped_by"),
        pl.lit(None, dtype=pl.String).alias("drop_reason"),
        pl.lit(None, dtype=pl.String).alias("duplicate_of"),
        pl.lit([], dtype=pl.List(pl.String)).alias("reasons"),
    )
    if loaded.unusable.height:
        unusable = loaded.unusable.drop("reason").with_columns(
            pl.lit(False).alias("active"),
            pl.col("label").alias("original_label"),
            pl.lit("load").alias("dropped_by"),
            pl.lit(EMPTY_TEXT).alias("drop_reason"),
            pl.lit(None, dtype=pl.String).alias("duplicate_of"),
            pl.lit([EMPTY_TEXT], dtype=pl.List(pl.String)).alias("reasons"),
        )
        table = pl.concat([table, unusable], how="diagonal_relaxed")
    if needs_labels:
        table = _exclude_unlabelled(table)

    ledger_extra: list[pl.DataFrame] = []
    truth_scores: dict[str, Any] = {}
    gates = []
    for i, cls in enumerate(step_classes):
        step: CurationStep = cls(ctx)
        if progress is not None:
            progress(f"curate: {step.name} ({i + 1}/{len(step_classes)})")
        view = table if cls.sees_all_rows else table.filter("active")
        t0 = time.perf_counter()
        result = step.run(view)
        seconds = time.perf_counter() - t0
        _check_result(step, view, result)
        table = _apply(table, step.name, result)
        # Every step's score goes into the ledger under the step's name, with its own extra columns.
        ledger_extra.append(result.rows.select("row_id", pl.col("score").alias(f"{step.name}_score"),
                                               *result.extra_columns))
        gates.extend(result.gates)
        rows = result.rows
        manifest.steps.append({
            "name": step.name,
            "rows_in": view.height,
            "issues": int(rows["is_issue"].sum()),
            "dropped": int((rows["action"] == "drop").sum()),
            "relabelled": int((rows["action"] == "relabel").sum()),
            "seconds": round(seconds, 3),
            "summary": result.summary,
            "gates": [g.__dict__ for g in result.gates],
        })
        manifest.timings[step.name] = round(seconds, 3)
        if truth is not None:
            scored = step.score_against_truth(result, truth)
            if scored:
                truth_scores[step.name] = scored

    ledger = _ledger(table, ledger_extra, loaded.group_cols)
    keep_cols = [c for c in table.columns if c not in BOOKKEEPING]
    curated = table.filter("active").select(keep_cols)
    excluded = table.filter(~pl.col("active")).select(
        *keep_cols, pl.col("drop_reason").alias("reason"), "dropped_by", "duplicate_of", "original_label")
    counts = _counts(ledger, loaded.group_cols)
    manifest.counts = counts
    manifest.extra["run_id"] = run_id
    manifest.extra["gates"] = [g.__dict__ for g in gates]
    manifest.extra["group_cols"] = loaded.group_cols
    if truth_scores:
        manifest.extra["truth"] = truth_scores
    # Only now are the old outputs replaced: the steps write nothing but their cache, and a step that
    # refuses its input (label issues, on the rows dedup left) leaves the earlier curation complete. A
    # run stopped from here (Ctrl-C, a crash) must not leave the previous manifest beside half-new tables.
    (out / MANIFEST).unlink(missing_ok=True)
    # An apply-reviews killed after its commit mark leaves the earlier curation's tables staged; the
    # next apply would finish moving them in, over this run's.
    shutil.rmtree(out / REVIEWS_JOURNAL, ignore_errors=True)
    with manifest.timed("write"):
        write_parquet(curated, out / CURATED)
        write_parquet(excluded, out / EXCLUDED)
        write_parquet(ledger, out / LEDGER)
    doc = manifest.write(out)
    failed = [g.name for g in gates if not g.passed]
    outcome = CurationOutcome(out_dir=out, counts=counts, manifest=json.loads(doc.read_text()),
                              gates_failed=failed)
    if failed:
        raise GateFailed(f"curation gate failed: {', '.join(failed)} (see {doc})")
    return outcome


def _exclude_unlabelled(table: pl.DataFrame) -> pl.DataFrame:
    """Rows without a label cannot be checked for label errors: exclude them with a reason, never guess."""
    no_label = pl.col("active") & pl.col("label").is_null()
    return table.with_columns(
        pl.when(no_label).then(pl.lit(MISSING_LABEL)).otherwise("drop_reason").alias("drop_reason"),
        pl.when(no_label).then(pl.lit("load")).otherwise("dropped_by").alias("dropped_by"),
        pl.when(no_label).then(pl.col("reasons").list.concat(pl.lit([MISSING_LABEL])))
        .otherwise("reasons").alias("reasons"),
        pl.when(no_label).then(False).otherwise("active").alias("active"),
    )


def _check_result(step: CurationStep, view: pl.DataFrame, result: StepResult) -> None:
    ids = result.rows["row_id"]
    if ids.n_unique() != len(ids) or set(ids.to_list()) != set(view["row_id"].to_list()):
        raise RuntimeError(f"step {step.name!r} must return exactly one row per input row")
    undeclared = [c for c in result.extra_columns if c not in step.ledger_columns]
    if undeclared:
        raise RuntimeError(f"step {step.name!r} returned ledger columns it does not declare in ledger_columns: "
                           f"{undeclared}")


def _check_group_columns(group_cols: list[str]) -> None:
    """A group column goes into the ledger under its own name, beside the steps' columns."""
    reserved = ledger_column_names()
    taken = [c for c in group_cols if c in reserved]
    if taken:
        raise CuratuneError(f"[data] group_cols '{taken[0]}' has the name of a ledger column the {reserved[taken[0]]} "
                            "step writes; rename the column", column=taken[0])


def _apply(table: pl.DataFrame, step: str, result: StepResult) -> pl.DataFrame:
    r = result.rows.select(
        "row_id",
        pl.col("is_issue").alias("__issue"),
        pl.col("action").alias("__action"),
        pl.col("reason").alias("__reason"),
        (pl.col("new_label") if "new_label" in result.rows.columns else pl.lit(None, dtype=pl.String))
        .cast(pl.String).alias("__new_label"),
        (pl.col("duplicate_of") if "duplicate_of" in result.rows.columns else pl.lit(None, dtype=pl.String))
        .cast(pl.String).alias("__dup_of"),
    )
    # The input's order kept (polars may reorder a join otherwise): label_issues' folds and dedup's first
    # occurrence are positions.
    t = table.join(r, on="row_id", how="left", maintain_order="left")
    drop_now = pl.col("active") & (pl.col("__action") == "drop")
    relabel_now = pl.col("active") & (pl.col("__action") == "relabel")
    has_reason = pl.col("__issue").fill_null(False) & pl.col("__reason").is_not_null()
    t = t.with_columns(
        pl.when(has_reason).then(pl.col("reasons").list.concat(pl.concat_list(pl.col("__reason"))))
        .otherwise("reasons").alias("reasons"),
        pl.when(drop_now).then(pl.col("__reason")).otherwise("drop_reason").alias("drop_reason"),
        pl.when(drop_now).then(pl.lit(step)).otherwise("dropped_by").alias("dropped_by"),
        pl.when(pl.col("duplicate_of").is_null()).then("__dup_of").otherwise("duplicate_of").alias("duplicate_of"),
        pl.when(relabel_now).then("__new_label").otherwise("label").alias("label"),
        pl.when(drop_now).then(False).otherwise("active").alias("active"),
    ).drop("__issue", "__action", "__reason", "__new_label", "__dup_of")
    if result.text is not None:
        cols = [c for c in result.text.columns if c != "row_id"]
        renamed = result.text.rename({c: f"__new_{c}" for c in cols})
        t = t.join(renamed, on="row_id", how="left", maintain_order="left").with_columns(
            [pl.coalesce(f"__new_{c}", c).alias(c) for c in cols]
        ).drop([f"__new_{c}" for c in cols])
    return t


def _ledger(table: pl.DataFrame, extra: list[pl.DataFrame], group_cols: list[str]) -> pl.DataFrame:
    fate = (
        pl.when(~pl.col("active")).then(pl.lit("dropped"))
        .when(pl.col("label").fill_null("") != pl.col("original_label").fill_null("")).then(pl.lit("relabelled"))
        .otherwise(pl.lit("kept"))
    )
    ledger = table.select(
        "row_id", "source", "split", *group_cols,
        fate.alias("fate"),
        "reasons",
        "dropped_by",
        "duplicate_of",
        "original_label",
        pl.col("label").alias("final_label"),
    )
    for ex in extra:
        clash = [c for c in ex.columns if c != "row_id" and c in ledger.columns]
        if clash:
            raise RuntimeError(f"ledger column clash: {clash}")
        ledger = ledger.join(ex, on="row_id", how="left", maintain_order="left")
    return ledger


def _counts(ledger: pl.DataFrame, group_cols: list[str]) -> dict[str, Any]:
    """What the ledger holds, counted once here so that the report renders it and never counts again:
    fates, reasons, dropped rows by the step that dropped them, rows per split, distinct labels, and
    per group column the rows dropped, relabelled and flagged (kept with a problem reason; personal
    data found is no problem reason)."""
    by_fate = dict(ledger.group_by("fate").len().iter_rows())
    # From the ledger as it ends, beside the steps' own "dropped": "load" holds the rows refused on reading.
    dropped_by = (ledger.filter(pl.col("fate") == "dropped").group_by("dropped_by").len()
                  .sort(["len", "dropped_by"], descending=[True, False], nulls_last=True))
    reasons = ledger.select(pl.col("reasons").explode().drop_nulls()).to_series().value_counts()
    splits = ledger.group_by("split").len().sort("split", nulls_last=True)
    problem = pl.col("reasons").list.eval(pl.element().is_in(list(INFORMATIONAL_REASONS)).not_()).list.any()
    by_group = {}
    for col in group_cols:
        # Grouped under a working name: a group column called "rows" or "dropped" clashed with the counts.
        # As text, as evaluate and label_issues name groups (a boolean column's groups are "true"/"false").
        t = ledger.group_by(pl.col(col).cast(pl.String).alias("__group")).agg(
            pl.len().alias("rows"),
            (pl.col("fate") == "dropped").sum().alias("dropped"),
            (pl.col("fate") == "relabelled").sum().alias("relabelled"),
            ((pl.col("fate") != "dropped") & problem.fill_null(False)).sum().alias("flagged"),
        ).sort(["rows", "__group"], descending=[True, False], nulls_last=True)
        by_group[col] = [{"group": MISSING_GROUP if g is None else g, "rows": n, "dropped": d,
                          "relabelled": r, "flagged": f} for g, n, d, r, f in t.iter_rows()]
    return {
        "input": ledger.height,
        "kept": int(by_fate.get("kept", 0)) + int(by_fate.get("relabelled", 0)),
        "dropped": int(by_fate.get("dropped", 0)),
        "relabelled": int(by_fate.get("relabelled", 0)),
        "by_reason": {r: int(n) for r, n in sorted(reasons.iter_rows())},
        "dropped_by_step": {DROPPED_BY_NOT_RECORDED if s is None else s: int(n) for s, n in dropped_by.iter_rows()},
        "by_split": {str(s): int(n) for s, n in splits.iter_rows()},
        "labels": int(ledger.select(pl.col("original_label").drop_nulls().n_unique()).item()),
        "by_group": by_group,
    }


def _load_truth(path: str) -> pl.DataFrame | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise CuratuneError("truth file not found", file=path)
    # Not read_run_table: its advice ("re-run the stage that wrote it") is for a run's own tables.
    what = "[data] truth must be a Parquet table keyed by row_id, as the demo generator writes truth.parquet"
    try:
        truth = pl.read_parquet(p)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise CuratuneError(f"{what} ({first_line(exc)})", file=path) from None
    if "row_id" not in truth.columns:
        raise CuratuneError(f"{what}; this one has no row_id column", file=path)
    # Row ids, and the truth columns that name another row (dedup's truth scores read them), are text,
    # as loading makes them: numeric ids in a truth file stopped the run with a polars traceback after
    # every step had run (and links to them matched nothing).
    id_cols = [c for c in ("row_id", *TRUTH_LINKS) if c in truth.columns]
    for col in id_cols:
        if truth.schema[col].is_nested():
            raise CuratuneError(f"{what}; its {col} holds {truth.schema[col]}, not one id a row", file=path)
    return truth.with_columns(_label_or_id_text(pl.col(c), truth.schema[c]).alias(c) for c in id_cols)

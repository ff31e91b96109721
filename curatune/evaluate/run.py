"""``evaluate_run``: read the curate and train stages' files, write metrics.json and tables.

Predictions come from the train stage's ``predictions.parquet`` (tuned) and
``base_predictions.parquet`` (the frozen encoder + linear head: a fair "before"); the model is
only run again for counterfactual names and forgetting, which need new inputs. Headline metrics
are on the test split (validation when there is no test split), with seeded bootstrap intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curatune.config import Config
from curatune.curate.label_issues import FLAG_COL, SUGGESTED_COL
from curatune.curate.reviews import DECIDED
from curatune.dataset import LABEL_ISSUE, MISSING_GROUP
from curatune.errors import CuratuneError, GateFailed, shown_value
from curatune.evaluate import metric_modules
from curatune.evaluate.fairness import GroupReport, multiclass_disparity, per_class_rates
from curatune.evaluate.stats import Bootstrap, mcnemar, wilson
from curatune.rundir import (
    BASE_PREDICTIONS,
    CURATED,
    LEDGER,
    MANIFEST,
    METRICS,
    MODEL_DIR,
    PREDICTIONS,
    Manifest,
    output_dir,
    read_json,
    read_run_table,
    write_json,
    write_parquet,
)


def _read(path: Path, required: tuple[str, ...], kinds: dict[str, str] | None = None) -> pl.DataFrame:
    if not path.is_file():
        raise CuratuneError(f"{path.name} not found; run the earlier stage first", file=str(path))
    return read_run_table(path, required, kinds)


GROUP_PREFIX = "__group "


def _eval_split(pred: pl.DataFrame, path: Path) -> str:
    """Test when it has labelled rows (an unlabelled holdout cannot be scored), else validation."""
    labelled = set(pred.filter(pl.col("label").is_not_null())["split"].unique().to_list())
    for split in ("test", "validation"):
        if split in labelled:
            return split
    raise CuratuneError("no labelled test or validation row to evaluate on", file=str(path))


def evaluate_run(config: Config, curate_dir: Path, train_dir: Path, out_dir: Path, *, fail_on_gate: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    curate_dir, train_dir, out = Path(curate_dir), Path(train_dir), output_dir(out_dir, "evaluate")
    ec = config.evaluate
    ec.check()  # a Config built in code never passed through the loader
    manifest = Manifest(stage="evaluate", config=config.resolved())
    train_manifest = read_json(train_dir / MANIFEST) if (train_dir / MANIFEST).is_file() else None
    if train_manifest is None:
        raise CuratuneError("train stage is not complete (no manifest.json)", file=str(train_dir))
    labels = train_manifest.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        raise CuratuneError("the train manifest has no list of label names; re-run the train stage",
                            file=str(train_dir / MANIFEST))
    prediction_cols = ("row_id", "split", "label", "predicted", "confidence")
    prediction_kinds = {"split": "text", "label": "text", "predicted": "text", "confidence": "number"}
    tuned = _read(train_dir / PREDICTIONS, prediction_cols, prediction_kinds)
    base = _read(train_dir / BASE_PREDICTIONS, prediction_cols, prediction_kinds)
    curated = _read(curate_dir / CURATED, ("row_id", "text", "label"))
    ledger = _read(curate_dir / LEDGER, ("row_id", "fate", "reasons"), {"fate": "text", "reasons": "list"})
    # Every file evaluation reads, the evaluated model and the reference set included.
    for p in (train_dir / PREDICTIONS, train_dir / BASE_PREDICTIONS, curate_dir / CURATED, curate_dir / LEDGER,
              train_dir / MODEL_DIR,
              *([Path(config.data.reference)] if ec.forgetting and config.data.reference else [])):
        if p.exists():
            manifest.add_input(p)
    group_cols = (read_json(curate_dir / MANIFEST).get("group_cols") or []) if (curate_dir / MANIFEST).is_file() else []

    split = _eval_split(tuned, train_dir / PREDICTIONS)
    t = tuned.filter((pl.col("split") == split) & pl.col("label").is_not_null())
    b = base.filter(pl.col("split") == split).select("row_id", pl.col("predicted").alias("base_predicted"))
    # A repeated row would be scored twice through the joins below, silently.
    for name, where, frame in (("predictions.parquet", train_dir, t), ("base_predictions.parquet", train_dir, b),
                               ("curated.parquet", curate_dir, curated)):
        repeated = frame.height - frame["row_id"].n_unique()
        if repeated:
            raise CuratuneError(f"{name} holds {repeated} repeated row_id{'s' if repeated > 1 else ''}"
                                f"{f' in its {split} rows' if frame is not curated else ''}: every row must "
                                "appear once (re-run the stage that wrote it)", file=str(where))
    missing = t.join(b, on="row_id", how="anti").height
    if missing:
        raise CuratuneError(f"base_predictions.parquet lacks {missing} {split} rows of "
                            "predictions.parquet: the two must cover the same rows", file=str(train_dir))
    # In the predictions' order, as every join below: the bootstrap and permutation draws are positions.
    t = t.join(b, on="row_id", how="left", maintain_order="left")
    # Rows curated away since training (apply-reviews dropped them) have no text or group here.
    gone = t.join(curated.select("row_id"), on="row_id", how="anti").height
    if gone:
        raise CuratuneError(f"curated.parquet no longer holds {gone} {split} rows of predictions.parquet (curated "
                            "again or reviews applied after training): re-run the train stage", file=str(curate_dir))
    # Relabelled since training (apply-reviews): scored against the label a person rejected, and counted
    # "trusted" by the label-doubt slice because the row now has a decision.
    relabelled = t.join(curated.select("row_id", pl.col("label").cast(pl.String).alias("__now")), on="row_id").filter(
        pl.col("label").ne_missing(pl.col("__now"))).height
    if relabelled:
        raise CuratuneError(f"curated.parquet holds {relabelled} {split} rows of predictions.parquet under another "
                            "label (curated again or reviews applied after training): re-run the train stage",
                            file=str(curate_dir))
    # Group columns under working names: one named like a predictions column ("confidence") was
    # suffixed by the join, and the model's own column was grouped on in its place.
    t = t.join(curated.select("row_id", "text", *[pl.col(g).alias(GROUP_PREFIX + g) for g in group_cols
                                                  if g in curated.columns]), on="row_id", how="left",
           maintain_order="left")
    # The saved model is loaded at most once, and only by the parts that run it.
    tuned = _TunedModel(train_dir)
    if ec.rerun_model:
        say(f"evaluate: re-running the saved model on {t.height} {split} rows ([evaluate] rerun_model)")
        with manifest.timed("rerun_model"):
            t = _rerun(t, tuned, labels)
    for col, file in (("predicted", PREDICTIONS), ("base_predicted", BASE_PREDICTIONS)):
        bad = t.filter(~pl.col(col).is_in(labels) | pl.col(col).is_null())
        if bad.height:
            value = bad[col][0]
            what = "no prediction" if value is None else f"prediction {shown_value(value)}"
            raise CuratuneError(f"row {shown_value(bad['row_id'][0])} has {what}, not one of the train "
                                "manifest's labels; re-run the train stage", file=str(train_dir / file),
                                column="predicted")
    # A label the model was never trained on (absent from train, or too rare to survive curation)
    # cannot be predicted: its rows are scored as errors, listed after the model's labels, and
    # counted, rather than refusing the whole evaluation or leaving them out.
    model_labels = labels
    unseen = sorted(set(t["label"]) - set(model_labels))
    labels = model_labels + unseen
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[v] for v in t["label"]])
    yp = np.array([index[v] for v in t["predicted"]])
    yb = np.array([index[v] for v in t["base_predicted"]])
    conf = t["confidence"].to_numpy()
    boot = Bootstrap(len(y), resamples=ec.bootstrap, confidence=ec.confidence, seed=ec.seed)
    say(f"evaluate: metrics on {len(y)} {split} rows")
    with manifest.timed("metrics"):
        m = metric_modules()
        f1 = m["f1"].compute(predictions=yp, references=y, labels=list(range(len(labels))))
        cal = m["ece"].compute(predictions=yp, references=y, confidences=conf, n_bins=ec.ece_bins)
        confusion = m["confusion_matrix"].compute(predictions=yp, references=y, labels=list(range(len(labels))))
        headline = {
            "accuracy": boot.accuracy(y, yp).to_dict(),
            "macro_f1": boot.macro_f1(y, yp, len(labels)).to_dict(),
            # One label a row over every class: micro-F1 is accuracy, and so is its interval.
            "micro_f1": boot.accuracy(y, yp).to_dict(),
            "weighted_f1": boot.weighted_f1(y, yp, len(labels)).to_dict(),
            "ece": boot.ece(y, yp, conf, ec.ece_bins).to_dict(),
        }
        base_metrics = {"accuracy": boot.accuracy(y, yb).to_dict(),
                        "macro_f1": boot.macro_f1(y, yb, len(labels)).to_dict()}
        comparison = {"accuracy_difference": boot.paired_difference(yp == y, yb == y).to_dict(),
                      "macro_f1_difference": boot.macro_f1_difference(y, yp, yb, len(labels)).to_dict(),
                      "mcnemar": mcnemar(yp == y, yb == y)}
    per_class = pl.DataFrame({"label": labels, "precision": f1["precision"], "recall": f1["recall"], "f1": f1["f1"],
                              "support": f1["support"]}, nan_to_null=True)
    metrics: dict[str, Any] = {
        "split": split, "rows": len(y), "labels": labels, "interval_method": Bootstrap.METHOD,
        "headline": headline, "base": base_metrics,
        "unseen_labels": {"labels": unseen, "rows": int(t["label"].is_in(unseen).sum())},
        "comparison": comparison, "per_class": per_class.to_dicts(),
        "confusion": {"labels": labels, "matrix": confusion["confusion_matrix"]},
        "calibration": {"ece": cal["ece"], "bins": cal["bins"]},
    }
    doubt = _label_doubt(t, ledger, ec.confidence)
    if doubt is not None:
        metrics["label_doubt"] = doubt
    say("evaluate: fairness across groups")
    with manifest.timed("fairness"):
        metrics["fairness"], per_class_by_group = _fairness(t, y, yp, group_cols, labels, ec, boot)
        metrics["curation_fairness"] = _curation_fairness(ledger, group_cols, ec.confidence)
    if ec.counterfactual:
        say("evaluate: counterfactual names")
        with manifest.timed("counterfactual"):
            metrics["counterfactual"] = _counterfactual(tuned, t["text"].to_list(), model_labels, ec.seed)
    if ec.forgetting:
        if config.data.reference:  # without one, metrics.json records why it was skipped
            say("evaluate: forgetting on the reference set")
        with manifest.timed("forgetting"):
            metrics["forgetting"] = _forgetting(config, train_dir, tuned)
    metrics["gates"] = _gates(metrics, ec)
    # From here the earlier evaluation's files are replaced: it is incomplete until the new manifest.
    (out / MANIFEST).unlink(missing_ok=True)
    write_parquet(per_class, out / "per_class.parquet")
    write_parquet(per_class_by_group, out / "fairness_per_class.parquet")
    write_json(metrics, out / METRICS)
    manifest.counts = {"rows": len(y), "split": split}
    manifest.extra = {"gates": metrics["gates"]}
    manifest.written = [METRICS]
    manifest.write(out)
    failed = [g["name"] for g in metrics["gates"] if g["passed"] is False]
    unchecked = [g["name"] for g in metrics["gates"] if g["passed"] is None]
    if (failed or unchecked) and fail_on_gate:
        raise GateFailed(f"evaluation gate {GateFailed.outcome(failed, unchecked)} (see {out / METRICS})")
    return {"out_dir": str(out), "metrics": metrics, "gates_failed": failed, "gates_unchecked": unchecked}


def _fairness(t: pl.DataFrame, y, yp, group_cols: list[str], labels: list[str], ec,
              boot: Bootstrap) -> tuple[dict[str, Any], pl.DataFrame]:
    """Group reports per column (and intersections), and the per-class recall / selection-rate
    table by group (for ``fairness_per_class.parquet``)."""
    out: dict[str, Any] = {}
    tables: list[pl.DataFrame] = []
    present = [g for g in group_cols if GROUP_PREFIX + g in t.columns]
    columns = {g: t[GROUP_PREFIX + g].cast(pl.String).fill_null(MISSING_GROUP).to_pandas() for g in present}
    if ec.intersections and len(present) > 1:
        for i, a in enumerate(present):
            for c in present[i + 1:]:
                columns[f"{a} x {c}"] = columns[a] + " / " + columns[c]
    for name, groups in columns.items():
        report = GroupReport(y_true=y, y_pred=yp, groups=groups, min_group_size=ec.min_group_size, bootstrap=boot,
                             permutations=ec.bootstrap, seed=ec.seed)
        out[name] = {"overall": report.overall, "by_group": report.by_group, "difference": report.difference(),
                     "too_small": report.too_small,
                     "multiclass": multiclass_disparity(y_true=y, y_pred=yp, groups=groups, labels=labels,
                                                        ranked=report.ranked, min_class_support=ec.min_class_support)}
        rates = pl.DataFrame(per_class_rates(y_true=y, y_pred=yp, groups=groups, labels=labels),
                             schema=PER_CLASS_SCHEMA)
        out[name]["recall_gap"] = _recall_gap(rates, report.ranked, ec.min_class_support)
        tables.append(rates.with_columns(pl.lit(name).alias("group_column")))
    table = pl.concat(tables) if tables else pl.DataFrame(schema={**PER_CLASS_SCHEMA, "group_column": pl.String})
    return out, table.select("group_column", *PER_CLASS_SCHEMA)

PER_CLASS_SCHEMA = {"label": pl.String, "group": pl.String, "support": pl.Int64, "recall": pl.Float64,
                    "selection_rate": pl.Float64}


def _recall_gap(rates: pl.DataFrame, ranked: list[str], min_support: int) -> dict[str, Any] | None:
    """The class whose recall differs most between ranked groups, counting only groups with at
    least ``min_support`` rows of that class (recall on a handful of rows is noise, not a finding)."""
    ok = rates.filter(pl.col("group").is_in(ranked) & (pl.col("support") >= min_support)
                      & pl.col("recall").is_not_null())
    gaps = ok.group_by("label").agg(
        (pl.col("recall").max() - pl.col("recall").min()).alias("difference"),
        # Ties go by name: the same groups named on every run.
        pl.col("group").sort_by(["recall", "group"]).last().alias("best"),
        pl.col("group").sort_by(["recall", "group"]).first().alias("worst"),
        pl.len().alias("groups"),
    ).filter(pl.col("groups") >= 2).sort(["difference", "label"], descending=[True, False])
    return gaps.row(0, named=True) if gaps.height else None


def _label_doubt(t: pl.DataFrame, ledger: pl.DataFrame, confidence: float) -> dict[str, Any] | None:
    """Accuracy on the evaluated rows whose label curation doubts vs the rest.

    Evaluation labels are never changed by a model's opinion, so a flagged row that no person has
    settled stays in the headline as labelled; this slice shows how much of the measured error
    sits on such rows. None when the label_issues step did not run.
    """
    if FLAG_COL not in ledger.columns:
        return None
    settled = DECIDED if "review_decision" in ledger.columns else pl.lit(False)
    suggested = pl.col(SUGGESTED_COL).cast(pl.String) if SUGGESTED_COL in ledger.columns else pl.lit(None, pl.String)
    info = ledger.select("row_id", (pl.col(FLAG_COL).fill_null(False) & ~settled.fill_null(False)).alias("doubted"),
                         suggested.alias("suggested"))
    rows = t.select("row_id", "label", "predicted").join(info, on="row_id", how="left", maintain_order="left")
    rows = rows.with_columns(pl.col("doubted").fill_null(False),
                             (pl.col("label") == pl.col("predicted")).alias("correct"))
    out: dict[str, Any] = {}
    for name, part in (("doubted", rows.filter("doubted")), ("trusted", rows.filter(~pl.col("doubted")))):
        n, right = part.height, int(part["correct"].sum())
        out[name] = {
            "rows": n,
            "accuracy": wilson(right, n, confidence).to_dict() if n else None,
            # How often the model sides with curation's suggested label against the given one.
            "predicted_suggested_label": int(((part["predicted"] == part["suggested"])
                                              & (part["suggested"] != part["label"])).fill_null(False).sum()),
        }
    return out


def _curation_fairness(ledger: pl.DataFrame, group_cols: list[str], confidence: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Named for what it counts: rows the label_issues step doubted, whatever became of them. (The
    # curation section's "flagged" is another count: kept rows with any problem reason.)
    doubted = pl.col("reasons").list.contains(LABEL_ISSUE)
    # The doubt rate is of the rows the step examined (its flag is null on rows dedup dropped before
    # it ran), as in the curation section: of all rows it read lower, and the report showed two rates.
    examined = pl.col(FLAG_COL).is_not_null().sum() if FLAG_COL in ledger.columns else pl.len()
    # Without the step (no flag column, no row it doubted) there is no rate to show: a measured-looking
    # 0.000 [0.000, 0.03] sat beside a curation section saying the step did not run.
    ran = FLAG_COL in ledger.columns or bool(ledger.select(doubted.any()).item())
    issue_stats = [doubted.sum().alias("label_issue"), examined.alias("label_issue_rows")] if ran else []
    for g in [c for c in group_cols if c in ledger.columns]:
        rows = []
        # Grouped under a working name: a group column called "n" or "dropped" clashed with the counts.
        # As text, as the fairness section and the curate counts name groups (a boolean's are "true"/"false").
        stats = ledger.group_by(pl.col(g).cast(pl.String).alias("__group")).agg(
            pl.len().alias("n"), (pl.col("fate") == "dropped").sum().alias("dropped"),
            (pl.col("fate") == "relabelled").sum().alias("relabelled"), *issue_stats).sort("__group", nulls_last=True)
        for r in stats.iter_rows(named=True):
            denominators = {"dropped": r["n"], "relabelled": r["n"],
                            **({"label_issue": r["label_issue_rows"]} if ran else {})}
            rows.append({"group": MISSING_GROUP if r["__group"] is None else r["__group"], "n": r["n"],
                         **({"label_issue_rows": r["label_issue_rows"]} if ran else {}),
                         **{k: wilson(int(r[k]), int(d), confidence).to_dict() for k, d in denominators.items()}})
        out[g] = rows
    return out


class _TunedModel:
    """The saved fine-tuned model, loaded on first use."""

    def __init__(self, train_dir: Path) -> None:
        self.train_dir = train_dir
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            from curatune.train.encoder import load_tuned_encoder

            self._encoder = load_tuned_encoder(self.train_dir)
        return self._encoder

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities in the label order of the train manifest."""
        from curatune.train.probe import predict_probabilities
        from curatune.train.tokens import encode

        enc = self.encoder
        return predict_probabilities(enc.classifier, enc.tokenizer,
                                     encode(enc.tokenizer, texts, enc.max_length, enc.truncation), device=enc.device)


def _rerun(t: pl.DataFrame, tuned: _TunedModel, labels: list[str]) -> pl.DataFrame:
    """Predictions made now by the saved model, replacing those training wrote."""
    probs = tuned.probabilities(t["text"].to_list())
    return t.with_columns(pl.Series("predicted", [labels[i] for i in probs.argmax(axis=1)]),
                          pl.Series("confidence", probs.max(axis=1)))


def _counterfactual(tuned: _TunedModel, texts: list[str], labels: list[str], seed: int) -> dict[str, Any]:
    from curatune.evaluate.counterfactual import flip_rates, identity_flip_rates

    def predict(batch: list[str]) -> list[str]:
        return [labels[i] for i in tuned.probabilities(batch).argmax(axis=1)]

    result = flip_rates(predict, texts, seed=seed)
    result["identity_terms"] = identity_flip_rates(predict, texts)
    return result


def _forgetting(config: Config, train_dir: Path, tuned: _TunedModel) -> dict[str, Any]:
    from curatune.dataset import read_reference
    from curatune.evaluate.forgetting import forgetting
    from curatune.train.encoder import load_base_encoder

    if not config.data.reference:
        return {"skipped": "no reference set configured ([data] reference)"}
    df = read_reference(config.data)
    col, lab = config.data.reference_text_col, config.data.reference_label_col
    # Texts and labels stay aligned; an unlabelled row counts for the similarities, not for the probe.
    df = df.filter(pl.col(col).is_not_null())
    texts = df[col].cast(pl.String).to_list()
    labels = df[lab].cast(pl.String).to_list() if lab in df.columns else None
    t0 = time.perf_counter()
    result = forgetting(load_base_encoder(train_dir), tuned.encoder, texts, labels,
                        seed=config.evaluate.seed)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _gates(metrics: dict[str, Any], ec) -> list[dict[str, Any]]:
    """Every configured gate, checked or not: a gate the run could not measure is recorded with
    ``passed: None`` and why, and counts as not passed, so a missing measurement never reads as a pass."""
    g = ec.gates
    checks = []

    def add(name: str, value: float | None, threshold: float, higher_is_better: bool, detail: str,
            unchecked: str) -> None:
        if not threshold:
            return
        gate = {"name": name, "value": None, "threshold": threshold,
                "direction": ">=" if higher_is_better else "<=", "detail": detail}
        if value is None or not np.isfinite(value):
            gate.update(passed=None, detail=f"not checked: {unchecked}")
        else:
            gate.update(passed=bool(value >= threshold if higher_is_better else value <= threshold),
                        value=float(value))
        checks.append(gate)

    split = metrics["split"]
    add("min_accuracy", metrics["headline"]["accuracy"]["value"], g.min_accuracy, True,
        f"accuracy of the fine-tuned model on the {split} split", "no accuracy")
    fg = metrics.get("forgetting")
    no_forgetting = ("forgetting was not measured ([evaluate] forgetting = false)" if fg is None
                     else f"forgetting was not measured: {fg['skipped']}" if "skipped" in fg else None)
    add("min_probe_retention", (fg or {}).get("probe_retention"), g.min_probe_retention, True,
        "reference-set probe accuracy on tuned embeddings / on base embeddings",
        no_forgetting or ("the reference set has no labels ([data] reference_label_col)"
                          if "probe_accuracy_base" not in fg else
                          "probe accuracy is undefined (fewer than 2 reference labels with 2 rows or more, or a "
                          "base probe that scored 0)"))
    add("min_similarity_retention", (fg or {}).get("similarity_retention"), g.min_similarity_retention, True,
        "Spearman correlation of base and tuned pairwise similarities on the reference set",
        no_forgetting or "the similarity correlation is undefined on the reference set (fewer than 3 texts, or "
                         "similarities that do not vary)")
    fairness = metrics.get("fairness", {})
    diffs = {name: v["difference"]["accuracy"]["difference"] for name, v in fairness.items()
             if "accuracy" in v["difference"]}
    # On a tie, the first column by name: the order metrics.json is written in, which the report's
    # finding reads (group_cols order named one column there and another here).
    worst = max(sorted(diffs), key=lambda k: diffs[k], default=None)
    # The column and its two groups: "worst: happy" named a column whose worst group was "unhappy".
    gap = fairness[worst]["difference"]["accuracy"] if worst is not None else {}
    add("max_group_accuracy_difference", diffs.get(worst), g.max_group_accuracy_difference, False,
        f"largest accuracy gap between groups (by {worst}: {gap.get('best')} best, {gap.get('worst')} worst)",
        "no group column ([data] group_cols)" if not fairness else
        f"no group column has two groups of at least {ec.min_group_size} rows ([evaluate] min_group_size)")
    cf = metrics.get("counterfactual")
    add("max_counterfactual_flip_rate", (cf or {}).get("max_flip_rate"), g.max_counterfactual_flip_rate, False,
        "largest share of predictions that change when names change",
        "counterfactual names were not tested ([evaluate] counterfactual = false)" if cf is None else
        "no evaluated text holds a name placeholder such as <PERSON_1> (anonymise with the placeholder operator)")
    return checks

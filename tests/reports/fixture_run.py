"""A small, fixed run directory built from synthetic files in the shapes the stages write.

Used by the golden snapshot, the safety tests and the browser tests: it does not run the pipeline,
so it is fast and never changes unless this file does. Every value is fixed (no clocks, no RNG).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from curatune.curate.pipeline import _counts
from curatune.rundir import sha256_tree

LABELS = ["billing", "cancel", "refund"]
GROUPS = ["chat", "email", "phone"]
# Transcript text a browser must show as text: markup, a script tag and an attribute injection.
HOSTILE = ('customer: <script>alert("x")</script> my bill is wrong & "too high"\n'
           'agent: <img src=x onerror=alert(1)> sorry, <PERSON_1> here')
VERSIONS = {"python": "3.11.0", "curatune": "0.1.0", "polars": "1.0.0"}


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_run(root: Path, *, stages: tuple[str, ...] = ("curate", "train", "evaluate"), anonymised: bool = True,
              leak_failed: bool = False, accuracy_gate_passed: bool = True) -> Path:
    run = Path(root)
    run.mkdir(parents=True, exist_ok=True)
    if "curate" in stages:
        _curate(run / "curate", anonymised, leak_failed)
    if "train" in stages:
        _train(run / "train")
    if "evaluate" in stages:
        _evaluate(run / "evaluate", accuracy_gate_passed)
    return run


def _rows() -> list[dict]:
    rows = []
    for i in range(24):
        rows.append({
            "row_id": f"r{i:02d}",
            "text": HOSTILE if i == 3 else f"customer: question {i} about {LABELS[i % 3]} <ORDER_ID_1>\nagent: ok",
            "label": LABELS[i % 3],
            "split": "train" if i < 16 else ("validation" if i < 20 else "test"),
            "source": "d.csv",
            "channel": GROUPS[i % 3],
        })
    return rows


def _curate(out: Path, anonymised: bool, leak_failed: bool) -> None:
    rows = _rows()
    fate = {"r05": "dropped", "r06": "dropped", "r07": "dropped", "r08": "relabelled", "r03": "dropped"}
    reasons = {"r05": ["exact_duplicate"], "r06": ["near_duplicate"], "r07": ["leakage"],
               "r08": ["label_issue"], "r09": ["label_issue"], "r03": ["exact_duplicate"]}
    dup_of = {"r05": "r02", "r06": "r01", "r07": "r17", "r03": "r00"}
    ledger = pl.DataFrame({
        "row_id": [r["row_id"] for r in rows],
        "source": [r["source"] for r in rows],
        "split": [r["split"] for r in rows],
        "channel": [r["channel"] for r in rows],
        "fate": [fate.get(r["row_id"], "kept") for r in rows],
        "reasons": [reasons.get(r["row_id"], []) + (["pii_found"] if anonymised else []) for r in rows],
        "dropped_by": ["dedup" if fate.get(r["row_id"]) == "dropped" else None for r in rows],
        "duplicate_of": [dup_of.get(r["row_id"]) for r in rows],
        "original_label": [r["label"] for r in rows],
        "final_label": ["refund" if r["row_id"] == "r08" else r["label"] for r in rows],
        "dedup_score": [0.0 if r["row_id"] in dup_of else 1.0 for r in rows],
        "label_issues_score": [0.05 if r["row_id"] == "r08" else 0.2 if r["row_id"] == "r09" else 0.9
                               for r in rows],
        "label_quality": [0.05 if r["row_id"] == "r08" else 0.2 if r["row_id"] == "r09" else 0.9 for r in rows],
        "suggested_label": ["refund" if r["row_id"] == "r08" else "cancel" if r["row_id"] == "r09" else r["label"]
                            for r in rows],
        "suggested_confidence": [0.93 if r["row_id"] == "r08" else 0.61 for r in rows],
        "label_issue_rank": [1 if r["row_id"] == "r08" else 2 if r["row_id"] == "r09" else 3 + i
                             for i, r in enumerate(rows)],
    }, schema_overrides={"dropped_by": pl.String, "duplicate_of": pl.String, "suggested_label": pl.String})
    if anonymised:  # the anonymise step's ledger column: entities the leak scan still found, per row
        ledger = ledger.with_columns(pl.Series("pii_leaked", [2 if leak_failed and r["row_id"] == "r03" else 0
                                                              for r in rows]))
    table = pl.DataFrame(rows)
    dropped = [k for k, v in fate.items() if v == "dropped"]
    curated = table.filter(~pl.col("row_id").is_in(dropped)).with_columns(
        pl.when(pl.col("row_id") == "r08").then(pl.lit("refund")).otherwise("label").alias("label"))
    excluded = table.filter(pl.col("row_id").is_in(dropped)).with_columns(
        pl.col("row_id").replace_strict({k: reasons[k][0] for k in dropped}, default=None).alias("reason"),
        pl.lit("dedup").alias("dropped_by"),
        pl.col("row_id").replace_strict(dup_of, default=None).alias("duplicate_of"),
        pl.col("label").alias("original_label"))
    out.mkdir(parents=True, exist_ok=True)
    ledger.write_parquet(out / "ledger.parquet")
    curated.write_parquet(out / "curated.parquet")
    excluded.write_parquet(out / "excluded.parquet")
    leak_gate = {"name": "leak_scan", "passed": not leak_failed, "value": 2 if leak_failed else 0, "threshold": 0,
                 "detail": "personal data still found after anonymisation"}
    steps = [{"name": "dedup", "rows_in": 24, "issues": 4, "dropped": 4, "relabelled": 0, "seconds": 0.5,
              "gates": [], "summary": {"clusters": 4, "dropped_by_reason": {"exact_duplicate": 2, "near_duplicate": 1,
                                                                            "leakage": 1}}}]
    if anonymised:
        steps.append({"name": "anonymise", "rows_in": 24, "issues": 24, "dropped": 0, "relabelled": 0,
                      "seconds": 1.5, "gates": [leak_gate], "summary": {
                          "entities_by_type": {"PERSON": 30, "ORDER_ID": 24, "EMAIL_ADDRESS": 3},
                          "leak_scan": {"passed": not leak_failed, "remaining": 2 if leak_failed else 0,
                                        "remaining_by_type": {"PERSON": 2} if leak_failed else {},
                                        "rows_given_a_second_pass": 0, "rows_scanned": 24, "max_leaks": 0,
                                        "enforced": True},
                          "operator": "placeholder", "rows_with_pii": 24, "spacy_model": "en_core_web_sm"}})
    steps.append({"name": "label_issues", "rows_in": 20, "issues": 2, "dropped": 0, "relabelled": 1,
                  "seconds": 2.0, "gates": [], "summary": {
                      "issues": 2, "policy": "relabel", "cutoff": "chance", "cleanlab_default_issues": 3,
                      "flagged_share_by_group": {"channel": {"email": {"share": 0.125, "rows": 8},
                                                             "phone": {"share": 0.125, "rows": 8},
                                                             "chat": {"share": 0.0, "rows": 8}}}}})
    _write_json({
        "stage": "curate", "status": "complete", "started_at": 1700000000.0, "finished_at": 1700000004.5,
        "inputs": [{"path": "/data/d.csv", "rows": 24, "records": 24, "sha256": "ab" * 32}],
        "config": {"report": {"max_examples": 5, "title": "fixture audit"}},
        "versions": VERSIONS,
        # Counted from the ledger as curate counts it: the report renders these and never counts again.
        "counts": _counts(ledger, ["channel"]),
        "steps": steps, "timings": {"load": 0.1, "dedup": 0.5},
        "run_id": "cur-000000000001", "gates": [leak_gate] if anonymised else [],
        "group_cols": ["channel"],
        "truth": {"dedup": {"exact_dup_recall": 1.0, "near_dup_recall": 0.5}},
    }, out / "manifest.json")


def _curated_sha(train_dir: Path) -> str:
    curated = train_dir.parent / "curate" / "curated.parquet"
    return sha256_tree(curated) if curated.is_file() else "cd" * 32


def _train(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log = [{"step": 0, "epoch": 0.0, "event": "frozen_baseline", "C": 10.0}]
    for step in range(1, 21):
        log.append({"loss": round(1.2 * 0.9 ** step + 0.05, 4), "learning_rate": 0.001, "epoch": step / 10,
                    "step": step})
        if step % 10 == 0:
            log.append({"eval_loss": round(0.9 - step * 0.02, 4), "eval_accuracy": 0.7 + step * 0.01,
                        "eval_macro_f1": 0.65 + step * 0.01, "epoch": step / 10, "step": step})
    (out / "trainer_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log), encoding="utf-8")
    _write_json({
        "stage": "train", "status": "complete", "started_at": 1700000010.0, "finished_at": 1700000070.0,
        # The curated table it read, as train records it: a report checks it is still the run's.
        "inputs": [{"path": "/run/curate/curated.parquet", "rows": 20, "sha256": _curated_sha(out)}],
        "config": {"train": {"method": "lora", "epochs": 2.0, "lr": 0.001, "lora_target_modules": []},
                   "report": {"max_examples": 5, "title": "fixture audit"}},
        "versions": VERSIONS, "counts": {"rows": 20, "train": 13, "validation": 4, "test": 3},
        "steps": [], "timings": {"load": 0.2, "train": 50.0, "predict": 1.0},
        "labels": LABELS, "method": "lora", "device": "CPU (2 threads)", "precision": "fp32",
        "model": {"requested": "default", "base_model": "sentence-transformers/all-MiniLM-L6-v2", "path": "/x",
                  "pooling": "mean", "max_length": 64, "parameters": 22909472, "trainable_parameters": 337936},
        "measured_max_length": 64,
        "truncation": {"strategy": "head", "max_length": 64, "splits": {
            "train": {"rows": 13, "truncated": 1, "truncated_share": 0.0769, "tokens_dropped": 5, "length_p50": 20.0,
                      "length_p95": 60.0, "length_max": 69}}},
        "throughput": {"train_examples_per_s": 4.2, "train_runtime_s": 50.0, "peak_gpu_memory_mb": None},
        "training": {"global_step": 20, "max_steps": 20, "best_step": 20, "stopped_early": False,
                     "resumed_from": None},
        "metrics": {"validation": {"accuracy": 0.9, "macro_f1": 0.85, "rows": 4},
                    "test": {"accuracy": 0.8, "macro_f1": 0.75, "rows": 3}},
        "base_metrics": {"validation": {"accuracy": 0.7, "macro_f1": 0.6, "rows": 4},
                         "test": {"accuracy": 0.6, "macro_f1": 0.5, "rows": 3}},
        "verdict": {"beats_frozen_baseline": True, "summary": "fine-tuning beat the frozen baseline: <b>+0.2</b>",
                    "rows": 4, "accuracy": {"tuned": 0.9, "base": 0.7, "difference": 0.2, "ci": [0.05, 0.35]}},
    }, out / "manifest.json")


def _ci(value: float, low: float, high: float, n: int = 300) -> dict:
    return {"value": value, "low": low, "high": high, "n": n, "confidence": 0.95}


def _evaluate(out: Path, accuracy_gate_passed: bool) -> None:
    """metrics.json in the shape curatune.evaluate writes (sorted keys, as rundir.write_json does)."""
    out.mkdir(parents=True, exist_ok=True)
    acc = 0.82 if accuracy_gate_passed else 0.62
    by_group = [{"group": g, "n": 100 if g != "phone" else 12, "too_small": g == "phone",
                 "accuracy": 0.8 - i / 20, "macro_f1": 0.75 - i / 20,
                 **({} if g == "phone" else {"accuracy_ci": _ci(0.8 - i / 20, 0.7 - i / 20, 0.9 - i / 20, 100),
                                             "macro_f1_ci": _ci(0.75 - i / 20, 0.64 - i / 20, 0.86 - i / 20, 100)})}
                for i, g in enumerate(GROUPS)]
    metrics = {
        "split": "test", "rows": 300, "labels": LABELS, "interval_method": "BCa bootstrap",
        "headline": {"accuracy": _ci(acc, acc - 0.05, acc + 0.04), "macro_f1": _ci(0.8, 0.74, 0.85),
                     "micro_f1": {"value": acc}, "weighted_f1": {"value": 0.81}, "ece": {"value": 0.04}},
        "base": {"accuracy": _ci(acc - 0.06, acc - 0.12, acc), "macro_f1": _ci(0.72, 0.66, 0.78)},
        "comparison": {"accuracy_difference": _ci(0.06, 0.01, 0.11),
                       "mcnemar": {"a_only_correct": 12, "b_only_correct": 4, "statistic": 4.0, "p_value": 0.0768,
                                   "method": "exact binomial"}},
        "per_class": [{"label": lab, "precision": 0.8 + i / 50, "recall": 0.75 + i / 40, "f1": 0.78, "support": 100}
                      for i, lab in enumerate(LABELS)],
        "confusion": {"labels": LABELS, "matrix": [[80, 15, 5], [10, 85, 5], [2, 8, 90]]},
        "calibration": {"ece": 0.04, "bins": [
            {"low": i / 5, "high": (i + 1) / 5, "confidence": None if i == 0 else i / 5 + 0.1,
             "accuracy": None if i == 0 else i / 5 + 0.08, "count": 0 if i == 0 else 10 + i} for i in range(5)]},
        "forgetting": {"cka_by_layer": [1.0, 0.999, 0.995, 0.98], "probe_accuracy_base": 0.9,
                       "probe_accuracy_tuned": 0.873, "probe_retention": 0.97, "reference_rows": 800,
                       "similarity_retention": 0.91, "seconds": 3.5},
        "fairness": {"channel": {
            "overall": {"accuracy": acc, "macro_f1": 0.8}, "by_group": by_group,
            "difference": {"groups_ranked": 2, "accuracy": {"difference": 0.05, "ratio": 0.9375, "best": "chat",
                                                            "worst": "email",
                                                            "difference_ci": _ci(0.05, 0.0, 0.14),
                                                            "equal_accuracy_p_value": 0.2468, "permutations": 1000},
                           "macro_f1": {"difference": 0.05, "ratio": 0.93, "best": "chat", "worst": "email",
                                        "difference_ci": _ci(0.05, -0.03, 0.16, 200)}},
            "too_small": ["phone"],
            "recall_gap": {"label": "refund", "difference": 0.15, "best": "chat", "worst": "email", "groups": 2},
            "multiclass": {"per_class": [], "groups": ["chat", "email"], "min_class_support": 10,
                           "worst_demographic_parity": {
                "label": "refund", "demographic_parity_difference": 0.12, "equalized_odds_difference": 0.2},
                "worst_equalized_odds": {"label": "cancel", "demographic_parity_difference": 0.05,
                                         "equalized_odds_difference": 0.3}}}},
        "curation_fairness": {"channel": [{"group": g, "n": 8, "dropped": _ci(0.25, 0.07, 0.59, 8),
                                           "relabelled": _ci(0.0, 0.0, 0.32, 8),
                                           "label_issue": _ci(0.125, 0.02, 0.47, 8)}
                                          for g in GROUPS]},
        "label_doubt": {"doubted": {"rows": 6, "accuracy": _ci(0.1667, 0.03, 0.56, 6), "predicted_suggested_label": 4},
                        "trusted": {"rows": 294, "accuracy": _ci(0.83, 0.78, 0.87, 294),
                                    "predicted_suggested_label": 1}},
        "counterfactual": {"rows": 40, "max_flip_rate": 0.05, "max_difference": 0.05, "groups": [
            {"group": "US English", "locale": "en_US", "rows": 40, "flips": 0, "flip_rate": 0.0},
            {"group": "Polish", "locale": "pl_PL", "rows": 40, "flips": 2, "flip_rate": 0.05}]},
        "gates": [{"name": "min_accuracy", "passed": accuracy_gate_passed, "value": acc, "threshold": 0.7,
                   "direction": ">="},
                  {"name": "min_probe_retention", "passed": True, "value": 0.97, "threshold": 0.95, "direction": ">="}],
    }
    _write_json(metrics, out / "metrics.json")
    _write_json({"stage": "evaluate", "status": "complete", "started_at": 1700000080.0,
                 "finished_at": 1700000090.0, "inputs": [], "config": {}, "versions": VERSIONS, "counts": {},
                 "steps": [], "timings": {}, "gates": metrics["gates"]}, out / "manifest.json")

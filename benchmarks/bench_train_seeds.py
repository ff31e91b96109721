"""Trainer: how much of a Banking77 validation figure is the seed.

The defaults (LoRA and full fine-tuning) trained with seeds 0, 1 and 2 on the same rows as the
trainer benchmark (Banking77 train, 10% of each label held out as validation, seed 0). The seed
moves the head's probe fit, the batch order and dropout; the validation rows stay fixed. A single
run's accuracy is one draw from this spread, so a goal such as ">= 0.94" is read against the mean.
Each run computes its own frozen baseline on the same rows, side by side.

Two readings of where the remaining errors are: the seeds' ensemble (mean of their validation
probabilities), and the rows every seed of a method gets wrong with the same predicted label,
the most confident of which are printed for a reader to judge (Banking77 is public and has
mislabelled and ambiguous rows; the table shows the gold label next to the models' choice).

The kept checkpoint is the epoch with the best validation macro-F1, so its validation accuracy is
read on the rows that chose it and leans high. Each run's last evaluated epoch is shown beside it:
no checkpoint was chosen on the validation rows for that one (early stopping, which only ends the
run, still reads them).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.bench_train import QUICK_PER_LABEL, banking77_splits, train_ours
from benchmarks.common import header, table

SEEDS = (0, 1, 2)
METHODS = (("LoRA", "lora"), ("full fine-tuning", "full"))
SHOWN_ERRORS = 12


def _error_reading(val: pl.DataFrame, runs: list[dict]) -> tuple[float, list[tuple]]:
    """Accuracy of the runs' ensemble, and the rows every run gets wrong with the same label."""
    gold = val["label"].to_list()
    probs, labels = [r["probs"] for r in runs], [r["labels"] for r in runs]
    if any(lab != labels[0] for lab in labels):
        raise ValueError("runs disagree on the label order; their probabilities cannot be averaged")
    mean = np.mean(probs, axis=0)
    ensemble_acc = float(np.mean([labels[0][i] == g for i, g in zip(mean.argmax(1), gold, strict=True)]))
    shared = []
    for i, g in enumerate(gold):
        chosen = {r["pred"][i] for r in runs}
        if len(chosen) == 1 and g not in chosen:
            shared.append((float(mean[i].max()), val["text"][i], g, chosen.pop()))
    return ensemble_acc, sorted(shared, key=lambda t: -t[0])


def _last_epoch(out_dir: str) -> tuple[float, float, float]:
    """From a run's trainer log: the last evaluated epoch's validation accuracy, that epoch, and
    the epoch of the checkpoint the run kept (its manifest's best step)."""
    from curatune.rundir import MANIFEST, TRAINER_LOG

    lines = (Path(out_dir) / TRAINER_LOG).read_text(encoding="utf-8").splitlines()
    evals = [e for e in map(json.loads, lines) if "eval_accuracy" in e]
    best_step = json.loads((Path(out_dir) / MANIFEST).read_text())["training"]["best_step"]
    kept = next(e for e in evals if e["step"] == best_step)
    return evals[-1]["eval_accuracy"], evals[-1]["epoch"], kept["epoch"]


def run(data_dir: Path, quick: bool = False) -> str:
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    seeds = SEEDS[:2] if quick else SEEDS
    rows, acc, last, readings = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for title, method in METHODS:
            runs = []
            for seed in seeds:
                r = train_ours(train, val, tmp, f"{method} seed {seed}", method=method, seed=seed)
                runs.append(r)
                acc.setdefault(title, []).append(r["acc"])
                last_acc, last_epoch, kept_epoch = _last_epoch(r["out_dir"])
                last.setdefault(title, []).append(last_acc)
                rows.append((title, seed, f"{r['acc']:.4f}", f"{r['f1']:.4f}", f"{kept_epoch:g}",
                             f"{last_acc:.4f} (epoch {last_epoch:g})", f"{r['base_acc']:.4f}",
                             f"{r['acc'] - r['base_acc']:+.4f}", f"{r['wall']:.0f}"))
            readings[title] = _error_reading(val, runs)
    summary = [(title, len(a), f"{statistics.mean(a):.4f}", f"{statistics.stdev(a):.4f}", f"{min(a):.4f}",
                f"{max(a):.4f}", sum(x >= 0.94 for x in a), f"{statistics.mean(last[title]):.4f}",
                f"{readings[title][0]:.4f}", len(readings[title][1]))
               for title, a in acc.items()]
    full_errors = readings["full fine-tuning"][1]
    shown = [(f"{conf:.2f}", text.replace("|", "/"), gold, pred)
             for conf, text, gold, pred in full_errors[:SHOWN_ERRORS]]
    gap = statistics.mean(acc["LoRA"]) - statistics.mean(acc["full fine-tuning"])
    return (header("Trainer: seed spread (Banking77, defaults)")
            + f"{train.height:,} train rows, {val.height:,} validation rows (the trainer benchmark's split); the "
            "defaults of each method, seeds " + ", ".join(map(str, seeds)) + ". Seed 0 is the trainer "
            "benchmark's configuration.\n\n"
            + table(("method", "seed", "val accuracy", "val macro-F1", "epoch kept",
                     "last epoch's val accuracy (not chosen on these rows)", "frozen baseline (same run)",
                     "tuned - frozen", "wall s"), rows)
            + "\n" + table(("method", "runs", "mean accuracy", "std", "min", "max", "runs >= 0.94",
                             "mean of the last epochs", "ensemble of the runs",
                             "rows every run gets wrong alike"), summary)
            + f"\nLoRA minus full fine-tuning, mean accuracy: {gap:+.4f}.\n\n"
            + f"The {min(SHOWN_ERRORS, len(full_errors))} most confident of the {len(full_errors)} validation rows "
            "every full fine-tuning run labels the same wrong way (confidence: the runs' mean probability of "
            "their choice):\n\n"
            + table(("confidence", "text", "gold label", "models' label"), shown))

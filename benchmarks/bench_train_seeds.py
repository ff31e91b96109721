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
"""

from __future__ import annotations

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


def run(data_dir: Path, quick: bool = False) -> str:
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    seeds = SEEDS[:2] if quick else SEEDS
    rows, acc, readings = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for title, method in METHODS:
            runs = []
            for seed in seeds:
                r = train_ours(train, val, tmp, f"{method} seed {seed}", method=method, seed=seed)
                runs.append(r)
                acc.setdefault(title, []).append(r["acc"])
                rows.append((title, seed, f"{r['acc']:.4f}", f"{r['f1']:.4f}", f"{r['base_acc']:.4f}",
                             f"{r['acc'] - r['base_acc']:+.4f}", f"{r['wall']:.0f}"))
            readings[title] = _error_reading(val, runs)
    summary = [(title, len(a), f"{statistics.mean(a):.4f}", f"{statistics.stdev(a):.4f}", f"{min(a):.4f}",
                f"{max(a):.4f}", sum(x >= 0.94 for x in a), f"{readings[title][0]:.4f}", len(readings[title][1]))
               for title, a in acc.items()]
    full_errors = readings["full fine-tuning"][1]
    shown = [(f"{conf:.2f}", text.replace("|", "/"), gold, pred)
             for conf, text, gold, pred in full_errors[:SHOWN_ERRORS]]
    gap = statistics.mean(acc["LoRA"]) - statistics.mean(acc["full fine-tuning"])
    return (header("Trainer: seed spread (Banking77, defaults)")
            + f"{train.height:,} train rows, {val.height:,} validation rows (the trainer benchmark's split); the "
            "defaults of each method, seeds " + ", ".join(map(str, seeds)) + ". Seed 0 is the trainer "
            "benchmark's configuration.\n\n"
            + table(("method", "seed", "val accuracy", "val macro-F1", "frozen baseline (same run)",
                     "tuned - frozen", "wall s"), rows)
            + "\n" + table(("method", "runs", "mean accuracy", "std", "min", "max", "runs >= 0.94",
                             "ensemble of the runs", "rows every run gets wrong alike"), summary)
            + f"\nLoRA minus full fine-tuning, mean accuracy: {gap:+.4f}.\n\n"
            + f"The {min(SHOWN_ERRORS, len(full_errors))} most confident of the {len(full_errors)} validation rows "
            "every full fine-tuning run labels the same wrong way (confidence: the runs' mean probability of "
            "their choice):\n\n"
            + table(("confidence", "text", "gold label", "models' label"), shown))

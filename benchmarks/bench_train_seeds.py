"""Trainer: how much of a Banking77 validation figure is the seed.

The defaults (LoRA and full fine-tuning) trained with seeds 0, 1 and 2 on the same rows as the
trainer benchmark (Banking77 train, 10% of each label held out as validation, seed 0). The seed
moves the head's probe fit, the batch order and dropout; the validation rows stay fixed. A single
run's accuracy is one draw from this spread, so a goal such as ">= 0.94" is read against the mean.
Each run computes its own frozen baseline on the same rows, side by side.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_train import QUICK_PER_LABEL, _ours, _splits
from benchmarks.common import header, table

SEEDS = (0, 1, 2)
METHODS = (("LoRA", "lora"), ("full fine-tuning", "full"))


def run(data_dir: Path, quick: bool = False) -> str:
    train, val = _splits(data_dir, QUICK_PER_LABEL if quick else None)
    seeds = SEEDS[:2] if quick else SEEDS
    rows, acc = [], {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for title, method in METHODS:
            for seed in seeds:
                r = _ours(train, val, tmp, f"{method} seed {seed}", method=method, seed=seed)
                acc.setdefault(title, []).append(r["acc"])
                rows.append((title, seed, f"{r['acc']:.4f}", f"{r['f1']:.4f}", f"{r['base_acc']:.4f}",
                             f"{r['acc'] - r['base_acc']:+.4f}", f"{r['wall']:.0f}"))
    summary = [(title, len(a), f"{statistics.mean(a):.4f}", f"{statistics.stdev(a):.4f}", f"{min(a):.4f}",
                f"{max(a):.4f}", sum(x >= 0.94 for x in a)) for title, a in acc.items()]
    gap = statistics.mean(acc["LoRA"]) - statistics.mean(acc["full fine-tuning"])
    return (header("Trainer: seed spread (Banking77, defaults)")
            + f"{train.height:,} train rows, {val.height:,} validation rows (the trainer benchmark's split); the "
            "defaults of each method, seeds " + ", ".join(map(str, seeds)) + ". Seed 0 is the trainer "
            "benchmark's configuration.\n\n"
            + table(("method", "seed", "val accuracy", "val macro-F1", "frozen baseline (same run)",
                     "tuned - frozen", "wall s"), rows)
            + "\n" + table(("method", "runs", "mean accuracy", "std", "min", "max", "runs >= 0.94"), summary)
            + f"\nLoRA minus full fine-tuning, mean accuracy: {gap:+.4f}.\n")

"""Trainer: sharpness-aware minimisation (``train.sam_rho``) for full fine-tuning on Banking77.

Full fine-tuning of the default model with SAM (rho 0.05), seeds 0, 1 and 2, on the trainer
benchmark's rows (Banking77 train, 10% of each label held out as validation, seed 0). Everything
else is the defaults, so the same seeds without SAM are the "seed spread" section's full
fine-tuning rows (same code path: ``sam_rho = 0`` is the stock training step). Each run is
compared with the frozen encoder + logistic regression anchor, run in this process on the same
rows, by a paired bootstrap CI, and with the frozen baseline the run computes itself.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.bench_train import QUICK_PER_LABEL, banking77_splits, frozen_anchor, train_ours, vs_anchor
from benchmarks.common import header, table

SEEDS = (0, 1, 2)
RHO = 0.05


def seed_runs_section(data_dir: Path, quick: bool, *, title: str, setting: str, value: float) -> str:
    """Full fine-tuning with ``[train] setting = value`` and the defaults otherwise, seeds 0-2, each set
    beside the frozen-encoder anchor (paired bootstrap) and the frozen baseline the run computes."""
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    seeds = SEEDS[:2] if quick else SEEDS
    anchor = frozen_anchor(train, val)
    with tempfile.TemporaryDirectory() as tmp_name:
        runs = [train_ours(train, val, Path(tmp_name), f"full {setting} seed {seed}", method="full", seed=seed,
                           **{setting: value}) for seed in seeds]
    return (header(f"{title} (Banking77, {setting} = {value})")
            + f"{train.height:,} train rows, {val.height:,} validation rows (the trainer benchmark's split); "
            f"`method = \"full\"`, `{setting} = {value}`, other settings default, seeds "
            + ", ".join(map(str, seeds)) + ". The same seeds without it are the seed-spread section's full "
            f"fine-tuning rows. Anchor: frozen encoder + logistic regression C=10, accuracy {anchor['acc']:.4f} "
            "on the same validation rows.\n\n" + seed_runs_tables(val, seeds, runs, anchor))


def seed_runs_tables(val: pl.DataFrame, seeds: Sequence[int], runs: Sequence[dict[str, Any]],
                     anchor: dict[str, Any]) -> str:
    """A row per seed (each run beside the anchor, paired bootstrap, and beside its own frozen
    baseline), then the runs' mean, spread and how many reach 0.94."""
    acc = [r["acc"] for r in runs]
    rows = [(seed, f"{r['acc']:.4f}", f"{r['f1']:.4f}", vs_anchor(val, r, anchor), f"{r['base_acc']:.4f}",
             f"{r['acc'] - r['base_acc']:+.4f}", f"{r['wall']:.0f}") for seed, r in zip(seeds, runs, strict=True)]
    summary = [(len(acc), f"{statistics.mean(acc):.4f}", f"{statistics.stdev(acc):.4f}", f"{min(acc):.4f}",
                f"{max(acc):.4f}", sum(x >= 0.94 for x in acc))]
    return (table(("seed", "val accuracy", "val macro-F1", "accuracy - anchor [95% CI, paired bootstrap]",
                   "frozen baseline (same run)", "tuned - frozen", "wall s"), rows)
            + "\n" + table(("runs", "mean accuracy", "std", "min", "max", "runs >= 0.94"), summary))


def run(data_dir: Path, quick: bool = False) -> str:
    return seed_runs_section(data_dir, quick, title="Trainer: full fine-tuning with SAM", setting="sam_rho",
                             value=RHO)

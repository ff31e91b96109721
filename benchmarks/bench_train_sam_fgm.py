"""Trainer: SAM and adversarial training (FGM) together, for full fine-tuning on Banking77.

Each alone raised the three-seed validation mean of full fine-tuning by about 0.3 points (the
"SAM" and "adversarial training" sections). They act on different things (SAM moves every weight
up the batch's gradient, FGM only the word embeddings), so this measures whether their gains add:
``sam_rho = 0.05`` and ``adversarial_eps = 1.0`` in one run (each step costs four passes), seeds
0, 1 and 2, on the trainer benchmark's rows, everything else default. Each run is compared with
the frozen encoder + logistic regression anchor, run in this process on the same rows, by a paired
bootstrap CI, and with the frozen baseline the run computes itself.

At four passes a step a seed takes about an hour on two cores, so the seeds train side by side in
separate processes of one thread each: their wall times include that contention and are not
comparable with the other sections'.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.bench_train import QUICK_PER_LABEL, banking77_splits, frozen_anchor, train_ours
from benchmarks.bench_train_sam import seed_runs_tables
from benchmarks.common import header

SEEDS = (0, 1, 2)
SETTINGS = {"sam_rho": 0.05, "adversarial_eps": 1.0}


def _seed_run(train: pl.DataFrame, val: pl.DataFrame, tmp: Path, seed: int) -> dict[str, Any]:
    import torch

    # One thread per process: the seeds share the machine's cores instead of fighting over them.
    torch.set_num_threads(1)
    return train_ours(train, val, tmp, f"full sam fgm seed {seed}", method="full", seed=seed, **SETTINGS)


def run(data_dir: Path, quick: bool = False) -> str:
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    seeds = SEEDS[:2] if quick else SEEDS
    anchor = frozen_anchor(train, val)
    # spawn: a child forked after the anchor started torch's OpenMP threads can hang in its first parallel op.
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp_name, ProcessPoolExecutor(len(seeds), mp_context=ctx) as pool:
        runs = list(pool.map(partial(_seed_run, train, val, Path(tmp_name)), seeds))
    given = ", ".join(f"`{k} = {v}`" for k, v in SETTINGS.items())
    return (header("Trainer: full fine-tuning with SAM and FGM together (Banking77)")
            + f"{train.height:,} train rows, {val.height:,} validation rows (the trainer benchmark's split); "
            f"`method = \"full\"`, {given}, other settings default, seeds " + ", ".join(map(str, seeds))
            + ". Compare with the SAM section, the adversarial-training section and the seed-spread section's full "
            f"fine-tuning rows (the same seeds with one or neither). Anchor: frozen encoder + logistic regression "
            f"C=10, accuracy {anchor['acc']:.4f} on the same validation rows. The seeds trained side by side, "
            f"{len(seeds)} processes of one thread each on {os.cpu_count()} cores: wall s includes that contention.\n\n"
            + seed_runs_tables(val, seeds, runs, anchor))

"""Trainer: adversarial training on the word embeddings (``train.adversarial_eps``, FGM) for full
fine-tuning on Banking77.

Full fine-tuning of the default model with FGM (eps 1.0: each step adds the gradient of the batch
with the word-embedding matrix moved 1.0 along its own gradient), seeds 0, 1 and 2, on the trainer
benchmark's rows. Everything else is the defaults, so the same seeds without it are the "seed
spread" section's full fine-tuning rows (``adversarial_eps = 0`` is the stock training step). Each
run is compared with the frozen encoder + logistic regression anchor, run in this process on the
same rows, by a paired bootstrap CI, and with the frozen baseline the run computes itself.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench_train_sam import seed_runs_section

EPS = 1.0


def run(data_dir: Path, quick: bool = False) -> str:
    return seed_runs_section(data_dir, quick, title="Trainer: full fine-tuning with adversarial training (FGM)",
                             setting="adversarial_eps", value=EPS)

"""Trainer overhead: ``curatune train`` against the plain transformers Trainer script, same settings.

The goal: for the same configuration, curatune's train adds at most 5% wall time over the plain
script (``bench_train._plain_script``). Both run on the trainer benchmark's Banking77 rows with
the script's settings: LoRA r=8 on query/value, lr 5e-4, batch 32, 3 epochs, no warm-up, no
weight decay; curatune without its LP-FT head and classifying from the [CLS] vector (the script's
BERT head adds its pooler). The script uses Trainer's own length grouping
(``train_sampling_strategy="group_by_length"``), the batching curatune pads by, so that the two
differ in what each does around training, not in how much padding it trains on.

Timed in the order curatune, script, script, curatune, after an untimed warm-up run of each on a
small subsample (first imports and allocations): a drift in the shared cores' speed over the
run then weighs on both alike. Each curatune run's manifest times its own steps, so its wall time
splits into training and what curatune does besides: the frozen baseline (every row's features
through the base encoder and a logistic regression, which the verdict "did fine-tuning beat the
frozen encoder" needs), predictions from the saved model, saving adapter and merged model.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.bench_train import PLAIN, QUICK_PER_LABEL, _plain_script, banking77_splits, train_ours
from benchmarks.common import header, table

WARMUP_PER_LABEL = 5
GOAL = 1.05
# curatune's manifest timings, in the order the table shows them (every step train_model times).
STEPS = ("load", "tokenize", "frozen_baseline", "train", "save", "predict")
SAME_SETTINGS: dict[str, Any] = {
    "lora_target_modules": ["query", "value"], "lr": PLAIN["lr"], "head_lr": PLAIN["lr"], "warmup_ratio": 0.0,
    "weight_decay": 0.0, "lp_init": False, "pooling": "cls", "batch_size": PLAIN["batch"],
    "epochs": float(PLAIN["epochs"])}


def _ours(train: pl.DataFrame, val: pl.DataFrame, tmp: Path, name: str) -> dict[str, Any]:
    run = train_ours(train, val, tmp, name, **SAME_SETTINGS)
    timings = json.loads((Path(run["out_dir"]) / "manifest.json").read_text())["timings"]
    # A renamed step must stop the run (at the warm-up), not move its seconds into "rest" unseen.
    missing = [s for s in STEPS if s not in timings]
    if missing:
        raise KeyError(f"the train manifest times no step {', '.join(missing)} (it has {', '.join(timings)})")
    return {**run, "steps": {s: float(timings[s]) for s in STEPS}}


def _script(train: pl.DataFrame, val: pl.DataFrame, out: Path) -> dict[str, Any]:
    run = _plain_script(train, val, out, group_by_length=True)
    return {**run, "steps": {"train": run["train_s"], "predict": run["infer_s"]}}


def _row(order: int, run: dict[str, Any]) -> tuple:
    steps = run["steps"]
    rest = run["wall"] - sum(steps.values())

    def sec(name: str) -> str:
        return f"{steps[name]:.1f}" if name in steps else "-"

    return (str(order), run["name"], f"{run['wall']:.1f}", *(sec(s) for s in STEPS), f"{rest:.1f}",
            f"{run['acc']:.4f}")


def _repeats(ours_1: dict[str, Any], ours_2: dict[str, Any], script_1: dict[str, Any],
             script_2: dict[str, Any]) -> str:
    """Whether each side's two runs reached the same validation accuracy."""

    def same(a: dict[str, Any], b: dict[str, Any]) -> str:
        return "the same" if a["acc"] == b["acc"] else f"{a['acc']:.4f} and {b['acc']:.4f}"

    why = (" (the script builds its head and LoRA matrices before its Trainer sets the seed, so they depend on "
           "what ran before it)") if script_1["acc"] != script_2["acc"] else ""
    return (f"Validation accuracy of curatune's two runs: {same(ours_1, ours_2)}; of the script's two: "
            f"{same(script_1, script_2)}{why}.")


def run(data_dir: Path, quick: bool = False) -> str:
    load0 = os.getloadavg()[0]
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    warm_train, _ = banking77_splits(data_dir, WARMUP_PER_LABEL)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _ours(warm_train, val.head(64), tmp / "warmup", "warm-up")
        _script(warm_train, val.head(64), tmp / "warmup-script")
        ours_1 = _ours(train, val, tmp / "a1", "curatune train")
        script_1 = _script(train, val, tmp / "b1")
        script_2 = _script(train, val, tmp / "b2")
        ours_2 = _ours(train, val, tmp / "a2", "curatune train")
    script_1["name"] = script_2["name"] = "plain Trainer script (length-grouped batches)"
    order = [ours_1, script_1, script_2, ours_2]
    ours_wall = statistics.mean(r["wall"] for r in (ours_1, ours_2))
    script_wall = statistics.mean(r["wall"] for r in (script_1, script_2))
    ours_train = statistics.mean(r["steps"]["train"] for r in (ours_1, ours_2))
    script_train = statistics.mean(r["steps"]["train"] for r in (script_1, script_2))
    baseline = statistics.mean(r["steps"]["frozen_baseline"] for r in (ours_1, ours_2))
    ratio = ours_wall / script_wall
    pairs = ", ".join(f"{a['wall'] / b['wall']:.3f}x" for a, b in ((ours_1, script_1), (ours_2, script_2)))
    out = [header("Trainer overhead (curatune train vs the plain Trainer script, same settings)"),
           f"Banking77 train, 10% of each label held out as validation (seed 0): {train.height:,} train rows"
           f"{' (quick: ' + str(QUICK_PER_LABEL) + ' per label)' if quick else ''}, {val.height:,} validation rows. "
           f"Settings of the plain script for both: LoRA r=8 on query/value, lr {PLAIN['lr']:g}, batch "
           f"{PLAIN['batch']}, {PLAIN['epochs']} epochs, no warm-up, no LP-FT head; the script with Trainer's "
           "length-grouped batches (as curatune pads them). CPU only; load average at start "
           f"{load0:.1f} on {os.cpu_count()} cores (shared with other jobs: the runs alternate, curatune, script, "
           "script, curatune, after an untimed warm-up of each).\n",
           "### Wall time, in the order run (seconds)\n\n"
           "curatune's columns are every step its manifest times; \"rest\" is its wall time outside them "
           "(building the model and the Trainer, the paired bootstrap against the frozen baseline, writing the "
           "outputs). The script's training and prediction are timed around `trainer.train()` and "
           "`trainer.predict()`; its \"rest\" is loading the model, tokenising (`datasets.map`, so its tokenize "
           "column is empty) and building the Trainer.\n\n" + table(
               ("order", "run", "wall", "read data", "tokenize", "frozen baseline", "training", "save", "predict",
                "rest",
                "val accuracy"), [_row(i + 1, r) for i, r in enumerate(order)]),
           f"\n**Overhead: {ratio:.3f}x** wall time, {ratio - 1:+.1%} (mean of curatune's two runs, "
           f"{ours_wall:.0f} s, over the script's two, {script_wall:.0f} s; goal: at most "
           f"{GOAL - 1:+.0%}, {'met' if ratio <= GOAL else 'not met'}). Each curatune run over the script run next "
           f"to it: "
           f"{pairs}. Training alone: {ours_train:.0f} s vs {script_train:.0f} s "
           f"({ours_train / script_train:.3f}x; curatune's includes its evaluation and checkpoint every epoch, the "
           f"script's neither).\n\n"
           f"The frozen baseline took {baseline:.0f} s of curatune's {ours_wall:.0f} s ({baseline / ours_wall:.1%}): "
           f"one forward pass of every train, validation and test row through the base encoder, then a logistic "
           f"regression. It is what tells the user whether fine-tuning beat the frozen encoder at all (and with "
           f"LP-FT, the default, it is also the head's initialisation). Without it, by subtraction (not a run), "
           f"curatune's mean wall time would be {(ours_wall - baseline) / script_wall:.3f}x the script's.\n\n"
           "The accuracies are shown beside the times, not as a comparison: the two runs share the LoRA settings "
           "but not the model or its selection (curatune classifies from the [CLS] vector where the script's head "
           "adds BERT's pretrained pooler, keeps the epoch with the best validation macro-F1 where the script "
           "keeps its last, and seeds with 0 where the script's Trainer uses its default, 42). "
           f"{_repeats(ours_1, ours_2, script_1, script_2)}\n",
           f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.\n"]
    return "\n".join(out)

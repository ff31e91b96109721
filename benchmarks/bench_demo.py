"""Curation pays on the demo data: the same trainer on the raw and on the curated demo transcripts.

The demo plants duplicates, train/test leakage and wrong labels (curatune.demo). Both runs are
anonymised (nothing trains on personal data); the raw run does nothing else, the curated run
deduplicates and drops the rows the label-issues step flags (``policy = "drop"``). Both models are
scored on the test rows both runs kept, whose labels are clean (the generator never flips
validation or test labels), with a paired bootstrap interval.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import header, table
from curatune.config import load_config
from curatune.curate.pipeline import run_curation
from curatune.demo import generate_demo
from curatune.demo.generator import DEFAULT_CONVERSATIONS
from curatune.train import train_model
from curatune.train.outputs import paired_comparison
from curatune.train.run import training_epochs

QUICK_CONVERSATIONS = 600

VARIANTS = {"raw (anonymised only)": (["anonymise"], "flag"),
            "curated (dedup + anonymise + label issues dropped)": (["dedup", "anonymise", "label_issues"], "drop")}


def run(data_dir: Path, quick: bool = False) -> str:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        conversations = QUICK_CONVERSATIONS if quick else DEFAULT_CONVERSATIONS
        paths = generate_demo(tmp / "data", n_conversations=conversations, seed=7)
        out, preds, rows = {}, {}, []
        for name, (steps, policy) in VARIANTS.items():
            cfg = load_config(paths["config"])
            cfg.curate.steps = steps
            cfg.curate.label_issues.policy = policy
            run = tmp / name.split()[0]
            t0 = time.perf_counter()
            run_curation(cfg, run / "curate")
            res = train_model(cfg, run / "curate", run / "train")
            out[name] = time.perf_counter() - t0
            preds[name] = pl.read_parquet(Path(res["out_dir"]) / "predictions.parquet").filter(
                pl.col("split") == "test")
            train_rows = pl.read_parquet(run / "curate" / "curated.parquet").filter(pl.col("split") == "train").height
            rows.append([name, train_rows])
        raw_name, cur_name = list(VARIANTS)
        both = preds[raw_name].select("row_id", "label", pl.col("predicted").alias("raw")).join(
            preds[cur_name].select("row_id", pl.col("predicted").alias("cur")), on="row_id")
        labels = sorted(set(both["label"]) | set(both["raw"]) | set(both["cur"]))
        idx = {lab: i for i, lab in enumerate(labels)}
        gold, raw, cur = (np.array([idx[v] for v in both[c]]) for c in ("label", "raw", "cur"))
        cmp = paired_comparison(gold, cur, raw, len(labels), seed=0)
        for r, pred in zip(rows, (raw, cur), strict=True):
            r += [f"{(pred == gold).mean():.4f}", f"{out[r[0]]:.0f}"]
        a = cmp["accuracy"]
    return (header("Curation pays on the demo data")
            + f"Demo transcripts (seed 7, {conversations:,} conversations), the demo config's training "
              f"settings (method {cfg.train.method}, {training_epochs(cfg.train):g} epochs, batch "
              f"{cfg.train.batch_size}, the rest the trainer's defaults); scored on the {len(gold):,} test rows both "
              f"runs kept (clean labels). CPU cores: {os.cpu_count()}.\n\n"
            + table(("training set", "train rows", "test accuracy", "curate + train s"), rows)
            + f"\nCurated minus raw, test accuracy: {a['difference']:+.3f} [{a['ci'][0]:+.3f}, {a['ci'][1]:+.3f}] "
              "(paired bootstrap 95% CI).\n")

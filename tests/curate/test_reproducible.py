"""Curation writes the same tables in every process. Nothing a step decides may hang on the order of
a set: string hashes are salted per process (PYTHONHASHSEED), and Presidio de-duplicates findings
through a set, which once made one text's place a person in some runs and not in others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from curatune.demo import generate_demo

TABLES = ("curated", "excluded", "ledger")


def _curate(paths: dict[str, str], out: Path, hash_seed: str) -> dict[str, pl.DataFrame]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
    proc = subprocess.run([sys.executable, "-m", "curatune", "curate", paths["data"], "-c", paths["config"],
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {t: pl.read_parquet(out / f"{t}.parquet") for t in TABLES}


def test_the_demo_curated_in_two_processes_gives_the_same_tables(tmp_path):
    paths = generate_demo(tmp_path / "data", n_conversations=150, seed=11)
    first = _curate(paths, tmp_path / "one", "1")
    second = _curate(paths, tmp_path / "two", "2")
    # Every step ran and changed something, so the comparison covers each of them.
    reasons = set(first["ledger"]["reasons"].explode().drop_nulls())
    assert {"exact_duplicate", "pii_found", "label_issue"} <= reasons, reasons
    for t in TABLES:
        assert first[t].equals(second[t]), t

"""A tiny BERT built from config (2 layers, hidden 32) with the default model's WordPiece vocabulary,
and a small keyword-separable curated set, so training tests run in seconds on CPU."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from curatune.config import Config

TOPICS = {
    "card": ["card", "lost", "stolen", "blocked", "atm", "pin"],
    "refund": ["refund", "money", "payment", "charged", "twice", "return"],
    "login": ["password", "login", "account", "locked", "reset", "email"],
}
FILLER = ["please", "help", "my", "i", "the", "need", "with", "today", "can", "you", "why", "is"]


def make_rows(n: int, seed: int, split: str, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    labels = sorted(TOPICS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(TOPICS[label], 3) + rng.sample(FILLER, rng.randint(2, 6))
        rng.shuffle(words)
        # A few long texts so truncation happens.
        if i % 17 == 0:
            words = words * 8
        rows.append({"row_id": f"{prefix}:{i}", "text": " ".join(words), "label": label, "split": split,
                     "channel": rng.choice(["chat", "email"])})
    return rows


def write_curated(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(path / "curated.parquet")
    # What marks a curate stage complete (the CLI looks for it).
    (path / "manifest.json").write_text(json.dumps({"stage": "curate", "status": "complete"}))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from curatune.embeddings import resolve_model_path

    d = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(resolve_model_path("default"))
    tok.save_pretrained(d)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return d


@pytest.fixture(scope="session")
def curated_dir(tmp_path_factory) -> Path:
    """120 train rows and 30 test rows; no validation split (the trainer holds 10% of train out)."""
    d = tmp_path_factory.mktemp("curate")
    return write_curated(d, make_rows(120, 1, "train", "tr") + make_rows(30, 2, "test", "te"))


def tiny_config(model: Path, **train) -> Config:
    cfg = Config()
    cfg.train.model = str(model)
    cfg.train.epochs = 2
    cfg.train.batch_size = 16
    cfg.train.lr = 5e-3
    cfg.train.head_lr = 5e-3
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg

"""One short run on the embedded default model (all-MiniLM-L6-v2): a few LoRA steps, real weights."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from curatune.config import Config
from curatune.train import load_tuned_model, train_model
from tests.train.conftest import make_rows, write_curated


def test_default_model_few_steps(tmp_path):
    cur = write_curated(tmp_path / "cur", make_rows(48, 3, "train", "a") + make_rows(12, 4, "validation", "v"))
    cfg = Config()
    cfg.train.epochs = 1.0
    cfg.train.batch_size = 16
    out = tmp_path / "out"
    res = train_model(cfg, cur, out)
    man = json.loads((out / "manifest.json").read_text())
    assert man["model"]["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    # The embedded weights' licence, stated on the card.
    assert "\nlicense: apache-2.0\n" in (out / "README.md").read_text().split("---")[1]
    assert man["model"]["pooling"] == "mean"  # from the model's 1_Pooling config
    assert man["model"]["model_limit"] == 256  # sentence_bert_config max_seq_length
    assert man["training"]["global_step"] == 3
    assert man["model"]["trainable_parameters"] < 0.05 * man["model"]["parameters"]  # LoRA
    # Pretrained sentence embeddings separate these topics; fine-tuning keeps them apart.
    assert res["base_metrics"]["validation"]["accuracy"] >= 0.9
    assert res["metrics"]["validation"]["accuracy"] >= 0.9

    model, tok = load_tuned_model(out)
    preds = pl.read_parquet(out / "predictions.parquet")
    texts = dict(zip(*pl.read_parquet(cur / "curated.parquet").select("row_id", "text").to_dict().values(),
                     strict=True))
    import torch

    batch = tok([texts[r] for r in preds["row_id"]], padding=True, truncation=True,
                max_length=man["model"]["max_length"], return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**batch).logits.double(), -1).numpy()
    assert np.allclose(probs, np.asarray(preds["probabilities"].to_list()), atol=1e-4)

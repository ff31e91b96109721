"""The optimizer CuratuneTrainer builds: the head and the body at their own learning rates."""

from __future__ import annotations

import pytest

from curatune.train.loop import CuratuneTrainer
from curatune.train.modeling import build_classifier


def test_head_and_body_train_at_their_own_rates_and_biases_skip_weight_decay(tiny_model, tmp_path):
    from transformers import TrainingArguments

    model = build_classifier(str(tiny_model), ["a", "b", "c"], pooling="mean")
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, use_cpu=True,
                             report_to="none")
    opt = CuratuneTrainer(model=model, args=args, head_lr=2e-2).create_optimizer()
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert lr_of[id(params["classifier.weight"])] == pytest.approx(2e-2)
    assert lr_of[id(params["backbone.encoder.layer.0.output.dense.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["backbone.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3)
    assert wd_of[id(params["classifier.weight"])] == 0.01 and wd_of[id(params["classifier.bias"])] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(params)  # every parameter, once

"""Method defaults: 0 in [train] lr / head_lr / epochs means the measured default for the method."""

from __future__ import annotations

import re

import pytest

from curatune.config import TrainConfig
from curatune.errors import CuratuneError
from curatune.train.run import learning_rates, training_epochs


@pytest.mark.parametrize(("method", "epochs", "body_lr"), [("lora", 5.0, 1e-3), ("full", 5.0, 1e-4)])
def test_zero_takes_the_method_default(method, epochs, body_lr):
    tc = TrainConfig(method=method)
    assert training_epochs(tc) == epochs
    assert learning_rates(tc) == (body_lr, 1e-3)


def test_configured_values_win():
    tc = TrainConfig(method="full", epochs=2.0, lr=3e-5, head_lr=2e-2)
    assert training_epochs(tc) == 2.0
    assert learning_rates(tc) == (3e-5, 2e-2)


def test_a_fresh_head_gets_the_large_head_learning_rate():
    assert learning_rates(TrainConfig(lp_init=False))[1] == 1e-1


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("batch_size", 0, ">= 1"), ("epochs", -1.0, ">= 0 (0 = the method's default)"), ("warmup_ratio", 1.0, "in [0, 1)"),
    ("lr", -1e-4, ">= 0"), ("grad_accum", 0, ">= 1"), ("eval_steps", -5, ">= 0 (0 = once per epoch)"),
    ("lora_dropout", 1.0, "in [0, 1)"), ("sam_rho", -0.05, ">= 0 (0 = off)"),
    ("adversarial_eps", -1.0, ">= 0 (0 = off)"), ("head_lr", -0.1, ">= 0"), ("weight_decay", -0.01, ">= 0"),
    ("lora_r", 0, ">= 1"), ("max_length", -1, ">= 0 (0 = measured)"),
    ("early_stopping_patience", -1, ">= 0 (0 = never stop early)"),
    # numpy and torch take no other seed: -1 ended in a traceback from the split or from set_seed.
    ("seed", -1, "in [0, 2**32)"), ("seed", 2**32, "in [0, 2**32)"),
])
def test_unusable_settings_are_refused_by_name(key, value, rule):
    with pytest.raises(CuratuneError, match=re.escape(f"[train] {key} must be {rule}, got {value!r}")):
        TrainConfig(**{key: value}).check()


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_adversarial_training_is_refused_where_the_word_embeddings_are_frozen(method):
    with pytest.raises(CuratuneError, match=re.escape(f'adversarial_eps = 1.0 moves the word embeddings, which '
                                                      f'method = "{method}" keeps frozen')):
        TrainConfig(method=method, adversarial_eps=1.0).check()
    TrainConfig(method="full", adversarial_eps=1.0).check()


def test_the_defaults_pass_the_check():
    TrainConfig().check()
    TrainConfig(method="full", warmup_ratio=0.0, lora_dropout=0.0, weight_decay=0.0).check()

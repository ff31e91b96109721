"""Method defaults: 0 in [train] lr / head_lr / epochs means the measured default for the method."""

from __future__ import annotations

import pytest

from curatune.config import TrainConfig
from curatune.train.run import learning_rates, training_epochs


@pytest.mark.parametrize(("method", "epochs", "body_lr"), [("lora", 3.0, 1e-3), ("full", 5.0, 1e-4)])
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

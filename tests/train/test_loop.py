"""What CuratuneTrainer changes in the stock Trainer: the head and the body at their own learning rates,
the sharpness-aware step and the adversarial (FGM) step."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from curatune.train.loop import CuratuneTrainer, unused_trainable_parameters
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


def _no_dropout_classifier(tiny_model, tmp_path):
    # Dropout off so that the trainer's passes and the hand-computed ones see the same function.
    d = tmp_path / "model"
    shutil.copytree(tiny_model, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (d / "config.json").write_text(json.dumps(cfg))
    return build_classifier(str(d), ["a", "b", "c"], pooling="mean", dropout=0.0)


def _batch(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = tok(["my card was stolen", "refund the payment please", "reset my password", "atm kept my card"],
              padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor([0, 1, 2, 0])}


def _grads(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def _step_after_an_earlier_micro_batch(model, batch, weights, tmp_path, **trainer_kwargs) -> list[torch.Tensor]:
    """Puts ``weights`` back, plants a gradient of an earlier micro-batch, takes one trainer step and
    checks it logs the unmoved weights' loss and leaves the weights as they were; returns the planted
    gradient."""
    from transformers import TrainingArguments

    with torch.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(w)
    earlier = [torch.full_like(w, 0.25) for w in weights]
    for p, e in zip(model.parameters(), earlier, strict=True):
        p.grad = e.clone()
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    trainer = CuratuneTrainer(model=model, args=args, head_lr=1e-3, **trainer_kwargs)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which this test skips
    loss = trainer.training_step(model, dict(batch))
    assert loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
    for p, w in zip(model.parameters(), weights, strict=True):
        assert torch.allclose(p.detach(), w, atol=1e-7)
    return earlier


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_the_sam_step_takes_the_gradient_at_the_moved_weights_and_keeps_earlier_micro_batches(
        tiny_model, tmp_path, rho):
    model = _no_dropout_classifier(tiny_model, tmp_path)
    batch = _batch(tiny_model)
    weights = [p.detach().clone() for p in model.parameters()]
    g = _grads(model, batch)
    norm = torch.linalg.vector_norm(torch.stack([x.norm() for x in g]))
    with torch.no_grad():
        for p, x in zip(model.parameters(), g, strict=True):
            p.add_(x * (rho / norm))
    expected = _grads(model, batch)  # at w + rho * g / |g|; at w itself when rho = 0
    earlier = _step_after_an_earlier_micro_batch(model, batch, weights, tmp_path, sam_rho=rho)
    for (name, p), e, x in zip(model.named_parameters(), earlier, expected, strict=True):
        assert torch.allclose(p.grad, e + x, atol=1e-5, rtol=1e-4), name
    if rho:
        # The moved point's gradient differs from the plain one: the test sees the ascent step.
        assert not torch.allclose(expected[0], g[0], atol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_the_adversarial_step_adds_the_gradient_at_the_moved_embeddings_and_keeps_earlier_micro_batches(
        tiny_model, tmp_path, eps):
    model = _no_dropout_classifier(tiny_model, tmp_path)
    batch = _batch(tiny_model)
    emb = model.get_input_embeddings().weight
    weights = [p.detach().clone() for p in model.parameters()]
    plain = _grads(model, batch)
    g_emb = emb.grad.detach().clone()
    with torch.no_grad():
        emb.add_(g_emb * (eps / g_emb.norm()))
    moved = _grads(model, batch)  # every parameter's gradient with only the embedding matrix moved
    # The earlier micro-batch's gradient must not steer the move either.
    earlier = _step_after_an_earlier_micro_batch(model, batch, weights, tmp_path, adversarial_eps=eps)
    for (name, p), e, g, m in zip(model.named_parameters(), earlier, plain, moved, strict=True):
        expected = e + g + m if eps else e + g  # eps 0 is the stock step: one pass
        assert torch.allclose(p.grad, expected, atol=1e-5, rtol=1e-4), name
    if eps:
        assert not torch.allclose(moved[0], plain[0], atol=1e-5)  # the move changed the gradient


def test_the_adversarial_step_is_refused_when_the_word_embeddings_do_not_train(tiny_model, tmp_path):
    from transformers import TrainingArguments

    from curatune.errors import CuratuneError

    model = build_classifier(str(tiny_model), ["a", "b", "c"], pooling="mean")
    model.get_input_embeddings().weight.requires_grad_(False)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    with pytest.raises(CuratuneError, match="adversarial_eps = 1.0 moves the word embeddings, which this model "
                                            "keeps frozen"):
        CuratuneTrainer(model=model, args=args, head_lr=1e-3, adversarial_eps=1.0)


@pytest.mark.parametrize("name", ["sam_rho", "adversarial_eps"])
def test_two_pass_steps_are_refused_under_deepspeed(name):
    from curatune.errors import CuratuneError
    from curatune.train.loop import check_launch_supported

    with pytest.raises(CuratuneError, match=f"{name} = 0.05 does not work under DeepSpeed"):
        check_launch_supported({name: 0.05}, deepspeed=True, zero3=False, fsdp=False)
    check_launch_supported({name: 0.0}, deepspeed=True, zero3=False, fsdp=False)  # ZeRO-1/2 training is fine
    check_launch_supported({name: 0.05}, deepspeed=False, zero3=False, fsdp=False)  # one device or DDP


@pytest.mark.parametrize(("deepspeed", "zero3", "fsdp", "wrapper"),
                         [(True, True, False, "DeepSpeed ZeRO-3"), (False, False, True, "FSDP")])
def test_launches_that_shard_the_weights_are_refused(deepspeed, zero3, fsdp, wrapper):
    """The main process alone saves and predicts, from its own copy of the weights: under FSDP or
    ZeRO-3 a shard (a hang, a traceback or a model saved with wrong weights)."""
    from curatune.errors import CuratuneError
    from curatune.train.loop import check_launch_supported

    with pytest.raises(CuratuneError, match=f"training under {wrapper} is not supported: it shards the weights"):
        check_launch_supported({"sam_rho": 0.0}, deepspeed=deepspeed, zero3=zero3, fsdp=fsdp)


def test_a_sam_trainer_on_one_device_is_built(tiny_model, tmp_path):
    from transformers import TrainingArguments

    model = build_classifier(str(tiny_model), ["a", "b", "c"], pooling="mean")
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = CuratuneTrainer(model=model, args=args, head_lr=1e-3, sam_rho=0.05)
    assert (trainer.is_deepspeed_enabled, trainer.is_fsdp_enabled, trainer.sam_rho) == (False, False, 0.05)


def test_the_parameters_a_forward_pass_leaves_unused_are_named_and_no_gradient_is_left(tiny_model):
    # What DDP is told to search for at every step under torchrun / accelerate launch.
    model = build_classifier(str(tiny_model), ["a", "b", "c"], pooling="mean")
    batch = _batch(tiny_model)
    rng = torch.get_rng_state()
    assert unused_trainable_parameters(model, batch) == []
    # In eval mode, so no dropout draws: a seeded run's random stream is where it was.
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and all(p.grad is None for p in model.parameters())
    # A module the forward pass never calls (as a pretraining pooler would be, were it kept).
    model.extra = torch.nn.Linear(4, 2)
    assert unused_trainable_parameters(model, batch) == ["extra.weight", "extra.bias"]
    model.extra.requires_grad_(False)  # frozen parameters take no gradient, so DDP ignores them
    assert unused_trainable_parameters(model, batch) == []


def test_launch_sharding_reads_accelerate_s_environment_as_accelerate_does(monkeypatch, tmp_path):
    """An FSDP launch is refused before the Trainer is built; a job wrapper exporting the variable
    empty is no FSDP launch for accelerate, and was a ValueError traceback through its flag parser."""
    from transformers import TrainingArguments

    from curatune.train.loop import launch_sharding

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert launch_sharding(args) == {"deepspeed": False, "zero3": False, "fsdp": False}
    for value, fsdp in (("true", True), ("True", True), ("", False), ("false", False), ("1", False)):
        monkeypatch.setenv("ACCELERATE_USE_FSDP", value)
        assert launch_sharding(args)["fsdp"] is fsdp, value

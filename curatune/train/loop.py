"""The transformers Trainer as curatune drives it.

Small departures from the stock Trainer, each for a measured reason:
- separate learning rates for the head and the body (a probe-initialised head and a pretrained
  body want different step sizes);
- length-grouped batches drawn from a generator seeded by (seed, epoch), so padding stays small
  on CPU and a resumed run draws exactly the batches the uninterrupted one did;
- metrics are accuracy and macro-F1 over rows whose label the model knows;
- optional sharpness-aware minimisation (SAM, Foret et al. 2021): each batch's gradient is taken
  at the weights moved ``sam_rho`` up that batch's own gradient, which favours flat minima and
  resists the wrong labels a support set has (benchmarks/bench_train_sam.py measures it);
- optional adversarial training on the word embeddings (FGM, Miyato et al. 2017): each batch's
  gradient gains that of the same batch with the embedding matrix moved ``adversarial_eps`` along
  its own gradient (benchmarks/bench_train_adversarial.py measures it).
Everything else (checkpointing, resumption, mixed precision, ``report_to`` trackers,
``accelerate launch``/``torchrun`` multi-GPU) is the Trainer's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import Trainer
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_pt_utils import get_length_grouped_indices

from curatune.errors import CuratuneError
from curatune.train.data import IGNORE


class FeatureDataset(Dataset):
    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


class SeededLengthSampler(Sampler[int]):
    """Batches of similar length, shuffled by a generator seeded from (seed, epoch) alone."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))


def unused_trainable_parameters(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[str]:
    """Names of the trainable parameters one forward and backward pass over ``batch`` leaves without
    a gradient. DDP must search the autograd graph for such parameters at every step when there are
    any (or the step hangs or fails); when there are none, that search is wasted work.

    The pass runs in eval mode, so dropout draws nothing from the random state a seeded run relies
    on, and it leaves no gradient behind."""
    was_training = model.training
    model.eval()
    try:
        model(**batch).logits.float().sum().backward()
        return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def compute_metrics(eval_pred) -> dict[str, float]:
    from sklearn.metrics import f1_score

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    keep = labels != IGNORE
    pred = np.asarray(logits)[keep].argmax(-1)
    gold = np.asarray(labels)[keep]
    if len(gold) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    return {"accuracy": float((pred == gold).mean()),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0))}


def is_head_parameter(name: str) -> bool:
    return "classifier" in name.split(".")


def check_launch_supported(settings: dict[str, float], *, deepspeed: bool, zero3: bool, fsdp: bool) -> None:
    """Refuses a launch whose training would be silently wrong (``settings``: SAM and FGM, name -> value,
    0 = off).

    FSDP and DeepSpeed ZeRO-3 shard the weights across processes, while the main process alone saves
    the model and predicts from its own copy: a shard. DeepSpeed also steps the optimizer inside
    ``backward`` (SAM's and FGM's two passes would be two steps), and ZeRO keeps no full ``p.grad``.
    """
    if fsdp or zero3:
        wrapper = "FSDP" if fsdp else "DeepSpeed ZeRO-3"
        raise CuratuneError(f"training under {wrapper} is not supported: it shards the weights across processes, "
                            "and the main process saves and predicts from its own copy; launch with plain DDP "
                            f"(accelerate launch / torchrun without a {wrapper} config)")
    for name, value in settings.items():
        if value > 0 and deepspeed:
            raise CuratuneError(f"[train] {name} = {value} does not work under DeepSpeed: set {name} = 0, "
                                "or launch with plain DDP (accelerate launch / torchrun without a "
                                "DeepSpeed config)")


def launch_sharding(args) -> dict[str, bool]:
    """How ``accelerate launch`` (its environment) or ``args`` set this launch up, for
    ``check_launch_supported`` before the Trainer is built: the Trainer finds out only once built,
    after the earlier run's outputs are gone, and a refusal must lose nothing."""
    def set_by_accelerate(name: str) -> bool:  # read as accelerate's own state reads it
        return os.environ.get(name, "false").lower() == "true"

    return {"deepspeed": bool(args.deepspeed) or set_by_accelerate("ACCELERATE_USE_DEEPSPEED"),
            "zero3": is_deepspeed_zero3_enabled(),
            "fsdp": bool(args.fsdp) or set_by_accelerate("ACCELERATE_USE_FSDP")}


class CuratuneTrainer(Trainer):
    def __init__(self, *args, head_lr: float, length_sampler: SeededLengthSampler | None = None,
                 sam_rho: float = 0.0, adversarial_eps: float = 0.0, **kwargs) -> None:
        self.head_lr = head_lr
        self.length_sampler = length_sampler
        self.sam_rho = sam_rho
        self.adversarial_eps = adversarial_eps
        super().__init__(*args, **kwargs)
        check_launch_supported({"sam_rho": sam_rho, "adversarial_eps": adversarial_eps},
                               deepspeed=self.is_deepspeed_enabled, zero3=is_deepspeed_zero3_enabled(),
                               fsdp=self.is_fsdp_enabled)
        if adversarial_eps > 0:
            # Looked up only when used: a model without input embeddings trains fine without FGM.
            embeddings = self.accelerator.unwrap_model(self.model).get_input_embeddings()
            if not embeddings.weight.requires_grad:
                raise CuratuneError(f"[train] adversarial_eps = {adversarial_eps} moves the word embeddings, which "
                                    'this model keeps frozen: set method = "full", or adversarial_eps = 0')

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any],
                      num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        if self.sam_rho <= 0:
            return self._gradient_step(model, inputs, num_items_in_batch)
        params = [p for p in model.parameters() if p.requires_grad]
        # Gradients of earlier micro-batches (gradient accumulation) are set aside, so the ascent
        # direction is this batch's alone.
        earlier = [None if p.grad is None else p.grad.detach().clone() for p in params]
        # In place rather than set to None: DDP's gradient buckets may be views of these tensors.
        model.zero_grad(set_to_none=False)
        loss = self._gradient_step(model, inputs, num_items_in_batch)
        moved = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in moved]) if moved else None
        # The unmoved weights are copied back rather than the ascent subtracted: w + e - e is not w in
        # floating point, and under DDP each process's rounding would differ, so the copies drifted.
        unmoved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
        # A non-finite norm (an fp16 overflow) leaves the step to the grad scaler, which skips it.
        if norm is not None and torch.isfinite(norm) and norm > 0:
            with torch.no_grad():
                unmoved = [(p, p.detach().clone()) for p in moved]
                for p in moved:
                    p.add_(p.grad * (self.sam_rho / norm.to(p.grad.device)))
        # The earlier micro-batches' gradients go back before the second backward pass, not after it:
        # under DDP they were kept out of sync (no_sync) and this pass's all-reduce averages them with
        # the other processes'. Added afterwards, each process stepped with its own and the models drifted.
        with torch.no_grad():
            for p, g in zip(params, earlier, strict=True):
                if p.grad is not None and g is not None:
                    p.grad.copy_(g)
                elif p.grad is not None:
                    p.grad.zero_()
        # The step is taken with the gradient at the moved weights (unmoved when there was no direction);
        # the loss logged is the unmoved one's.
        self._gradient_step(model, inputs, num_items_in_batch)
        with torch.no_grad():
            for p, w in unmoved:
                p.copy_(w)
        return loss

    def _gradient_step(self, model: torch.nn.Module, inputs: dict[str, Any],
                       num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
        """The stock step; with ``adversarial_eps`` > 0 it adds the gradient of the same batch taken
        with the word-embedding matrix moved ``adversarial_eps`` along this batch's own gradient of it.
        Returns the unmoved loss."""
        if self.adversarial_eps <= 0:
            return super().training_step(model, inputs, num_items_in_batch)
        emb = self.accelerator.unwrap_model(model).get_input_embeddings().weight
        # Earlier micro-batches' gradient (gradient accumulation) is not this batch's direction: it is
        # set aside for the first pass and put back after it. Under DDP it was kept out of sync
        # (no_sync) and the first pass's all-reduce would mix the other processes' into the direction.
        earlier = None if emb.grad is None else emb.grad.detach().clone()
        if earlier is not None:
            with torch.no_grad():
                emb.grad.zero_()
        loss = super().training_step(model, inputs, num_items_in_batch)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(emb.grad)
            # Only the rows of the batch's tokens have a gradient: only they move, and only they are
            # copied to be put back (a copy of the whole matrix is vocabulary x hidden).
            rows = emb.grad.abs().sum(dim=1).nonzero().squeeze(1)
            # A non-finite norm (an fp16 overflow) leaves the step to the grad scaler, which skips it.
            shift = emb.grad[rows] * (self.adversarial_eps / norm) if torch.isfinite(norm) and norm > 0 else None
            if earlier is not None:
                emb.grad.add_(earlier)
            if shift is not None:
                # Copied back, not subtracted: see training_step.
                unmoved = emb[rows].clone()
                emb[rows] += shift
        # The second pass runs without a direction too (at the unmoved embeddings): under DDP its
        # all-reduce is the one that averages the earlier micro-batches' gradient put back above.
        super().training_step(model, inputs, num_items_in_batch)
        if shift is not None:
            with torch.no_grad():
                emb[rows] = unmoved
        return loss

    def _get_train_sampler(self, train_dataset=None):
        if self.length_sampler is not None:
            return self.length_sampler
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, p in opt_model.named_parameters():
            if p.requires_grad:
                groups.setdefault((is_head_parameter(name), name in decay), []).append(p)
        # Sorted keys: the group order must be the same on resume for the optimizer state to load.
        param_groups = [
            {"params": params, "lr": self.head_lr if head else self.args.learning_rate,
             "weight_decay": self.args.weight_decay if dec else 0.0}
            for (head, dec), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

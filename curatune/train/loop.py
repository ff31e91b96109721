"""The transformers Trainer as curatune drives it.

Three small departures from the stock Trainer, each for a measured reason:
- separate learning rates for the head and the body (a probe-initialised head and a pretrained
  body want different step sizes);
- length-grouped batches drawn from a generator seeded by (seed, epoch), so padding stays small
  on CPU and a resumed run draws exactly the batches the uninterrupted one did;
- metrics are accuracy and macro-F1 over rows whose label the model knows.
Everything else (checkpointing, resumption, mixed precision, ``report_to`` trackers,
``accelerate launch``/``torchrun`` multi-GPU) is the Trainer's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import Trainer
from transformers.trainer_pt_utils import get_length_grouped_indices

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


class CuratuneTrainer(Trainer):
    def __init__(self, *args, head_lr: float, length_sampler: SeededLengthSampler | None = None,
                 **kwargs) -> None:
        self.head_lr = head_lr
        self.length_sampler = length_sampler
        super().__init__(*args, **kwargs)

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

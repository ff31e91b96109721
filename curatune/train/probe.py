"""Frozen-encoder features and the linear probe on them.

One logistic regression serves twice: its predictions are the frozen baseline that fine-tuning
must beat (``base_predictions.parquet``), and its weights initialise the classification head
before fine-tuning (LP-FT, Kumar et al. 2022): a head that starts right sends small, meaningful
gradients into the encoder instead of random ones, which trains faster and distorts the
pretrained features less.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from curatune.train.tokens import Encoded

# The frozen-encoder anchor in the issue (and in sentence-transformers' own evaluations).
PROBE_C = 10.0


def _batches(enc: Encoded, batch_size: int) -> list[np.ndarray]:
    # Longest first: the first batch shows the peak memory, and padding stays small throughout.
    order = np.argsort(-np.array([len(f["input_ids"]) for f in enc.features]), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _autocast(device: str, precision: str):
    import torch

    # "cuda:0" under a launcher: the frozen baseline ran in fp32 whatever the manifest's precision said.
    if torch.device(device).type == "cuda" and precision in ("bf16", "fp16"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def pooled_features(model, tokenizer, enc: Encoded, *, device: str, precision: str = "fp32",
                    batch_size: int = 64, all_layers: bool = False) -> np.ndarray:
    """Sentence vectors as the classifier's head sees them: [N, H], or [layers+1, N, H] for every layer.

    ``model`` is a :class:`CuratuneForSequenceClassification` (or a peft wrapper of one).
    """
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    was_training = inner.training
    inner.eval()
    n = len(enc.features)
    hidden = inner.config.hidden_size
    n_layers = inner.backbone.config.num_hidden_layers + 1
    out = np.zeros((n_layers, n, hidden) if all_layers else (n, hidden), dtype=np.float32)
    try:
        with torch.inference_mode(), _autocast(device, precision):
            for idx in _batches(enc, batch_size):
                rows = [{k: v for k, v in enc.features[i].items() if k != "labels"} for i in idx]
                batch = tokenizer.pad(rows, return_tensors="pt").to(device)
                res = inner.backbone(**batch, output_hidden_states=all_layers, return_dict=True)
                if all_layers:
                    for layer, h in enumerate(res.hidden_states):
                        out[layer, idx] = inner.features(h, batch["attention_mask"]).float().cpu().numpy()
                else:
                    out[idx] = inner.features(res.last_hidden_state, batch["attention_mask"]).float().cpu().numpy()
    finally:
        inner.train(was_training)
    return out


def predict_probabilities(model, tokenizer, enc: Encoded, *, device: str, precision: str = "fp32",
                          batch_size: int = 64) -> np.ndarray:
    """Class probabilities [N, classes] from a classifier in eval mode (its head on its own features)."""
    import torch

    feats = pooled_features(model, tokenizer, enc, device=device, precision=precision, batch_size=batch_size)
    head = model.classifier
    with torch.inference_mode():
        logits = head(torch.as_tensor(feats, device=head.weight.device, dtype=head.weight.dtype))
    z = logits.double().cpu().numpy()
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Probe:
    """A fitted linear head: logits = features @ weight.T + bias, one row per class id."""

    weight: np.ndarray  # [classes, H]
    bias: np.ndarray  # [classes]
    iterations: int

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias.astype(np.float64)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = self.logits(features)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_probe(features: np.ndarray, y: np.ndarray, n_classes: int, *, class_weights: bool, seed: int,
              c: float = PROBE_C) -> Probe:
    """Multinomial logistic regression on frozen features; classes are ids 0..n_classes-1."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if class_weights else None,
                             random_state=seed)
    clf.fit(features, y)
    weight = np.zeros((n_classes, features.shape[1]))
    bias = np.zeros(n_classes)
    if len(clf.classes_) == 2:
        # sklearn keeps one logit for two classes; split it so softmax over two equals its sigmoid.
        w, b = clf.coef_[0], clf.intercept_[0]
        coef, intercept = np.stack([-w / 2, w / 2]), np.array([-b / 2, b / 2])
    else:
        coef, intercept = clf.coef_, clf.intercept_
    weight[clf.classes_] = coef
    bias[clf.classes_] = intercept
    return Probe(weight=weight, bias=bias, iterations=int(np.max(clf.n_iter_)))


def init_head_from_probe(model, probe: Probe) -> None:
    import torch

    head = model.classifier
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(probe.weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(probe.bias, dtype=head.bias.dtype))

"""Reading a finished train stage back: the tuned classifier, and tuned vs base sentence encoders.

Evaluation's forgetting measures compare the tuned encoder with the base one on the same texts;
both encoders here pool, normalise, truncate and cut to the same length as training did, so the
only difference between their vectors is the fine-tuning.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curatune.embeddings import Encoder
from curatune.rundir import MODEL_DIR, find_stage_dir, read_manifest
from curatune.train.run import ADAPTER_DIR, LABEL_MAP, TRAIN_CONFIG, quiet_peft_deprecation


def _train_dir(path: str | Path) -> Path:
    return find_stage_dir(path, "train")


def _settings(train_dir: Path) -> dict:
    return json.loads((train_dir / MODEL_DIR / TRAIN_CONFIG).read_text())


def _base_path(train_dir: Path, settings: dict) -> str:
    """The base model where the run found it (its manifest: the model folders leave paths out);
    re-resolved from the configured name when the run has moved machines."""
    from curatune.embeddings import resolve_model_path

    recorded = ((read_manifest(train_dir) or {}).get("model") or {}).get("path")
    return recorded if recorded and Path(recorded).is_dir() else resolve_model_path(settings["model"])


def load_tuned_model(train_dir: str | Path, *, adapter: bool = False, device: str = "cpu"):
    """(model, tokenizer) in eval mode: the merged model, or base + saved LoRA adapter (``adapter=True``)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import curatune.train.modeling  # noqa: F401  (registers the class with the Auto classes)

    hf_logging.disable_progress_bar()  # a "Loading weights" bar at the start of `curatune evaluate` is noise
    d = _train_dir(train_dir)
    if adapter:
        from peft import PeftModel

        from curatune.train.modeling import build_classifier

        if not (d / ADAPTER_DIR).is_dir():
            raise FileNotFoundError(f"{d / ADAPTER_DIR}: this run has no adapter (method was not lora)")
        s = _settings(d)
        labels = json.loads((d / MODEL_DIR / LABEL_MAP).read_text())["labels"]
        base = build_classifier(_base_path(d, s), labels, pooling=s["pooling"], normalize=s["normalize"])
        with quiet_peft_deprecation():
            model = PeftModel.from_pretrained(base, str(d / ADAPTER_DIR))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(d / MODEL_DIR))
    return model.to(device).eval(), AutoTokenizer.from_pretrained(str(d / MODEL_DIR))


class TunedEncoder(Encoder):
    """:class:`curatune.embeddings.Encoder` over a train stage's encoder (tuned or base).

    ``encode(texts) -> [N, H]`` L2-normalised float32 vectors; ``encode_layers(texts) -> [L+1, N, H]``
    the same pooling applied to every layer's hidden states (index 0 is the embedding layer).
    """

    def __init__(self, classifier, tokenizer, *, name: str, max_length: int, truncation: str,
                 device: str = "cpu", batch_size: int = 64) -> None:
        # Encoder.__init__ loads a plain AutoModel from a path; here the model is already built.
        self.classifier = classifier
        self.model = classifier.backbone
        self.tokenizer = tokenizer
        self.model_name = name
        self.path = name
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.truncation = truncation
        self.pooling = classifier.config.pooling

    @property
    def key(self) -> str:
        return f"{self.model_name}|{self.pooling}|{self.max_length}|{self.truncation}"

    def _features(self, texts: list[str], all_layers: bool) -> np.ndarray:
        from curatune.train.probe import pooled_features
        from curatune.train.tokens import encode

        enc = encode(self.tokenizer, list(texts), self.max_length, self.truncation)
        return pooled_features(self.classifier, self.tokenizer, enc, device=self.device,
                               batch_size=self.batch_size, all_layers=all_layers)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._features(texts, all_layers=False)

    def encode_layers(self, texts: list[str]) -> np.ndarray:
        return self._features(texts, all_layers=True)


def load_tuned_encoder(train_dir: str | Path, *, device: str = "cpu", batch_size: int = 64) -> TunedEncoder:
    """The fine-tuned encoder of a train stage (merged model), pooled as in training."""
    model, tokenizer = load_tuned_model(train_dir, device=device)
    s = _settings(_train_dir(train_dir))
    return TunedEncoder(model, tokenizer, name=f"tuned:{_train_dir(train_dir)}", max_length=s["max_length"],
                        truncation=s["truncation"], device=device, batch_size=batch_size)


def load_base_encoder(train_dir: str | Path, *, device: str = "cpu", batch_size: int = 64) -> TunedEncoder:
    """The base encoder a train stage started from, with the same pooling, length and truncation."""
    from curatune.embeddings import load_tokenizer
    from curatune.train.modeling import build_classifier

    d = _train_dir(train_dir)
    s = _settings(d)
    labels = json.loads((d / MODEL_DIR / LABEL_MAP).read_text())["labels"]
    base = _base_path(d, s)
    model = build_classifier(base, labels, pooling=s["pooling"], normalize=s["normalize"])
    # A base tokenizer without a pad token cannot pad a batch; this gives it the stand-in training used.
    tokenizer = load_tokenizer(base)
    return TunedEncoder(model.to(device).eval(), tokenizer, name=f"base:{s['base_model']}",
                        max_length=s["max_length"], truncation=s["truncation"], device=device,
                        batch_size=batch_size)

"""Fine-tuning on the curated set (transformers Trainer + peft): LoRA, full, or frozen encoder + head.

Library entry points:

- :func:`train_model` — what ``curatune train`` runs;
- :func:`load_tuned_model` — the merged model (or base + adapter) and its tokenizer;
- :func:`load_tuned_encoder` / :func:`load_base_encoder` — tuned and base sentence encoders with
  ``.encode(texts)`` and ``.encode_layers(texts)``, pooled exactly as training pooled.

Importing this package registers the classifier with transformers' Auto classes, so a saved
model directory loads with ``AutoModelForSequenceClassification.from_pretrained``.
"""

from curatune.train.encoder import TunedEncoder, load_base_encoder, load_tuned_encoder, load_tuned_model
from curatune.train.modeling import CuratuneClassifierConfig, CuratuneForSequenceClassification
from curatune.train.run import TrainingInterrupted, train_model

__all__ = [
    "CuratuneClassifierConfig",
    "CuratuneForSequenceClassification",
    "TrainingInterrupted",
    "TunedEncoder",
    "load_base_encoder",
    "load_tuned_encoder",
    "load_tuned_model",
    "train_model",
]

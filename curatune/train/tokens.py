"""Tokenisation with a chosen truncation strategy, and a maximum length measured from the data.

Texts are tokenised once without special tokens, cut by the strategy (``head`` keeps the start,
``tail`` the end, ``head_tail`` a quarter from the start and the rest from the end, after Sun et
al. 2019, "How to fine-tune BERT for text classification?"), then wrapped in the tokenizer's own
special tokens. How many texts were cut is counted per split and reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HEAD_SHARE = 0.25
# The measured default covers this share of training texts whole.
LENGTH_PERCENTILE = 99.0


@dataclass
class SpecialTokens:
    prefix: list[int]
    suffix: list[int]
    with_token_types: bool

    @property
    def count(self) -> int:
        return len(self.prefix) + len(self.suffix)


def special_tokens(tokenizer) -> SpecialTokens:
    """How this tokenizer wraps a single sequence, read off a one-word example."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return SpecialTokens(full[:i], full[i + len(plain):], "token_type_ids" in tokenizer.model_input_names)
    return SpecialTokens([], [], "token_type_ids" in tokenizer.model_input_names)


def model_length_limit(tokenizer, model_path: str, model_config: Any) -> int:
    """The longest input the model takes: position embeddings, the tokenizer's limit and, for
    sentence-transformers models, the ``max_seq_length`` they were trained and are used with."""
    limits = [int(getattr(model_config, "max_position_embeddings", 512) or 512)]
    if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits[0] -= 2  # RoBERTa offsets its position ids by the padding index
    if 0 < tokenizer.model_max_length < 100_000:
        limits.append(int(tokenizer.model_max_length))
    st = Path(model_path) / "sentence_bert_config.json"
    if st.is_file():
        seq = json.loads(st.read_text()).get("max_seq_length")
        if seq:
            limits.append(int(seq))
    return min(limits)


def length_percentile(lengths: np.ndarray) -> int | None:
    """The 99th percentile of token lengths (special tokens included), rounded up to a multiple of 8;
    None without texts."""
    if len(lengths) == 0:
        return None
    return max(8, math.ceil(float(np.percentile(lengths, LENGTH_PERCENTILE)) / 8) * 8)


def measured_max_length(lengths: np.ndarray, limit: int) -> int:
    """The default maximum length: the 99th percentile of token lengths, within the model's limit."""
    p = length_percentile(lengths)
    return min(limit, 128 if p is None else p)


def truncate(ids: list[int], budget: int, strategy: str) -> list[int]:
    if len(ids) <= budget:
        return ids
    if strategy == "head":
        return ids[:budget]
    if strategy == "tail":
        return ids[len(ids) - budget:]
    head = int(budget * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (budget - head):]


@dataclass
class Encoded:
    """One split, tokenised: per-row model inputs and its truncation statistics."""

    features: list[dict[str, list[int]]]
    lengths: np.ndarray  # untruncated token counts, special tokens included
    max_length: int

    @property
    def truncated(self) -> int:
        return int((self.lengths > self.max_length).sum())

    def stats(self) -> dict[str, Any]:
        n = len(self.lengths)
        return {
            "rows": n,
            "truncated": self.truncated,
            "truncated_share": round(self.truncated / n, 4) if n else 0.0,
            "tokens_dropped": int(np.clip(self.lengths - self.max_length, 0, None).sum()),
            "length_p50": float(np.percentile(self.lengths, 50)) if n else 0.0,
            "length_p95": float(np.percentile(self.lengths, 95)) if n else 0.0,
            "length_max": int(self.lengths.max()) if n else 0,
        }


def token_lengths(tokenizer, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"] if texts else []
    extra = special_tokens(tokenizer).count
    return ids, np.array([len(x) + extra for x in ids], dtype=np.int64)


def encode(tokenizer, texts: list[str], max_length: int, strategy: str, labels: np.ndarray | None = None,
           pre_tokenized: tuple[list[list[int]], np.ndarray] | None = None) -> Encoded:
    """Model inputs for ``texts``, each at most ``max_length`` tokens, cut by ``strategy``."""
    ids, lengths = pre_tokenized if pre_tokenized is not None else token_lengths(tokenizer, texts)
    sp = special_tokens(tokenizer)
    budget = max(1, max_length - sp.count)
    feats = []
    for i, row in enumerate(ids):
        body = sp.prefix + truncate(row, budget, strategy) + sp.suffix
        f = {"input_ids": body, "attention_mask": [1] * len(body)}
        if sp.with_token_types:
            f["token_type_ids"] = [0] * len(body)
        if labels is not None:
            f["labels"] = int(labels[i])
        feats.append(f)
    return Encoded(features=feats, lengths=lengths, max_length=max_length)

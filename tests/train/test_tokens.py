from __future__ import annotations

import numpy as np
import pytest

from curatune.embeddings import resolve_model_path
from curatune.train.tokens import encode, length_percentile, measured_max_length, special_tokens, truncate


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("default"))


def test_truncate_strategies_keep_the_right_ends():
    ids = list(range(20))
    assert truncate(ids, 8, "head") == [0, 1, 2, 3, 4, 5, 6, 7]
    assert truncate(ids, 8, "tail") == [12, 13, 14, 15, 16, 17, 18, 19]
    # A quarter from the start, the rest from the end.
    assert truncate(ids, 8, "head_tail") == [0, 1, 14, 15, 16, 17, 18, 19]
    assert truncate(ids[:5], 8, "head_tail") == [0, 1, 2, 3, 4]


def test_special_tokens_read_off_the_tokenizer(tokenizer):
    sp = special_tokens(tokenizer)
    assert sp.prefix == [tokenizer.cls_token_id] and sp.suffix == [tokenizer.sep_token_id]
    assert sp.with_token_types


def test_encode_matches_the_tokenizer_when_nothing_is_cut(tokenizer):
    texts = ["my card was stolen", "how do I reset my password please"]
    enc = encode(tokenizer, texts, 32, "head")
    assert [f["input_ids"] for f in enc.features] == tokenizer(texts)["input_ids"]
    assert enc.truncated == 0


def test_encode_counts_and_applies_truncation(tokenizer):
    long = " ".join(f"word{i}" for i in range(200))
    enc_head = encode(tokenizer, [long, "short text"], 16, "head", labels=np.array([1, 0]))
    enc_tail = encode(tokenizer, [long], 16, "tail")
    assert len(enc_head.features[0]["input_ids"]) == 16
    assert enc_head.features[0]["labels"] == 1
    assert enc_head.truncated == 1
    stats = enc_head.stats()
    assert stats["truncated"] == 1 and stats["rows"] == 2 and stats["tokens_dropped"] == enc_head.lengths[0] - 16
    full = tokenizer(long)["input_ids"]
    assert enc_head.features[0]["input_ids"][1:-1] == full[1:15]
    assert enc_tail.features[0]["input_ids"][1:-1] == full[-15:-1]


def test_measured_max_length_is_the_99th_percentile_rounded_up_and_capped():
    lengths = np.array([10] * 99 + [300])
    assert measured_max_length(lengths, 512) == 16  # p99 = 12.9 -> 16
    assert measured_max_length(np.array([900] * 10), 256) == 256
    assert measured_max_length(np.array([], dtype=int), 512) == 128


def test_a_length_capped_by_the_model_is_not_called_measured():
    """STAR dialogues: a 99th percentile of 568 tokens under a 256-token model was recorded as a
    measured maximum length of 256, while half the texts were cut."""
    from curatune.train.run import _max_length_source

    lengths = np.array([300] * 50 + [560] * 50)
    assert length_percentile(lengths) == 560 and measured_max_length(lengths, 256) == 256
    assert _max_length_source(0, length_percentile(lengths), 256) == (
        "the model's limit (the 99th percentile of train is 560 tokens)")
    assert _max_length_source(0, 40, 256) == "measured (99th percentile of train)"
    assert _max_length_source(64, 560, 256) == "config"
    assert length_percentile(np.array([], dtype=int)) is None

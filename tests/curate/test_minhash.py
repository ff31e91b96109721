"""Our MinHash + LSH gives datasketch's signatures and candidate pairs exactly."""

from __future__ import annotations

import random

# The dev extra, which make test installs: missing, these tests fail rather than skip.
import datasketch
import numpy as np

from curatune.curate.minhash import candidate_pairs, char_shingles, char_signatures, lsh_params, signatures

WORDS = ["card", "refund", "order", "late", "broken", "where", "my", "the", "please", "account", "top", "up",
         "transfer", "fee"]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    base = [" ".join(rng.choices(WORDS, k=rng.randint(2, 12))) for _ in range(n)]
    return base + [t + " please" for t in base[: n // 4]] + ["", "ab", "héllo wörld 😀"]


def test_signatures_equal_datasketch():
    texts = corpus()
    ours = char_signatures(texts, 5)
    assert (ours == signatures([char_shingles(t, 5) for t in texts])).all()
    for i, t in enumerate(texts):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode() for s in char_shingles(t, 5)])
        assert (m.hashvalues == ours[i]).all(), t


def test_signatures_do_not_depend_on_the_chunk_size():
    """Texts go in chunks (working memory, cache): a chunk boundary inside the corpus changes nothing."""
    texts = corpus()
    whole = char_signatures(texts, 5, chunk=len(texts))
    for chunk in (1, 7, 100):
        assert (char_signatures(texts, 5, chunk=chunk) == whole).all(), chunk


def test_lsh_params_and_pairs_equal_datasketch():
    texts = corpus()
    sig = char_signatures(texts, 5)
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    assert lsh_params(0.8, 128) == (lsh.b, lsh.r)
    sketches = []
    for i, t in enumerate(texts):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode() for s in char_shingles(t, 5)])
        sketches.append(m)
        lsh.insert(i, m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(sketches) for j in lsh.query(m) if i != j}
    # datasketch indexes empty sketches too; they match each other and nothing else.
    empty = {i for i, t in enumerate(texts) if not t}
    theirs = {p for p in theirs if not (set(p) & empty)}
    ours = set(map(tuple, candidate_pairs(sig, 0.8, max_bucket=10**9).tolist()))
    assert ours == theirs
    assert len(ours) > 50


def test_large_bucket_links_to_first_member():
    sig = np.zeros((500, 128), dtype=np.uint32)  # 500 identical signatures
    pairs = candidate_pairs(sig, 0.8, max_bucket=100)
    assert len(pairs) == 499
    assert set(pairs[:, 0]) == {0}

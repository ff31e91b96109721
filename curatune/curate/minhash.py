"""Vectorised MinHash + LSH, signature-compatible with datasketch (scheme "affine32").

datasketch hashes each shingle with SHA-1 and updates one MinHash per document in Python; its
LSH then inserts and queries one document at a time. Here every unique shingle of the corpus is
hashed once, the permutations run as one numpy operation per chunk of shingles, per-document
minima come from ``np.minimum.reduceat``, and LSH buckets are found by sorting band keys. The
hash, the permutation parameters and the band/row split are datasketch's own, so for the same
shingles, ``num_perm``, seed and threshold the candidate pairs are the same pairs (the benchmark
checks this against datasketch side by side).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.integrate import quad

_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_EMPTY = np.uint32(0xFFFFFFFF)


def word_shingles(text: str, k: int) -> list[str]:
    words = text.split()
    if len(words) <= k:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + k]) for i in range(len(words) - k + 1)]


def char_shingles(text: str, k: int) -> list[str]:
    if len(text) <= k:
        return [text] if text else []
    return [text[i:i + k] for i in range(len(text) - k + 1)]


def _sha1_hash32(data: bytes) -> int:
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def _fmix32(hv: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    return hv ^ (hv >> s3)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters for ``seed``: odd a, any b."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(shingle_sets: Sequence[Sequence[str]], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """MinHash signatures [n_docs, num_perm] (uint32) for the given shingle lists."""
    n = len(shingle_sets)
    vocab: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.zeros(n, dtype=np.int64)
    for d, shingles in enumerate(shingle_sets):
        seen = {vocab.setdefault(s, len(vocab)) for s in shingles}
        ids.extend(seen)
        lengths[d] = len(seen)
    hashed = _hash_strings(list(vocab))
    return _minhash(hashed[np.asarray(ids, dtype=np.int64)], lengths, num_perm, seed)


# Texts a chunk. Measured on 100,000 short texts after a datasketch run (benchmarks/bench_dedup.py):
# 50,000 took 3.0-3.4 s, 5,000-20,000 1.7 s; the larger chunk's working arrays fall out of cache
# and fault in fresh pages.
CHUNK = 10_000


def char_signatures(texts: Sequence[str], k: int, num_perm: int = 128, seed: int = 1,
                    chunk: int = CHUNK) -> np.ndarray:
    """``signatures([char_shingles(t, k) for t in texts])``, without building a Python string per
    shingle: windows of code points are keyed by a 64-bit polynomial hash, factorised, and only the
    distinct shingles are decoded and SHA-1 hashed. Texts go in chunks, so working memory is
    bounded by the chunk, not the corpus (only the [n, num_perm] output grows with n)."""
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for start in range(0, len(texts), chunk):
        out[start:start + chunk] = _char_signatures(texts[start:start + chunk], k, num_perm, seed)
    return out


def _char_signatures(texts: Sequence[str], k: int, num_perm: int, seed: int) -> np.ndarray:
    n = len(texts)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    joined = "".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    # One window per position that has k code points left inside its own text.
    n_win = np.maximum(lens - k + 1, 0)
    doc = np.repeat(np.arange(n), n_win)
    pos = np.arange(int(n_win.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_win) - n_win, n_win) + starts[doc]
    key = np.zeros(pos.size, dtype=np.uint64)
    for i in range(k):  # wrap-around multiply-add: a polynomial rolling hash mod 2^64
        key = key * np.uint64(0x100000001B3) + cps[pos + i] + np.uint64(1)
    # Texts shorter than k are one shingle each, as in char_shingles.
    short = np.flatnonzero((lens > 0) & (lens < k))
    keys_short = np.array([_poly_key(texts[d]) for d in short], dtype=np.uint64)
    doc = np.concatenate([doc, short])
    key = np.concatenate([key, keys_short])
    where = np.concatenate([pos, starts[short]])
    width = np.concatenate([np.full(pos.size, k), lens[short]])
    if short.size:  # put the short texts' entries back in document order
        order = np.argsort(doc, kind="stable")
        doc, key, where, width = doc[order], key[order], where[order], width[order]
    # Hash-based factorisation (O(n), no sort); pandas is already there through fairlearn.
    codes, uniq = pd.factorize(key)
    first = np.empty(uniq.size, dtype=np.int64)
    first[codes[::-1]] = np.arange(codes.size - 1, -1, -1)
    hashed = _hash_strings([joined[where[i]:where[i] + width[i]] for i in first])
    # A shingle repeated inside one text leaves its minimum unchanged: no per-text dedup needed.
    lengths = np.bincount(doc, minlength=n)
    return _minhash(hashed[codes], lengths, num_perm, seed)


def _poly_key(text: str) -> int:
    key = 0
    for ch in text:
        key = (key * 0x100000001B3 + ord(ch) + 1) % (1 << 64)
    return key


def _hash_strings(strings: list[str]) -> np.ndarray:
    """datasketch's default: SHA-1, first 4 bytes little-endian; then its MurmurHash3 pre-mix."""
    return _fmix32(np.fromiter((_sha1_hash32(s.encode("utf-8")) for s in strings), dtype=np.uint32,
                               count=len(strings)))


def _minhash(per_entry: np.ndarray, lengths: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Signatures from the hashed shingles of every document, concatenated in document order."""
    n = lengths.size
    sig = np.full((n, num_perm), _EMPTY, dtype=np.uint32)
    if per_entry.size == 0:
        return sig
    a, b = permutations(num_perm, seed)
    docs = np.flatnonzero(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths[docs])[:-1]])
    # One permutation at a time over all shingles: the working array stays in cache, which is
    # ~20x faster than materialising the [shingles, num_perm] matrix. uint32 wrap-around is
    # the modulo 2^32 of datasketch's affine32 scheme.
    work = np.empty_like(per_entry)
    out = np.empty((num_perm, docs.size), dtype=np.uint32)
    for k in range(num_perm):
        np.multiply(per_entry, a[k], out=work)
        np.add(work, b[k], out=work)
        out[k] = np.minimum.reduceat(work, starts)
    sig[docs] = out.T
    return sig


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """Bands and rows minimising the weighted false positive/negative mass (datasketch's rule)."""
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp, _ = quad(lambda s, b=b, r=r: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
            fn, _ = quad(lambda s, b=b, r=r: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)
            err = fp * fp_weight + fn * fn_weight
            if err < best:
                best, opt = err, (b, r)
    return opt


def candidate_pairs(sig: np.ndarray, threshold: float, *, max_bucket: int = 200) -> np.ndarray:
    """Pairs (i < j) that share at least one LSH band, as an int64 array [m, 2].

    A bucket larger than ``max_bucket`` (thousands of near-identical texts) would produce a
    quadratic number of pairs; its members are linked to the bucket's first member instead,
    which keeps the same clusters while memory stays linear.
    """
    n, num_perm = sig.shape
    bands, rows = lsh_params(threshold, num_perm)
    keys: list[np.ndarray] = []
    empty = (sig == _EMPTY).all(axis=1)
    live = np.flatnonzero(~empty)
    if live.size < 2:
        return np.zeros((0, 2), dtype=np.int64)
    for band in range(bands):
        block = sig[live, band * rows:(band + 1) * rows].astype(np.uint64)
        # Fold the band's r values into one 64-bit key (equal bands give equal keys; a collision
        # between different bands has probability ~2^-64), then factorise by hashing, not sorting.
        folded = np.zeros(live.size, dtype=np.uint64)
        for col in range(rows):
            folded = (folded ^ block[:, col]) * np.uint64(0x100000001B3) + np.uint64(col + 1)
        inverse, uniques = pd.factorize(folded)
        counts = np.bincount(inverse, minlength=uniques.size)
        multi = counts[inverse] > 1
        if not multi.any():
            continue
        members = live[multi]
        groups = inverse[multi]
        order = np.argsort(groups, kind="stable")
        members, groups = members[order], groups[order]
        bounds = np.flatnonzero(np.diff(groups)) + 1
        sizes = np.diff(np.concatenate([[0], bounds, [groups.size]]))
        starts = np.concatenate([[0], bounds])
        # Buckets of two are nearly all of them: pair them without a Python loop.
        two = starts[sizes == 2]
        lo, hi = np.minimum(members[two], members[two + 1]), np.maximum(members[two], members[two + 1])
        keys.append(lo * n + hi)
        for st, sz in zip(starts[sizes > 2], sizes[sizes > 2], strict=True):
            keys.append(_pairs_of(members[st:st + sz], max_bucket, n))
    if not keys:
        return np.zeros((0, 2), dtype=np.int64)
    uniq = np.unique(np.concatenate(keys))
    return np.stack([uniq // n, uniq % n], axis=1)


def _pairs_of(group: np.ndarray, max_bucket: int, n: int) -> np.ndarray:
    g = np.sort(group)
    if g.size > max_bucket:
        return g[0] * n + g[1:]
    i, j = np.triu_indices(g.size, k=1)
    return g[i] * n + g[j]


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    if pairs.size == 0:
        return np.zeros(0)
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)

"""Deduplication: exact (after normalisation), near (MinHash + LSH, plus embeddings for short
texts), conflicting labels, and train/test leakage, merged into clusters with one representative.

Keys are computed on the text before anonymisation (placeholders would merge different
conversations); only row ids, cluster ids and similarities are written, never text.

Which row survives a cluster: a test row over a validation row over a train row (so evaluation
stays honest and leaked training copies are what is removed), then the first occurrence.
A removed row is ``exact_duplicate`` / ``near_duplicate`` when it shares its representative's
split, ``leakage`` when it does not, and ``conflicting_label_duplicate`` when it is an exact copy
whose label differs (the representative is then flagged too: one text, two labels, one is wrong).
A near copy whose label differs is kept, and flagged with the same reason as its representative:
a one-word edit of a short query often is another intent ("order a card" / "order a virtual
card"), so the labels may both be right and dropping either would lose the example that tells the
two apart; a person settles which it is. A row still kept after all that which is an exact or
verified near copy of a kept row of a split ranked above its own (a near copy of such a kept label
conflict, say) is dropped as ``leakage`` too, named a copy of that row and put in that row's cluster, and
so are the other rows of its text; the texts it led, and the label conflict it gave its cluster, are
judged again without it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curatune.config import DedupConfig
from curatune.curate.base import CurationStep, StepResult, register_step
from curatune.curate.minhash import (
    candidate_pairs,
    char_signatures,
    estimated_jaccard,
    signatures,
    word_shingles,
)
from curatune.dataset import EXACT_DUPLICATE, LABEL_CONFLICT, LEAKAGE, NEAR_DUPLICATE

if TYPE_CHECKING:
    from curatune.embeddings import Encoder

SPLIT_PRIORITY = {"test": 0, "validation": 1}  # anything else (train, unknown) ranks after
# Truth columns that name another row: the planted copies dedup_truth_scores scores against.
TRUTH_LINKS = ("exact_dup_of", "near_dup_of", "leak_of")
# Up to this many vectors knn searches exactly; above, an HNSW graph keeps memory linear.
EXACT_KNN_MAX = 20_000


def key_expr(col: str = "text") -> pl.Expr:
    """The text copies share: normalised, or where normalising leaves nothing (emoji, "???"), which would
    otherwise make every such message one text, the text with only its form, case and spacing evened
    out, as normalising evens them: " 👍 " is a copy of "👍", "？？？" of "???", and "👎" of neither. No
    normalised text holds a symbol, so the two kinds of key never meet."""
    norm = normalise_expr(col)
    symbols = (pl.col(col).str.normalize("NFKC").str.replace_all(r"\p{Cf}", "").str.to_lowercase()
               .str.replace_all(r"\s+", " ").str.strip_chars())
    return pl.when(norm == "").then(symbols).otherwise(norm)


def normalise_expr(col: str = "text") -> pl.Expr:
    """Unicode NFKC without invisible format characters (zero-width space, BOM, soft hyphen: NFKC keeps
    them, and a pasted copy carries them), case-folded, apostrophes dropped ("I'm" -> "im", so
    contractions stay one word), other punctuation and symbols removed, whitespace collapsed."""
    return (
        # Case folding is lower case plus the letters whose capitals are written otherwise: "STRASSE"
        # is "Straße", and a word-final sigma is a sigma (Python's str.casefold, without a per-row call).
        pl.col(col).str.normalize("NFKC").str.replace_all(r"\p{Cf}", "").str.to_lowercase()
        .str.replace_all("ß", "ss").str.replace_all("ς", "σ")
        .str.replace_all(r"['’`]", "")
        .str.replace_all(r"[\p{P}\p{S}]+", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


@dataclass
class NearPairs:
    """Verified near-duplicate pairs (indices into the unique-text table) and their similarity."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray
    source: np.ndarray  # "minhash" | "embedding"

    def renumbered(self, index: np.ndarray) -> NearPairs:
        """The same pairs with item ``i`` called ``index[i]``."""
        return NearPairs(index[self.left], index[self.right], self.similarity, self.source)

    def where(self, keep: np.ndarray) -> NearPairs:
        return NearPairs(self.left[keep], self.right[keep], self.similarity[keep], self.source[keep])

    @classmethod
    def concat(cls, pairs: Sequence[NearPairs]) -> NearPairs:
        """The pairs of several passes as one set; an empty set when there are none."""
        if not pairs:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, dtype=object))
        # Each pass names its source in strings of its own width (or as objects, when it found
        # nothing), and numpy will not promote some of those mixes.
        return cls(np.concatenate([p.left for p in pairs]), np.concatenate([p.right for p in pairs]),
                   np.concatenate([p.similarity for p in pairs]),
                   np.concatenate([p.source.astype(object) for p in pairs]))


def minhash_signatures(texts: list[str], cfg: DedupConfig) -> np.ndarray:
    """Character k-grams by default: robust to 1-2 word edits in both short and long texts."""
    if cfg.shingle == "word":
        return signatures([word_shingles(t, cfg.word_shingle) for t in texts], cfg.num_perm, cfg.seed)
    return char_signatures(texts, cfg.char_shingle, cfg.num_perm, cfg.seed)


def minhash_pairs(texts: list[str], cfg: DedupConfig) -> NearPairs:
    sig = minhash_signatures(texts, cfg)
    pairs = candidate_pairs(sig, cfg.threshold)
    sim = estimated_jaccard(sig, pairs)
    keep = sim >= cfg.threshold
    pairs, sim = pairs[keep], sim[keep]
    return NearPairs(pairs[:, 0], pairs[:, 1], sim, np.full(len(sim), "minhash"))


# Words that turn a message into its opposite ("my card has (not) arrived"): never an edit a copy may have.
NEGATORS = frozenset({
    "not", "no", "never", "nor", "none", "nothing", "nobody", "nowhere", "cannot", "cant", "dont", "doesnt", "didnt",
    "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt", "couldnt", "havent", "hasnt", "hadnt", "aint",
    "without", "neither",
})


@functools.cache  # asked once per candidate pair: thousands of times per run
def _function_words() -> frozenset[str]:
    # sklearn's list, less the negators. It also holds words that carry meaning in support text ("top",
    # "up", "bill"); leaving those out as well was measured worse on injected copies (near precision
    # 0.973 vs 0.990, recall 0.950 vs 0.954: benchmarks/bench_dedup.py).
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) - NEGATORS


def negation_differs(only_a: Counter, only_b: Counter) -> bool:
    """A negation one side has and the other lacks (the words only each side has, counted)."""
    return bool(NEGATORS & (set(only_a) | set(only_b)))


def is_word_edit_copy(a: str, b: str, max_edits: int) -> bool:
    """True when ``b`` is ``a`` after at most ``max_edits`` word swaps, insertions or deletions.

    A content word exchanged for another is the mark of a paraphrase, not a copy ("top up my card"
    vs "top up my account": Banking77 alone has about a thousand such pairs), whether in place or
    elsewhere in the text ("cancel my card now" vs "my card now frozen"), so content words only one
    side has must all be on one side: added or left out, not exchanged. A negation added or left
    out is never a copy's edit.
    """
    ta, tb = a.split(), b.split()
    return _within_edits(ta, tb, max_edits) and _edits_are_a_copy(Counter(ta), Counter(tb))


def _within_edits(ta: list[str], tb: list[str], max_edits: int) -> bool:
    from rapidfuzz.distance import OSA

    return OSA.distance(ta, tb) <= max_edits


def _edits_are_a_copy(ca: Counter[str], cb: Counter[str]) -> bool:
    """The rest of :func:`is_word_edit_copy`, on the two texts' word counts."""
    only_a, only_b = ca - cb, cb - ca
    if negation_differs(only_a, only_b):
        return False
    function = _function_words()
    content_a = [w for w in only_a if w not in function]
    content_b = [w for w in only_b if w not in function]
    return not (content_a and content_b)


class SplitTexts:
    """Texts whose words are split once: the pair checks ask for a text's words once for every pair it
    is in. Words and word counts are kept the first time a pair needs them, so only the texts in a pair
    hold them (all of a large corpus of conversations, split, would take gigabytes)."""

    def __init__(self, texts: list[str]) -> None:
        self._texts = texts
        self._words: dict[int, list[str]] = {}
        self._counts: dict[int, Counter[str]] = {}

    def text(self, i: int) -> str:
        return self._texts[i]

    def words(self, i: int) -> list[str]:
        w = self._words.get(i)
        if w is None:
            w = self._words[i] = self._texts[i].split()
        return w

    def counts(self, i: int) -> Counter[str]:
        c = self._counts.get(i)
        if c is None:
            c = self._counts[i] = Counter(self.words(i))
        return c

    def is_edit_copy(self, a: int, b: int, max_edits: int) -> bool:
        """:func:`is_word_edit_copy` of texts ``a`` and ``b``."""
        return (_within_edits(self.words(a), self.words(b), max_edits)
                and _edits_are_a_copy(self.counts(a), self.counts(b)))

    def negation_differs(self, a: int, b: int) -> bool:
        ca, cb = self.counts(a), self.counts(b)
        return negation_differs(ca - cb, cb - ca)


def word_set_pairs(texts: SplitTexts, idx: np.ndarray, cfg: DedupConfig) -> NearPairs:
    """Short texts sharing most of their words (MinHash over word sets, low threshold), confirmed by
    :func:`is_word_edit_copy`: catches edits that move a short text's embedding too far."""
    sig = signatures([texts.words(i) for i in idx], cfg.num_perm, cfg.seed)
    cand = candidate_pairs(sig, cfg.word_set_threshold)
    keep = [(int(idx[a]), int(idx[b])) for a, b in cand
            if texts.is_edit_copy(int(idx[a]), int(idx[b]), cfg.max_word_edits)]
    left = np.array([a for a, _ in keep], dtype=np.int64)
    right = np.array([b for _, b in keep], dtype=np.int64)
    # Similarity 1 - edits/words would be more informative, but the verifier already bounded it.
    return NearPairs(left, right, np.ones(len(keep)), np.full(len(keep), "word_set"))


def short_text_encoder() -> Encoder:
    from curatune.embeddings import Encoder

    return Encoder("default", max_length=64)


def embedding_pairs(texts: SplitTexts, idx: np.ndarray, cfg: DedupConfig,
                    encoder: Callable[[], Encoder] = short_text_encoder, k: int = 10) -> NearPairs:
    """Nearest neighbours on sentence embeddings for short texts, where MinHash cannot see a
    one-word edit; candidates are confirmed by :func:`is_word_edit_copy`. ``encoder`` is asked for
    only when there is something to encode (loading the model takes seconds)."""
    empty = NearPairs.concat([])
    if idx.size < 2:
        return empty
    short = [texts.text(i) for i in idx]
    # Not cached on disk: these are embeddings of text before anonymisation.
    vecs = encoder().encode(short)
    dist, nbr = knn(vecs, min(k, idx.size - 1) + 1)
    left, right, sims = [], [], []
    for i in range(idx.size):
        for d, j in zip(dist[i, 1:], nbr[i, 1:], strict=True):
            if j < 0 or j <= i and i in set(nbr[j]):
                continue
            if d < cfg.embedding_threshold:
                break
            if texts.is_edit_copy(int(idx[i]), int(idx[j]), cfg.max_word_edits):
                a, b = sorted((int(idx[i]), int(idx[j])))
                left.append(a)
                right.append(b)
                sims.append(float(d))
    if not left:
        return empty
    return NearPairs(np.array(left), np.array(right), np.array(sims), np.full(len(sims), "embedding"))


def knn(vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate inner-product neighbours (vectors are L2-normalised, so this is cosine).

    faiss HNSW keeps memory linear in the number of texts (no n x n matrix); for small sets an
    exact flat index is both faster and exact.
    """
    import faiss

    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    dim = vecs.shape[1]
    if len(vecs) <= EXACT_KNN_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    _add_on_one_thread(index, vecs)
    # Search may use every thread: each query walks the finished graph on its own.
    return index.search(vecs, k)


def _add_on_one_thread(index: Any, vecs: np.ndarray) -> None:
    """Threads building an HNSW graph insert vectors in whatever order they get to them (faiss before
    1.15; 1.15.1 builds the same graph on any number), so each run could build another graph and find
    other near pairs; on one thread the order is fixed. A flat index is only copied in."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.add(vecs)
    finally:
        faiss.omp_set_num_threads(threads)


# The row that represents copies: a test row over a validation row over a train row (so leakage
# drops the train copy), a labelled row over an unlabelled one (so the label is kept), among exact
# copies with different labels one whose label most of them share, then the first.
BEST_ROW = ("prio", "unlabelled", "tier_first", "minority", "ord")


@register_step
class Dedup(CurationStep):
    name = "dedup"
    ledger_columns = ("dedup_cluster",)

    def run(self, table: pl.DataFrame) -> StepResult:
        cfg: DedupConfig = self.ctx.config.curate.dedup
        has_split = table["split"].n_unique() > 1
        rows = table.select(
            "row_id", "label", "split", key_expr().alias("norm"),
            pl.col("split").replace_strict(SPLIT_PRIORITY, default=2, return_dtype=pl.Int64).alias("prio"),
            pl.col("label").is_null().alias("unlabelled"),
        ).with_row_index("ord")
        # One key per normalised text: exact duplicates share a key. Without the leakage check, copies
        # in different splits are left alone: each split is deduplicated on its own.
        leakage = has_split and cfg.leakage
        own_split = pl.lit("") if leakage or not has_split else pl.col("split")
        rows = rows.with_columns(pl.struct(own_split, "norm").rank("dense").cast(pl.Int64).sub(1).alias("key"))
        rows = rows.with_columns((-pl.len().over("key", "label").cast(pl.Int64)).alias("minority"),
                                 # The label vote only orders copies of one text in one tier; between
                                 # texts, the first row of the tier still decides.
                                 pl.col("ord").min().over("key", "prio", "unlabelled").alias("tier_first"))
        keys = rows.unique("key").sort("key")
        key_text = keys["norm"].to_list()

        stats: dict[str, Any] = {"rows": rows.height, "unique_texts": len(key_text)}
        # A key ranks by its best row (test over validation over train, then the first): the leader of a
        # cluster then holds the cluster's best row, which represents it, so every dropped row was
        # compared with the key of the row it names in duplicate_of.
        best_row = rows.sort(*BEST_ROW).unique("key", keep="first").sort("key")
        key_rank = best_row.select(pl.struct(*BEST_ROW).rank("ordinal").cast(pl.Int64)).to_series().to_numpy()
        # Near pairs are searched with the keys numbered best first: a huge LSH bucket is linked to its
        # lowest-numbered member only (minhash.candidate_pairs), which must be the one that leads it.
        best_first = np.argsort(key_rank, kind="stable")
        # Without the leakage check only pairs within a split count, so each split is searched on its
        # own: searched together, a huge bucket whose lowest-numbered member is a test text would link
        # the bucket's train texts to that text only, and those links are then thrown away.
        split_of_key = keys.select(pl.col("split").rank("dense").fill_null(0)).to_series().to_numpy()
        groups = ([best_first[split_of_key[best_first] == s] for s in np.unique(split_of_key)]
                  if has_split and not leakage else [best_first])
        encoder = functools.cache(short_text_encoder)  # one model load for all splits
        pairs = [p.renumbered(g) for g in groups
                 for p in self._near_pairs([key_text[i] for i in g], cfg, stats, encoder)] if cfg.near else []
        both = NearPairs.concat(pairs)
        dist_of_key = np.zeros(len(key_text))  # similarity to the closest partner, for the ledger
        np.maximum.at(dist_of_key, both.left, both.similarity)
        np.maximum.at(dist_of_key, both.right, both.similarity)
        rows = rows.with_columns(
            pl.col("key").map_batches(lambda k: pl.Series(1.0 - dist_of_key[k.to_numpy()]),
                                      return_dtype=pl.Float64).alias("near_score"))
        rows = settle_clusters(rows, both, key_rank, leakage)
        is_rep = pl.col("row_id") == pl.col("rep")
        rows = rows.with_columns(
            pl.when(pl.col("reason").is_null()).then(1.0)
            .when(pl.col("drop") & pl.col("exact_copy")).then(0.0)
            # A kept row whose cluster disagrees with its label: the less they agree, the lower.
            .when(~pl.col("drop")).then(pl.min_horizontal("agreement", "near_score"))
            .otherwise(pl.col("near_score")).alias("score"),
        )
        result_rows = rows.select(
            "row_id",
            pl.col("reason").is_not_null().alias("is_issue"),
            "score",
            pl.when(pl.col("drop")).then(pl.lit("drop")).otherwise(pl.lit("keep")).alias("action"),
            "reason",
            pl.when(pl.col("drop")).then(pl.col("copy_of")).otherwise(None).alias("duplicate_of"),
            pl.when(pl.col("size") > 1).then(pl.col("rep")).otherwise(None).alias("dedup_cluster"),
        )
        counts = rows.filter(pl.col("drop")).group_by("reason").len().sort("reason")
        stats.update({
            "dropped_by_reason": {r: int(n) for r, n in counts.iter_rows()},
            "clusters": int(rows.filter(pl.col("size") > 1)["cluster"].n_unique()),
            # A leaked text's own rows may disagree too, but it left its cluster: it is no conflict kept.
            "conflicting_label_groups": int(rows.filter(is_rep & (pl.col("reason") == LABEL_CONFLICT)).height),
            "label_conflicts_kept": int(rows["kept_conflict"].sum()),
            "leakage_checked": bool(leakage),
        })
        return StepResult(rows=result_rows, summary=stats)

    @staticmethod
    def _near_pairs(key_text: list[str], cfg: DedupConfig, stats: dict[str, Any],
                    encoder: Callable[[], Encoder] = short_text_encoder) -> list[NearPairs]:
        """Near pairs among ``key_text``; the counts in ``stats`` add up over calls (one per split)."""
        if len(key_text) < 2:
            return []

        def count(name: str, n: int) -> None:
            stats[name] = stats.get(name, 0) + n

        texts = SplitTexts(key_text)
        n_words = np.fromiter((len(t.split()) for t in key_text), dtype=np.int64, count=len(key_text))
        mh = minhash_pairs(key_text, cfg)
        confirmed = confirmed_minhash_pairs(texts, mh, n_words <= cfg.short_text_words, cfg)
        count("minhash_pairs", int(confirmed.sum()))
        count("minhash_pairs_rejected", int(confirmed.size - confirmed.sum()))
        out = [mh.where(confirmed)]
        if cfg.embedding:
            short = np.flatnonzero(n_words <= cfg.short_text_words)
            emb = embedding_pairs(texts, short, cfg, encoder)
            words = word_set_pairs(texts, short, cfg)
            count("short_texts", int(short.size))
            count("embedding_pairs", int(emb.left.size))
            count("word_set_pairs", int(words.left.size))
            out += [emb, words]
        return out

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        return dedup_truth_scores(result.rows, truth)


def confirmed_minhash_pairs(texts: SplitTexts, pairs: NearPairs, short: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """Which MinHash pairs stand: a pair with a short text on either side only when
    :func:`is_word_edit_copy` confirms it, any other only when no negation tells them apart.

    In a message of 20-64 words a negation left out or a content word exchanged keeps the character
    5-gram Jaccard above the threshold, yet the two are not copies; "either side", because a word added
    to a 64-word message makes it long. Between long texts, whose copies may differ by more words than
    the edit script allows, a negation alone still turns a message round. The rule is what a copy is, so
    it holds with the embedding pass off too.
    """
    def stands(a: int, b: int, any_short: bool) -> bool:
        if any_short:
            return texts.is_edit_copy(a, b, cfg.max_word_edits)
        return not texts.negation_differs(a, b)

    any_short = short[pairs.left] | short[pairs.right]
    return np.array([stands(int(a), int(b), s) for a, b, s in zip(pairs.left, pairs.right, any_short, strict=True)],
                    dtype=bool)


def judge_clusters(rows: pl.DataFrame, cluster_of_key: np.ndarray, leakage: bool) -> pl.DataFrame:
    """Each row's place in a clustering of its keys: ``cluster``, its representative (``rep``, ``rep_*``),
    ``size``, ``n_labels``, ``agreement``, ``reason``, ``kept_conflict``, ``exact_copy``, ``copy_of`` and
    ``drop``."""
    rows = rows.with_columns(
        pl.col("key").map_batches(lambda k: pl.Series(cluster_of_key[k.to_numpy()]), return_dtype=pl.Int64)
        .alias("cluster"))
    rep = rows.sort(*BEST_ROW).unique("cluster", keep="first").select(
        "cluster", pl.col("row_id").alias("rep"), pl.col("split").alias("rep_split"),
        pl.col("label").alias("rep_label"), pl.col("key").alias("rep_key"))
    rows = (rows.join(rep, on="cluster", how="left").sort("ord")
            .with_columns(pl.len().over("cluster").alias("size"),
                          pl.col("label").drop_nulls().n_unique().over("cluster").alias("n_labels"),
                          # Of the cluster's labelled rows, the share that agree with this row's label.
                          (pl.len().over("cluster", "label") / pl.col("label").count().over("cluster"))
                          .alias("agreement")))

    is_rep = pl.col("row_id") == pl.col("rep")
    exact = pl.col("key") == pl.col("rep_key")
    other_split = pl.lit(leakage) & (pl.col("split") != pl.col("rep_split"))
    # A copy without a label does not contradict one with a label.
    label_differs = pl.col("label").is_not_null() & pl.col("rep_label").is_not_null() \
        & (pl.col("label") != pl.col("rep_label"))
    # Only an exact copy with another label is dropped: a near one may be another intent (module doc).
    # Such a near copy's own exact copies are judged against the first of them, which is kept: a
    # copy with its label is a plain copy, one with a third label an exact conflict.
    near_conflict = ~is_rep & ~other_split & label_differs & ~exact
    rows = rows.with_columns(pl.col("row_id").filter(near_conflict).first().over("key").alias("twin_of"),
                             pl.col("label").filter(near_conflict).first().over("key").alias("twin_label"))
    twin = near_conflict & (pl.col("row_id") != pl.col("twin_of"))
    reason = (
        pl.when(is_rep & (pl.col("n_labels") > 1)).then(pl.lit(LABEL_CONFLICT))
        .when(is_rep).then(pl.lit(None, dtype=pl.String))
        .when(other_split).then(pl.lit(LEAKAGE))
        .when(twin & (pl.col("label") != pl.col("twin_label"))).then(pl.lit(LABEL_CONFLICT))
        .when(twin).then(pl.lit(EXACT_DUPLICATE))
        .when(label_differs).then(pl.lit(LABEL_CONFLICT))
        .when(exact).then(pl.lit(EXACT_DUPLICATE))
        .otherwise(pl.lit(NEAR_DUPLICATE))
    )
    return rows.with_columns(
        reason.alias("reason"),
        (near_conflict & ~twin).alias("kept_conflict"),
        (exact | twin).alias("exact_copy"),
        pl.when(twin).then("twin_of").otherwise("rep").alias("copy_of"),
    ).with_columns((pl.col("reason").is_not_null() & ~is_rep & ~pl.col("kept_conflict")).alias("drop"))


def settle_clusters(rows: pl.DataFrame, pairs: NearPairs, key_rank: np.ndarray, leakage: bool) -> pl.DataFrame:
    """:func:`judge_clusters` on leader clusters, then, with the leakage check, leaks past them until none is left.

    A leaked text leaves the clustering (its rows are all dropped as copies of the row it copies, and put in
    that row's cluster), and the rest are clustered again: the texts it led would otherwise stay dropped as
    copies of a dropped row (and were never compared with the row it leaked to), and a representative would
    stay flagged for a label only the leaked text gave its cluster. Clustered again, a text it led may turn
    out to be a leak of its own, so this repeats; the leaked set only grows. Each round commits only the
    leaks of the best split that has any: clustering again reaches no split above the leaked texts' own
    (their leaders rank after every text of a better split), so the rows those leaks name stay, while a
    leak found in a worse split could name a row that the next round drops.
    """
    n = key_rank.size
    leaks = pl.DataFrame(schema={"key": pl.Int64, "leak_of": rows.schema["row_id"], "leak_key": pl.Int64})
    live = pairs
    while True:
        judged = judge_clusters(rows, leader_clusters(n, live, key_rank), leakage)
        if not leakage:
            return judged
        judged = _drop_leaks(judged, leaks)
        found = leaks_past_clusters(judged, pairs)
        if found.is_empty():
            return judged
        # A text has one kept row at most (the rest of its rows copy it or its cluster's representative);
        # the first per key keeps the join in _drop_leaks one to one all the same.
        found = (found.join(judged.select("row_id", "key", "prio", "ord"), on="row_id")
                 .filter(pl.col("prio") == pl.col("prio").min())
                 .sort("ord").unique("key", keep="first", maintain_order=True))
        leaks = pl.concat([leaks, found.select("key", "leak_of", "leak_key")])
        live = _without_keys(pairs, leaks["key"].to_numpy())


def _without_keys(pairs: NearPairs, keys: np.ndarray) -> NearPairs:
    """The pairs that touch none of ``keys``."""
    return pairs.where(~(np.isin(pairs.left, keys) | np.isin(pairs.right, keys)))


def leaks_past_clusters(rows: pl.DataFrame, pairs: NearPairs) -> pl.DataFrame:
    """Kept rows that copy a kept row of a split evaluation relies on more: ``row_id``, ``leak_of``, ``leak_key``.

    Clusters do not chain, so a near copy of a kept label conflict (itself a near copy of its cluster's
    leader) leads a cluster of its own and was kept, though it copies a kept test row. Only a row whose
    key is the partner's key or was paired with it directly is named, so the dropped row was compared
    with the row it names; among several, the best by BEST_ROW. Splits are judged best first, so a row
    named here is one that stays (in this clustering: see :func:`settle_clusters`).
    """
    left, right = pairs.left, pairs.right
    own = rows["key"].unique().to_numpy()
    edges = pl.DataFrame({"key": np.concatenate([left, right, own]).astype(np.int64),
                          "leak_key": np.concatenate([right, left, own]).astype(np.int64)})
    kept = rows.filter(~pl.col("drop")).select("row_id", "key", *BEST_ROW)
    found = []
    for prio in sorted(kept["prio"].unique().to_list())[1:]:
        above = kept.filter(pl.col("prio") < prio).rename({"row_id": "leak_of", "key": "leak_key"})
        leaks = (kept.filter(pl.col("prio") == prio).select("row_id", "key")
                 .join(edges, on="key").join(above, on="leak_key")
                 .sort(*BEST_ROW).unique("row_id", keep="first").select("row_id", "leak_of", "leak_key"))
        kept = kept.join(leaks, on="row_id", how="anti")
        found.append(leaks)
    schema = {"row_id": rows.schema["row_id"], "leak_of": rows.schema["row_id"], "leak_key": pl.Int64}
    return pl.concat(found) if found else pl.DataFrame(schema=schema)


def _drop_leaks(rows: pl.DataFrame, leaks: pl.DataFrame) -> pl.DataFrame:
    """Mark every row at a leaked key (``key``, ``leak_of``, ``leak_key``) as dropped for leakage, as a
    copy of the row named: the rows of one text are copies of whatever that text copies. They join the
    named row's cluster (:func:`_join_named_clusters`)."""
    leaked = pl.col("leak_of").is_not_null()
    return _join_named_clusters(rows.join(leaks, on="key", how="left")).sort("ord").with_columns(
        pl.when(leaked).then(pl.lit(LEAKAGE)).otherwise("reason").alias("reason"),
        pl.when(leaked).then("leak_of").otherwise("copy_of").alias("copy_of"),
        pl.when(leaked).then(pl.col("key") == pl.col("leak_key")).otherwise("exact_copy").alias("exact_copy"),
        (pl.col("kept_conflict") & ~leaked).alias("kept_conflict"),
        (pl.col("drop") | leaked).alias("drop"),
    ).drop("leak_of", "leak_key")


# A row's place in a clustering, as judge_clusters sets it; n_labels and agreement are its judgement.
CLUSTER_COLS = ("cluster", "rep", "rep_split", "rep_label", "rep_key")


def _join_named_clusters(rows: pl.DataFrame) -> pl.DataFrame:
    """Put each row that names a ``leak_of`` in that row's cluster, and count cluster sizes again.

    A leaked text left the clustering, so its rows were a cluster of their own (``dedup_cluster`` its best
    row, or none for one row), which the summary counted; a leak found inside a cluster is in the cluster of
    the row it copies, and now this one is too. Its labels are not judged with that cluster's (``n_labels``,
    ``agreement`` and the reasons stay): it was compared with the row it names, not with its representative.
    """
    named = rows.select(pl.col("row_id").alias("leak_of"), *(pl.col(c).alias(f"named_{c}") for c in CLUSTER_COLS))
    leaked = pl.col("leak_of").is_not_null()
    return (rows.join(named, on="leak_of", how="left")
            .with_columns(pl.when(leaked).then(f"named_{c}").otherwise(c).alias(c) for c in CLUSTER_COLS)
            .with_columns(pl.len().over("cluster").alias("size"))
            .drop(*(f"named_{c}" for c in CLUSTER_COLS)))


def leader_clusters(n: int, pairs: NearPairs, rank: np.ndarray) -> np.ndarray:
    """Cluster by leaders: the best-ranked text not yet taken leads, and takes its direct
    near-duplicates. No transitive chains, so every removed row was verified against the row
    that represents it (a copy that sits between two different texts cannot merge them)."""
    cluster = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return cluster
    adj = coo_matrix((np.ones(pairs.left.size), (pairs.left, pairs.right)), shape=(n, n)).tocsr()
    adj = (adj + adj.T).tocsr()
    for u in np.argsort(rank, kind="stable"):
        if cluster[u] >= 0:
            continue
        cluster[u] = u
        nbrs = adj.indices[adj.indptr[u]:adj.indptr[u + 1]]
        free = nbrs[cluster[nbrs] < 0]
        cluster[free] = u
    return cluster


def _clusters(n: int, pairs: NearPairs) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(pairs.left.size), (pairs.left, pairs.right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def dedup_truth_scores(rows: pl.DataFrame, truth: pl.DataFrame) -> dict[str, Any]:
    """Recall / precision of duplicate detection against planted truth.

    A planted copy counts as found when it and its original end in the same predicted cluster;
    a removed row counts as correct when it and its representative are linked in the truth.
    """
    cols = [c for c in TRUTH_LINKS if c in truth.columns]
    if not cols:
        return {}
    t = truth.select("row_id", *cols).join(rows.select("row_id", "dedup_cluster", "duplicate_of", "reason"),
                                           on="row_id", how="inner")
    cluster = dict(zip(rows["row_id"].to_list(), rows["dedup_cluster"].to_list(), strict=True))
    # Truth components (union of every planted link).
    ids = truth["row_id"].to_list()
    index = {r: i for i, r in enumerate(ids)}
    edges = [(index[r], index[o]) for c in cols for r, o in truth.select("row_id", c).iter_rows()
             if o is not None and o in index]
    comp = _clusters(len(ids), NearPairs(np.array([e[0] for e in edges], dtype=np.int64),
                                         np.array([e[1] for e in edges], dtype=np.int64),
                                         np.ones(len(edges)), np.zeros(len(edges)))) if edges else \
        np.arange(len(ids))
    out: dict[str, Any] = {}
    for c in cols:
        planted = t.filter(pl.col(c).is_not_null())
        found = sum(1 for r, o in planted.select("row_id", c).iter_rows()
                    if cluster.get(r) is not None and cluster.get(r) == cluster.get(o))
        out[c.replace("_of", "") + "_recall"] = round(found / planted.height, 4) if planted.height else None
        out[c.replace("_of", "") + "_planted"] = planted.height
    removed = t.filter(pl.col("duplicate_of").is_not_null())
    # A near copy whose label differs is kept, so every near copy removed is a near_duplicate (the label
    # conflicts removed are exact copies).
    near_removed = removed.filter(pl.col("reason") == NEAR_DUPLICATE)

    def precision(df: pl.DataFrame) -> float | None:
        if df.height == 0:
            return None
        ok = sum(1 for r, d in df.select("row_id", "duplicate_of").iter_rows()
                 if r in index and d in index and comp[index[r]] == comp[index[d]])
        return round(ok / df.height, 4)

    out["removed_precision"] = precision(removed)
    out["near_removed_precision"] = precision(near_removed)
    if "leak_of" in cols:
        leaks = t.filter(pl.col("leak_of").is_not_null())
        out["leakage_dropped_recall"] = round(
            leaks.filter(pl.col("reason") == LEAKAGE).height / leaks.height, 4) if leaks.height else None
    return out

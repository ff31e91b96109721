"""The embedded demo dataset: seeded multi-turn support transcripts with planted problems.

Writes, into one folder (which holds raw personal data, so it is never inside a run directory):

    transcripts.jsonl   one row per turn: conversation_id, turn, speaker, text, label, split,
                        channel, region, customer_language_variety
    truth.parquet       per conversation (row_id): exact_dup_of, near_dup_of, leak_of,
                        is_label_flip, clean_label, flip_kind, pii_count
    pii.parquet         every planted personal value: row_id, entity_type, value
    reference.csv       a general-domain text set (text, label) for the forgetting measures
    demo.toml           the config that runs the whole pipeline on these files

Planted problems (shares of all conversations): ~5% exact copies (half differing in case,
whitespace or punctuation), ~5% near copies (1-2 word edits), ~2% train copies of validation or
test conversations (leakage), wrong labels on ~8% of all conversations, all of them in train
(~11% of train rows; half uniform, half a confusable neighbour, most often the usual mistake;
copies of flipped rows included, some exact copies disagreeing with their original), personal
data in ~60% of conversations, and a customer group ("non-native") whose messages are vaguer and
misspelt and whose labels are noisier, so a model serves it worse. Validation and test labels are
clean, so the gain from curation is measurable.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl

from curatune.demo.conversation import Conversation, ConversationWriter
from curatune.demo.intents import INTENTS
from curatune.demo.phrasing import VARIETIES
from curatune.demo.pii import PiiSource
from curatune.demo.problems import exact_copy, flip_label, near_copy, weighted_sample
from curatune.demo.reference import reference_rows
from curatune.errors import CuratuneError
from curatune.rundir import output_dir, write_parquet, write_text

# ~2,000 conversations run the whole pipeline in a few minutes on 2 CPU cores.
DEFAULT_CONVERSATIONS = 2000
MIN_CONVERSATIONS = 20
SHARES = {"exact": 0.05, "near": 0.05, "leak": 0.02, "flip": 0.057}
CHANNELS = ("chat", "email", "phone")
CHANNEL_WEIGHTS = (45, 25, 30)
VARIETY_WEIGHTS = (30, 18, 18, 16, 18)  # en-US, en-GB, en-IN, en-NG, non-native
REGIONS = ("NA", "EU", "APAC", "LATAM")
REGION_WEIGHTS = {
    "en-US": (70, 10, 10, 10), "en-GB": (10, 70, 15, 5), "en-IN": (15, 15, 65, 5), "en-NG": (30, 45, 15, 10),
    "non-native": (10, 35, 20, 35),
}
# Some intents are asked about more than others.
INTENT_WEIGHTS = {"order_status": 1.4, "refund": 1.3, "shipping_delay": 1.3, "return": 1.2, "damaged_item": 1.1,
                  "billing_dispute": 1.0, "payment_failed": 1.0, "password_reset": 1.0, "account_locked": 0.9,
                  "cancellation": 1.0, "product_question": 0.9, "address_change": 0.8, "warranty": 0.8,
                  "subscription_upgrade": 0.7, "technical_issue": 0.8, "loyalty_points": 0.6}
# Annotators err more on the harder group and on call transcripts.
FLIP_WEIGHT = {"non-native": 3.0}
PHONE_FLIP_WEIGHT = 1.5
AMBIGUOUS_FLIP_WEIGHT = 2.0

TRUTH_SCHEMA = {"row_id": pl.String, "exact_dup_of": pl.String, "near_dup_of": pl.String, "leak_of": pl.String,
                "is_label_flip": pl.Boolean, "clean_label": pl.String, "flip_kind": pl.String,
                "pii_count": pl.Int64}
PII_SCHEMA = {"row_id": pl.String, "entity_type": pl.String, "value": pl.String}


def _split(i: int) -> str:
    k = i % 20
    return "train" if k < 14 else "validation" if k < 17 else "test"


def _base_conversations(n: int, rng: random.Random, writer: ConversationWriter) -> list[Conversation]:
    intents = sorted(INTENTS)
    weights = [INTENT_WEIGHTS[i] for i in intents]
    out = []
    for i in range(n):
        variety = rng.choices(VARIETIES, weights=VARIETY_WEIGHTS)[0]
        region = rng.choices(REGIONS, weights=REGION_WEIGHTS[variety])[0]
        channel = rng.choices(CHANNELS, weights=CHANNEL_WEIGHTS)[0]
        intent = rng.choices(intents, weights=weights)[0]
        out.append(writer.write(intent, channel, region, variety, _split(i)))
    return out


def _plant_flips(base: list[Conversation], n_flips: int, rng: random.Random) -> list[int]:
    labels = sorted(INTENTS)
    train = [i for i, c in enumerate(base) if c.split == "train"]
    weights = [FLIP_WEIGHT.get(base[i].variety, 1.0) * (PHONE_FLIP_WEIGHT if base[i].channel == "phone" else 1.0)
               * (AMBIGUOUS_FLIP_WEIGHT if base[i].ambiguous else 1.0) for i in train]
    flipped = sorted(weighted_sample(train, weights, min(n_flips, len(train)), rng))
    for k, i in enumerate(flipped):
        flip_label(base[i], "confusable" if k % 2 == 0 else "uniform", labels, rng)
    return flipped


def _plant_copies(base: list[Conversation], flipped: list[int], counts: dict[str, int],
                  rng: random.Random) -> list[tuple[Conversation, str, int]]:
    """(copy, truth column, index of the original) for exact, near and leaked copies."""
    labels = sorted(INTENTS)
    flipped_set = set(flipped)
    clean_train = [i for i, c in enumerate(base) if c.split == "train" and i not in flipped_set]
    held = [i for i, c in enumerate(base) if c.split != "train"]
    rng.shuffle(clean_train)
    pool_flipped = list(flipped)
    rng.shuffle(pool_flipped)

    def sources(n: int, flipped_share: float) -> list[int]:
        k = min(round(n * flipped_share), len(pool_flipped))
        picked = [pool_flipped.pop() for _ in range(k)]
        picked += [clean_train.pop() for _ in range(min(n - k, len(clean_train)))]
        return picked

    extra: list[tuple[Conversation, str, int]] = []
    for i in sources(counts["exact"], 0.3):
        copy = exact_copy(base[i], rng)
        if i in flipped_set and rng.random() < 0.5:
            copy.label, copy.flip_kind = copy.clean_label, None  # disagrees with its (flipped) original
        elif i not in flipped_set and rng.random() < 0.15:
            flip_label(copy, "confusable", labels, rng)  # the copy is the mislabelled one
        extra.append((copy, "exact_dup_of", i))
    for i in sources(counts["near"], 0.25):
        extra.append((near_copy(base[i], rng), "near_dup_of", i))
    for i in rng.sample(held, min(counts["leak"], len(held))):
        leak = near_copy(base[i], rng) if rng.random() < 0.5 else exact_copy(base[i], rng)
        leak.split = "train"
        extra.append((leak, "leak_of", i))
    return extra


def generate_demo(out_dir: str | Path, n_conversations: int | None = None, seed: int = 7) -> dict[str, str]:
    """Write the demo dataset (see module docstring) into ``out_dir``; return the paths of its files
    under the keys data, truth, pii, reference and config. Same seed, same bytes."""
    n = DEFAULT_CONVERSATIONS if n_conversations is None else int(n_conversations)
    if n < MIN_CONVERSATIONS:
        raise CuratuneError(f"the demo needs at least {MIN_CONVERSATIONS} conversations, got {n}")
    out = output_dir(out_dir)
    rng = random.Random(seed)
    writer = ConversationWriter(rng, PiiSource(seed, rng))
    counts = {k: max(1, round(share * n)) for k, share in SHARES.items()}
    base = _base_conversations(n - counts["exact"] - counts["near"] - counts["leak"], rng, writer)
    flipped = _plant_flips(base, counts["flip"], rng)
    extra = _plant_copies(base, flipped, counts, rng)

    # Shuffle, then number: an id says nothing about whether a row is a copy.
    everything: list[tuple[Conversation, str | None, int | None]] = [(c, None, None) for c in base]
    everything += [(c, kind, src) for c, kind, src in extra]
    order = list(range(len(everything)))
    rng.shuffle(order)
    ids = {pos: f"conv-{rank:05d}" for rank, pos in enumerate(order)}
    turn_rows: list[str] = []
    truth_rows: list[dict] = []
    pii_rows: list[dict] = []
    for pos in order:
        conv, kind, src = everything[pos]
        cid = ids[pos]
        group = {"label": conv.label, "split": conv.split, "channel": conv.channel, "region": conv.region,
                 "customer_language_variety": conv.variety}
        for t, (speaker, text) in enumerate(conv.turns, start=1):
            row = {"conversation_id": cid, "turn": t, "speaker": speaker, "text": text, **group}
            turn_rows.append(json.dumps(row, ensure_ascii=False))
        link = ids[src] if src is not None else None
        truth_rows.append({
            "row_id": cid,
            "exact_dup_of": link if kind == "exact_dup_of" else None,
            "near_dup_of": link if kind == "near_dup_of" else None,
            "leak_of": link if kind == "leak_of" else None,
            "is_label_flip": conv.label != conv.clean_label,
            "clean_label": conv.clean_label,
            "flip_kind": conv.flip_kind if conv.label != conv.clean_label else None,
            "pii_count": len(conv.pii),
        })
        pii_rows += [{"row_id": cid, "entity_type": k, "value": v} for k, v in conv.pii]

    paths = {"data": out / "transcripts.jsonl", "truth": out / "truth.parquet", "pii": out / "pii.parquet",
             "reference": out / "reference.csv", "config": out / "demo.toml"}
    write_text("\n".join(turn_rows) + "\n", paths["data"])
    write_parquet(pl.DataFrame(truth_rows, schema=TRUTH_SCHEMA), paths["truth"])
    write_parquet(pl.DataFrame(pii_rows, schema=PII_SCHEMA), paths["pii"])
    write_text(reference_rows(random.Random(seed)).write_csv(), paths["reference"])
    write_text(DEMO_CONFIG, paths["config"])
    return {k: str(v) for k, v in paths.items()}


DEMO_CONFIG = """\
# The demo: synthetic support transcripts written by `curatune.demo`.
# Run with:  curatune demo                                          (generates this folder, runs everything)
#      or:   curatune run runs/demo-data/demo.toml --out runs/demo   (after `curatune generate`; without
#            --out it lands in runs/latest inside this folder)

[data]
inputs = ["transcripts.jsonl"]
conversation_col = "conversation_id"
turn_col = "turn"
speaker_col = "speaker"
text_col = "text"
label_col = "label"
split_col = "split"
group_cols = ["channel", "region", "customer_language_variety"]
reference = "reference.csv"
# Planted ground truth: each curation step reports how much of it it recovered.
truth = "truth.parquet"

[curate.anonymise]
# Order and account numbers as the demo shop writes them.
id_patterns = { ORDER_ID = "\\\\bORD-\\\\d{6}\\\\b", ACCOUNT_ID = "\\\\bACC-\\\\d{8}\\\\b" }

[train]
method = "lora"
epochs = 3
batch_size = 32
[evaluate.gates]
# The audit's verdict table lists each of these. The demo plants a customer group whose messages
# are vaguer and whose labels are noisier, so the fairness gate is expected to fail: that is the
# finding the audit exists to show.
min_accuracy = 0.80
min_probe_retention = 0.95
min_similarity_retention = 0.90
max_group_accuracy_difference = 0.20
max_counterfactual_flip_rate = 0.15

[run]
# Report failed evaluation gates in the audit without failing `make demo` itself.
fail_on_gate = false
"""

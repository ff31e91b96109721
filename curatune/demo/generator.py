"""The embedded demo dataset: seeded multi-turn support transcripts with planted problems.

Writes, into one folder (which holds raw personal data, so it is never inside a run directory):

    transcripts.jsonl   one row per turn: conversation_id, turn, speaker, text, label, split,
                        channel, region, customer_language_variety
    truth.parquet       per conversation: exact_dup_of, near_dup_of, leak_of, is_label_flip,
                        clean_label, flip_kind, pii_count
    pii.parquet         every planted personal value: row_id, entity_type, value
    reference.csv       a general-domain text set (text, label) for the forgetting measures
    demo.toml           the config that runs the whole pipeline on these files

Planted problems: exact copies (some differing in case or punctuation), near copies (1-2 word
edits), train copies of validation/test conversations (leakage), label flips in train (half
uniform, half between confusable intents), personal data in most conversations, and a customer
group ("non-native") whose messages are vaguer and misspelt, so a model serves it worse.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from faker import Faker

from curatune.demo.intents import (
    AGENT_CLOSE,
    AGENT_OPEN,
    CITIES,
    CONFUSABLE,
    DAYS,
    FILLERS,
    GENERIC_CUSTOMER,
    GREETINGS,
    INTENTS,
    ITEMS,
    REFERENCE_TOPICS,
)

DEFAULT_CONVERSATIONS = 1600
CHANNELS = ("chat", "email", "phone")
REGIONS = ("NA", "EU", "APAC", "LATAM")
VARIETIES = ("en-US", "en-GB", "en-IN", "non-native")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class Conversation:
    turns: list[tuple[str, str]]
    label: str
    split: str
    channel: str
    region: str
    variety: str
    pii: list[tuple[str, str]] = field(default_factory=list)
    truth: dict = field(default_factory=dict)

    def copy(self) -> Conversation:
        return Conversation(list(self.turns), self.label, self.split, self.channel, self.region, self.variety,
                            list(self.pii), {})


class _Writer:
    """Builds one conversation; every personal value it plants is recorded with its type."""

    def __init__(self, rng: random.Random, fake: Faker) -> None:
        self.rng, self.fake = rng, fake

    def fill(self, template: str) -> str:
        return template.format(item=self.rng.choice(ITEMS), day=self.rng.choice(DAYS))

    def typos(self, text: str) -> str:
        words = text.split()
        for i, w in enumerate(words):
            if len(w) > 3 and self.rng.random() < 0.18:
                j = self.rng.randrange(len(w) - 1)
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        return " ".join(words)

    def spoken(self, digits: str) -> str:
        return " ".join(DIGITS[int(d)] for d in digits if d.isdigit())

    def conversation(self, intent: str, channel: str, region: str, variety: str, split: str) -> Conversation:
        rng, fake = self.rng, self.fake
        openers, followups, replies = INTENTS[intent]
        pii: list[tuple[str, str]] = []
        vague = variety == "non-native"
        first, last = fake.first_name(), fake.last_name()
        agent = fake.first_name()
        opener = self.fill(rng.choice(GENERIC_CUSTOMER if vague and rng.random() < 0.6 else openers))
        if vague:  # misspell the customer's own words, never the personal values planted below
            opener = self.typos(opener)
        greet = rng.choice(GREETINGS)
        customer = [f"{greet} {opener}".strip()]
        if rng.random() < 0.55:
            customer[0] = rng.choice([f"{customer[0]}. my name is {first} {last}",
                                      f"this is {first} {last}. {customer[0]}",
                                      f"{customer[0]}. {first} {last} here"])
            pii.append(("PERSON", f"{first} {last}"))
        turns = [("customer", customer[0]), ("agent", f"{rng.choice(AGENT_OPEN)} This is {agent} speaking.")]
        pii.append(("PERSON", agent))
        details = []
        if rng.random() < 0.35:
            order = f"ORD-{rng.randrange(10**6):06d}"
            details.append(f"my order number is {order}")
            pii.append(("ORDER_ID", order))
        if rng.random() < 0.25:
            email = fake.email()
            details.append(f"you can reach me at {email}")
            pii.append(("EMAIL_ADDRESS", email))
        if rng.random() < 0.2:
            if channel == "phone":
                digits = "".join(str(rng.randrange(10)) for _ in range(10))
                words = self.spoken(digits)
                details.append(f"my number is {words}")
                pii.append(("SPOKEN_DIGITS", words))
            else:
                phone = fake.phone_number()
                details.append(f"call me on {phone}")
                pii.append(("PHONE_NUMBER", phone))
        if intent in ("billing_dispute", "payment_failed", "refund") and rng.random() < 0.3:
            card = fake.credit_card_number(card_type=rng.choice(["visa16", "mastercard"]))
            details.append(f"the card was {card}")
            pii.append(("CREDIT_CARD", card))
        if intent in ("refund", "billing_dispute") and rng.random() < 0.15:
            iban = fake.iban()
            details.append(f"please refund to IBAN {iban}")
            pii.append(("IBAN_CODE", iban))
        if intent in ("address_change", "shipping_delay", "return") and rng.random() < 0.5:
            street, post = fake.street_address(), fake.postcode()
            details.append(f"the address is {street}, {fake.city()} {post}")
            pii += [("STREET_ADDRESS", street), ("ZIP_CODE", post)]
        if rng.random() < 0.08:
            handle = "@" + fake.user_name()
            details.append(f"I also messaged you from {handle}")
            pii.append(("HANDLE", handle))
        if rng.random() < 0.15:
            acct = f"ACC-{rng.randrange(10**8):08d}"
            details.append(f"account {acct}")
            pii.append(("ACCOUNT_ID", acct))
        follow = self.fill(rng.choice(followups))
        if vague:
            follow = self.typos(follow)
        body = ". ".join([follow, *details]) if details else follow
        turns.append(("customer", f"{body} {rng.choice(FILLERS)}".strip()))
        reply = self.fill(rng.choice(replies))
        if any(t == "PERSON" and v != agent for t, v in pii) and rng.random() < 0.7:
            reply = f"Thanks {first}, {reply}"
            pii.append(("PERSON", first))
        turns.append(("agent", reply))
        if rng.random() < 0.5:
            turns.append(("customer", rng.choice(["ok thanks", "great, thank you", "fine", "that works"])))
            turns.append(("agent", rng.choice(AGENT_CLOSE)))
        return Conversation(turns, intent, split, channel, region, variety, pii)


def _word_edit(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.choice((1, 2))):
        op = rng.choice(("swap", "insert", "delete")) if len(words) > 3 else "insert"
        if op == "swap":
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "insert":
            words.insert(rng.randrange(len(words) + 1), rng.choice(["really", "please", "just", "now", "also"]))
        else:
            del words[rng.randrange(len(words))]
    return " ".join(words)


def _surface(text: str, rng: random.Random) -> str:
    text = text.lower() if rng.random() < 0.5 else text.upper()
    return text.rstrip(".!? ") + rng.choice(["", "!", "?", "..."])


def _near_copy(conv: Conversation, rng: random.Random) -> Conversation:
    new = conv.copy()
    idx = [i for i, (s, _) in enumerate(new.turns) if s == "customer"]
    i = rng.choice(idx)
    speaker, text = new.turns[i]
    new.turns[i] = (speaker, _word_edit(text, rng))
    # Personal values the edit broke apart are no longer in the text as planted.
    joined = "\n".join(t for _, t in new.turns)
    new.pii = [(k, v) for k, v in new.pii if v in joined]
    return new


def _exact_copy(conv: Conversation, rng: random.Random) -> Conversation:
    new = conv.copy()
    if rng.random() < 0.5:  # differs only in case / punctuation of one customer turn
        i = next(i for i, (s, _) in enumerate(new.turns) if s == "customer")
        new.turns[i] = ("customer", _surface(new.turns[i][1], rng))
        joined = "\n".join(t for _, t in new.turns)
        new.pii = [(k, v) for k, v in new.pii if v in joined]
    return new


def generate_demo(out_dir: str | Path, n_conversations: int | None = None, seed: int = 7) -> dict[str, str]:
    """Write the demo dataset (see module docstring) and return the paths of its files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = n_conversations or DEFAULT_CONVERSATIONS
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    writer = _Writer(rng, fake)
    intents = sorted(INTENTS)
    n_base = round(n * 0.88)
    base: list[Conversation] = []
    for i in range(n_base):
        split = "train" if i % 20 < 14 else "validation" if i % 20 < 17 else "test"
        variety = rng.choices(VARIETIES, weights=(4, 3, 3, 2))[0]
        base.append(writer.conversation(rng.choice(intents), rng.choice(CHANNELS), rng.choice(REGIONS), variety,
                                        split))
    for c in base:
        c.truth = {"clean_label": c.label}
    train = [i for i, c in enumerate(base) if c.split == "train"]
    held = [i for i, c in enumerate(base) if c.split != "train"]
    # Label flips in train only: the test split stays clean so the gain from curation is measurable.
    for k, i in enumerate(rng.sample(train, round(0.08 * n))):
        c = base[i]
        kind = "confusable" if k % 2 == 0 and (c.variety != "non-native" or k % 4 == 0) else "uniform"
        c.label = rng.choice(CONFUSABLE[c.label]) if kind == "confusable" else rng.choice(
            [x for x in intents if x != c.label])
        c.truth.update(is_label_flip=True, flip_kind=kind)
    extra: list[tuple[Conversation, str, int]] = []
    for i in rng.sample(train, round(0.05 * n)):
        copy = _exact_copy(base[i], rng)
        if base[i].truth.get("is_label_flip") and rng.random() < 0.5:
            copy.label = base[i].truth["clean_label"]  # a duplicate that disagrees: conflicting labels
        extra.append((copy, "exact_dup_of", i))
    for i in rng.sample(train, round(0.05 * n)):
        extra.append((_near_copy(base[i], rng), "near_dup_of", i))
    for i in rng.sample(held, round(0.02 * n)):
        leak = _near_copy(base[i], rng) if rng.random() < 0.5 else _exact_copy(base[i], rng)
        leak.split = "train"
        extra.append((leak, "leak_of", i))
    for copy, _, i in extra:
        clean = base[i].truth["clean_label"]
        copy.truth = {"clean_label": clean}
        if copy.label != clean:  # a copy of a flipped row carries the wrong label too
            copy.truth.update(is_label_flip=True, flip_kind=base[i].truth["flip_kind"])

    # Shuffle, then number: an id says nothing about whether a row is a copy.
    everything = [(c, None, None) for c in base] + [(c, kind, i) for c, kind, i in extra]
    order = list(range(len(everything)))
    rng.shuffle(order)
    ids = {pos: f"conv-{rank:05d}" for rank, pos in enumerate(order)}
    base_id = {i: ids[i] for i in range(len(base))}
    turn_rows, truth_rows, pii_rows = [], [], []
    for rank, pos in enumerate(order):
        conv, kind, src = everything[pos]
        cid = f"conv-{rank:05d}"
        for t, (speaker, text) in enumerate(conv.turns, start=1):
            turn_rows.append({"conversation_id": cid, "turn": t, "speaker": speaker, "text": text,
                              "label": conv.label, "split": conv.split, "channel": conv.channel,
                              "region": conv.region, "customer_language_variety": conv.variety})
        truth_rows.append({
            "row_id": cid,
            "exact_dup_of": base_id[src] if kind == "exact_dup_of" else None,
            "near_dup_of": base_id[src] if kind == "near_dup_of" else None,
            "leak_of": base_id[src] if kind == "leak_of" else None,
            "is_label_flip": bool(conv.truth.get("is_label_flip", False)),
            "clean_label": conv.truth["clean_label"],
            "flip_kind": conv.truth.get("flip_kind"),
            "pii_count": len(conv.pii),
        })
        pii_rows += [{"row_id": cid, "entity_type": k, "value": v} for k, v in conv.pii]
    del ids
    paths = {"data": out / "transcripts.jsonl", "truth": out / "truth.parquet", "pii": out / "pii.parquet",
             "reference": out / "reference.csv", "config": out / "demo.toml"}
    paths["data"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in turn_rows), encoding="utf-8")
    pl.DataFrame(truth_rows, schema={"row_id": pl.String, "exact_dup_of": pl.String, "near_dup_of": pl.String,
                                     "leak_of": pl.String, "is_label_flip": pl.Boolean, "clean_label": pl.String,
                                     "flip_kind": pl.String, "pii_count": pl.Int64}).write_parquet(paths["truth"])
    pl.DataFrame(pii_rows, schema={"row_id": pl.String, "entity_type": pl.String, "value": pl.String}).write_parquet(
        paths["pii"])
    _reference(rng).write_csv(paths["reference"])
    paths["config"].write_text(DEMO_CONFIG, encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}


def _reference(rng: random.Random, per_topic: int = 100) -> pl.DataFrame:
    rows = []
    for topic, templates in sorted(REFERENCE_TOPICS.items()):
        for _ in range(per_topic):
            text = rng.choice(templates).format(city=rng.choice(CITIES))
            if rng.random() < 0.5:
                text = rng.choice(["I read that ", "apparently ", "did you hear ", "news: ", ""]) + text
            rows.append({"text": text, "label": topic})
    return pl.DataFrame(rows)


DEMO_CONFIG = """\
# The demo: synthetic support transcripts written by `curatune.demo`.
# Run with:  curatune demo            (generates this folder and runs everything)
#      or:   curatune run demo.toml   (from this folder, after `curatune generate`)

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
"""

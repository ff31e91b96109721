"""Anonymisation on real support chats: the ABCD sample, against its scenario's personal values.

ABCD (Chen et al. 2021) dialogues are chats between crowd workers playing customer and agent from a
scenario that holds the customer's personal values (name, e-mail address, user name, phone, order
ID, address), so what a dialogue says of them is known. The shared folder has 3 dialogues, each
with its original turns and ABCD's own de-identified ("delexed") turns. Every word of a scenario
value that the original turns hold is a mention; a mention is removed when the anonymised turn
holds that word fewer times than the original. Words removed that belong to no scenario value
count what was replaced beside them (a system line's "Action", a FAQ id), correctly or not.

Side by side: ABCD's delexed turns; plain Presidio (AnalyzerEngine, default recognizers, the same
spaCy model and entity types) on each turn, and on each whole dialogue (turns joined by line
breaks), its findings replaced by "<TYPE>"; curatune's anonymise step on the dialogues as a
per-turn input file, through ``run_curation``.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import polars as pl

from benchmarks.bench_anonymise import _plain_presidio, presidio_entities
from benchmarks.common import header, table

# Scenario fields that identify the customer; the rest (member level, product, purchase date,
# state) is shared with thousands of others.
FIELDS = {
    "personal": ("customer_name", "email", "username", "phone", "account_id"),
    "order": ("order_id", "street_address", "full_address", "city", "zip_code"),
}
_WORD = re.compile(r"[a-z0-9@._]+")


def words(text: str) -> Counter:
    return Counter(w.strip("._") for w in _WORD.findall(text.lower()) if w.strip("._"))


def _value_words(scenario: dict) -> dict[str, str]:
    """Word -> the field it is part of, for words of 3 or more characters."""
    out: dict[str, str] = {}
    for part, names in FIELDS.items():
        for name in names:
            value = (scenario.get(part) or {}).get(name)
            if isinstance(value, str):
                for w in words(value):
                    if len(w) >= 3:
                        out.setdefault(w, "address" if name in ("street_address", "full_address", "city",
                                                                "zip_code") else name)
    return out


def _replace(text: str, found) -> str:
    """Plain Presidio's own replacement (``<ENTITY_TYPE>``, its default): its anonymizer settles findings
    that overlap. Replacing each finding by its offsets did not: after a shorter placeholder, the next
    one's offsets were stale and it cut the words after it."""
    return _anonymizer().anonymize(text=text, analyzer_results=list(found)).text


@functools.cache
def _anonymizer():
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def anonymised_by_curatune(dialogues: list[list[tuple[str, str]]]) -> list[list[str]]:
    """Each dialogue's turns (speaker, text) through curatune's anonymise step, as a per-turn input
    file; the anonymised texts, turn for turn."""
    from curatune.config import Config
    from curatune.curate.pipeline import run_curation

    rows = [{"conversation_id": f"d{n}", "turn": i, "speaker": speaker, "text": text, "label": "x"}
            for n, turns in enumerate(dialogues) for i, (speaker, text) in enumerate(turns)]
    cfg = Config()
    cfg.curate.steps = ["anonymise"]
    cfg.data.conversation_col, cfg.data.turn_col, cfg.data.speaker_col = "conversation_id", "turn", "speaker"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dialogues.jsonl"
        pl.DataFrame(rows).write_ndjson(src)
        run_curation(cfg, Path(tmp) / "out", [str(src)])
        cur = pl.read_parquet(Path(tmp) / "out" / "curated.parquet")
    by_id = {r["row_id"]: [t["text"] for t in r["turns"]] for r in cur.iter_rows(named=True)}
    return [by_id[f"d{n}"] for n in range(len(dialogues))]


def by_plain_presidio(dialogues: list[list[tuple[str, str]]]) -> tuple[dict[str, list[list[str]]], list[str]]:
    """Plain Presidio's anonymisation of each dialogue, turn by turn and as one text (turns joined by
    line breaks), for the types curatune asks for that it has; and those types."""
    from presidio_analyzer import RecognizerResult

    from curatune.config import AnonymiseConfig

    plain, _ = _plain_presidio(AnonymiseConfig().spacy_model)
    entities = presidio_entities(plain)

    def whole(turns: list[str]) -> list[str]:
        found = plain.analyze("\n".join(turns), "en", entities=entities)
        out, start = [], 0
        for t in turns:  # each finding clipped to the turns it lies in
            end = start + len(t)
            out.append(_replace(t, [RecognizerResult(r.entity_type, max(r.start, start) - start,
                                                     min(r.end, end) - start, r.score)
                                    for r in found if r.start < end and start < r.end]))
            start = end + 1
        return out

    texts = [[t for _, t in turns] for turns in dialogues]
    return {"plain Presidio, turn by turn": [[_replace(t, plain.analyze(t, "en", entities=entities)) for t in ts]
                                             for ts in texts],
            "plain Presidio, whole dialogue": [whole(ts) for ts in texts]}, entities


def removal_rows(originals: list[list[str]], fields: list[dict[str, str]],
                 outputs: dict[str, list[list[str]]]) -> tuple[list[tuple], list[str]]:
    """Per output, mentions removed per field (``fields``: per dialogue, value word -> field), all
    mentions removed, and removed words of no value; and the fields, sorted."""
    mentions: Counter = Counter()
    removed: dict[str, Counter] = {k: Counter() for k in outputs}
    other: Counter = Counter()
    for n, (turns, field) in enumerate(zip(originals, fields, strict=True)):
        was = [words(before) for before in turns]
        mentions.update(field[w] for turn in was for w in turn.elements() if w in field)
        for name, out in outputs.items():
            assert len(out[n]) == len(turns), f"{name}: turns out of step"
            for before, after in zip(was, out[n], strict=True):
                now = words(after)
                for w, c in before.items():
                    gone = max(c - now[w], 0)
                    if w in field:
                        removed[name][field[w]] += gone
                    else:
                        other[name] += gone
    kinds = sorted(mentions)
    rows = [(name, *(f"{removed[name][k]} / {mentions[k]}" for k in kinds),
             f"{sum(removed[name].values())} / {sum(mentions.values())}", other[name]) for name in outputs]
    return rows, kinds


def run(data_dir: Path, quick: bool = False) -> str:
    dialogues = json.loads((data_dir / "abcd_sample" / "abcd_sample.json").read_text())
    turns = [[(speaker, text) for speaker, text in d["original"]] for d in dialogues]
    plain, entities = by_plain_presidio(turns)
    outputs = {"ABCD's own delexed turns": [[t["text"] for t in d["delexed"]] for d in dialogues], **plain,
               "curatune (anonymise step)": anonymised_by_curatune(turns)}
    rows, kinds = removal_rows([[t for _, t in ts] for ts in turns], [_value_words(d["scenario"]) for d in dialogues],
                               outputs)
    return (header("Anonymisation on real support chats (ABCD sample)")
            + f"The {len(dialogues)} ABCD dialogues of `abcd_sample/abcd_sample.json` "
            f"({sum(len(d['original']) for d in dialogues)} turns), scored against each scenario's personal "
            "values (customer name, e-mail address, user name, phone, account and order ID, address): a mention "
            "is a word of 3 or more characters of such a value in an original turn, removed when the anonymised "
            "turn holds that word fewer times. Plain Presidio asks for the types curatune asks for that it has "
            f"({', '.join(entities)}), its findings replaced by `<TYPE>`; curatune runs its anonymise step on "
            "the dialogues as a per-turn file. The last column counts removed words that belong to no scenario "
            "value (replaced beside them, correctly or not). **Not held out:** a few of curatune's rules were "
            "tuned on this sample, which is also small: read it as a check, not a measure of recall on unseen "
            "chats.\n\n"
            + table(("anonymised by", *(f"{k} mentions removed" for k in kinds), "all mentions removed",
                     "other words removed"), rows))

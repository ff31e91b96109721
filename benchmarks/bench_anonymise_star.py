"""Anonymisation on STAR's bank dialogues, against the values each customer was told to give.

STAR (Mosig et al. 2020) dialogues were written by crowd workers following instructions; in the
bank fraud-report task the instructions hand the customer a name, an account number or a PIN (some
"either 7402 or 3941"), and the answer to a security question (a childhood pet's name or the
mother's maiden name). What a dialogue says of those values is therefore known. The agent asks for
them the way support agents do ("Can you tell me your account number, please?", "Right, and your
PIN as well please."), and customers answer in a turn of their own, so this is where cues across
turns are put to the test. Scored as the ABCD section is: every word of 3 or more characters of a
value in an original turn is a mention, removed when the anonymised turn holds it fewer times.

Side by side: plain Presidio (default recognizers, the same spaCy model and entity types) on each
turn and on each whole dialogue; curatune's anonymise step on the dialogues as a per-turn file.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from benchmarks.bench_anonymise_abcd import anonymised_by_curatune, by_plain_presidio, removal_rows, words
from benchmarks.common import header, table

QUICK_DIALOGUES = 60
# What the instructions say, and the field each value is scored under.
GIVEN = [
    (re.compile(r"\bYou are ([A-Z][\w'-]+(?: [A-Z][\w'-]+)+)\."), "customer name"),
    (re.compile(r"\baccount number is (\d+)"), "account number"),
    (re.compile(r"\bPIN is (\d+)"), "PIN"),
    (re.compile(r"\beither (\d+) or (\d+)"), "PIN"),
    (re.compile(r"\bsecurity questions: ([\w'-]+)\.\)"), "security answer"),
]


def given_values(instructions: list[str]) -> dict[str, str]:
    """Word (3 or more characters) of a value the instructions gave -> its field."""
    out: dict[str, str] = {}
    for text in instructions:
        for rx, field in GIVEN:
            for m in rx.finditer(text):
                for value in m.groups():
                    out.update((w, field) for w in words(value) if len(w) >= 3)
    return out


def bank_dialogues(data_dir: Path) -> list[tuple[list[tuple[str, str]], dict[str, str]]]:
    """Bank dialogues whose instructions give at least one value: (turns as (speaker, text), values)."""
    out = []
    with gzip.open(data_dir / "star" / "star_compact.jsonl.gz", "rt") as fh:
        for line in fh:
            d = json.loads(line)
            values = given_values(d.get("user_guide_instructions") or []) if "bank" in d["domains"] else {}
            if values and d["turns"]:
                out.append(([(t["speaker"], t["text"]) for t in d["turns"]], values))
    return out


def run(data_dir: Path, quick: bool = False) -> str:
    dialogues = bank_dialogues(data_dir)
    if quick:
        dialogues = dialogues[:QUICK_DIALOGUES]
    turns = [t for t, _ in dialogues]
    plain, entities = by_plain_presidio(turns)
    outputs = {**plain, "curatune (anonymise step)": anonymised_by_curatune(turns)}
    rows, kinds = removal_rows([[text for _, text in ts] for ts in turns], [v for _, v in dialogues], outputs)
    return (header("Anonymisation on STAR bank dialogues (values the customers were given)")
            + f"The {len(dialogues):,} STAR dialogues in the bank domain whose instructions give the customer "
            f"personal values ({sum(len(t) for t in turns):,} turns): a name, an account number or a PIN (some "
            "\"either 7402 or 3941\"), and the answer to a security question (a pet's name, a mother's maiden "
            "name). A mention is a word of 3 or more characters of such a value in an original turn, removed "
            "when the anonymised turn holds that word fewer times. Plain Presidio asks for the types curatune asks "
            f"for that it has ({', '.join(entities)}), its findings replaced by `<TYPE>`; curatune runs its "
            "anonymise step on the dialogues as a per-turn file. The last column counts removed words that "
            "belong to no given value (replaced beside them, correctly or not; not broken down by kind). "
            "**Not held out:** curatune's recognizers for PINs, security answers and birth dates were written "
            "after audits of these dialogues, so its figures here are on data its rules were tuned on, not a "
            "measure of what they find on unseen text.\n\n"
            + table(("anonymised by", *(f"{k} mentions removed" for k in kinds), "all mentions removed",
                     "other words removed"), rows))

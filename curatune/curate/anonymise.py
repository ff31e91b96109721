"""Anonymisation step: find personal data with Presidio (plus our recognizers), replace it
consistently per conversation, then re-scan everything written for leaks.

Runs on every row, dropped ones included (``sees_all_rows``), so excluded.parquet holds no
personal data either. Detection runs once per conversation on its rendered text; spans are
mapped back onto the turns so ``turns`` and ``text`` stay in step. The ledger gets counts per
entity type, never values. Leak scan: the rewritten texts are scanned again with the same
detectors; what it finds is replaced in a second pass and whatever is still found after that is
reported per type in the manifest and the ledger, and fails the run when ``fail_on_leak``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from typing import Any

import polars as pl

from curatune.config import AnonymiseConfig
from curatune.curate.base import CurationStep, Gate, StepResult, register_step
from curatune.curate.pii.engine import Detector, build_detector
from curatune.curate.pii.operators import OPERATORS, EntityBook, Replacer
from curatune.curate.pii.recognizers import ContextNameRecognizer
from curatune.errors import CuratuneError

log = logging.getLogger(__name__)
# A passage of this length or more is scanned in windows: spaCy's cost grows with document length.
WINDOW = 20_000


def _secret(cfg: AnonymiseConfig) -> bytes:
    ops = {cfg.operator, *cfg.operators.values()}
    bad = ops - set(OPERATORS)
    if bad:
        raise CuratuneError(f"config key 'curate.anonymise.operator(s)' has unknown operator '{sorted(bad)[0]}' "
                            f"(use one of {', '.join(OPERATORS)})")
    value = os.environ.get(cfg.secret_env, "")
    if ops & {"surrogate", "hash"} and not value:
        raise CuratuneError(f"the surrogate and hash operators need a secret key: set the environment variable "
                            f"{cfg.secret_env} (config [curate.anonymise] secret_env)")
    return value.encode()


def _rendered(row: dict[str, Any]) -> str:
    """The conversation as "speaker: text" lines (as the dataset contract renders it)."""
    turns = row.get("turns")
    if not turns:
        return row["text"]
    return "\n".join(f"{t['speaker']}: {t['text'] or ''}" for t in turns)


class Anonymiser:
    def __init__(self, cfg: AnonymiseConfig, detector: Detector | None = None) -> None:
        self.cfg = cfg
        self.detector = detector or build_detector(cfg)
        self.replacer = Replacer(cfg.operator, dict(cfg.operators), _secret(cfg))

    def find(self, texts: list[str]) -> list[list]:
        """Detection with very long texts cut into windows (results shifted back)."""
        flat, owner, offset = [], [], []
        for i, t in enumerate(texts):
            for start in range(0, max(len(t), 1), WINDOW):
                flat.append(t[start:start + WINDOW])
                owner.append(i)
                offset.append(start)
        found = self.detector.detect(flat)
        out: list[list] = [[] for _ in texts]
        for res, i, off in zip(found, owner, offset, strict=True):
            for r in res:
                r.start += off
                r.end += off
                out[i].append(r)
        return out

    def rewrite(self, text: str, results: list, book: EntityBook) -> tuple[str, Counter]:
        spans = [_trim_person(text, r.start, r.end) if r.entity_type == "PERSON" else (r.start, r.end, r.entity_type)
                 for r in results]
        spans = [sp for sp in spans if sp[1] > sp[0]]
        spans += _propagate_names(text, spans, book)
        spans = sorted(set(spans))
        counts: Counter = Counter()
        pieces, last = [], 0
        for start, end, entity in spans:
            if start < last:
                continue
            value = text[start:end]
            if self.replacer.surrogates and value in self.replacer.surrogates:
                continue  # our own surrogate, found again by the re-scan
            pieces += [text[last:start], self.replacer(entity, value, book)]
            counts[entity] += 1
            last = end
        pieces.append(text[last:])
        return "".join(pieces), counts


def _trim_person(text: str, start: int, end: int) -> tuple[int, int, str]:
    """NER sometimes takes the greeting with the name ("Sorry Maria"): keep only the name, so the
    mention links to the same person and the greeting stays readable."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[0].group(0).strip(",.") in ContextNameRecognizer.NOT_NAMES:
        words.pop(0)
    while words and words[-1].group(0).strip(",.") in ContextNameRecognizer.NOT_NAMES:
        words.pop()
    if not words:
        return start, start, "PERSON"
    return start + words[0].start(), start + words[-1].end(), "PERSON"


def _propagate_names(text: str, spans: list[tuple[int, int, str]], book: EntityBook) -> list[tuple[int, int, str]]:
    """Other mentions of a name already found in this conversation ("Thanks Kelly" after "Kelly Carroll")."""
    for start, end, entity in spans:
        if entity == "PERSON":
            book.key("PERSON", text[start:end])
    extra = []
    covered = [(s, e) for s, e, _ in spans]
    for token in book.person_tokens():
        for m in re.finditer(rf"\b{re.escape(token)}\b", text, flags=re.IGNORECASE):
            if m.group(0)[0].isupper() and all(m.end() <= s or m.start() >= e for s, e in covered):
                extra.append((m.start(), m.end(), "PERSON"))
    return extra


@register_step
class Anonymise(CurationStep):
    name = "anonymise"
    sees_all_rows = True

    def run(self, table: pl.DataFrame) -> StepResult:
        cfg: AnonymiseConfig = self.ctx.config.curate.anonymise
        anon = Anonymiser(cfg)
        rows = table.select("row_id", "text", "turns").to_dicts()
        rendered = [_rendered(r) for r in rows]
        found = anon.find(rendered)
        new_texts, counts, books = [], [], []
        for row, text, res in zip(rows, rendered, found, strict=True):
            if row.get("turns"):
                res = _within_lines(text, res)
            book = EntityBook()
            new, c = anon.rewrite(text, res, book)
            new_texts.append(new)
            counts.append(c)
            books.append(book)
        # Leak scan: every rewritten text is scanned again; what is found is replaced in a second
        # pass, and the rows that changed are scanned once more: what remains is reported.
        leaks: list[Counter] = [Counter() for _ in rows]
        hits = self._leaks(anon, new_texts, range(len(rows)))
        for i, res in hits.items():
            new_texts[i], c = anon.rewrite(new_texts[i], _within_lines(new_texts[i], res) if rows[i].get("turns")
                                           else res, books[i])
            counts[i].update(c)
        for i, res in self._leaks(anon, new_texts, sorted(hits)).items():
            leaks[i] = Counter(r.entity_type for r in res)
        out_turns = [_split_turns(r, t) for r, t in zip(rows, new_texts, strict=True)]
        total = [sum(c.values()) for c in counts]
        leaked = [sum(c.values()) for c in leaks]
        result_rows = pl.DataFrame({
            "row_id": table["row_id"],
            "is_issue": [n > 0 for n in total],
            "score": [1.0 / (1.0 + n) for n in total],
            "action": ["keep"] * len(rows),
            "reason": ["pii_found" if n else None for n in total],
            "pii_total": total,
            "pii_counts": [json.dumps(dict(sorted(c.items()))) for c in counts],
            "pii_leaked": leaked,
        }, schema_overrides={"reason": pl.String})
        text_table = pl.DataFrame({"row_id": table["row_id"], "text": new_texts,
                                   "turns": pl.Series(out_turns, dtype=table.schema["turns"])})
        by_type: Counter = sum(counts, Counter())
        leak_by_type: Counter = sum(leaks, Counter())
        n_leaked = sum(leaked)
        allowed = self.ctx.config.evaluate.gates.max_leaked_pii
        summary = {
            "rows_with_pii": int(sum(1 for n in total if n)),
            "entities_by_type": dict(sorted(by_type.items())),
            "leak_scan": {"remaining_by_type": dict(sorted(leak_by_type.items())), "remaining": n_leaked,
                          "rows_scanned": len(rows), "passed": n_leaked <= allowed},
            "operator": cfg.operator,
            "spacy_model": cfg.spacy_model if anon.detector.has_ner else f"{cfg.spacy_model} (missing: no NER)",
        }
        gates = [Gate(name="leak_scan", passed=(n_leaked <= allowed) or not cfg.fail_on_leak, value=n_leaked,
                      threshold=allowed, detail="personal data still found after anonymisation")]
        return StepResult(rows=result_rows, summary=summary, text=text_table, gates=gates)

    @staticmethod
    def _leaks(anon: Anonymiser, texts: list[str], idx) -> dict[int, list]:
        """Findings in ``texts[idx]`` that are not our own replacements."""
        idx = list(idx)
        found = anon.find([texts[i] for i in idx]) if idx else []
        out = {}
        for i, res in zip(idx, found, strict=True):
            placed = [m.span() for m in _REPLACEMENT.finditer(texts[i])]
            res = [r for r in res if all(r.end <= s or r.start >= e for s, e in placed)
                   and not any(sur in texts[i][r.start:r.end] for sur in anon.replacer.surrogates)]
            if res:
                out[i] = res
        return out

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        if "pii_count" not in truth.columns:
            return {}
        t = truth.select("row_id", "pii_count").join(result.rows.select("row_id", "pii_total"), on="row_id")
        planted = t.filter(pl.col("pii_count") > 0)
        return {"rows_with_planted_pii": planted.height,
                "rows_with_planted_pii_found": int((planted["pii_total"] > 0).sum()),
                "leak_scan_remaining": int(result.rows["pii_leaked"].sum())}


# Our placeholders and hashes (<PERSON_1>, <EMAIL_ADDRESS_3f9a...>) and masks (*****).
_REPLACEMENT = re.compile(r"<[A-Z][A-Z_]*_[0-9a-f]+>|\*{3,}")


def _within_lines(text: str, results: list) -> list:
    """A span never crosses a turn boundary (a line), so turns can be recovered after replacement."""
    for r in results:
        nl = text.find("\n", r.start, r.end)
        if nl != -1:
            r.end = nl
    return [r for r in results if r.end > r.start]


def _split_turns(row: dict[str, Any], new_text: str) -> list[dict] | None:
    """Recover the turns from the rewritten rendering (each line is "speaker: text")."""
    turns = row.get("turns")
    if not turns:
        return None
    lines = new_text.split("\n")
    if len(lines) != len(turns):  # a replacement never adds a newline; keep turns aligned regardless
        return [{"speaker": t["speaker"], "text": ln.split(": ", 1)[-1]} for t, ln in zip(turns, lines, strict=False)]
    return [{"speaker": t["speaker"], "text": ln[len(t["speaker"]) + 2:] if ln.startswith(f"{t['speaker']}: ")
             else ln} for t, ln in zip(turns, lines, strict=True)]

"""A small curated, anonymised run with label-issue flags for the Label Studio tests (the server
fixtures live in tests/conftest.py, shared with the pipeline tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from curatune.config import Config, DataConfig
from curatune.curate.base import CurationStep, StepResult, issue_rows, register_step
from curatune.curate.pipeline import run_curation

# --------------------------------------------------------------------------------------------
# a small curated, anonymised run with label-issue flags, shared by the Label Studio tests

INTENTS = {
    "refund": "I want my money back for order {n}",
    "billing_dispute": "I was charged twice for order {n} this month",
    "order_status": "where is my parcel, order {n}",
    "cancellation": "please cancel my subscription {n}",
    "address_change": "I moved and need a new delivery address for order {n}",
    "technical_issue": "the app crashes when I log in, error {n}",
}
NAMES = ["Kelly Carroll", "Jonas Weber", "Priya Natarajan", "Tom Baker", "Ana Souza", "Maria Lopez"]


def write_transcripts(path: Path, n: int = 36) -> Path:
    """One row per turn: customers give their name and email, which anonymisation must replace."""
    labels = sorted(INTENTS)
    rows = []
    for i in range(n):
        label, name = labels[i % len(labels)], NAMES[(i // len(labels)) % len(NAMES)]
        first = name.split()[0]
        email = f"{first.lower()}.{i}@example.com"
        turns = [("customer", f"Hi, this is {name}. {INTENTS[label].format(n=1000 + i)}."),
                 ("agent", f"Thanks {first}, I can help with that. Which email is on the account?"),
                 ("customer", f"It is {email}."),
                 ("agent", "Done. Anything else I can do?")]
        for t, (speaker, text) in enumerate(turns):
            rows.append({"conversation_id": f"c{i:02d}", "turn": t, "speaker": speaker, "text": text,
                         "label": label, "split": "test" if i % 9 == 0 else "train",
                         "channel": "chat" if i % 2 else "email"})
    pl.DataFrame(rows).write_ndjson(path)
    return path


@register_step
class PlantedFlags(CurationStep):
    """Writes the ledger columns the label_issues step provides (is_label_issue, suggested_label,
    label_quality), so these tests do not depend on that step: every third row is flagged, with the
    next label as the suggestion."""

    name = "planted_flags"
    needs_labels = True
    ledger_columns = ("is_label_issue", "suggested_label", "label_quality")

    def run(self, table: pl.DataFrame) -> StepResult:
        labels = sorted(table["label"].drop_nulls().unique().to_list())
        t = table.select("row_id", "label").sort("row_id")
        flagged = [i % 3 == 0 for i in range(t.height)]
        suggested = [labels[(labels.index(lab) + 1) % len(labels)] if f else None
                     for lab, f in zip(t["label"], flagged, strict=True)]
        quality = [0.2 if f else 0.9 for f in flagged]
        return StepResult(rows=issue_rows(t["row_id"], is_issue=flagged, score=quality,
                                          reason=["label_issue" if f else None for f in flagged],
                                          is_label_issue=flagged, suggested_label=pl.Series(suggested, dtype=pl.String),
                                          label_quality=quality))


@pytest.fixture(scope="session")
def reviewed_run(tmp_path_factory) -> dict:
    """A run dir (RUN/curate) from 36 conversations: dedup, anonymise, planted flags."""
    root = tmp_path_factory.mktemp("ls-run")
    cfg = Config()
    data = write_transcripts(root / "transcripts.jsonl")
    cfg.data = DataConfig(inputs=[str(data)], conversation_col="conversation_id", group_cols=["channel"])
    cfg.curate.steps = ["dedup", "anonymise", "planted_flags"]
    cfg.curate.dedup.embedding = False
    run_curation(cfg, root / "run" / "curate")
    return {"run": root / "run", "config": cfg}


@pytest.fixture
def run_copy(reviewed_run, tmp_path) -> Path:
    """A private copy of the shared run, for tests that change it."""
    dest = tmp_path / "run"
    shutil.copytree(reviewed_run["run"], dest)
    return dest

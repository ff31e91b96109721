"""`curatune run` with [labelstudio] enabled, against the real Label Studio server of the curate tests:
the first run pushes rows, a reviewer decides, the next run pulls and applies the decision, and
the model retrains because the curated data changed; a third run has nothing new and skips."""

from __future__ import annotations

import json

import polars as pl
import pytest
from label_studio_sdk import LabelStudio

from curatune.config import load_config
from curatune.curate.labelstudio import CHOICES
from curatune.pipeline import run_pipeline
from tests.reports.test_pipeline import CONFIG, _write_data

pytestmark = pytest.mark.labelstudio

LS_SECTION = """
[labelstudio]
enabled = true
url = "{url}"
project = "pipeline round"
only = "all"
# Synthetic words, no personal data: the run has no anonymise step.
require_anonymised = false
"""


def test_run_pushes_pulls_applies_and_retrains(live_label_studio, monkeypatch, tmp_path):  # noqa: F811
    server = live_label_studio
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    _write_data(tmp_path / "data.csv", n=60)
    (tmp_path / "c.toml").write_text(CONFIG.format(steps='["dedup"]') + LS_SECTION.format(url=server.url))
    said: list[str] = []
    first = run_pipeline(load_config(tmp_path / "c.toml"), progress=said.append)
    assert "labelstudio" in first["ran"] and "train" in first["ran"]
    assert any(m.startswith("labelstudio: imported") for m in said)

    client = LabelStudio(base_url=server.url, api_key=server.token, max_retries=0, timeout=120)
    (project,) = [p for p in client.projects.list(title="pipeline round") if p.title == "pipeline round"]
    tasks = sorted(client.tasks.list(project=project.id, fields="task_only", include="id,data", page_size=1000),
                   key=lambda t: t.data["row_id"])
    to_drop = tasks[0]
    to_name = "dialogue" if "dialogue" in to_drop.data else "text"
    client.annotations.create(to_drop.id, result=[{"from_name": CHOICES, "to_name": to_name, "type": "choices",
                                                    "value": {"choices": ["drop"]}}])

    second = run_pipeline(load_config(tmp_path / "c.toml"))
    run = tmp_path / "run"
    ledger = pl.read_parquet(run / "curate" / "ledger.parquet")
    dropped = ledger.filter(pl.col("row_id") == to_drop.data["row_id"])
    assert dropped["fate"].item() == "dropped" and dropped["dropped_by"].item() == "human_review"
    assert second["skipped"] == ["curate"]
    assert second["ran"] == ["labelstudio", "train", "evaluate", "report"]
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["curation"]["reviews"]["ran"] is True

    third = run_pipeline(load_config(tmp_path / "c.toml"))
    assert third["ran"] == ["labelstudio"]
    assert set(third["skipped"]) == {"curate", "train", "evaluate", "report"}

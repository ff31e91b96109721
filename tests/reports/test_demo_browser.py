"""The real demo run (`curatune demo` on a small dataset) opened in headless Chromium.

Runs every stage for real, once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reports.test_browser import check_page, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_ROWS = 120


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """`curatune demo` on a small dataset, once per session: every stage built so far runs for real."""
    from curatune.pipeline import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    result = run_demo(out, rows=DEMO_ROWS, seed=7)
    assert result["audit_html"] == str(out / "report" / "audit.html")
    return out


def test_demo_audit_in_chromium(browser, demo_run, artifacts):
    content = json.loads((demo_run / "report" / "audit.json").read_text())
    # The demo data sits beside the run (it holds raw personal data), never inside it.
    assert (demo_run.parent / "demo-data" / "transcripts.jsonl").is_file()
    assert not list(demo_run.rglob("pii.parquet")) and not list(demo_run.rglob("transcripts.jsonl"))
    assert content["curation"]["status"] == "complete"
    assert content["curation"]["pii"]["ran"] and content["curation"]["pii"]["leak_scan"]["passed"]
    # The planted duplicates are found and the report says how many of them were recovered.
    assert content["curation"]["duplicates"]["dropped_by_reason"].get("exact_duplicate", 0) > 0
    assert content["curation"]["truth"]["dedup"]["exact_dup_recall"] > 0.5
    assert (content["training"]["status"], content["evaluation"]["status"]) == ("complete", "complete")
    html = demo_run / "report" / "audit.html"
    page, seen = open_page(browser, html)
    check_page(page, seen, html, min_charts=5)
    page.screenshot(path=str(artifacts / "demo-audit.png"), full_page=True)
    page.close()


def test_demo_rerun_skips_every_stage(demo_run):
    from curatune.pipeline import run_demo

    before = (demo_run / "report" / "audit.html").read_bytes()
    again = run_demo(demo_run, rows=DEMO_ROWS, seed=7)
    assert again["ran"] == []
    assert set(again["skipped"]) >= {"curate", "report"}
    assert (demo_run / "report" / "audit.html").read_bytes() == before

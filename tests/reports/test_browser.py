"""The audit page in a real browser: headless Debian Chromium driven by Playwright.

It loads with no console errors and no request besides the file itself, every section heading is
there, every chart has a size, a transcript's <script> stays text, print layout hides the
navigation, and a screenshot is kept under .artifacts/reports/. In CI (CI=true) these tests fail
when Chromium is missing; locally they skip with a message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SECTION_HEADINGS = {
    "verdict-h": "Verdict", "findings": "Findings",
    "curation-h": "Curation", "curation-input": "Input", "curation-changes": "What was dropped or relabelled",
    "curation-duplicates": "Duplicates and leakage", "curation-pii": "Personal data",
    "curation-label-issues": "Label issues", "curation-reviews": "Human review",
    "curation-groups": "Removed and flagged rows per group", "curation-steps": "Steps and gates",
    "training-h": "Training", "training-model": "Model and data", "training-curves": "Loss and validation curves",
    "training-verdict": "Fine-tuned model against the frozen baseline", "training-time": "Time and throughput",
    "training-truncation": "Truncation", "training-config": "Training configuration",
    "evaluation-h": "Evaluation",
}

VIEWPORT = {"width": 1280, "height": 900}


def open_page(browser, html: Path):
    """Open ``html`` and record console messages, page errors, dialogs and every request."""
    page = browser.new_page(viewport=VIEWPORT)
    seen = {"console": [], "errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(html.resolve().as_uri(), wait_until="load")
    return page, seen


def check_page(page, seen, html: Path, *, min_charts: int) -> list[dict]:
    assert seen["errors"] == []
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
    assert seen["requests"] == [html.resolve().as_uri()]
    assert seen["dialogs"] == []
    for hid, text in SECTION_HEADINGS.items():
        heading = page.locator(f"#{hid}")
        assert heading.count() == 1, hid
        assert heading.is_visible(), hid
        assert text in heading.inner_text(), (hid, heading.inner_text())
    charts = page.eval_on_selector_all(
        "svg.chart", "els => els.map(e => ({id: e.id, w: e.getBoundingClientRect().width,"
                     " h: e.getBoundingClientRect().height, label: e.querySelector('title')?.textContent}))")
    assert len(charts) >= min_charts
    for c in charts:
        assert c["w"] > 0 and c["h"] > 0, c
        assert c["label"], c
    assert page.evaluate("document.scripts.length") == 0
    assert sideways_overflow(page) == 0
    assert text_outside_charts(page) == []
    return charts


def text_outside_charts(page) -> list[str]:
    """The chart texts that the browser lays out past their chart's edges (more than half a pixel)."""
    return page.eval_on_selector_all(
        "svg.chart text", "els => els.filter(e => { const r = e.getBoundingClientRect(),"
                          " s = e.ownerSVGElement.getBoundingClientRect(); return r.left < s.left - 0.5 ||"
                          " r.right > s.right + 0.5 || r.top < s.top - 0.5 || r.bottom > s.bottom + 0.5; })"
                          ".map(e => e.textContent)")


def test_chart_labels_stay_inside_their_chart(browser, tmp_path):
    """Label widths are estimated without font metrics, and the browser's layout judges them: capitals ran
    past a bar chart's left edge ("STREET_ADDRESS" in the demo report's personal-data chart)."""
    from curatune.reports import svg

    labels = ["STREET_ADDRESS", "EMAIL_ADDRESS", "W" * 40, "m" * 12, "客户服务中心的地址",
              "a very long customer segment name, forty-five"]
    # One chart a label: a chart's label area is as wide as its widest label.
    charts = "".join(svg.bar_chart(f"c{i}", "t", [svg.BarGroup(label, [svg.Bar("", 0.5)])], max_value=1.0)
                     for i, label in enumerate(labels))
    html = tmp_path / "chart.html"
    html.write_text(f"<!doctype html><meta charset='utf-8'><title>t</title><body>{charts}</body>", encoding="utf-8")
    page, seen = open_page(browser, html)
    assert seen["errors"] == [] and page.locator("svg.chart").count() == len(labels)
    assert text_outside_charts(page) == []
    page.close()


def sideways_overflow(page) -> int:
    """Pixels the page scrolls sideways; a table wider than the window must scroll in its own box instead."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_fixture_audit_in_chromium(browser, fixture_run, artifacts):
    html = fixture_run / "report" / "audit.html"
    page, seen = open_page(browser, html)
    charts = check_page(page, seen, html, min_charts=12)
    ids = {c["id"] for c in charts}
    assert {"chart-training-loss", "chart-training-validation", "chart-evaluation-confusion",
            "chart-evaluation-calibration", "chart-curation-pii", "chart-evaluation-comparison",
            "chart-evaluation-fairness-channel", "chart-evaluation-forgetting-line",
            "chart-evaluation-headline"} <= ids
    # The hostile transcript is shown as text, characters and all.
    transcript = page.locator("pre.transcript", has_text='<script>alert("x")</script>')
    assert transcript.count() >= 1
    assert "<img src=x onerror=alert(1)>" in transcript.first.inner_text()
    assert page.locator("img").count() == 0
    # Pass/fail is written out, not just coloured.
    verdict = page.locator("#gates").inner_text()
    assert "PASS" in verdict and "min_accuracy" in verdict
    # Every verdict link lands on an element of the page.
    for href in page.eval_on_selector_all("#gates a", "els => els.map(e => e.getAttribute('href'))"):
        assert page.locator(href).count() == 1, href
    page.screenshot(path=str(artifacts / "fixture-audit.png"), full_page=True)
    # A phone-width window: wide tables (the sha256 column) scroll in their own box, not the page.
    page.set_viewport_size({"width": 390, "height": 800})
    assert sideways_overflow(page) == 0
    assert page.locator(".table-scroll", has_text="Input files (sha256").evaluate("e => e.scrollWidth > e.clientWidth")
    page.set_viewport_size(VIEWPORT)
    page.emulate_media(media="print")
    assert not page.locator("nav").is_visible()
    assert page.locator("#verdict-h").is_visible()
    page.screenshot(path=str(artifacts / "fixture-audit-print.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("name", ["curation.html", "training.html", "evaluation.html"])
def test_stage_pages_load_cleanly(browser, fixture_run, name):
    html = fixture_run / "report" / name
    page, seen = open_page(browser, html)
    assert seen["errors"] == [] and seen["requests"] == [html.resolve().as_uri()]
    assert [m for m in seen["console"] if m[0] == "error"] == []
    stage = name.split(".")[0]
    assert page.locator(f"#{stage}-h").is_visible()
    assert sideways_overflow(page) == 0
    page.close()


def test_a_long_unbroken_group_name_does_not_make_the_page_scroll_sideways(browser, tmp_path):
    """A hashed segment id as a group: paragraphs and findings naming it pushed the page 720 px wide."""
    import json

    from curatune.reports import render_reports
    from tests.reports.fixture_run import build_run

    run = build_run(tmp_path / "run")
    long_name = "segment_" + "a1b2c3d4" * 12
    path = run / "evaluate" / "metrics.json"
    metrics = json.loads(path.read_text())
    channel = metrics["fairness"]["channel"]
    for g in channel["by_group"]:
        g["group"] = long_name if g["group"] == "chat" else g["group"]
    channel["difference"]["accuracy"]["best"] = long_name
    path.write_text(json.dumps(metrics))
    render_reports(run)
    page, _ = open_page(browser, run / "report" / "audit.html")
    assert long_name in page.content()
    page.set_viewport_size({"width": 390, "height": 800})
    assert sideways_overflow(page) == 0

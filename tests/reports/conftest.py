"""Fixtures for the report tests: a fixed synthetic run, rendered; headless Chromium when present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.reports.fixture_run import build_run

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "reports"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory) -> Path:
    """The fixed run, rendered once (tests must not modify it)."""
    from curatune.reports import render_reports

    run = build_run(tmp_path_factory.mktemp("fixture") / "run")
    render_reports(run)
    return run


def chromium_path() -> str | None:
    found = os.environ.get("CURATUNE_CHROMIUM") or shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    return found


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright. In CI these tests must run: a missing browser fails them."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if path is None or sync_playwright is None:
        why = ("chromium not found (install Debian's 'chromium' package; `make browser` does it as root)"
               if path is None else "playwright is not installed (pip install -e '.[dev]')")
        if IN_CI:
            pytest.fail(f"browser tests must run in CI: {why}")
        pytest.skip(f"browser tests skipped: {why}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

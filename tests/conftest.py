"""Shared fixtures. Nothing here downloads: models come from installed packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run_cli(*args: str | Path) -> tuple[int, str]:
    """Run the real CLI entry point in-process; return (exit code, stderr+stdout text)."""
    import contextlib
    import io
    import sys

    from curatune import cli

    buf = io.StringIO()
    argv = ["curatune", *map(str, args)]
    old = sys.argv
    sys.argv = argv
    code = 0
    try:
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
            cli.console.file = buf
            try:
                cli.main()
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        sys.argv = old
        cli.console.file = sys.stderr
    return code, buf.getvalue()


@pytest.fixture
def cli_run():
    return run_cli

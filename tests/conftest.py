"""Shared fixtures. Nothing here downloads: models come from installed packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.curate.labelstudio_server import BINARY, LabelStudioServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# The real Label Studio server for tests marked ``labelstudio``: one start per session. In CI
# (``CI=true``) these tests must run: a missing install or a server that does not start fails.
# Locally, without ``.venv-labelstudio``, they are skipped with a message saying how to get it.
@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    if not BINARY.exists():
        message = f"Label Studio is not installed ({BINARY.parent.parent.name} missing): run `make labelstudio`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = LabelStudioServer(data_dir=tmp_path_factory.mktemp("label-studio") / "data")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(f"Label Studio did not start: {exc}")
    yield server
    server.stop()

@pytest.fixture
def live_label_studio(label_studio):
    """The session's server, restarted first if an earlier test killed it."""
    label_studio.ensure_running()
    return label_studio



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


def error_lines(text: str) -> list[str]:
    """The CLI's ``error: ...`` lines in its output."""
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli_run():
    return run_cli

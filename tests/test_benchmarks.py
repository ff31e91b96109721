"""The benchmark runner's own logic (the benchmarks themselves need ../shared/data and hours)."""

import subprocess
from pathlib import Path

from benchmarks.run_all import available, main, staleness
from tests.conftest import error_lines


def test_unknown_or_missing_benchmark_names_are_refused_before_anything_runs(capsys, tmp_path):
    assert main(["--data", str(tmp_path), "--only", "dedup", "dedupe"]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "unknown: dedupe" in err[0] and "label_issues" in err[0]
    assert main(["--data", str(tmp_path), "--only"]) == 2
    assert "benchmark names" in capsys.readouterr().err
    assert {"dedup", "anonymise", "train", "labelstudio"} <= set(available())


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def test_a_section_is_marked_stale_when_its_script_changed_after_the_run(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    script = tmp_path / "benchmarks" / "bench_x.py"
    script.parent.mkdir()
    script.write_text("A = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    measured = _git(tmp_path, "rev-parse", "--short", "HEAD")
    section = f"## X\n\n- date: 2026-12-02\n- code: {measured}\n\n| a |\n"
    assert staleness("x", section, tmp_path) == ""
    (tmp_path / "other.py").write_text("")  # another file's change does not make it stale
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "two")
    assert staleness("x", section, tmp_path) == ""
    script.write_text("A = 2\n")
    _git(tmp_path, "commit", "-q", "-am", "three")
    later = _git(tmp_path, "rev-parse", "--short", "HEAD")
    note = staleness("x", section, tmp_path)
    assert note.startswith("\n_Stale:_") and later in note and "--only x" in note
    assert "records no commit" in staleness("x", "## X\n\n- date: 2026-12-02\n", tmp_path)

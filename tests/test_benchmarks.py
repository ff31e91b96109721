"""The benchmark runner's own logic (the benchmarks themselves need ../shared/data and hours)."""

import subprocess
from pathlib import Path

from benchmarks.run_all import available, main, script_files, staleness
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


def _init_repo(root: Path) -> None:
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")


def test_a_section_is_marked_stale_when_its_script_changed_after_the_run(tmp_path):
    _init_repo(tmp_path)
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


def test_a_change_to_a_benchmark_module_the_script_imports_makes_its_section_stale(tmp_path):
    _init_repo(tmp_path)
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_x.py").write_text("from benchmarks.shared import table\nimport benchmarks.other_x\n")
    (bench / "bench_y.py").write_text("from benchmarks import shared\nimport polars\n")
    (bench / "shared.py").write_text("from benchmarks.deep import row\n")  # reached only through shared
    (bench / "deep.py").write_text("R = 1\n")
    (bench / "other_x.py").write_text("")
    (bench / "unused.py").write_text("")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    assert sorted(script_files("x", tmp_path)) == ["benchmarks/bench_x.py", "benchmarks/deep.py",
                                                   "benchmarks/other_x.py", "benchmarks/shared.py"]
    assert sorted(script_files("y", tmp_path)) == ["benchmarks/bench_y.py", "benchmarks/deep.py",
                                                   "benchmarks/shared.py"]
    section = f"## X\n\n- code: {_git(tmp_path, 'rev-parse', '--short', 'HEAD')}\n"
    (bench / "unused.py").write_text("U = 1\n")  # no section imports it
    _git(tmp_path, "commit", "-q", "-am", "two")
    assert staleness("x", section, tmp_path) == "" and staleness("y", section, tmp_path) == ""
    (bench / "deep.py").write_text("R = 2\n")
    _git(tmp_path, "commit", "-q", "-am", "three")
    later = _git(tmp_path, "rev-parse", "--short", "HEAD")
    for name in ("x", "y"):
        note = staleness(name, section, tmp_path)
        assert "`benchmarks/deep.py`" in note and later in note and f"--only {name}" in note
        assert "bench_" not in note.split("re-run")[0]  # names the module that changed, not the script
    (bench / "deep.py").write_text("R = 1\n")  # undone: the code is as it was measured
    _git(tmp_path, "commit", "-q", "-am", "four")
    assert staleness("x", section, tmp_path) == "" and staleness("y", section, tmp_path) == ""


def test_a_change_to_the_curatune_code_a_section_runs_makes_it_stale(tmp_path):
    """Only benchmark modules were followed: a section measured before the code it runs changed (the train
    sections' intervals came from a resampler since replaced) read as current."""
    _init_repo(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench_x.py").write_text("def run():\n    from curatune.train import outputs\n")
    pkg = tmp_path / "curatune" / "train"
    pkg.mkdir(parents=True)
    (tmp_path / "curatune" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("import curatune.train.run\n")
    (pkg / "outputs.py").write_text("from curatune.stats import boot\n")
    (pkg / "run.py").write_text("")
    for name in ("stats", "a", "b", "c", "d"):
        (tmp_path / "curatune" / f"{name}.py").write_text("")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    assert sorted(script_files("x", tmp_path)) == [
        "benchmarks/bench_x.py", "curatune/__init__.py", "curatune/stats.py", "curatune/train/__init__.py",
        "curatune/train/outputs.py", "curatune/train/run.py"]
    section = f"## X\n\n- code: {_git(tmp_path, 'rev-parse', '--short', 'HEAD')}\n"
    (tmp_path / "curatune" / "a.py").write_text("A = 1\n")  # code the section does not run
    _git(tmp_path, "commit", "-q", "-am", "two")
    assert staleness("x", section, tmp_path) == ""
    commits = []
    for i, rel in enumerate(["curatune/stats.py", "curatune/train/run.py", "curatune/train/__init__.py",
                             "curatune/__init__.py", "curatune/train/outputs.py", "curatune/stats.py",
                             "curatune/stats.py"]):
        (tmp_path / rel).write_text((tmp_path / rel).read_text() + f"X{i} = {i}\n")
        _git(tmp_path, "commit", "-q", "-am", f"change {i}")
        commits.append(_git(tmp_path, "rev-parse", "--short", "HEAD"))
    note = staleness("x", section, tmp_path)
    # Five files changed: four named, the rest counted; seven commits: the first and last named.
    assert " and 1 more changed after this run (7 commits, " in note, note
    assert f"{commits[0]} to {commits[-1]})" in note and "--only x" in note


def test_a_section_that_runs_a_curation_step_by_name_imports_its_module():
    """Staleness follows imports; a step run by its name alone ("anonymise" in a config's ``steps``) is
    imported by the registry at run time, and a change to it would leave the section unmarked."""
    import ast
    import inspect

    from curatune.curate.base import registered_steps

    root = Path(__file__).resolve().parents[1]
    modules = {name: str(Path(inspect.getfile(cls)).relative_to(root)) for name, cls in registered_steps().items()}
    for name in available():
        tree = ast.parse((root / "benchmarks" / f"bench_{name}.py").read_text())
        named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in modules}
        missing = sorted({modules[step] for step in named} - set(script_files(name, root)))
        assert not missing, f"bench_{name}.py names steps it does not import: {missing}"

"""The shipped example configs load and validate; `curatune validate` names bad keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curatune.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_the_three_examples_are_shipped():
    assert {p.name for p in CONFIGS} >= {"demo.toml", "banking77.toml", "transcripts_turns.toml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(cli_run, path):
    cfg = load_config(path)
    assert cfg.data.inputs, "an example config names its input"
    code, out = cli_run("validate", path)
    assert code == 0, out
    assert f"{path}: ok" in out.replace("\n", "")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_header_gives_the_exact_command(path):
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    assert re.search(r"curatune (run|demo)\b", header)
    if "curatune run" in header:
        assert f"configs/{path.name}" in header


def test_demo_config_matches_the_generated_one(tmp_path):
    """configs/demo.toml runs the same pipeline as the demo.toml the generator writes beside its data."""
    from curatune.demo import generate_demo

    generated = load_config(generate_demo(tmp_path / "demo-data", n_conversations=40)["config"]).resolved()
    shipped = load_config(next(p for p in CONFIGS if p.name == "demo.toml")).resolved()
    for cfg in (generated, shipped):
        cfg["run"].pop("out_dir")
        for key in ("inputs", "reference", "truth"):
            value = cfg["data"][key]
            cfg["data"][key] = [Path(v).name for v in value] if isinstance(value, list) else Path(value).name
    assert shipped == generated


@pytest.mark.parametrize(("body", "message"), [
    ("[train]\nepochz = 3\n", "unknown config key 'train.epochz'"),
    ("[report]\nmax_examples = 'ten'\n", "config key 'report.max_examples' must be an integer"),
    ("[run]\nfail_on_gate = 1\n", "config key 'run.fail_on_gate' must be true or false"),
    ("[reprot]\ntitle = 'x'\n", "unknown config key 'reprot'"),
    ("[evaluate.gates]\nmin_accuracy = 'high'\n", "config key 'evaluate.gates.min_accuracy' must be a number"),
])
def test_validate_names_bad_keys(cli_run, tmp_path, body, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    code, out = cli_run("validate", bad)
    assert code == 2
    assert message in out
    assert str(bad) in out and "Traceback" not in out

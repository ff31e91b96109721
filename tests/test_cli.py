"""The command line: one-line errors with exit code 2, and results where it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import error_lines


def test_curate_writes_tables(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"msg": ["Where is my order", "where is my order!", "", "refund please"],
                  "intent": ["ship", "ship", "ship", "refund"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg, "--text-col", "msg",
                        "--label-col", "intent")
    assert code == 0, out
    ledger = pl.read_parquet(tmp_path / "out" / "ledger.parquet").sort("row_id")
    assert ledger["fate"].to_list() == ["kept", "dropped", "dropped", "kept"]
    assert ledger["reasons"].to_list() == [[], ["exact_duplicate"], ["empty_text"], []]
    excluded = pl.read_parquet(tmp_path / "out" / "excluded.parquet")
    assert set(excluded["reason"]) == {"exact_duplicate", "empty_text"}


@pytest.mark.parametrize(("content", "flags", "message"), [
    (b"body\nhi\n", [], "missing text column"),
    (b"", [], "input file is empty"),
    (b"text\n\xe9t\xe9\n", [], "not valid UTF-8"),
    (b"text\nhello\n", ["--id-col", "id"], "missing id column"),
])
def test_bad_input_exit_2(cli_run, tmp_path, content, flags, message):
    src = tmp_path / "d.csv"
    src.write_bytes(content)
    code, out = cli_run("curate", src, "--out", tmp_path / "out", *flags)
    assert code == 2, out
    (line,) = error_lines(out)  # one line, naming the file
    assert line.startswith(f"error: {src}") and message in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_label_missing_where_needed(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    src.write_bytes(b"text\nhello\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['label_issues']\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg)
    assert code == 2
    assert "missing label column" in out


def test_python_dash_m_works(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "curatune", "validate", tmp_path / "nope.toml"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'nope.toml'}: config file not found"]


def test_validate_warns_of_data_files_not_there(cli_run, tmp_path):
    """Paths are read relative to the config file; validate said only "ok", and curate then failed. A
    warning, not an error: the demo's configs name data `curatune generate` writes later."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\ninputs = ['here.csv', 'missing.csv']\ntruth = 'truth.parquet'\n")
    (tmp_path / "here.csv").write_text("text\nhi\n")
    code, out = cli_run("validate", cfg)
    assert code == 0, out
    assert out.replace("\n", "") == (f"warning: [data] inputs: {tmp_path / 'missing.csv'} not found here"
                                     f"warning: [data] truth: {tmp_path / 'truth.parquet'} not found here{cfg}: ok")


def test_a_config_path_that_is_a_directory_says_so(cli_run, tmp_path):
    code, out = cli_run("validate", tmp_path)
    assert code == 2
    assert out.strip() == f"error: {tmp_path}: config path is a directory, expected a .toml file"


@pytest.mark.parametrize(("args", "message"), [
    (("train", "--bogus"), "No such option: --bogus"),
    (("train",), "Missing argument 'curated'"),
    (("nosuchcommand",), "No such command 'nosuchcommand'"),
])
def test_usage_mistakes_are_usage_errors_not_tracebacks(cli_run, args, message):
    code, out = cli_run(*args)
    assert code == 2, out
    assert message in out and "Traceback" not in out


@pytest.mark.parametrize(("body", "message"), [
    ("[curate.anonymise]\nentities = ['PERSON', 'PASSPORT']\n",
     "config key 'curate.anonymise.entities' has unknown entity type 'PASSPORT'"),
    ("[curate.anonymise.operators]\nEMAIL_ADRESS = 'mask'\n",
     "config key 'curate.anonymise.operators.EMAIL_ADRESS' is not an entity type"),
    ("[curate.anonymise]\noperator = 'surrogate'\nsecret_env = 'CURATUNE_TEST_UNSET_SECRET'\n",
     "need a secret key: set the environment variable CURATUNE_TEST_UNSET_SECRET"),
    ("[curate.anonymise]\nspacy_model = 'en_core_web_nosuch'\n",
     "spaCy model 'en_core_web_nosuch' is not installed"),
    ("[train]\nmodel = 'no/such-model-here'\n", "model 'no/such-model-here' is not in the local Hugging Face cache"),
    ("[train]\nreport_to = ['clearml']\n", "report_to: 'clearml' is not installed"),
    # Found when tokenizing before: after all of a `curatune run`'s curation.
    ("[train]\nmax_length = 100000\n", "[train] max_length = 100000 exceeds what the model takes ("),
    ("[curate]\nsteps = ['dedup', 'dedupe']\n", "unknown curation step 'dedupe'"),
    ("[run]\nname = 'nightly'\n", "unknown config key 'run.name'"),
    # "" was the working folder (the stage folders among the user's files); "~name" a traceback (exit 1).
    ("[run]\nout_dir = ''\n", "[run] out_dir must be a folder name, not empty, got ''"),
    ("[data]\ninputs = ['~nosuchuser4829/d.csv']\n",
     "path '~nosuchuser4829/d.csv': '~' names no home folder on this machine"),
])
def test_validate_checks_what_the_stages_need_before_any_work(cli_run, tmp_path, monkeypatch, body, message):
    """Settings only a stage's start could refuse (entity types, the model, trackers) are refused by
    `validate`, before a run spends minutes on the stages before them."""
    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    monkeypatch.delenv("CURATUNE_TEST_UNSET_SECRET", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    code, out = cli_run("validate", cfg)
    assert code == 2, out
    assert message in out.replace("\n", "") and "Traceback" not in out
    # The file is named (a project may hold many configs).
    assert str(tmp_path) in out.replace("\n", "")


@pytest.mark.parametrize("command", ["curate", "generate", "train", "evaluate"])
def test_an_output_path_that_is_a_file_is_a_one_line_error_before_any_work(cli_run, tmp_path, command):
    """They raised FileExistsError/NotADirectoryError tracebacks (exit 1); curate did all its work first."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    src = tmp_path / "d.csv"
    src.write_text("text,label\nhello,a\n")
    args = {"curate": ("curate", src, "--out", afile), "generate": ("generate", "--out", afile),
            "train": ("train", tmp_path, "--out", afile), "evaluate": ("evaluate", tmp_path, "--out", afile)}
    if command in ("train", "evaluate"):
        (tmp_path / "curate").mkdir()
        (tmp_path / "curate" / "manifest.json").write_text('{"stage": "curate", "status": "complete"}')
        (tmp_path / "curate" / "curated.parquet").write_bytes(b"")
        (tmp_path / "train").mkdir()
        (tmp_path / "train" / "manifest.json").write_text('{"stage": "train", "status": "complete"}')
    code, out = cli_run(*args[command])
    assert code == 2, out
    assert error_lines(out) == [f"error: {afile}: the output path is a file, not a folder"]
    assert afile.read_text() == "not a folder"


def test_a_refused_file_operation_is_one_line_with_the_path(cli_run, tmp_path, monkeypatch):
    """What no check before the work catches (a disk filling up, permissions changed meanwhile)."""
    import curatune.curate.pipeline as curate_pipeline

    def refused(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "curated.parquet"))

    monkeypatch.setattr(curate_pipeline, "run_curation", refused)
    src = tmp_path / "d.csv"
    src.write_text("text\nhello\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in out
    assert error_lines(out) == [f"error: {tmp_path / 'out' / 'curated.parquet'}: Permission denied"]


@pytest.mark.parametrize("command", [["evaluate"], ["apply-reviews"], ["labelstudio", "push"], ["labelstudio", "pull"]])
def test_a_mistyped_run_directory_is_one_line(cli_run, tmp_path, command):
    # A note about using the default config came first, then the error: two lines for one mistake.
    code, text = cli_run(*command, tmp_path / "nope")
    assert code == 2 and len(error_lines(text)) == 1 and "no config recorded" not in text, text
    assert "no completed 'curate' stage here" in text


@pytest.mark.parametrize("value", ["verbose", "10"])
def test_a_log_level_that_is_none_is_one_line(cli_run, tmp_path, monkeypatch, value):
    """logging's ValueError ("Unknown level") was a traceback, before any command ran."""
    monkeypatch.setenv("CURATUNE_LOG", value)
    code, text = cli_run("report", tmp_path / "nope")
    assert code == 2 and error_lines(text) == [
        f"error: CURATUNE_LOG={value.upper()} is not a log level: use DEBUG, INFO, WARNING or ERROR"], text


def test_the_demo_data_folder_is_beside_a_run_directory_given_as_dot(tmp_path, monkeypatch):
    from curatune.pipeline import demo_data_dir

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    # "." has no name: the data went to "./-data", inside the run it must stay out of.
    assert demo_data_dir(Path(".")) == tmp_path / "run-data"


def test_demo_with_a_file_as_out_is_refused_before_any_data_is_written(cli_run, tmp_path):
    """It wrote 2,000 transcripts into 'afile-data' first, then said the output path is a file."""
    (tmp_path / "afile").write_text("not a folder")
    code, out = cli_run("demo", "--out", tmp_path / "afile")
    assert code == 2 and error_lines(out) == [f"error: {tmp_path / 'afile'}: the output path is a file, not a folder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_ctrl_c_outside_training_exits_130_and_says_so(cli_run, tmp_path, monkeypatch):
    """typer turns KeyboardInterrupt into an exit code it returns (not raises) outside standalone
    mode: every command exited 0 after Ctrl-C, so `curatune run && next-step` went on."""
    import curatune.curate.pipeline as curate_pipeline

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(curate_pipeline, "run_curation", interrupted)
    src = tmp_path / "d.csv"
    src.write_text("text\nhello\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out")
    assert code == 130 and "interrupted" in out and "Traceback" not in out


@pytest.mark.parametrize("command", [("run", "c.toml"), ("curate", "in.csv"), ("labelstudio", "push", "runs/x")])
def test_only_train_runs_as_several_processes(cli_run, tmp_path, monkeypatch, command):
    # What torchrun sets in each process it starts: every copy would write the same files.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.chdir(tmp_path)
    code, text = cli_run(*command)
    errors = error_lines(text)
    assert code == 2 and len(errors) == 1, text
    assert errors[0].startswith(f"error: `curatune {command[0]}` was launched as 2 processes (WORLD_SIZE): only "
                                "`curatune train` runs across processes")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["demo", "generate"])
def test_the_rows_help_states_the_generator_s_default(cli_run, command):
    from curatune.demo.generator import DEFAULT_CONVERSATIONS

    code, out = cli_run(command, "--help")
    assert code == 0 and f"({DEFAULT_CONVERSATIONS} by default)" in " ".join(out.replace("│", " ").split()), out


def test_input_files_that_would_crash_the_id_check_are_one_line_errors(cli_run, tmp_path):
    """The same file twice, or two files of one name sharing an id: an IndexError traceback (exit 1)."""
    for folder, rows in (("a", "1,hello\n2,world\n"), ("b", "1,foo\n3,bar\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "d.csv").write_text("id,text\n" + rows)
    a, b = tmp_path / "a" / "d.csv", tmp_path / "b" / "d.csv"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", a, a, "--config", cfg, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in out, out
    assert error_lines(out) == [f"error: {a}: input file is given twice; give each file once"]
    code, out = cli_run("curate", a, b, "--id-col", "id", "--config", cfg, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in out, out
    assert error_lines(out) == ["error: column 'id': row id '1' is in both a/d.csv and b/d.csv; ids must be unique "
                                "across the input files"]
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_a_parquet_text_column_of_bytes_that_are_not_utf8_is_a_one_line_error(cli_run, tmp_path):
    src = tmp_path / "bin.parquet"
    pl.DataFrame({"text": pl.Series([b"fine", b"caf\xe9 ok"], dtype=pl.Binary)}).write_parquet(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--config", cfg, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in out, out
    assert error_lines(out) == [f"error: {src}, row 2, column 'text': value is not valid UTF-8 text (byte 3); write "
                                "the column as UTF-8 strings"]


def test_debug_logging_is_curatune_s_own_and_shows_no_personal_data(tmp_path):
    """CURATUNE_LOG=DEBUG set every library's loggers to DEBUG: Presidio then logged the words around each
    finding ("Context list is: zebulon okonkwo 4111 ..."), the customer's data, on stderr."""
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["My name is Zebulon Okonkwo, card 4111 1111 1111 1111", "where is my parcel"],
                  "label": ["card", "delivery"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['anonymise']\n")
    proc = subprocess.run([sys.executable, "-m", "curatune", "curate", src, "--out", tmp_path / "out", "-c", cfg],
                          capture_output=True, text=True, env={**os.environ, "CURATUNE_LOG": "DEBUG"})
    assert proc.returncode == 0, proc.stderr
    assert pl.read_parquet(tmp_path / "out" / "curated.parquet")["text"][0] == \
        "My name is <PERSON_1>, card <CREDIT_CARD_1>"
    assert not [w for w in ("okonkwo", "4111") if w in (proc.stderr + proc.stdout).casefold()]


def test_a_launcher_variable_that_is_no_number_is_a_one_line_error(cli_run, tmp_path, monkeypatch):
    """WORLD_SIZE is read before any command: a job wrapper exporting it as text stopped every command,
    `validate` too, with a ValueError traceback (exit 1). Exported empty, it is unset."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    monkeypatch.setenv("WORLD_SIZE", "two")
    code, out = cli_run("validate", cfg)
    assert code == 2 and error_lines(out) == [
        "error: the environment variable WORLD_SIZE='two' is not a whole number (torchrun and accelerate launch "
        "set it; unset it to run as one process)"], out
    monkeypatch.setenv("WORLD_SIZE", "")
    code, out = cli_run("validate", cfg)
    assert code == 0, out

"""The ledger: one row per input row, kept + dropped = input, original labels never lost."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curatune.config import Config
from curatune.curate.pipeline import run_curation
from curatune.errors import CuratuneError
from tests.conftest import error_lines

WORDS = ["refund", "card", "late", "order", "hello", "please", "my", "the", "broken", "where"]


def _config(steps=("dedup",)) -> Config:
    cfg = Config()
    cfg.curate.steps = list(steps)
    cfg.curate.dedup.embedding = False  # keeps the property test fast; the embedding pass has its own tests
    return cfg


texts = st.one_of(
    st.none(),
    st.just(""),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join),
)
rows = st.lists(
    st.tuples(texts, st.sampled_from(["a", "b", None]), st.sampled_from(["train", "test", "validation"])),
    min_size=1, max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows)
def test_ledger_has_every_row_exactly_once(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("ledger")
    df = pl.DataFrame({"text": [t for t, _, _ in data], "label": [lab for _, lab, _ in data],
                       "split": [s for _, _, s in data]},
                      schema={"text": pl.String, "label": pl.String, "split": pl.String})
    src = tmp / "in.parquet"
    df.write_parquet(src)
    outcome = run_curation(_config(), tmp / "out", [str(src)])
    ledger = pl.read_parquet(tmp / "out" / "ledger.parquet")
    curated = pl.read_parquet(tmp / "out" / "curated.parquet")
    excluded = pl.read_parquet(tmp / "out" / "excluded.parquet")
    ids = [f"in:{i}" for i in range(len(data))]
    assert sorted(ledger["row_id"].to_list()) == sorted(ids)
    assert ledger["row_id"].n_unique() == len(ids)
    assert curated.height + excluded.height == len(ids)
    assert set(curated["row_id"]) | set(excluded["row_id"]) == set(ids)
    assert not set(curated["row_id"]) & set(excluded["row_id"])
    kept = ledger.filter(pl.col("fate") != "dropped")
    assert set(kept["row_id"]) == set(curated["row_id"])
    assert ledger["original_label"].to_list() == [
        df["label"][int(r.split(":")[1])] for r in ledger["row_id"].to_list()]
    assert outcome.counts["kept"] + outcome.counts["dropped"] == len(ids)
    # Every dropped row says why.
    assert excluded["reason"].null_count() == 0
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    assert manifest["counts"]["input"] == len(ids)


def test_manifest_counts_splits_labels_and_groups_once_for_the_report():
    from curatune.curate.pipeline import _counts

    ledger = pl.DataFrame({
        "row_id": ["a", "b", "c", "d", "e"], "split": ["train", "train", "test", "train", "train"],
        "rows": [True, True, False, None, True],  # a group column named like a count, of booleans
        "fate": ["kept", "dropped", "relabelled", "kept", "kept"],
        "reasons": [["pii_found"], ["exact_duplicate"], ["label_issue"], ["label_issue", "pii_found"], []],
        "dropped_by": [None, "dedup", None, None, None],
        "original_label": ["p", "p", "q", None, "r"]})
    counts = _counts(ledger, ["rows"])
    assert counts["dropped_by_step"] == {"dedup": 1}
    assert counts["by_split"] == {"test": 1, "train": 4}
    assert counts["labels"] == 3
    # Flagged: kept with a problem reason; personal data found is none, and a dropped row is not flagged.
    # Groups named as evaluate names them ("true", as polars writes a boolean as text).
    assert counts["by_group"] == {"rows": [
        {"group": "true", "rows": 3, "dropped": 1, "relabelled": 0, "flagged": 0},
        {"group": "false", "rows": 1, "dropped": 0, "relabelled": 1, "flagged": 1},
        {"group": "(missing)", "rows": 1, "dropped": 0, "relabelled": 0, "flagged": 1}]}


def test_manifest_counts_dropped_rows_by_the_step_the_ledger_names_most_first():
    """Counted from the ledger as it ends (with the rows refused on loading, which no step dropped)."""
    from curatune.curate.pipeline import _counts

    ledger = pl.DataFrame({
        "row_id": list("abcdefg"), "split": ["train"] * 7,
        "fate": ["dropped", "dropped", "dropped", "dropped", "kept", "dropped", "dropped"],
        "reasons": [["exact_duplicate"]] * 7,
        "dropped_by": ["human_review", "dedup", "load", None, None, "load", "human_review"],
        "original_label": list("ppqqrrs")})
    # Not the order by name (dedup, human_review, load, not recorded).
    assert list(_counts(ledger, [])["dropped_by_step"].items()) == [
        ("human_review", 2), ("load", 2), ("dedup", 1), ("not recorded", 1)]


def test_manifest_records_inputs_and_steps(tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a b c", "a b c", "x y z"], "label": ["p", "p", "q"]}).write_csv(src)
    run_curation(_config(), tmp_path / "out", [str(src)])
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["stage"] == "curate" and m["status"] == "complete"
    assert len(m["inputs"][0]["sha256"]) == 64 and m["inputs"][0]["rows"] == 3
    assert m["steps"][0]["name"] == "dedup" and m["steps"][0]["dropped"] == 1
    assert m["config"]["curate"]["dedup"]["threshold"] == 0.8
    assert "polars" in m["versions"]
    assert m["run_id"].startswith("cur-")


def test_manifest_records_every_file_curation_reads_by_its_full_path(tmp_path, monkeypatch):
    """Only the data files were recorded (not the planted truth), with the path as typed."""
    from curatune.rundir import sha256_file

    pl.DataFrame({"text": ["a b c", "x y z"], "label": ["p", "q"]}).write_csv(tmp_path / "d.csv")
    pl.DataFrame({"row_id": ["d:0"], "is_duplicate": [False]}).write_parquet(tmp_path / "truth.parquet")
    cfg = _config()
    cfg.data.truth = str(tmp_path / "truth.parquet")
    monkeypatch.chdir(tmp_path)
    run_curation(cfg, tmp_path / "out", ["d.csv"])
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(i["path"], i["sha256"]) for i in m["inputs"]] == [
        (str(tmp_path / "d.csv"), sha256_file(tmp_path / "d.csv")),
        (str(tmp_path / "truth.parquet"), sha256_file(tmp_path / "truth.parquet"))]
    # The truth's row count too: the report's input table read "not available" for it.
    assert [(i.get("role"), i.get("rows")) for i in m["inputs"]] == [(None, 2), ("planted truth", 1)]


def test_no_temp_files_left(tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a", "b"]}).write_csv(src)
    run_curation(_config(), tmp_path / "out", [str(src)])
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == [
        "curated.parquet", "excluded.parquet", "ledger.parquet", "manifest.json"]


def test_a_curation_stopped_midway_leaves_no_complete_manifest_but_bad_input_keeps_it(tmp_path, monkeypatch):
    """Ctrl-C mid-curation left the previous run's "complete" manifest beside new tables, and the
    next stage trusted them; a run refused for bad input changes nothing. Stopped while its steps run,
    before any table is replaced, the earlier run stays complete as it was."""
    import curatune.curate.pipeline as pipeline
    from curatune.curate.dedup import Dedup

    src, out = tmp_path / "d.csv", tmp_path / "out"
    pl.DataFrame({"text": ["a b c", "x y z"], "label": ["p", "q"]}).write_csv(src)
    run_curation(_config(), out, [str(src)])
    assert (out / "manifest.json").is_file()
    (tmp_path / "bad.csv").write_text("")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CuratuneError, match="bad.csv: input file is empty"):
        run_curation(_config(), out, [str(tmp_path / "bad.csv")])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing changed
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    with monkeypatch.context() as m:
        m.setattr(Dedup, "run", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_curation(_config(), out, [str(src)])
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before
    written = []
    monkeypatch.setattr(pipeline, "write_parquet", lambda df, path: interrupted() if written else written.append(path))
    with pytest.raises(KeyboardInterrupt):
        run_curation(_config(), out, [str(src)])
    assert written and not (out / "manifest.json").exists()


def test_unknown_step_is_a_clear_error(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedupe']\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg)
    assert code == 2
    assert "unknown curation step 'dedupe'" in out
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_missing_truth_file_is_a_clear_error(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\ntruth = 'truth.parquet'\n[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg)
    assert code == 2 and f"error: {tmp_path / 'truth.parquet'}: truth file not found" in out, out
    assert not (tmp_path / "out" / "ledger.parquet").exists()


@pytest.mark.parametrize(("name", "write", "why"), [
    ("truth.csv", lambda p: p.write_text("row_id,label\nd:0,x\n"), " (parquet: "),
    ("truth.parquet", lambda p: pl.DataFrame({"id": ["d:0"]}).write_parquet(p), "; this one has no row_id column"),
])
def test_a_truth_file_that_is_not_a_truth_table_says_what_one_is(cli_run, tmp_path, name, write, why):
    """It was told to "re-run the stage that wrote it", advice for a run's own tables."""
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).write_csv(src)
    write(tmp_path / name)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[data]\ntruth = '{name}'\n[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg)
    assert code == 2, out
    assert out.replace("\n", "").startswith(f"error: {tmp_path / name}: [data] truth must be a Parquet table keyed by "
                                            f"row_id, as the demo generator writes truth.parquet{why}")
    assert "re-run" not in out and not (tmp_path / "out" / "ledger.parquet").exists()


def test_a_truth_file_with_numeric_row_ids_is_scored_as_the_loaded_ids_are(cli_run, tmp_path):
    """Data ids read as text; a truth file written with integer ids (and links) stopped the run with a
    polars traceback after every step had run."""
    src = tmp_path / "d.csv"
    pl.DataFrame({"ticket": [11, 12, 13, 14], "text": ["my card is lost", "my card is lost", "a refund please",
                                                        "where is my parcel"],
                  "label": ["card", "card", "refund", "post"]}).write_csv(src)
    pl.DataFrame({"row_id": [11, 12, 13, 14], "exact_dup_of": [None, 11, None, None]}).write_parquet(
        tmp_path / "truth.parquet")
    pl.DataFrame({"row_id": [[11], [12]]}).write_parquet(tmp_path / "nested.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nid_col = 'ticket'\n[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg, "--truth",
                        tmp_path / "truth.parquet")
    assert code == 0, out
    scores = json.loads((tmp_path / "out" / "manifest.json").read_text())["truth"]["dedup"]
    assert (scores["exact_dup_recall"], scores["exact_dup_planted"], scores["removed_precision"]) == (1.0, 1, 1.0)
    code, out = cli_run("curate", src, "--out", tmp_path / "out2", "--config", cfg, "--truth",
                        tmp_path / "nested.parquet")
    assert code == 2 and error_lines(out) == [
        f"error: {tmp_path / 'nested.parquet'}: [data] truth must be a Parquet table keyed by row_id, as the demo "
        "generator writes truth.parquet; its row_id holds List(Int64), not one id a row"], out


def test_a_refused_curate_leaves_the_earlier_run_as_it_was(cli_run, tmp_path):
    """The earlier manifest was removed once the input was read, before the truth file was opened or
    label issues found too few labels: a refused command left a run that later stages called incomplete."""
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": [f"message number {i} about my {w}" for i, w in enumerate(["card", "loan"] * 6)],
                  "label": ["card", "loan"] * 6}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedup']\n[curate.dedup]\nembedding = false\n")
    out = tmp_path / "out"
    assert cli_run("curate", src, "--out", out, "--config", cfg)[0] == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    not_parquet = tmp_path / "truth.parquet"
    not_parquet.write_text("row_id,is_dup\n1,true\n")
    code, text = cli_run("curate", src, "--out", out, "--config", cfg, "--truth", not_parquet)
    errors = error_lines(text)
    assert code == 2 and len(errors) == 1, text
    assert errors[0].startswith(f"error: {not_parquet}: [data] truth must be a Parquet table keyed by row_id")
    one_label = tmp_path / "one.csv"
    pl.DataFrame({"text": ["a b c", "d e f", "g h i"], "label": ["card", "card", "loan"]}).write_csv(one_label)
    cfg2 = tmp_path / "c2.toml"
    cfg2.write_text("[curate]\nsteps = ['label_issues']\n")
    code, text = cli_run("curate", one_label, "--out", out, "--config", cfg2)
    assert code == 2 and "label issues need two or more labels with at least 2 rows each" in text
    # Two rows of a label are enough as loaded, but dedup leaves one: refused by the step itself, which ran
    # after the earlier manifest was removed.
    thin = tmp_path / "thin.csv"
    pl.DataFrame({"text": ["refund my order alpha", "charged twice for beta", "my delivery is late",
                           "my delivery is late"], "label": ["refund", "refund", "delivery", "delivery"]}
                 ).write_csv(thin)
    cfg4 = tmp_path / "c4.toml"
    cfg4.write_text("[curate]\nsteps = ['dedup', 'label_issues']\n[curate.dedup]\nembedding = false\n")
    code, text = cli_run("curate", thin, "--out", out, "--config", cfg4)
    assert code == 2 and "label issues need two or more labels with at least 2 rows each" in text, text
    # A group column named like a column a step writes into the ledger: a traceback after all the
    # work, with the earlier manifest already removed.
    grouped = tmp_path / "g.csv"
    pl.read_csv(src).with_columns(pl.Series("dedup_cluster", ["EU", "NA"] * 6)).write_csv(grouped)
    cfg3 = tmp_path / "c3.toml"
    cfg3.write_text(cfg.read_text() + "[data]\ngroup_cols = ['dedup_cluster']\n")
    code, text = cli_run("curate", grouped, "--out", out, "--config", cfg3)
    assert code == 2 and error_lines(text) == ["error: column 'dedup_cluster': [data] group_cols 'dedup_cluster' has "
                                               "the name of a ledger column the dedup step writes; rename the column"]
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_label_issues_on_a_dataset_with_no_text_says_why(cli_run, tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["  ", None, ""], "label": ["x", "y", "x"]}).write_csv(src)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[curate]\nsteps = ['dedup', 'label_issues']\n[curate.dedup]\nembedding = false\n")
    code, out = cli_run("curate", src, "--out", tmp_path / "out", "--config", cfg)
    assert code == 2
    assert error_lines(out) == ["error: label issues need labelled rows; no row with text has a label"]
    assert not (tmp_path / "out" / "ledger.parquet").exists()


def test_label_issues_without_any_label_says_so(tmp_path):
    src = tmp_path / "d.csv"
    pl.DataFrame({"text": ["hello", "bye"], "label": [None, None]}).write_csv(src)
    cfg = Config()
    cfg.curate.steps = ["label_issues"]
    with pytest.raises(CuratuneError) as err:
        run_curation(cfg, tmp_path / "out", [str(src)])
    assert str(err.value) == "label issues need labelled rows; no row with text has a label"


def test_a_step_that_writes_a_ledger_column_it_does_not_declare_is_refused(tmp_path):
    """Declared columns are what input columns are checked against before any work is done."""
    from curatune.curate.base import _REGISTRY, CurationStep, StepResult, issue_rows, register_step

    @register_step
    class Undeclared(CurationStep):
        name = "test_undeclared_columns"

        def run(self, table: pl.DataFrame) -> StepResult:
            return StepResult(rows=issue_rows(table["row_id"], is_issue=False, score=1.0, reason=None, extra=1))

    try:
        src = tmp_path / "d.csv"
        pl.DataFrame({"text": ["one", "two"]}).write_csv(src)
        with pytest.raises(RuntimeError, match=r"does not declare in ledger_columns: \['extra'\]"):
            run_curation(_config(steps=("test_undeclared_columns",)), tmp_path / "out", [str(src)])
    finally:
        del _REGISTRY["test_undeclared_columns"]

"""Reviews without a server: conflict rules, applying reviews to a run, and what push refuses."""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
from datetime import UTC, datetime

import polars as pl
import pytest

from curatune.config import Config, LabelStudioConfig
from curatune.curate.labelstudio import (
    check_label_config,
    extra_choices,
    labeling_config,
    pull,
    push,
    review_note,
    review_rows,
)
from curatune.curate.pipeline import run_curation
from curatune.curate.reviews import REVIEW_SCHEMA, apply_reviews_to_run, decide, text_sha256
from curatune.errors import CuratuneError
from curatune.rundir import REVIEWS, edited_files, read_json, sha256_tree, write_json
from tests.conftest import error_lines
from tests.curate.label_data import fates, label_issues_run
from tests.curate.labelstudio_server import free_port

# --------------------------------------------------------------------------------------------
# conflict rules


@pytest.mark.parametrize("votes, rule, expected", [
    ([("a", False)], "ground_truth_majority", ("a", "decided")),
    ([("a", False), ("a", False), ("b", True)], "ground_truth_majority", ("b", "decided")),
    ([("a", False), ("a", False), ("b", True)], "majority", ("a", "decided")),
    ([("a", False), ("b", False)], "ground_truth_majority", (None, "conflict")),
    ([("a", True), ("b", True), ("a", False)], "ground_truth_majority", ("a", "decided")),  # gt split: majority
    ([("a", False), ("b", False), ("c", False)], "majority", (None, "conflict")),  # no majority of 3
    ([("a", False), ("a", False), ("b", False)], "keep", (None, "conflict")),
    ([("drop", False), ("drop", False)], "keep", ("drop", "decided")),
    ([("unsure", False)], "majority", (None, "unsure")),
    ([("unsure", False), ("b", False)], "majority", ("b", "decided")),  # unsure abstains
])
def test_conflict_rules(votes, rule, expected):
    assert decide(votes, rule) == expected


def test_generated_label_config_is_accepted_and_mismatch_named():
    for dialogue, obj in ((True, "dialogue"), (False, "text")):
        xml = labeling_config(["billing", "a & <b>"], dialogue=dialogue)
        assert check_label_config(xml, ["billing", "a & <b>"], "p", 1) == obj
    with pytest.raises(CuratuneError, match=r"label config mismatch: project 'p' \(id 7\) has no choice for "
                                            r"the dataset's label\(s\) refund"):
        check_label_config(labeling_config(["billing"], True), ["billing", "refund"], "p", 7)
    with pytest.raises(CuratuneError, match='has no <Choices name="label">'):
        check_label_config('<View><Text name="text" value="$text"/></View>', ["a"], "p", 7)


def test_an_unusable_existing_label_config_is_named():
    with pytest.raises(CuratuneError) as err:
        check_label_config("<View><Choices name='label'", ["a"], "p", 7)
    assert str(err.value) == "label config mismatch: project 'p' (id 7) has a labeling config that is not valid XML"
    # Every label is offered, but the choices point at an image, not at the task's text.
    xml = ('<View><Image name="img" value="$image"/><Choices name="label" toName="img">'
           '<Choice value="a"/></Choices></View>')
    with pytest.raises(CuratuneError) as err:
        check_label_config(xml, ["a"], "p", 7)
    assert str(err.value) == ("label config mismatch: project 'p' (id 7): its choices apply to 'img', which shows "
                              "'$image'; curatune tasks carry $text and $dialogue")


# --------------------------------------------------------------------------------------------
# applying reviews to a finished curate dir


def _reviews(rows: list[tuple[str, str | None, str, bool]], extra: list[dict] | None = None) -> pl.DataFrame:
    """reviews.parquet as pull writes it; ``extra`` overrides columns row by row."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return pl.DataFrame([{"row_id": r, "decision": d, "annotator": who, "annotator_id": 1, "annotation_id": i,
                          "task_id": i, "ground_truth": gt, "created_at": at, "updated_at": at, "project_id": 1,
                          "text_sha256": None, "n_choices": 1, **((extra or [])[i] if extra else {})}
                         for i, (r, d, who, gt) in enumerate(rows)], schema=REVIEW_SCHEMA)


def _other_label(labels: list[str], label: str) -> str:
    return next(lab for lab in labels if lab != label)


def test_apply_reviews_relabels_drops_and_is_repeatable(run_copy, reviewed_run, cli_run):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b, c, d = curated["row_id"][:4].to_list()
    la, lc, ld = (curated.filter(pl.col("row_id") == r)["label"].item() for r in (a, c, d))
    new_a = _other_label(labels, la)
    _reviews([(a, new_a, "user:1", False), (b, "drop", "user:2", False),
              (c, lc, "user:1", False),
              (d, _other_label(labels, ld), "user:1", False), (d, "drop", "user:2", False),
              ("not-a-row", "drop", "user:1", False)]).write_parquet(curate / REVIEWS)
    before = read_json(curate / "manifest.json")
    order = pl.read_parquet(curate / "ledger.parquet")["row_id"].to_list()

    code, out = cli_run("apply-reviews", run_copy)
    assert code == 0, out
    assert "applied 3 decisions (1 relabelled, 1 dropped)" in out
    assert "not applied: 1 on rows the run does not keep (dropped by an earlier step, or not in its input;" in " ".join(
        out.split())
    ledger = pl.read_parquet(curate / "ledger.parquet")
    row = {r["row_id"]: r for r in ledger.to_dicts()}
    assert row[a]["fate"] == "relabelled" and row[a]["final_label"] == new_a and row[a]["original_label"] == la
    assert "human_review" in row[a]["reasons"] and row[a]["reviewed_by"] == "user:1"
    assert row[a]["reviewed_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row[b]["fate"] == "dropped" and row[b]["dropped_by"] == "human_review"
    assert row[c]["fate"] == "kept" and row[c]["review_decision"] == lc and "human_review" not in row[c]["reasons"]
    assert row[d]["fate"] == "kept" and row[d]["review_decision"] == "conflict"
    assert "review_conflict" in row[d]["reasons"]
    assert ledger.height == before["counts"]["input"]
    new_curated = pl.read_parquet(curate / "curated.parquet")
    excluded = pl.read_parquet(curate / "excluded.parquet")
    assert b not in new_curated["row_id"].to_list()
    assert excluded.filter(pl.col("row_id") == b)["reason"].item() == "human_review"
    assert new_curated.filter(pl.col("row_id") == a)["label"].item() == new_a
    assert new_curated.height + excluded.height == ledger.height
    manifest = read_json(curate / "manifest.json")
    step = manifest["steps"][-1]
    assert step["name"] == "human_review" and step["summary"]["not_in_run"] == 1
    assert step["summary"]["conflict_rows"] == [d]
    assert manifest["counts"]["dropped"] == before["counts"]["dropped"] + 1
    # The per-group counts the report renders are counted again too: b's channel lost one more row.
    was = {g["group"]: g for g in before["counts"]["by_group"]["channel"]}
    now = {g["group"]: g for g in manifest["counts"]["by_group"]["channel"]}
    assert now[row[b]["channel"]]["dropped"] == was[row[b]["channel"]]["dropped"] + 1
    assert sum(g["dropped"] for g in now.values()) == manifest["counts"]["dropped"]
    assert not (curate / ".apply-reviews").exists()
    # The audit's list of inputs names the reviews file applied, and the ledger keeps curate's row order.
    (reviews_input,) = [i for i in manifest["inputs"] if i.get("role") == "reviews"]
    assert reviews_input["sha256"] == sha256_tree(curate / REVIEWS)
    assert ledger["row_id"].to_list() == order

    # Applying the same reviews again changes no row (and reports what they do to the run, as a curate would).
    code, out = cli_run("apply-reviews", run_copy)
    assert code == 0 and "applied 3 decisions (1 relabelled, 1 dropped)" in out
    again = pl.read_parquet(curate / "ledger.parquet")
    cols = ["row_id", "fate", "final_label", "reasons", "dropped_by", "reviewed_by", "reviewed_at"]
    assert again.select(cols).sort("row_id").equals(ledger.select(cols).sort("row_id"))
    assert again.equals(ledger)  # in the same order too
    assert pl.read_parquet(curate / "curated.parquet").sort("row_id").equals(new_curated.sort("row_id"))

    # The next `curate` into the same directory applies them as its last step.
    cfg = copy.deepcopy(reviewed_run["config"])
    run_curation(cfg, curate)
    fresh = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert fresh[a]["fate"] == "relabelled" and fresh[a]["final_label"] == new_a
    assert fresh[b]["fate"] == "dropped" and fresh[b]["dropped_by"] == "human_review"
    assert fresh[a]["reviewed_by"] == "user:1"
    assert read_json(curate / "manifest.json")["steps"][-1]["name"] == "human_review"

    cfg.curate.apply_reviews = False
    run_curation(cfg, curate)
    assert [s["name"] for s in read_json(curate / "manifest.json")["steps"]][-1] == "planted_flags"


def test_revised_reviews_applied_again_equal_curating_again(run_copy, reviewed_run, tmp_path):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b, c = curated["row_id"][:3].to_list()
    la, lb = (curated.filter(pl.col("row_id") == r)["label"].item() for r in (a, b))
    _reviews([(a, "drop", "user:1", False), (b, _other_label(labels, lb), "user:1", False),
              (c, "unsure", "user:2", False)]).write_parquet(curate / REVIEWS)
    apply_reviews_to_run(run_copy, Config())
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert row[a]["fate"] == "dropped" and row[b]["fate"] == "relabelled" and row[b]["label_before_review"] == lb
    # Every vote unsure: its own reason, not a conflict.
    assert "review_unsure" in row[c]["reasons"] and "review_conflict" not in row[c]["reasons"]

    # The reviewer keeps a after all, and deletes the annotation on b.
    _reviews([(a, la, "user:1", False), (c, "unsure", "user:2", False)]).write_parquet(curate / REVIEWS)
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["applied"], summary["dropped"], summary["relabelled"], summary["unsure"]) == (1, 0, 0, 1)
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert (row[a]["fate"], row[a]["final_label"], row[a]["dropped_by"], row[a]["review_decision"]) == \
        ("kept", la, None, la)
    assert "human_review" not in row[a]["reasons"]
    assert (row[b]["fate"], row[b]["final_label"], row[b]["reviewed_by"], row[b]["label_before_review"]) == \
        ("kept", lb, None, None)
    assert a in pl.read_parquet(curate / "curated.parquet")["row_id"].to_list()
    assert [s["name"] for s in read_json(curate / "manifest.json")["steps"]].count("human_review") == 1
    # Resealed by apply-reviews: its manifest reads as the stage's own, not as edited by hand.
    assert "content_sha256" in read_json(curate / "manifest.json") and edited_files(curate) == []

    # Curating again into the same directory with the same reviews.parquet gives the same tables.
    again = tmp_path / "again"
    shutil.copytree(run_copy, again)
    run_curation(copy.deepcopy(reviewed_run["config"]), again / "curate")
    for name in ("curated.parquet", "excluded.parquet", "ledger.parquet"):
        applied, curated_again = (pl.read_parquet(d / "curate" / name).sort("row_id") for d in (run_copy, again))
        assert applied.equals(curated_again), name
    assert read_json(curate / "manifest.json")["counts"] == read_json(again / "curate" / "manifest.json")["counts"]


def test_each_annotator_votes_once_with_their_latest_annotation(run_copy):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b = curated["row_id"][:2].to_list()
    la, lb = (curated.filter(pl.col("row_id") == r)["label"].item() for r in (a, b))
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    # user:1 edited their first annotation on a (lower id, updated last); user:2 drops it: one vote each.
    # On b user:1 submitted twice at the same time: the higher id is the later one.
    _reviews([(a, _other_label(labels, la), "user:1", False), (a, "drop", "user:1", False),
              (a, "drop", "user:2", False), (b, "drop", "user:1", False), (b, lb, "user:1", False)],
             extra=[{"updated_at": late}, {"updated_at": early}, {}, {}, {}]).write_parquet(curate / REVIEWS)
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["dropped"], summary["conflicts"], summary["confirmed"]) == (0, 1, 1)
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert row[a]["review_decision"] == "conflict"
    assert row[a]["review_votes"] == ", ".join(sorted(["drop:1", f"{_other_label(labels, la)}:1"]))
    assert row[b]["fate"] == "kept" and row[b]["review_decision"] == lb and row[b]["review_votes"] == f"{lb}:1"


def test_a_review_of_text_the_row_no_longer_has_is_not_applied(run_copy, caplog):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    a, b = curated["row_id"][:2].to_list()
    text_b = curated.filter(pl.col("row_id") == b)["text"].item()
    _reviews([(a, "drop", "user:1", False), (b, "drop", "user:1", False)],
             extra=[{"text_sha256": text_sha256("the text row a had when it was pushed")},
                    {"text_sha256": text_sha256(text_b)}]).write_parquet(curate / REVIEWS)
    with caplog.at_level(logging.WARNING):
        summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["stale_reviews"], summary["dropped"]) == (1, 1)
    assert "1 reviews not applied: the row's text changed since the reviewer saw it" in caplog.text
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert (row[a]["fate"], row[a]["review_decision"]) == ("kept", None)
    assert row[b]["fate"] == "dropped"
    assert read_json(curate / "manifest.json")["steps"][-1]["summary"]["stale_reviews"] == 1


def test_a_decision_outside_the_labels_or_with_several_choices_is_not_applied(run_copy):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    a, b, c = curated["row_id"][:3].to_list()
    _reviews([(a, "not_a_label", "user:1", False), (b, None, "user:1", False), (c, "drop", "user:1", False)],
             extra=[{}, {"n_choices": 2}, {}]).write_parquet(curate / REVIEWS)
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["invalid_reviews"], summary["applied"], summary["dropped"]) == (2, 1, 1)
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert [row[r]["review_decision"] for r in (a, b, c)] == [None, None, "drop"]
    assert row[a]["fate"] == row[b]["fate"] == "kept"


def test_choices_outside_the_labels_are_named_and_multiple_choice_refused():
    xml = labeling_config(["billing", "refund", "spam"], dialogue=False)
    assert extra_choices(xml, ["billing", "refund"]) == ["spam"]
    assert extra_choices(xml, ["billing", "refund", "spam"]) == []
    multi = xml.replace('choice="single"', 'choice="multiple"')
    with pytest.raises(CuratuneError) as err:
        check_label_config(multi, ["billing"], "p", 7)
    assert str(err.value) == ('label config mismatch: project \'p\' (id 7) lets a reviewer pick several choices '
                              '(choice="multiple"); a review decides one label: set choice="single" or push to a '
                              'new project')


def test_interrupted_apply_is_finished_or_discarded(run_copy):
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    _reviews([(curated["row_id"][0], "drop", "user:1", False)]).write_parquet(curate / REVIEWS)
    # A journal that never committed is discarded; the files stay as they were.
    (curate / ".apply-reviews").mkdir()
    (curate / ".apply-reviews" / "curated.parquet").write_bytes(b"half written")
    summary = apply_reviews_to_run(run_copy, Config())
    assert summary["dropped"] == 1 and not (curate / ".apply-reviews").exists()
    assert pl.read_parquet(curate / "curated.parquet").height == curated.height - 1


def test_curating_again_discards_a_committed_journal_of_the_earlier_curation(run_copy, reviewed_run):
    """An apply-reviews killed after its commit mark left the earlier curation's tables staged; the
    next apply-reviews moved them in over a fresh curation (and then said there were no reviews)."""
    curate = run_copy / "curate"
    journal = curate / ".apply-reviews"
    journal.mkdir()
    stale = pl.read_parquet(curate / "ledger.parquet").head(3)
    stale.write_parquet(journal / "ledger.parquet")
    (journal / "COMMIT").write_text("ledger.parquet\n")
    run_curation(copy.deepcopy(reviewed_run["config"]), curate)
    assert not journal.exists()
    fresh = pl.read_parquet(curate / "ledger.parquet")
    with pytest.raises(CuratuneError, match="reviews"):
        apply_reviews_to_run(run_copy, Config())
    assert pl.read_parquet(curate / "ledger.parquet").equals(fresh) and fresh.height > stale.height


def test_apply_without_reviews_is_a_clear_error(run_copy, cli_run):
    code, out = cli_run("apply-reviews", run_copy)
    assert code == 2 and "no reviews to apply: run `curatune labelstudio pull` first" in out


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_bytes(b"PAR1 not a parquet file"), "cannot read reviews: "),
    (lambda p: pl.DataFrame({"row_id": ["x"], "decision": ["billing"]}).write_parquet(p),
     "reviews file lacks column(s) annotator, ground_truth; pull again"),
    # Edited by hand or written by another tool: a polars cast error (traceback, exit 1) before.
    (lambda p: pl.DataFrame({"row_id": ["x"], "decision": ["billing"], "annotator": ["user:1"],
                             "ground_truth": ["no"]}).write_parquet(p),
     "reviews file: column 'ground_truth' holds String values that are not Boolean; pull again"),
])
def test_apply_with_an_unusable_reviews_file_is_a_clear_error(run_copy, cli_run, write, message):
    curate_dir = run_copy / "curate"
    write(curate_dir / REVIEWS)
    before = {p.name: p.read_bytes() for p in curate_dir.iterdir() if p.is_file()}
    code, out = cli_run("apply-reviews", run_copy)
    errors = error_lines(out)
    assert code == 2 and len(errors) == 1, out
    assert errors[0].startswith(f"error: {curate_dir / REVIEWS}: {message}")
    # Nothing in the run changed.
    assert {p.name: p.read_bytes() for p in curate_dir.iterdir() if p.is_file()} == before


def test_curate_refuses_an_unusable_reviews_file_before_touching_the_earlier_run(run_copy, reviewed_run, cli_run):
    """The reviews were read last, after the manifest was removed: push and apply-reviews then
    refused the folder as an incomplete curate stage."""
    curate_dir = run_copy / "curate"
    pl.DataFrame({"row_id": ["x"], "decision": ["billing"], "annotator": ["user:1"],
                  "ground_truth": ["no"]}).write_parquet(curate_dir / REVIEWS)
    before = {p.name: p.read_bytes() for p in curate_dir.iterdir() if p.is_file()}
    with pytest.raises(CuratuneError, match="column 'ground_truth' holds String values"):
        run_curation(copy.deepcopy(reviewed_run["config"]), curate_dir)
    assert {p.name: p.read_bytes() for p in curate_dir.iterdir() if p.is_file()} == before


# --------------------------------------------------------------------------------------------
# what push refuses before it talks to any server


def _edit_manifest(run_dir, fn) -> None:
    path = run_dir / "curate" / "manifest.json"
    doc = read_json(path)
    fn(doc)
    write_json(doc, path)


def _push_refusal(run_dir, monkeypatch, **options) -> str:
    """What push says when it refuses this run before contacting a server (nothing listens on port 9)."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")
    cfg = LabelStudioConfig(url="http://127.0.0.1:9", project="p", only="all", **options)
    with pytest.raises(CuratuneError) as err:
        push(run_dir, cfg)
    return str(err.value)


def test_push_refuses_a_run_whose_leak_scan_failed(run_copy, cli_run, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")

    def fail_gate(doc):
        for g in doc["gates"]:
            if g["name"] == "leak_scan":
                g["passed"] = False

    _edit_manifest(run_copy, fail_gate)
    code, out = cli_run("labelstudio", "push", run_copy, "--url", "http://127.0.0.1:9", "--project", "p")
    assert code == 2 and "refusing to push: this run's leak scan found personal data" in out


def test_push_refuses_leaks_even_when_the_gate_was_switched_off(run_copy, monkeypatch):
    def leaked(doc):
        for step in doc["steps"]:
            if step["name"] == "anonymise":  # fail_on_leak = false: the gate passes, the scan does not
                step["summary"]["leak_scan"].update(passed=False, remaining=2)

    _edit_manifest(run_copy, leaked)
    assert re.search(r"leak scan found personal data left after anonymisation \(2 remaining\)",
                     _push_refusal(run_copy, monkeypatch))


def test_push_refuses_a_run_that_was_not_anonymised(run_copy, monkeypatch):
    _edit_manifest(run_copy, lambda doc: doc.update(steps=[s for s in doc["steps"] if s["name"] != "anonymise"]))
    assert re.search("refusing to push: this run was not anonymised", _push_refusal(run_copy, monkeypatch))


def _anonymise_step(doc: dict) -> dict:
    return next(s for s in doc["steps"] if s["name"] == "anonymise")


def _as_older_run_with_entities(doc: dict) -> None:
    """A run from before the step recorded what it left out: judged by the settings it recorded."""
    for key in ("types_not_looked_for", "score_threshold"):
        _anonymise_step(doc)["summary"].pop(key)
    doc["config"]["curate"]["anonymise"].update(entities=["EMAIL_ADDRESS", "PHONE_NUMBER"])


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda doc: _anonymise_step(doc)["summary"].update(ner=False, spacy_model="none"),
     "the anonymise step ran without a NER model, so names were found by context cues and the name gazetteer only, "
     "and the leak scan could not look for others"),
    (lambda doc: _anonymise_step(doc)["summary"].update(types_not_looked_for=["PERSON", "TICKET_ID"]),
     "[curate.anonymise] entities leaves out PERSON, TICKET_ID: neither the rewrite nor the leak scan looked for "
     "them"),
    (lambda doc: _anonymise_step(doc)["summary"].update(score_threshold=0.9),
     "[curate.anonymise] score_threshold = 0.9 (default 0.4) kept only the surest findings, for the rewrite and "
     "the leak scan alike"),
    (_as_older_run_with_entities,
     "[curate.anonymise] entities leaves out PERSON, CREDIT_CARD, IBAN_CODE, IP_ADDRESS and 15 more types: neither "
     "the rewrite nor the leak scan looked for them"),
])
def test_push_refuses_text_the_leak_scan_was_set_not_to_look_at(run_copy, monkeypatch, edit, reason):
    """The report withheld such text and push sent it: the scan passes what it was never asked to find."""
    _edit_manifest(run_copy, edit)
    assert _push_refusal(run_copy, monkeypatch) == (
        f"{run_copy / 'curate' / 'manifest.json'}: refusing to push: {reason}; curate again with the default "
        "settings, or set [labelstudio] require_anonymised = false for data without personal data")
    assert _push_refusal_passes(run_copy, monkeypatch)  # data its owner says holds no personal data


def _push_refusal_passes(run_dir, monkeypatch) -> bool:
    """With require_anonymised = false push gets past the run's checks to the server (none on port 9)."""
    return "is unreachable" in _push_refusal(run_dir, monkeypatch, require_anonymised=False, retries=0)


def test_push_refuses_a_leak_scan_that_recorded_no_result(run_copy, monkeypatch):
    _edit_manifest(run_copy, lambda doc: _anonymise_step(doc)["summary"]["leak_scan"].pop("passed"))
    assert _push_refusal(run_copy, monkeypatch) == (f"{run_copy / 'curate' / 'manifest.json'}: refusing to push: "
                                                    "this run's anonymise step recorded no leak-scan result; curate "
                                                    "again")


@pytest.mark.parametrize(("change", "message"), [
    ({"batch_size": 0}, "[labelstudio] batch_size must be >= 1, got 0"),
    ({"retries": -1}, "[labelstudio] retries must be >= 0, got -1"),
    ({"timeout_s": 0.0}, "[labelstudio] timeout_s must be > 0, finite, got 0.0"),
])
def test_push_refuses_unusable_options(run_copy, monkeypatch, change, message):
    assert _push_refusal(run_copy, monkeypatch, **change) == message


def test_push_refuses_a_manifest_without_run_id(run_copy, monkeypatch):
    _edit_manifest(run_copy, lambda doc: doc.pop("run_id"))
    manifest = run_copy / "curate" / "manifest.json"
    assert _push_refusal(run_copy, monkeypatch) == f"{manifest}: curate manifest has no run_id; curate again"


@pytest.mark.parametrize("name", ["drop", "unsure", "conflict"])
def test_push_refuses_a_label_named_like_a_review_outcome(run_copy, monkeypatch, name):
    """A label "conflict", chosen by a reviewer, was applied but read as the reviewers' disagreement by the
    review summary, evaluation's label doubt and the label_issues policy check."""
    curated = run_copy / "curate" / "curated.parquet"
    df = pl.read_parquet(curated)
    first = df["label"][0]
    df.with_columns(pl.col("label").replace(first, name)).write_parquet(curated)
    assert _push_refusal(run_copy, monkeypatch) == (f"the dataset has a label named '{name}', which is also a review "
                                                    "outcome curatune records; rename that label")


@pytest.mark.parametrize("where", ["env", "file"])
def test_a_token_with_whitespace_or_non_ascii_inside_is_a_one_line_error(run_copy, cli_run, monkeypatch, tmp_path,
                                                                         where):
    args = ["labelstudio", "push", run_copy, "--url", "http://127.0.0.1:9", "--project", "p"]
    problem = "has a non-ASCII character or whitespace inside; it must be the token alone, on one line"
    if where == "env":
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret\u20actoken-42")
        expected = f"error: the Label Studio API token from $LABEL_STUDIO_API_KEY {problem}"
    else:
        monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
        (tmp_path / "token").write_text("secret-token-42\nsecond line\n")
        (tmp_path / "ls.toml").write_text('[labelstudio]\ntoken_file = "token"\n')
        args += ["--config", tmp_path / "ls.toml"]
        expected = f"error: {tmp_path / 'token'}: the Label Studio API token from the token file {problem}"
    code, out = cli_run(*args)
    assert code == 2 and error_lines(out) == [expected], out
    assert "secret" not in out and "second line" not in out


def test_pull_without_a_ledger_is_named_before_any_server_is_asked(run_copy, monkeypatch, cli_run):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")
    ledger = run_copy / "curate" / "ledger.parquet"
    ledger.unlink()
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", "http://127.0.0.1:9", "--project", "p")
    assert code == 2 and error_lines(out) == [
        f"error: {ledger}: no ledger in this curate dir (pull keeps the reviews of its rows): curate again"], out
    with pytest.raises(CuratuneError, match="no ledger in this curate dir"):
        pull(run_copy, LabelStudioConfig(url="http://127.0.0.1:9", project="p"))


def test_an_address_that_accepts_no_connection_is_given_up_on_after_the_connect_timeout(run_copy, monkeypatch):
    """A server whose connections hang (packets dropped) waited timeout_s, 120 s, an attempt."""
    import socket
    import time

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-token")
    # A listening socket whose one-place queue is full: the kernel answers no further connection.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for s in fillers:
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
    time.sleep(0.3)
    cfg = LabelStudioConfig(url=f"http://127.0.0.1:{port}", project="p", retries=0, timeout_s=60,
                            connect_timeout_s=1.5)
    t0 = time.monotonic()
    try:
        with pytest.raises(CuratuneError, match=r"is unreachable \(ConnectTimeout\) after 1 attempt"):
            push(run_copy, cfg)
    finally:
        for s in [*fillers, srv]:
            s.close()
    assert time.monotonic() - t0 < 20


def test_push_errors_without_token_flags_or_server(run_copy, cli_run, monkeypatch, tmp_path):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    code, out = cli_run("labelstudio", "push", run_copy, "--url", "http://127.0.0.1:9", "--project", "p")
    assert code == 2 and "no Label Studio API token: set the environment variable LABEL_STUDIO_API_KEY" in out

    secret = "secret-token-value-42"
    (tmp_path / "token").write_text(secret + "\n")
    port = free_port()
    cfg_path = tmp_path / "ls.toml"
    cfg_path.write_text(f'[labelstudio]\ntoken_file = "token"\nretries = 1\nretry_backoff_s = 0.05\n'
                        f'url = "http://127.0.0.1:{port}"\nproject = "p"\n')
    code, out = cli_run("labelstudio", "push", run_copy, "--only", "all", "--config", cfg_path)
    assert code == 2
    assert f"Label Studio at http://127.0.0.1:{port} is unreachable (ConnectError) after 2 attempts" in out
    assert secret not in out

    code, out = cli_run("labelstudio", "push", run_copy, "--only", "everything", "--config", cfg_path)
    assert code == 2 and "--only must be one of flagged, all, sample" in out

    _edit_manifest(run_copy, lambda doc: None)
    ledger = run_copy / "curate" / "ledger.parquet"
    pl.read_parquet(ledger).drop("is_label_issue", "dedup_score").write_parquet(ledger)
    code, out = cli_run("labelstudio", "push", run_copy, "--config", cfg_path)
    assert code == 2 and "no label conflicts from dedup (neither step ran)" in out
    assert json.dumps(secret) not in (run_copy / "curate" / "manifest.json").read_text()


def test_flagged_rows_include_the_label_conflicts_dedup_kept(tmp_path):
    # Without label_issues, dedup's label conflicts are the run's doubtful rows; before, push refused them.
    src = tmp_path / "d.parquet"
    pl.DataFrame({"id": ["a", "b", "c", "d"],
                  "text": ["How do I order a card?", "How do I order a virtual card?", "how do I order a card",
                           "I want to close my account"],
                  "label": ["order_physical_card", "getting_virtual_card", "order_physical_card", "close"]}
                 ).write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["dedup"]
    cfg.data.id_col = "id"
    run_curation(cfg, tmp_path / "curate", [str(src)])
    rows, labels = review_rows(tmp_path / "curate", LabelStudioConfig())
    assert rows["row_id"].to_list() == ["a", "b"]
    assert rows["reasons"].to_list() == [["conflicting_label_duplicate"]] * 2
    assert labels == ["close", "getting_virtual_card", "order_physical_card"]


def test_flagged_rows_of_a_dedup_run_without_conflicts_are_none(tmp_path):
    # check_round_setup lets `only = "flagged"` through with dedup alone; push then refused after the
    # whole curation when dedup found no conflicting copies, where label_issues flagging nothing sends 0.
    src = tmp_path / "d.parquet"
    pl.DataFrame({"id": ["a", "b", "c"], "text": ["How do I order a card?", "how do I order a card",
                                                  "I want to close my account"],
                  "label": ["order", "order", "close"]}).write_parquet(src)
    cfg = Config()
    cfg.curate.steps = ["dedup"]
    cfg.data.id_col = "id"
    run_curation(cfg, tmp_path / "curate", [str(src)])
    rows, labels = review_rows(tmp_path / "curate", LabelStudioConfig())
    assert rows.height == 0 and labels == ["close", "order"]


def test_push_and_pull_without_config_use_the_labelstudio_settings_the_run_recorded(run_copy, cli_run, monkeypatch,
                                                                                    tmp_path):
    """docs/labelstudio.md: `[labelstudio] token_file` instead of the environment variable; push and
    pull without --config read the defaults, so the run's token file, server and project were ignored."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    (tmp_path / "token").write_text("a-token\n")
    port = free_port()

    def configure(doc):
        doc["config"]["labelstudio"].update(token_file=str(tmp_path / "token"), url=f"http://127.0.0.1:{port}",
                                            project="p", retries=0)

    _edit_manifest(run_copy, configure)
    for command in ("push", "pull"):
        code, out = cli_run("labelstudio", command, run_copy / "curate")
        assert code == 2, out
        assert f"using the config recorded in {run_copy / 'curate' / 'manifest.json'}" in out.replace("\n", "")
        assert f"Label Studio at http://127.0.0.1:{port} is unreachable (ConnectError) after 1 attempt" in out, out


@pytest.mark.parametrize("given", ["run", "curate folder"])
def test_apply_reviews_uses_the_run_s_conflict_rule_and_says_what_it_set_aside(run_copy, cli_run, given):
    """Given only the run directory, apply-reviews used the default conflict rule, not the run's
    (given the curate folder itself, as docs/labelstudio.md allows, it still did)."""
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b = curated["row_id"][:2].to_list()
    new_a = _other_label(labels, curated.filter(pl.col("row_id") == a)["label"].item())
    _reviews([(a, new_a, "user:1", False), (a, new_a, "user:2", False), (a, "drop", "user:3", False),
              (b, "drop", "user:1", False)],
             extra=[{}, {}, {}, {"text_sha256": text_sha256("the text row b had when it was pushed")}]
             ).write_parquet(curate / REVIEWS)
    manifest = read_json(curate / "manifest.json")
    manifest["config"]["labelstudio"]["conflict_rule"] = "keep"  # majority would relabel row a
    write_json(manifest, curate / "manifest.json")
    code, out = cli_run("apply-reviews", run_copy if given == "run" else curate)
    assert code == 0, out
    flat = out.replace("\n", "")
    assert f"using the config recorded in {curate / 'manifest.json'}" in flat
    assert "applied 0 decisions (0 relabelled, 0 dropped); rows kept undecided: 1 in conflict (review_conflict / " \
           "review_unsure in the ledger); not applied: 1 made on text the row no longer has" in flat
    row = {r["row_id"]: r for r in pl.read_parquet(curate / "ledger.parquet").to_dicts()}
    assert (row[a]["review_decision"], row[a]["fate"]) == ("conflict", "kept")


def test_a_vote_for_a_label_whose_rows_were_all_dropped_is_still_a_label():
    from curatune.curate.reviews import usable

    view = pl.DataFrame({"row_id": ["r1"], "text": ["t"], "label": ["a"]})
    votes, counts = usable(_reviews([("r1", "b", "user:1", False)]), view, ["a", "b"])
    assert votes["decision"].to_list() == ["b"] and counts == {"stale_reviews": 0, "invalid_reviews": 0}


def test_a_server_that_does_not_answer_like_label_studio_is_one_line_and_keeps_the_url_s_path(run_copy, cli_run,
                                                                                               monkeypatch):
    """With a personal access token the SDK first refreshes it; a reply that is not JSON (another server,
    a proxy's login page) was a traceback. The refresh also lost the sub-path of a URL without a trailing
    slash (it posted to /api/token/refresh/, not /ls/api/token/refresh/)."""
    import http.server
    import threading
    import time

    import jwt

    paths: list[str] = []

    class NotLabelStudio(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>please log in</html>")

        do_GET = do_POST

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = jwt.encode({"exp": int(time.time()) + 3600, "token_type": "refresh"},
                       "not-the-secret-of-any-server-0123456789", algorithm="HS256")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    try:
        code, out = cli_run("labelstudio", "pull", run_copy, "--url", f"http://127.0.0.1:{server.server_port}/ls",
                            "--project", "1")
    finally:
        server.shutdown()
    assert code == 2, out
    assert error_lines(out) == [f"error: http://127.0.0.1:{server.server_port}/ls does not answer like a Label "
                                "Studio server (its reply to 'check the API token' is not Label Studio's JSON): "
                                "is the URL right?"]
    assert paths == ["/ls/api/token/refresh/"] and token not in out


def test_push_suggests_an_id_column_when_texts_changed_under_positional_ids():
    from curatune.curate.labelstudio import _push_hint

    positional = {"config": {"data": {"id_col": None, "conversation_col": None}}}
    assert "set [data] id_col" in _push_hint(positional, 3)
    assert _push_hint(positional, 0) == ""
    assert _push_hint({"config": {"data": {"id_col": "ticket"}}}, 3) == ""


def _push_to_a_json_server(run_copy, cli_run, monkeypatch, reply) -> tuple[int, str, str, list[str]]:
    """`labelstudio push` of the run to a local server answering each request with ``reply(path)``
    (status, JSON body): the exit code, the output, the server's URL and the paths of the requests
    that were not GETs."""
    import http.server
    import threading

    sent: list[str] = []

    class Server(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.command != "GET":
                sent.append(self.path)
            status, body = reply(self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PATCH = do_GET

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        code, out = cli_run("labelstudio", "push", run_copy, "--url", url, "--project", "p", "--only", "all")
    finally:
        server.shutdown()
    return code, out, url, sent


@pytest.mark.parametrize(("replies", "asked"), [
    ({}, "check the API token"),  # any JSON server answers {}: no user, so no Label Studio
    ([], "check the API token"),  # the SDK failed to parse it: a TypeError traceback
    ({"/api/current-user/whoami": {"id": 1, "email": "x@example.com"}}, "check the API token"),  # no username
    ({"/api/current-user/whoami": {"id": 1, "username": "x"}}, "create a project"),
])
def test_a_json_server_that_is_not_label_studio_gets_no_transcripts(run_copy, cli_run, monkeypatch, replies, asked):
    """A server that answers every request with JSON but is not Label Studio: push reported the rows
    sent to "project None" (and sent them)."""
    def reply(path: str) -> tuple[int, object]:
        return 200, replies.get(path.split("?")[0].rstrip("/"), {}) if isinstance(replies, dict) else replies

    code, out, url, posted = _push_to_a_json_server(run_copy, cli_run, monkeypatch, reply)
    assert code == 2, out
    assert error_lines(out) == [f"error: {url} does not answer like a Label Studio server (its reply to '{asked}' "
                                "is not Label Studio's JSON): is the URL right?"]
    assert not any("import" in p for p in posted), posted
    assert not (run_copy / "curate" / "labelstudio.json").exists()


_USER = {"id": 1, "username": "x"}


@pytest.mark.parametrize(("routes", "message"), [
    ({}, "{url} does not look like a Label Studio server (it has no /api/current-user/whoami)"),
    ({"/api/current-user/whoami": (200, _USER), "*": (403, {"detail": "You do not have permission"})},
     "Label Studio at {url} does not allow this token's user to list projects (HTTP 403: You do not have "
     "permission)"),
    ({"/api/current-user/whoami": (200, _USER)}, "Label Studio at {url} has no such thing: cannot list projects "
                                                 "(HTTP 404)"),
    ({"/api/current-user/whoami": (200, _USER), "*": (400, {"detail": "Bad   request\n here"})},
     "Label Studio at {url} refused to list projects (HTTP 400: Bad request here)"),
    ({"/api/current-user/whoami": (200, _USER),
      "/api/projects": (200, {"count": 2, "next": None, "previous": None,
                              "results": [{"id": 4, "title": "p"}, {"id": 9, "title": "p"}]})},
     "several Label Studio projects are titled 'p' (ids 4, 9): pass --project ID"),
])
def test_what_a_server_refuses_is_one_line_and_sends_nothing(run_copy, cli_run, monkeypatch, routes, message):
    """Refusals a person can act on (a token without the right, a wrong path, two projects of one title)
    are one line naming the request, and push sends no task and writes no push record."""
    def reply(path: str) -> tuple[int, dict]:
        status, body = routes.get(path.split("?")[0].rstrip("/"), routes.get("*", (404, {"detail": "no"})))
        if "results" in body and re.search(r"[?&]page=(?!1\b)", path):  # the SDK pages on to an empty page
            body = {**body, "results": []}
        return status, body

    code, out, url, sent = _push_to_a_json_server(run_copy, cli_run, monkeypatch, reply)
    assert code == 2 and error_lines(out) == [f"error: {message.format(url=url)}"], out
    assert sent == [] and not (run_copy / "curate" / "labelstudio.json").exists()


@pytest.mark.parametrize("command", ["push", "pull"])
def test_no_project_is_one_line_before_any_request(run_copy, cli_run, monkeypatch, command):
    # Port 9 (discard) answers nothing: a request made anyway would end in "unreachable", not this line.
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    before = sha256_tree(run_copy)
    code, out = cli_run("labelstudio", command, run_copy, "--url", "http://127.0.0.1:9",
                        *(["--only", "all"] if command == "push" else []))
    assert code == 2 and error_lines(out) == [
        "error: no Label Studio project: pass --project NAME_OR_ID or set [labelstudio] project"], out
    assert sha256_tree(run_copy) == before


@pytest.mark.parametrize(("content", "message"), [(None, "Label Studio token file not found"),
                                                  (" \n\n", "Label Studio token file is empty")])
def test_a_token_file_missing_or_empty_is_one_line(run_copy, cli_run, monkeypatch, tmp_path, content, message):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    (tmp_path / "ls.toml").write_text('[labelstudio]\ntoken_file = "token"\nretries = 0\nurl = "http://127.0.0.1:9"\n')
    code, out = cli_run("labelstudio", "push", run_copy, "--project", "p", "--only", "all",
                        "--config", tmp_path / "ls.toml")
    assert code == 2 and error_lines(out) == [f"error: {token}: {message}"], out
    assert not (run_copy / "curate" / "labelstudio.json").exists()


@pytest.mark.parametrize("url", ["http://ls..example.com:8080", "http://.example.com", f"http://{'a' * 64}.com",
                                 "http://xn--zz.com"])
def test_a_url_whose_host_is_no_host_name_is_a_one_line_error(run_copy, cli_run, monkeypatch, url):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    code, out = cli_run("labelstudio", "push", run_copy, "--url", url, "--project", "p", "--only", "all")
    assert code == 2 and error_lines(out) == [
        f"error: not a usable Label Studio URL: '{url}' (expected http://host:port)"], out


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "https_proxy"])
def test_an_unusable_proxy_setting_names_its_variable(run_copy, cli_run, monkeypatch, variable):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    monkeypatch.setenv(variable, "socks9://someone:proxy-password@proxy.example.com:1080")
    code, out = cli_run("labelstudio", "push", run_copy, "--url", "http://127.0.0.1:9", "--project", "p",
                        "--only", "all")
    assert code == 2 and error_lines(out) == [
        f"error: the proxy set in ${variable} is not usable (not a proxy URL: expected http://, https:// or "
        "socks5://HOST:PORT): fix or unset it"], out
    assert "proxy-password" not in out and "someone" not in out


@pytest.mark.parametrize(("encoding", "usable"), [("utf-16", False), ("utf-8-sig", True)])
def test_a_token_file_in_another_encoding(run_copy, cli_run, monkeypatch, tmp_path, encoding, usable):
    """A UTF-16 token file (PowerShell's `>`) was a UnicodeDecodeError traceback; UTF-8 with a byte-order
    mark (Notepad's) was refused as a token with a non-ASCII character."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    token = tmp_path / "token"
    token.write_text("secret-token-42\n", encoding=encoding)
    port = free_port()
    (tmp_path / "ls.toml").write_text(f'[labelstudio]\ntoken_file = "token"\nretries = 0\n'
                                      f'url = "http://127.0.0.1:{port}"\n')
    code, out = cli_run("labelstudio", "push", run_copy, "--project", "p", "--only", "all",
                        "--config", tmp_path / "ls.toml")
    assert code == 2, out
    expected = (f"error: Label Studio at http://127.0.0.1:{port} is unreachable (ConnectError) after 1 attempt: "
                "is the server running and the URL right?" if usable else
                f"error: {token}: Label Studio token file is not UTF-8 text (UTF-16, say): save it as UTF-8")
    assert error_lines(out) == [expected], out


# --------------------------------------------------------------------------------------------
# what push sends, and what a later vote on a superseded task does


def test_a_later_vote_on_a_superseded_task_does_not_void_the_vote_on_the_current_text(run_copy):
    """Each annotator's latest vote was chosen before stale votes were set aside: a look at the old task
    after voting on the new one left the reviewer with no vote on the row at all."""
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    a = curated["row_id"][0]
    text_a = curated.filter(pl.col("row_id") == a)["text"].item()
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    _reviews([(a, "drop", "user:1", False), (a, curated["label"][0], "user:1", False)],
             extra=[{"text_sha256": text_sha256(text_a), "updated_at": early},
                    {"text_sha256": text_sha256("the text row a had before"), "updated_at": late}],
             ).write_parquet(curate / REVIEWS)
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["dropped"], summary["stale_reviews"], summary["applied"]) == (1, 1, 1)
    row = pl.read_parquet(curate / "ledger.parquet").filter(pl.col("row_id") == a).row(0, named=True)
    assert (row["fate"], row["review_decision"], row["review_votes"]) == ("dropped", "drop", "drop:1")


def test_push_shows_the_data_s_own_label_where_the_label_issues_policy_relabelled_it(run_copy):
    """With policy = "relabel" the reviewer was shown the model's label as "Label in the data", with no
    suggestion: nothing said that curation had changed it, or from what. A label a person decided on is
    still the row's label."""
    curate = run_copy / "curate"
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b, c = curated["row_id"][:3].to_list()
    was = {r: curated.filter(pl.col("row_id") == r)["label"].item() for r in (a, b)}
    new = {r: _other_label(labels, was[r]) for r in (a, b)}
    row = pl.col("row_id")
    relabel = pl.when(row == a).then(pl.lit(new[a])).when(row == b).then(pl.lit(new[b]))
    curated.with_columns(relabel.otherwise("label").alias("label")).write_parquet(curate / "curated.parquet")
    ledger = pl.read_parquet(curate / "ledger.parquet")
    ledger.with_columns(
        relabel.otherwise("final_label").alias("final_label"),
        pl.when(row.is_in([a, b])).then(pl.lit("relabelled")).otherwise("fate").alias("fate"),
        relabel.otherwise("suggested_label").alias("suggested_label"),
        pl.when(row.is_in([a, b])).then(True).otherwise("is_label_issue").alias("is_label_issue"),
        # b's label was then confirmed by a person.
        pl.when(row == b).then(pl.lit(new[b])).otherwise(pl.lit(None, pl.String)).alias("review_decision"),
    ).write_parquet(curate / "ledger.parquet")
    rows, _ = review_rows(curate, LabelStudioConfig(only="all"))
    got = {r["row_id"]: r for r in rows.to_dicts()}
    assert (got[a]["label"], got[a]["suggested"]) == (was[a], new[a])
    assert review_note(got[a]) == f"Label in the data: {was[a]}; curation suggests: {new[a]}"
    assert got[b]["label"] == new[b] and review_note(got[b]).startswith(f"Label in the data: {new[b]}")
    untouched = curated.filter(pl.col("row_id") == c).row(0, named=True)
    assert got[c]["label"] == untouched["label"]


def test_a_sample_keeps_its_rows_when_other_rows_are_dropped(run_copy):
    """The sample was drawn by position: once apply-reviews dropped a row, the same seed drew a largely
    different set, and every round imported new tasks for the reviewers."""
    curate = run_copy / "curate"
    cfg = LabelStudioConfig(only="sample", sample_size=6, sample_seed=3)
    before = review_rows(curate, cfg)[0]["row_id"].to_list()
    curated = pl.read_parquet(curate / "curated.parquet").sort("row_id")
    assert curated.height > 12 and len(before) == 6
    gone = [r for r in curated["row_id"].to_list() if r not in before][:3] + before[:1]
    curated.filter(~pl.col("row_id").is_in(gone)).write_parquet(curate / "curated.parquet")
    after = review_rows(curate, cfg)[0]["row_id"].to_list()
    assert len(after) == 6 and set(before[1:]) <= set(after) and before[0] not in after
    assert review_rows(curate, LabelStudioConfig(only="sample", sample_size=6, sample_seed=4))[0]["row_id"] \
        .to_list() != after


@pytest.mark.parametrize("table", ["curated.parquet", "ledger.parquet", "excluded.parquet"])
def test_a_damaged_run_table_is_a_one_line_error_for_push_and_apply(run_copy, cli_run, monkeypatch, table):
    """push and apply-reviews read the tables with plain read_parquet: a polars traceback, exit 1."""
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")
    path = run_copy / "curate" / table
    path.write_bytes(path.read_bytes()[:100])
    _reviews([("x:0", "drop", "user:1", False)]).write_parquet(run_copy / "curate" / REVIEWS)
    commands = [("apply-reviews", run_copy)]
    if table != "excluded.parquet":  # push does not read it
        commands.append(("labelstudio", "push", run_copy, "--url", "http://127.0.0.1:9", "--project", "p",
                         "--only", "all"))
    for args in commands:
        code, out = cli_run(*args)
        assert code == 2 and len(error_lines(out)) == 1, out
        assert error_lines(out)[0].startswith(f"error: {path}: cannot read Parquet table ("), out
        assert error_lines(out)[0].endswith("re-run the stage that wrote it"), out


def test_reviews_applied_by_hand_leave_curatune_run_to_curate_again(run_copy):
    """apply-reviews kept `curatune run`'s fingerprint: a run after an apply under another conflict rule
    called curation up to date and trained on tables its own config would not have made."""
    from curatune.pipeline import FINGERPRINT_KEY, _up_to_date

    _edit_manifest(run_copy, lambda doc: doc.update({FINGERPRINT_KEY: "fp"}))
    a = pl.read_parquet(run_copy / "curate" / "curated.parquet").sort("row_id")["row_id"][0]
    _reviews([(a, "drop", "user:1", False)]).write_parquet(run_copy / "curate" / REVIEWS)
    assert apply_reviews_to_run(run_copy, Config(labelstudio=LabelStudioConfig(conflict_rule="keep")))["dropped"] == 1
    assert FINGERPRINT_KEY not in read_json(run_copy / "curate" / "manifest.json")
    assert not edited_files(run_copy / "curate") and not _up_to_date("curate", run_copy / "curate", "fp")


def test_decided_rows_are_those_the_review_step_will_settle():
    from curatune.curate.reviews import decided_rows

    view = pl.DataFrame({"row_id": ["a", "b", "c", "d", "e"], "text": ["one", "two", "three", "four", "five"],
                         "label": ["x", "x", "y", "y", "x"]})
    reviews = _reviews([("a", "y", "user:1", False), ("b", "y", "user:1", False), ("c", "unsure", "user:1", False),
                        ("d", "x", "user:1", False), ("d", "y", "user:2", False), ("e", "zz", "user:1", False)],
                       extra=[{"text_sha256": text_sha256("one")}, {"text_sha256": text_sha256("an older two")},
                              {}, {}, {}, {}])
    # a: current text; b: cast on a text the row no longer has; c: unsure; d: a tie; e: not a label.
    assert decided_rows(reviews, view, ["x", "y"], "majority") == {"a"}
    # While a later step still rewrites the text (anonymisation), the text cannot be compared yet.
    assert decided_rows(reviews, view, ["x", "y"], "majority", check_text=False) == {"a", "b"}


def test_apply_reviews_refuses_when_a_decision_the_policy_left_rows_to_is_withdrawn(tmp_path):
    """Under policy drop, label issues left a flagged row a person had decided on to them. With that decision
    deleted in Label Studio, apply-reviews kept the row while curating again drops it: the two differed."""
    cfg, out, wrong, truth = label_issues_run(tmp_path, "drop")
    _reviews([(r, truth[r], "user:1", False) for r in wrong[:2]]).write_parquet(out / REVIEWS)
    run_curation(cfg, out)
    assert [fates(out)[r] for r in wrong] == ["relabelled", "relabelled", "dropped"]
    step = next(s for s in read_json(out / "manifest.json")["steps"] if s["name"] == "label_issues")
    assert step["summary"]["policy_left_to_reviews"] == wrong[:2]

    # The same decisions again, or one confirmed by someone else as well: nothing for the policy to redo.
    _reviews([(wrong[0], truth[wrong[0]], "user:1", False), (wrong[1], truth[wrong[1]], "user:1", False),
              (wrong[1], truth[wrong[1]], "user:2", False)]).write_parquet(out / REVIEWS)
    assert apply_reviews_to_run(out, cfg)["relabelled"] == 2
    before = {n: (out / n).read_bytes() for n in ("curated.parquet", "excluded.parquet", "ledger.parquet")}
    # The first withdrawn, the second now a conflict: only curating again drops them.
    _reviews([(wrong[1], truth[wrong[1]], "user:1", False), (wrong[1], "drop", "user:2", False)]
             ).write_parquet(out / REVIEWS)
    with pytest.raises(CuratuneError, match=rf"reviews.parquet: this file no longer holds the decisions label "
                                            rf"issues' policy 'drop' left 2 flagged rows to \(first: "
                                            rf"'{wrong[0]}'\), so the policy acts on them now: curate again"):
        apply_reviews_to_run(out, cfg)
    assert {n: (out / n).read_bytes() for n in before} == before
    run_curation(cfg, out)
    assert [fates(out)[r] for r in wrong] == ["dropped", "dropped", "dropped"]


def test_apply_reviews_refuses_a_decision_on_a_row_the_policy_dropped(tmp_path):
    """A decision on a row the drop policy dropped (reviewed in an earlier round) keeps it when curating
    again; apply-reviews, which sees only kept rows, counted it 'not_in_run' instead."""
    cfg, out, wrong, truth = label_issues_run(tmp_path, "drop")
    run_curation(cfg, out)
    assert [fates(out)[r] for r in wrong] == ["dropped"] * 3
    _reviews([(wrong[2], truth[wrong[2]], "user:1", False)]).write_parquet(out / REVIEWS)
    with pytest.raises(CuratuneError, match=rf"this file holds decisions on 1 row label issues' policy 'drop' "
                                            rf"dropped \(first: '{wrong[2]}'\), which a decision keeps"):
        apply_reviews_to_run(out, cfg)
    # An unsure vote decides nothing: applied as usual.
    _reviews([(wrong[2], "unsure", "user:1", False)]).write_parquet(out / REVIEWS)
    assert apply_reviews_to_run(out, cfg)["unsure"] == 0  # the row is not in the run: counted not_in_run
    run_curation(cfg, out)
    _reviews([(wrong[2], truth[wrong[2]], "user:1", False)]).write_parquet(out / REVIEWS)
    run_curation(cfg, out)
    assert fates(out)[wrong[2]] == "relabelled"


def test_a_withdrawn_decision_the_relabel_policy_would_not_act_on_is_applied(tmp_path):
    """Only rows the policy left to a person count: under relabel, one below relabel_threshold (the policy
    keeps it whatever happens) has its decision withdrawn by apply-reviews as by curating again."""
    cfg, out, wrong, truth = label_issues_run(tmp_path, "relabel")
    cfg.curate.label_issues.relabel_threshold = 1.0  # no suggestion is that sure: the policy relabels nothing
    _reviews([(wrong[0], truth[wrong[0]], "user:1", False)]).write_parquet(out / REVIEWS)
    run_curation(cfg, out)
    step = next(s for s in read_json(out / "manifest.json")["steps"] if s["name"] == "label_issues")
    assert step["summary"]["policy_left_to_reviews"] == [] and step["summary"]["flagged_rows_left_to_reviews"] == 1
    _reviews([(wrong[1], "unsure", "user:1", False)]).write_parquet(out / REVIEWS)
    summary = apply_reviews_to_run(out, cfg)
    assert (summary["relabelled"], summary["unsure"]) == (0, 1)
    applied = {n: pl.read_parquet(out / n).sort("row_id") for n in ("curated.parquet", "ledger.parquet")}
    run_curation(cfg, out)
    for n, table in applied.items():
        assert pl.read_parquet(out / n).sort("row_id").equals(table), n


def test_a_withdrawn_decision_on_a_rare_label_row_the_policy_never_acts_on_is_applied(tmp_path):
    """A rare label's flagged rows are left alone by the policy (too few rows to judge them by), so a
    decision on one of them, withdrawn, asks for no curate: apply-reviews gives what curating again gives."""
    cfg, out, _, _ = label_issues_run(tmp_path, "drop", flips=0, rare=5)
    run_curation(cfg, out)
    ledger = pl.read_parquet(out / "ledger.parquet")
    flagged = ledger.filter(pl.col("row_id").str.starts_with("warranty") & pl.col("is_label_issue"))["row_id"]
    assert flagged.len() >= 1 and set(ledger.filter(pl.col("row_id").str.starts_with("warranty"))["fate"]) == {"kept"}
    _reviews([(flagged[0], "refund", "user:1", False)]).write_parquet(out / REVIEWS)
    run_curation(cfg, out)
    assert fates(out)[flagged[0]] == "relabelled"
    step = next(s for s in read_json(out / "manifest.json")["steps"] if s["name"] == "label_issues")
    assert step["summary"]["policy_left_to_reviews"] == [] and step["summary"]["flagged_rows_left_to_reviews"] == 0
    _reviews([(flagged[0], "unsure", "user:1", False)]).write_parquet(out / REVIEWS)
    assert apply_reviews_to_run(out, cfg)["unsure"] == 1
    applied = {n: pl.read_parquet(out / n).sort("row_id") for n in ("curated.parquet", "ledger.parquet")}
    assert fates(out)[flagged[0]] == "kept"
    run_curation(cfg, out)
    for n, table in applied.items():
        assert pl.read_parquet(out / n).sort("row_id").equals(table), n

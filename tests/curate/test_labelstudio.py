"""Push / annotate / pull / apply against a real Label Studio server (tests/curate/conftest.py)."""

from __future__ import annotations

import logging
import shutil
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from label_studio_sdk import LabelStudio

from curatune.config import Config, LabelStudioConfig
from curatune.curate.labelstudio import CHOICES, labeling_config, pull, push
from curatune.curate.reviews import apply_reviews_to_run, text_sha256
from curatune.errors import CuratuneError
from curatune.rundir import read_json, write_json
from tests.conftest import error_lines

pytestmark = pytest.mark.labelstudio


def _client(server) -> LabelStudio:
    return LabelStudio(base_url=server.url, api_key=server.token, max_retries=0, timeout=120)


def _project_id(client: LabelStudio, title: str) -> int:
    (project,) = [p for p in client.projects.list(title=title) if p.title == title]
    return project.id


def _tasks(client: LabelStudio, pid: int) -> list:
    return list(client.tasks.list(project=pid, fields="task_only", include="id,data,meta", page_size=1000))


def _row_ids(client: LabelStudio, pid: int) -> Counter:
    return Counter(t.data["row_id"] for t in _tasks(client, pid))


def _annotate(client: LabelStudio, task_id: int, choice: str | list[str], *, user: int | None = None,
              ground_truth: bool = False, cancelled: bool = False) -> None:
    choices = choice if isinstance(choice, list) else [choice]
    result = [{"from_name": CHOICES, "to_name": "dialogue", "type": "choices", "value": {"choices": choices}}]
    extra = {"completed_by": user} if user is not None else {}
    client.annotations.create(task_id, result=result, ground_truth=ground_truth, was_cancelled=cancelled, **extra)


def _user(client: LabelStudio, email: str) -> int:
    for u in client.users.list():
        if u.email == email:
            return u.id
    return client.users.create(email=email, username=email.split("@")[0]).id


@pytest.fixture
def token_env(live_label_studio, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", live_label_studio.token)
    return live_label_studio


def test_round_trip_push_annotate_pull_apply(token_env, run_copy, cli_run):
    server = token_env
    client = _client(server)
    ledger0 = pl.read_parquet(run_copy / "curate" / "ledger.parquet")
    flagged = ledger0.filter(pl.col("is_label_issue").fill_null(False) & (pl.col("fate") != "dropped"))
    flagged = flagged.sort("row_id")
    run_id = read_json(run_copy / "curate" / "manifest.json")["run_id"]

    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "round trip")
    assert code == 0, out
    assert f"{flagged.height} new tasks, 0 updated" in out
    pid = _project_id(client, "round trip")
    tasks = {t.data["row_id"]: t for t in _tasks(client, pid)}
    assert set(tasks) == set(flagged["row_id"])
    project = client.projects.get(pid)
    assert '<Paragraphs name="dialogue"' in project.label_config and '<Choice value="drop"/>' in project.label_config
    # No choice is made for the reviewer: Label Studio pre-selected curation's suggestion (the model
    # version its import left the project at), and a plain Submit accepted it. The labels are text.
    assert project.show_collab_predictions is False and '<Header value="$review_note"' in project.label_config
    served = httpx.get(f"{server.url}/api/projects/{pid}/next", headers={"Authorization": f"Token {server.token}"},
                       timeout=60).json()
    assert served["id"] in {t.id for t in tasks.values()} and served["predictions"] == []

    # What each task carries: the anonymised transcript as turns, the reasons, both predictions.
    curated = pl.read_parquet(run_copy / "curate" / "curated.parquet")
    first = flagged.row(0, named=True)
    task = tasks[first["row_id"]]
    text = curated.filter(pl.col("row_id") == first["row_id"])["text"].item()
    assert task.data["text"] == text and "<PERSON_" in "".join(t["text"] for t in task.data["dialogue"])
    assert task.meta == {"reasons": first["reasons"]}
    assert task.data["review_note"] == f"Label in the data: {first['final_label']}; curation suggests: " \
        f"{first['suggested_label']}"
    preds = {p.model_version: p for p in client.predictions.list(task=task.id)}
    assert set(preds) == {f"{run_id}:current", f"{run_id}:suggested"}
    assert preds[f"{run_id}:current"].result[0]["value"]["choices"] == [first["final_label"]]
    assert preds[f"{run_id}:suggested"].result[0]["value"]["choices"] == [first["suggested_label"]]
    assert preds[f"{run_id}:current"].score == pytest.approx(first["label_quality"])

    # Reviewers decide, through the API as the labeling UI would.
    ann1, ann2 = _user(client, "ann1@example.com"), _user(client, "ann2@example.com")
    me = client.users.whoami().id  # the token's user: annotations made without user=
    rows = flagged.head(7).to_dicts()
    a, b, c, d, e, f, g = rows
    labels = sorted(curated["label"].unique().to_list())

    def other(label: str, skip: int = 0) -> str:
        return [lab for lab in labels if lab != label][skip]

    _annotate(client, tasks[a["row_id"]].id, a["suggested_label"])  # accepts the suggestion
    _annotate(client, tasks[b["row_id"]].id, "drop", user=ann1)
    _annotate(client, tasks[c["row_id"]].id, c["final_label"], user=ann1)  # confirms the label
    _annotate(client, tasks[d["row_id"]].id, other(d["final_label"], 0), user=ann1)  # two people disagree
    _annotate(client, tasks[d["row_id"]].id, other(d["final_label"], 1), user=ann2)
    _annotate(client, tasks[e["row_id"]].id, other(e["final_label"], 0), user=ann1)  # majority ...
    _annotate(client, tasks[e["row_id"]].id, other(e["final_label"], 0), user=ann2)
    _annotate(client, tasks[e["row_id"]].id, other(e["final_label"], 1), ground_truth=True)  # ... but gt wins
    _annotate(client, tasks[f["row_id"]].id, "unsure", user=ann2)
    _annotate(client, tasks[g["row_id"]].id, other(g["final_label"]), user=ann1, cancelled=True)  # skipped

    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url, "--project", "round trip")
    assert code == 0, out
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet")
    assert reviews.height == 9 and "pulled 9 reviews -> " in out
    assert g["row_id"] not in reviews["row_id"].to_list()
    by_row = reviews.group_by("row_id").agg("decision", "annotator", "ground_truth")
    b_row = by_row.filter(pl.col("row_id") == b["row_id"]).row(0, named=True)
    # Reviewers are named by their Label Studio user id: no e-mail address leaves Label Studio.
    assert b_row["decision"] == ["drop"] and b_row["annotator"] == [f"user:{ann1}"]
    assert set(reviews["annotator"]) <= {f"user:{u}" for u in (ann1, ann2, me)}
    assert reviews.filter(pl.col("ground_truth"))["row_id"].to_list() == [e["row_id"]]
    assert reviews["annotation_id"].n_unique() == 9 and reviews["created_at"].null_count() == 0
    # A second pull of the same annotations writes the same bytes (`curatune run` compares hashes);
    # without --project it finds the project that push recorded.
    first_bytes = (run_copy / "curate" / "reviews.parquet").read_bytes()
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url)
    assert code == 0 and (run_copy / "curate" / "reviews.parquet").read_bytes() == first_bytes, out

    code, out = cli_run("apply-reviews", run_copy)
    assert code == 0, out
    assert "applied 4 decisions (2 relabelled, 1 dropped); rows kept undecided: 1 in conflict, 1 unsure" \
        in " ".join(out.split())
    ledger = {r["row_id"]: r for r in pl.read_parquet(run_copy / "curate" / "ledger.parquet").to_dicts()}
    assert ledger[a["row_id"]]["fate"] == "relabelled"
    assert ledger[a["row_id"]]["final_label"] == a["suggested_label"]
    assert "human_review" in ledger[a["row_id"]]["reasons"]
    assert ledger[a["row_id"]]["reviewed_by"] == f"user:{me}"
    assert isinstance(ledger[a["row_id"]]["reviewed_at"], datetime)
    assert ledger[b["row_id"]]["fate"] == "dropped" and ledger[b["row_id"]]["dropped_by"] == "human_review"
    assert ledger[c["row_id"]]["fate"] == "kept" and ledger[c["row_id"]]["review_decision"] == c["final_label"]
    assert ledger[d["row_id"]]["fate"] == "kept" and ledger[d["row_id"]]["review_decision"] == "conflict"
    assert ledger[e["row_id"]]["final_label"] == other(e["final_label"], 1)
    assert ledger[e["row_id"]]["reviewed_by"] == ", ".join(sorted(f"user:{u}" for u in (ann1, ann2, me)))
    assert ledger[f["row_id"]]["fate"] == "kept" and ledger[f["row_id"]]["review_decision"] == "unsure"
    assert ledger[g["row_id"]]["reviewed_by"] is None

    # The token is in no file the run wrote.
    for path in (run_copy / "curate").rglob("*"):
        if path.is_file():
            assert server.token.encode() not in path.read_bytes(), path


def test_push_twice_and_a_later_run(token_env, run_copy, tmp_path, cli_run):
    server = token_env
    client = _client(server)
    cfg_path = tmp_path / "ls.toml"
    cfg_path.write_text(f'[labelstudio]\nurl = "{server.url}"\nproject = "twice"\nsample_size = 10\n')
    n_rows = pl.read_parquet(run_copy / "curate" / "curated.parquet").height

    code, out = cli_run("labelstudio", "push", run_copy, "--only", "sample", "--config", cfg_path)
    assert code == 0 and "10 new tasks, 0 updated" in out, out
    code, out = cli_run("labelstudio", "push", run_copy, "--only", "sample", "--config", cfg_path)
    assert code == 0 and "0 new tasks, 0 updated" in out, out
    pid = _project_id(client, "twice")
    sampled = _row_ids(client, pid)
    assert len(sampled) == 10 and set(sampled.values()) == {1}

    # A later run (new run id) adds the other rows and replaces only what changed on the ten:
    # one row's reasons, one row's label quality, one row's suggestion.
    later = tmp_path / "later"
    shutil.copytree(run_copy, later)
    manifest = read_json(later / "curate" / "manifest.json")
    old_run, new_run = manifest["run_id"], "cur-00000000beef"
    manifest["run_id"] = new_run
    write_json(manifest, later / "curate" / "manifest.json")
    ledger = pl.read_parquet(later / "curate" / "ledger.parquet")
    s0, s1, s2 = sorted(sampled)[:3]
    current = ledger.filter(pl.col("row_id") == s2).row(0, named=True)
    labels = sorted(set(ledger["final_label"].drop_nulls()))
    new_suggestion = next(lab for lab in labels if lab not in (current["final_label"], current["suggested_label"]))
    row = pl.col("row_id")
    ledger = ledger.with_columns(
        pl.when(row == s0).then(pl.lit(["rechecked"])).otherwise("reasons").alias("reasons"),
        pl.when(row == s1).then(0.01).otherwise("label_quality").alias("label_quality"),
        pl.when(row == s2).then(pl.lit(new_suggestion)).otherwise("suggested_label").alias("suggested_label"),
    )
    ledger.write_parquet(later / "curate" / "ledger.parquet")

    code, out = cli_run("labelstudio", "push", later, "--only", "all", "--config", cfg_path)
    assert code == 0 and f"{n_rows - 10} new tasks, 3 updated" in out, out
    code, out = cli_run("labelstudio", "push", later, "--only", "all", "--config", cfg_path)
    assert code == 0 and "0 new tasks, 0 updated" in out, out

    tasks = {t.data["row_id"]: t for t in _tasks(client, pid)}
    assert len(tasks) == n_rows and set(_row_ids(client, pid).values()) == {1}
    preds: dict[str, list] = {}
    for p in client.predictions.list(project=pid):
        preds.setdefault(next(r for r, t in tasks.items() if t.id == p.task), []).append(p)
    active = ledger.filter(pl.col("fate") != "dropped")
    with_suggestion = active.filter(pl.col("suggested_label").is_not_null()
                                    & (pl.col("suggested_label") != pl.col("final_label")))["row_id"].to_list()
    assert sum(map(len, preds.values())) == n_rows + len(with_suggestion)  # replaced, not added to
    for row_id, ps in preds.items():
        runs = {p.model_version.split(":")[0] for p in ps}
        fresh = row_id not in sampled or row_id in (s1, s2)
        assert runs == ({new_run} if fresh else {old_run}), row_id
    assert {p.model_version: p.result[0]["value"]["choices"][0] for p in preds[s2]}[f"{new_run}:suggested"] \
        == new_suggestion
    assert {p.model_version: p.score for p in preds[s1]}[f"{new_run}:current"] == pytest.approx(0.01)
    assert tasks[s0].meta == {"reasons": ["rechecked"]}


def test_killed_server_mid_push_then_rerun_every_task_once(token_env, run_copy):
    server = token_env
    client = _client(server)
    n_rows = pl.read_parquet(run_copy / "curate" / "curated.parquet").height
    cfg = LabelStudioConfig(url=server.url, project="killed", only="all", batch_size=4, retries=1,
                            retry_backoff_s=0.1)

    def kill_soon(message: str) -> None:
        if "imported 8/" in message:  # the next batch is about to be sent: kill while it is in flight
            threading.Timer(0.02, server.kill).start()

    with pytest.raises(CuratuneError, match=f"Label Studio at {server.url} is unreachable"):
        push(run_copy, cfg, progress=kill_soon)
    assert not server.running()
    server.start()
    client = _client(server)
    pid = _project_id(client, "killed")
    before = _row_ids(client, pid)
    assert 8 <= len(before) < n_rows and set(before.values()) == {1}

    result = push(run_copy, cfg)
    assert result["created"] == n_rows - len(before)
    after = _row_ids(client, pid)
    assert len(after) == n_rows and set(after.values()) == {1}


def test_push_recovers_when_the_server_comes_back(token_env, run_copy, caplog):
    """Killed mid-push and restarted while the push is backing off: it re-lists, then finishes, and says
    that it is retrying (it was silent at the default log level, which looked like a hang)."""
    caplog.set_level(logging.WARNING, logger="curatune.curate.labelstudio")
    server = token_env
    n_rows = pl.read_parquet(run_copy / "curate" / "curated.parquet").height
    cfg = LabelStudioConfig(url=server.url, project="comes back", only="all", batch_size=4, retries=8,
                            retry_backoff_s=1.0)
    restarted = threading.Event()

    def restart() -> None:
        server.kill()
        server.start()
        restarted.set()

    def kill_soon(message: str) -> None:
        if "imported 8/" in message and not restarted.is_set():
            threading.Thread(target=restart, daemon=True).start()

    result = push(run_copy, cfg, progress=kill_soon)
    assert restarted.wait(timeout=300)
    assert result["created"] == n_rows
    counts = _row_ids(_client(server), _project_id(_client(server), "comes back"))
    assert len(counts) == n_rows and set(counts.values()) == {1}
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert retries and retries[0].startswith("Label Studio: ") and " retry 1 of 8 in 1 s" in retries[0], retries


def test_pull_counts_drafts_and_foreign_tasks_and_push_names_the_rows_it_did_not_send(token_env, run_copy,
                                                                                      monkeypatch, caplog):
    server = token_env
    client = _client(server)
    cfg = LabelStudioConfig(url=server.url, project="counted", only="all")
    pushed = push(run_copy, cfg)["rows"]
    pid = _project_id(client, "counted")
    first = sorted(_tasks(client, pid), key=lambda t: t.data["row_id"])[0]
    result = [{"from_name": CHOICES, "to_name": "dialogue", "type": "choices", "value": {"choices": ["drop"]}}]
    httpx.post(f"{server.url}/api/tasks/{first.id}/drafts", headers={"Authorization": f"Token {server.token}"},
               json={"result": result, "lead_time": 3.0}, timeout=60).raise_for_status()
    client.projects.import_tasks(pid, request=[{"text": "customer: added by hand",
                                                "dialogue": [{"speaker": "customer", "text": "added by hand"}]}])
    (by_hand,) = [t for t in _tasks(client, pid) if "row_id" not in t.data]
    _annotate(client, by_hand.id, "drop")
    said: list[str] = []
    pulled = pull(run_copy, cfg, progress=said.append)
    assert (pulled["reviews"], pulled["skipped"], pulled["foreign"], pulled["drafts"]) == (0, 0, 1, 1)
    assert said[-1].endswith("(0 skipped or empty, 0 on rows not in this run, 1 on tasks curatune did not create); "
                             "1 tasks hold an unsubmitted draft, pulled once it is submitted"), said
    # A later push of fewer rows says how many rows with a task it did not send.
    cfg.only, cfg.sample_size = "sample", 5
    said.clear()
    assert push(run_copy, cfg, progress=said.append)["not_sent"] == pushed - 5
    assert f"labelstudio: {pushed - 5} rows with a task in the project were not sent this time" in " ".join(said)
    # The draft count is only for the message: a server that cannot answer it (a 5xx after the retries, a
    # version without the filter) failed a pull whose reviews.parquet was already written.
    from curatune.curate import labelstudio

    real_call = labelstudio.Server.call

    def count_fails(self, what, fn, **kw):
        if what == "count drafts":
            raise CuratuneError("Label Studio: count drafts failed: HTTP 500")
        return real_call(self, what, fn, **kw)

    monkeypatch.setattr(labelstudio.Server, "call", count_fails)
    (run_copy / "curate" / "reviews.parquet").unlink()
    with caplog.at_level(logging.WARNING, logger="curatune.curate.labelstudio"):
        pulled = pull(run_copy, cfg)
    assert (pulled["reviews"], pulled["foreign"], pulled["drafts"]) == (0, 1, None)
    assert (run_copy / "curate" / "reviews.parquet").is_file()
    assert any(r.getMessage() == "could not count tasks with an unsubmitted draft (Label Studio: count drafts failed: "
               "HTTP 500); drafts are pulled once submitted" for r in caplog.records)


def test_wrong_token_unknown_project_and_config_mismatch(live_label_studio, run_copy, cli_run, monkeypatch):
    server = live_label_studio
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-right-token-123")
    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "x", "--only", "all")
    assert code == 2
    assert f"error: Label Studio at {server.url} rejected the API token (HTTP 401): check $LABEL_STUDIO_API_KEY" in out
    assert "not-the-right-token-123" not in out

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url, "--project", "987654")
    assert code == 2 and f"Label Studio at {server.url} has no project with id 987654" in out
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url, "--project", "never made")
    assert code == 2 and f"Label Studio at {server.url} has no project titled 'never made'" in out
    # A digit that is no ASCII digit ("²".isdigit() is True) is a title, not an int() traceback.
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url, "--project", "²")
    assert code == 2 and f"Label Studio at {server.url} has no project titled '²'" in out, out

    client = _client(server)
    client.projects.create(title="too few labels", label_config=labeling_config(["refund"], dialogue=True))
    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "too few labels",
                        "--only", "all")
    assert code == 2 and "label config mismatch: project 'too few labels'" in out
    assert "has no choice for the dataset's label(s)" in out
    assert _tasks(client, _project_id(client, "too few labels")) == []
    # Pull refuses a project whose choices are no longer the ones push made (an empty reviews file
    # would undo every decision applied so far).
    renamed = labeling_config(["refund"], dialogue=True).replace(f'name="{CHOICES}"', 'name="intent"')
    client.projects.create(title="renamed choices", label_config=renamed)
    (run_copy / "curate" / "reviews.parquet").unlink(missing_ok=True)
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url, "--project", "renamed choices")
    assert code == 2 and "label config mismatch: project 'renamed choices'" in out and \
        f'has no <Choices name="{CHOICES}">' in out, out
    assert not (run_copy / "curate" / "reviews.parquet").exists()

    # Label Studio's field errors are shown, not only its "Validation error".
    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "ab", "--only", "all")
    assert code == 2 and "title: Ensure this field has at least 3 characters" in out, out


def _by_row(client: LabelStudio, pid: int) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in sorted(_tasks(client, pid), key=lambda t: t.id):
        out.setdefault(t.data["row_id"], []).append(t)
    return out


def test_changed_text_after_review_gets_a_new_task_and_earlier_reviews_do_not_apply(token_env, run_copy):
    """Push used to put a row's new text on its reviewed task and mark it not done. Label Studio never
    serves a task again to who annotated it, and counts its annotations against the overlap for everyone
    else: the new text was never reviewed."""
    server = token_env
    client = _client(server)
    cfg = LabelStudioConfig(url=server.url, project="changed text", only="all")
    curated_path = run_copy / "curate" / "curated.parquet"
    curated = pl.read_parquet(curated_path).sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    a, b, c, d = curated["row_id"][:4].to_list()
    old_text, label_a = curated.filter(pl.col("row_id") == a).select("text", "label").row(0)
    push(run_copy, cfg)
    pid = _project_id(client, "changed text")
    tasks = {t.data["row_id"]: t for t in _tasks(client, pid)}
    assert tasks[a].data["text_sha256"] == text_sha256(old_text)
    ann1 = _user(client, "ann1@example.com")
    _annotate(client, tasks[a].id, "drop", user=ann1)
    _annotate(client, tasks[b].id, "drop", user=ann1)

    # Rows a (reviewed) and c (not yet) change text (curated again from changed data); b (reviewed) and
    # d (not yet) change label.
    new_a, new_c = "customer: a different message now sits under this row id", "customer: another new message"
    relabelled = {r: next(lab for lab in labels if lab != curated.filter(pl.col("row_id") == r)["label"].item())
                  for r in (b, d)}
    curated.with_columns(pl.when(pl.col("row_id") == a).then(pl.lit(new_a))
                         .when(pl.col("row_id") == c).then(pl.lit(new_c)).otherwise("text").alias("text"),
                         pl.col("row_id").replace_strict(relabelled, default=pl.col("label")).alias("label")) \
        .write_parquet(curated_path)
    said: list[str] = []
    result = push(run_copy, cfg, progress=said.append)
    assert (result["created"], result["replaced"], result["text_changed"], result["superseded"]) == (0, 1, 2, 1)
    assert any("2 rows have new text; reviews of their old text are not applied" in m for m in said), said
    after = _by_row(client, pid)
    # Nobody had worked on c's task: it shows the new text.
    assert [t.id for t in after[c]] == [tasks[c].id] and after[c][0].data["text"] == new_c
    # a's reviewed task keeps its text and annotation; a new task, open to every reviewer, shows the new text.
    old_task, new_task = after[a]
    assert old_task.id == tasks[a].id and old_task.data["text"] == old_text
    assert old_task.meta["superseded_by"] == new_task.id
    assert new_task.data["text"] == new_a and new_task.data["text_sha256"] == text_sha256(new_a)
    fresh = client.tasks.get(new_task.id)
    assert fresh.is_labeled is False and not fresh.total_annotations
    assert [t.id for t in after[b]] == [tasks[b].id]
    # An unreviewed task's note shows the new label; a reviewed one keeps the note its reviewer read.
    assert after[d][0].data["review_note"].startswith(f"Label in the data: {relabelled[d]}")
    assert after[b][0].data["review_note"] == tasks[b].data["review_note"]
    assert not tasks[b].data["review_note"].startswith(f"Label in the data: {relabelled[b]}")
    # Pushing again changes nothing.
    again = push(run_copy, cfg)
    assert (again["created"], again["replaced"], again["text_changed"], again["superseded"], again["updated"]) == \
        (0, 0, 0, 0, 0)
    assert [t.id for t in _by_row(client, pid)[a]] == [old_task.id, new_task.id]

    relabel = next(lab for lab in labels if lab != label_a)
    _annotate(client, new_task.id, relabel, user=_user(client, "ann2@example.com"))  # on the new text
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet").sort("annotation_id")
    assert reviews.filter(pl.col("row_id") == a)["text_sha256"].to_list() == [text_sha256(old_text),
                                                                              text_sha256(new_a)]
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["stale_reviews"], summary["relabelled"], summary["dropped"]) == (1, 1, 1)
    ledger = {r["row_id"]: r for r in pl.read_parquet(run_copy / "curate" / "ledger.parquet").to_dicts()}
    # Without the hash the old "drop" would have counted: a 1:1 conflict instead of the relabel.
    assert (ledger[a]["fate"], ledger[a]["final_label"], ledger[a]["review_votes"]) == \
        ("relabelled", relabel, f"{relabel}:1")
    assert ledger[b]["fate"] == "dropped"


def test_a_pull_from_another_project_does_not_replace_the_reviews_pulled_so_far(token_env, run_copy, cli_run):
    """After a push to a second project, a plain pull read that project: its empty export replaced the
    reviews pulled from the first, and the next apply-reviews undid their decisions, without a word."""
    server = token_env
    client = _client(server)
    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "first", "--only", "all")
    assert code == 0, out
    task = sorted(_tasks(client, _project_id(client, "first")), key=lambda t: t.data["row_id"])[0]
    _annotate(client, task.id, "drop")
    assert cli_run("labelstudio", "pull", run_copy, "--url", server.url)[0] == 0
    reviews = run_copy / "curate" / "reviews.parquet"
    before = reviews.read_bytes()
    assert cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "second", "--only",
                   "all")[0] == 0
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url)
    first = _project_id(client, "first")
    assert code == 2, out
    assert f"reviews.parquet holds 1 reviews from Label Studio project {first}, not from project " \
           f"{_project_id(client, 'second')} ('second')" in " ".join(out.split())
    assert reviews.read_bytes() == before
    # Pulled without --project at another address than push recorded: the recorded project is named.
    other_url = server.url.replace("127.0.0.1", "localhost")
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", other_url)
    assert code == 2 and "records project" in out and server.url in " ".join(out.split()), out


def test_pull_without_project_reads_where_push_sent_the_tasks_not_the_configs_project(token_env, run_copy,
                                                                                      tmp_path, cli_run):
    """A push with --project sent the tasks elsewhere than the config's project; a plain pull read the
    config's project (here one that does not exist) instead of the one push recorded."""
    server = token_env
    client = _client(server)
    cfg_path = tmp_path / "ls.toml"
    cfg_path.write_text(f'[labelstudio]\nurl = "{server.url}"\nproject = "configured"\n')
    code, out = cli_run("labelstudio", "push", run_copy, "--project", "sent here", "--only", "all",
                        "--config", cfg_path)
    assert code == 0, out
    task = sorted(_tasks(client, _project_id(client, "sent here")), key=lambda t: t.data["row_id"])[0]
    _annotate(client, task.id, "drop")
    code, out = cli_run("labelstudio", "pull", run_copy, "--config", cfg_path)
    assert code == 0, out
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet")
    assert reviews["row_id"].to_list() == [task.data["row_id"]]
    assert reviews["project_id"].unique().to_list() == [_project_id(client, "sent here")]
    assert not [p for p in client.projects.list(title="configured") if p.title == "configured"]
    # Named, the project is the one pulled from, whatever push recorded.
    code, out = cli_run("labelstudio", "pull", run_copy, "--config", cfg_path, "--project", "configured")
    assert code == 2 and f"Label Studio at {server.url} has no project titled 'configured'" in out, out


def test_pull_keeps_multiple_choices_and_push_reports_foreign_choices_and_leaks(token_env, run_copy):
    server = token_env
    client = _client(server)
    curated = pl.read_parquet(run_copy / "curate" / "curated.parquet").sort("row_id")
    labels = sorted(curated["label"].unique().to_list())
    leaky, a, b = curated["row_id"][:3].to_list()
    client.projects.create(title="foreign choices", label_config=labeling_config([*labels, "spam"], dialogue=True))
    ledger_path = run_copy / "curate" / "ledger.parquet"
    # The leak scan passed (max_leaks = 1) but still found personal data in one row.
    pl.read_parquet(ledger_path).with_columns(
        pl.when(pl.col("row_id") == leaky).then(1).otherwise("pii_leaked").alias("pii_leaked")
    ).write_parquet(ledger_path)
    cfg = LabelStudioConfig(url=server.url, project="foreign choices", only="all")
    said: list[str] = []
    result = push(run_copy, cfg, progress=said.append)
    assert (result["left_out_leaked"], result["created"]) == (1, curated.height - 1)
    assert "labelstudio: left out 1 rows the leak scan found personal data in (pii_leaked > 0 in the ledger)" in said
    assert any("offers choice(s) spam, not labels of this dataset" in m for m in said)
    pid = _project_id(client, "foreign choices")
    tasks = {t.data["row_id"]: t for t in _tasks(client, pid)}
    assert leaky not in tasks

    _annotate(client, tasks[a].id, ["drop", labels[0]])
    _annotate(client, tasks[b].id, "spam")
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet").sort("row_id")
    assert reviews.select("row_id", "decision", "n_choices").rows() == [(a, None, 2), (b, "spam", 1)]
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["invalid_reviews"], summary["applied"], summary["dropped"]) == (2, 0, 0)


def _lose_first_response(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[int]:
    """The server commits the first such request but its response never arrives."""
    real = getattr(cls, name)
    calls: list[int] = []

    def wrapped(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadError("connection reset")
        return out

    monkeypatch.setattr(cls, name, wrapped)
    return calls


def test_lost_responses_create_no_second_project_and_no_duplicate_predictions(token_env, run_copy, monkeypatch):
    server = token_env
    client = _client(server)
    cfg = LabelStudioConfig(url=server.url, project="lost responses", only="all", retry_backoff_s=0.05)
    projects_cls = type(client.projects)
    with monkeypatch.context() as patched:
        calls = _lose_first_response(patched, projects_cls, "create")
        first = push(run_copy, cfg)
    assert len(calls) == 1  # found after the lost response, not created again
    assert [p.id for p in client.projects.list(title="lost responses") if p.title == "lost responses"] == \
        [first["project_id"]]

    # A later run whose every label quality changed: all predictions are replaced, in one lost request.
    manifest = read_json(run_copy / "curate" / "manifest.json")
    manifest["run_id"] = "cur-00000000beef"
    write_json(manifest, run_copy / "curate" / "manifest.json")
    ledger_path = run_copy / "curate" / "ledger.parquet"
    pl.read_parquet(ledger_path).with_columns(pl.lit(0.5).alias("label_quality")).write_parquet(ledger_path)
    with monkeypatch.context() as patched:
        calls = _lose_first_response(patched, projects_cls, "import_predictions")
        second = push(run_copy, cfg)
    assert second["updated"] == first["created"] and len(calls) == 1
    per_task = Counter((p.task, p.model_version) for p in client.predictions.list(project=first["project_id"]))
    assert max(per_task.values()) == 1 and {mv.split(":")[0] for _, mv in per_task} == {"cur-00000000beef"}


def test_a_run_round_applies_new_decisions_once_and_withdrawn_ones_too(token_env, run_copy):
    """`curatune run`'s Label Studio round skipped apply when the pull held no reviews, so a decision
    withdrawn in Label Studio (its annotation deleted) stayed applied, and the run fingerprint then
    said curate was up to date."""
    from curatune.pipeline import _labelstudio_round

    server = token_env
    client = _client(server)
    cfg = Config()
    cfg.labelstudio = LabelStudioConfig(url=server.url, project="run rounds", only="all")
    said: list[str] = []
    assert _labelstudio_round(cfg, run_copy, said.append) is False  # pushed; nothing reviewed yet
    pid = _project_id(client, "run rounds")
    task = sorted(_tasks(client, pid), key=lambda t: t.data["row_id"])[0]
    row = task.data["row_id"]
    _annotate(client, task.id, "drop")

    def fate() -> str:
        ledger = pl.read_parquet(run_copy / "curate" / "ledger.parquet")
        return ledger.filter(pl.col("row_id") == row)["fate"].item()

    before = fate()
    assert _labelstudio_round(cfg, run_copy, said.append) is True and fate() == "dropped"
    assert _labelstudio_round(cfg, run_copy, said.append) is False
    assert said[-1] == "labelstudio: no new decisions since they were last applied"
    (ann,) = client.annotations.list(task.id)
    client.annotations.delete(ann.id)
    assert _labelstudio_round(cfg, run_copy, said.append) is True
    assert fate() == before
    assert row in pl.read_parquet(run_copy / "curate" / "curated.parquet")["row_id"].to_list()


def test_a_run_round_curates_again_when_a_decision_the_drop_policy_left_a_row_to_is_withdrawn(token_env,
                                                                                              tmp_path):
    """apply-reviews cannot act for label issues' policy; the round curates again instead of applying."""
    from curatune.curate.pipeline import run_curation
    from curatune.pipeline import _labelstudio_round
    from tests.curate.label_data import fates, label_issues_run

    server = token_env
    client = _client(server)
    cfg, out, wrong, truth = label_issues_run(tmp_path, "flag")
    cfg.labelstudio = LabelStudioConfig(url=server.url, project="policy round", require_anonymised=False)
    run_curation(cfg, out)
    push(out, cfg.labelstudio)  # the flagged rows, the planted flips among them
    (task,) = [t for t in _tasks(client, _project_id(client, "policy round")) if t.data["row_id"] == wrong[0]]
    _annotate(client, task.id, truth[wrong[0]])
    pull(out, cfg.labelstudio)
    cfg.curate.label_issues.policy = "drop"
    run_curation(cfg, out)
    assert [fates(out)[r] for r in wrong] == ["relabelled", "dropped", "dropped"]
    (ann,) = client.annotations.list(task.id)
    client.annotations.delete(ann.id)
    said: list[str] = []
    assert _labelstudio_round(cfg, out.parent, said.append) is True
    assert "labelstudio: the decisions change what the label-issues policy does; curating again" in said
    assert [fates(out)[r] for r in wrong] == ["dropped", "dropped", "dropped"]


def _pushed_first_task(server, run_copy: Path, project: str):
    """Every row pushed to a new project: (client, config, the task of the first row_id)."""
    client = _client(server)
    cfg = LabelStudioConfig(url=server.url, project=project, only="all")
    push(run_copy, cfg)
    return client, cfg, sorted(_tasks(client, _project_id(client, project)), key=lambda t: t.data["row_id"])[0]


def test_a_task_text_edited_in_label_studio_is_what_its_reviews_were_made_on(token_env, run_copy):
    """Pull and push trusted the hash push had stored in the task, so a decision made on a task whose
    text someone edited in Label Studio was applied to the row's own text."""
    client, cfg, task = _pushed_first_task(token_env, run_copy, "edited text")
    row_text = pl.read_parquet(run_copy / "curate" / "curated.parquet").filter(
        pl.col("row_id") == task.data["row_id"])["text"].item()
    client.tasks.update(str(task.id), data={**task.data, "text": "customer: edited by hand"})
    _annotate(client, task.id, "drop")
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet")
    assert reviews["text_sha256"].to_list() == [text_sha256("customer: edited by hand")]
    assert apply_reviews_to_run(run_copy, Config())["stale_reviews"] == 1
    # The next push shows the row's text again, in a new task since this one was annotated.
    result = push(run_copy, cfg)
    assert (result["text_changed"], result["replaced"]) == (1, 1)
    edited, fresh = _by_row(client, _project_id(client, "edited text"))[task.data["row_id"]]
    assert edited.id == task.id and edited.data["text"] == "customer: edited by hand"
    assert fresh.data["text"] == row_text and edited.meta["superseded_by"] == fresh.id


def test_the_votes_of_deleted_users_count_each_and_are_not_one_person_s(token_env, run_copy):
    """Label Studio nulls an annotation's completed_by when its user is deleted. Pull named every such
    annotator "user:None": one person, whose latest annotation alone counted, so two deleted reviewers who
    disagreed relabelled the row."""
    client, cfg, task = _pushed_first_task(token_env, run_copy, "deleted users")
    row = task.data["row_id"]
    label = pl.read_parquet(run_copy / "curate" / "curated.parquet").filter(pl.col("row_id") == row)["label"].item()
    first, second = [lab for lab in sorted(set(pl.read_parquet(run_copy / "curate" / "curated.parquet")["label"]))
                     if lab != label][:2]
    gone = [_user(client, "gone1@example.com"), _user(client, "gone2@example.com")]
    _annotate(client, task.id, first, user=gone[0])
    _annotate(client, task.id, second, user=gone[1])
    for user in gone:
        client.users.delete(user)
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet").sort("annotation_id")
    assert reviews.select("decision", "annotator", "annotator_id").rows() == [(first, None, None),
                                                                              (second, None, None)]
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["conflicts"], summary["relabelled"]) == (1, 0)
    ledger = pl.read_parquet(run_copy / "curate" / "ledger.parquet").filter(pl.col("row_id") == row)
    assert ledger.select("fate", "final_label", "review_decision", "review_votes", "reviewed_by").row(0) == \
        ("kept", label, "conflict", f"{first}:1, {second}:1", None)
    assert "review_conflict" in ledger["reasons"].item()


def test_a_task_text_edited_into_a_number_is_another_text(token_env, run_copy):
    """A task's text edited in Label Studio into a number (JSON data takes any value) crashed pull and
    push with an AttributeError."""
    client, cfg, task = _pushed_first_task(token_env, run_copy, "number text")
    client.tasks.update(str(task.id), data={**task.data, "text": 12345})
    _annotate(client, task.id, "drop")
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet")
    assert reviews.select("row_id", "decision", "text_sha256").rows() == [(task.data["row_id"], "drop",
                                                                           text_sha256("12345"))]
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["stale_reviews"], summary["dropped"]) == (1, 0)
    result = push(run_copy, cfg)
    assert (result["text_changed"], result["replaced"], result["superseded"]) == (1, 1, 1)
    edited, fresh = _by_row(client, _project_id(client, "number text"))[task.data["row_id"]]
    assert edited.data["text"] == 12345 and fresh.data["text"] == task.data["text"]


def test_a_review_of_turns_edited_in_label_studio_is_not_applied(token_env, run_copy):
    """A conversation project shows the turns (data.dialogue), not data.text, but pull hashed only the
    text: a decision made on edited turns was applied to the row."""
    server = token_env
    client = _client(server)
    cfg = LabelStudioConfig(url=server.url, project="edited turns", only="all")
    push(run_copy, cfg)
    task, other = sorted(_tasks(client, _project_id(client, "edited turns")), key=lambda t: t.data["row_id"])[:2]
    client.tasks.update(str(task.id), data={**task.data, "dialogue": [{"speaker": "customer",
                                                                       "text": "edited by hand"}]})
    _annotate(client, task.id, "drop")
    _annotate(client, other.id, "drop")  # its turns untouched: applied
    pull(run_copy, cfg)
    reviews = pl.read_parquet(run_copy / "curate" / "reviews.parquet").sort("row_id")
    assert reviews["text_sha256"].to_list()[1] == text_sha256(other.data["text"])
    assert reviews["text_sha256"].to_list()[0] != text_sha256(task.data["text"])
    summary = apply_reviews_to_run(run_copy, Config())
    assert (summary["stale_reviews"], summary["dropped"]) == (1, 1)
    fate = dict(pl.read_parquet(run_copy / "curate" / "ledger.parquet").select("row_id", "fate").rows())
    assert (fate[task.data["row_id"]], fate[other.data["row_id"]]) == ("kept", "dropped")
    # Push judges the task the same way: the row's turns go to a new task.
    result = push(run_copy, cfg)
    assert (result["text_changed"], result["replaced"]) == (1, 1)


def test_a_pull_from_a_deleted_project_says_the_id_came_from_the_push_record(token_env, run_copy, cli_run):
    """Without --project, pull read the id push recorded, then said "a number is read as a project id,
    not a title", though nobody had typed a number."""
    server = token_env
    client = _client(server)
    code, out = cli_run("labelstudio", "push", run_copy, "--url", server.url, "--project", "deleted later",
                        "--only", "all")
    assert code == 0, out
    pid = _project_id(client, "deleted later")
    client.projects.delete(pid)
    code, out = cli_run("labelstudio", "pull", run_copy, "--url", server.url)
    record = run_copy / "curate" / "labelstudio.json"
    assert code == 2 and error_lines(out) == [
        f"error: {record}: Label Studio at {server.url} has no project with id {pid}, the project the last push "
        "recorded in labelstudio.json (deleted since?): pass --project NAME_OR_ID"], out

"""Label Studio push and pull of 10k tasks against a local server, beside the plain SDK calls.

A real Label Studio (``make labelstudio``) is started on 127.0.0.1 with a throw-away data
directory. The rows are Banking77 train texts (10,003, public data without personal data, so the
run is pushed with ``require_anonymised = false``) with seeded label-issue columns, so every task
carries the current label and, for one row in ten, a suggested label as predictions.

Anchors, run in the same process against the same server: for push, one
``client.projects.import_tasks`` call with the very same task payloads into a second project;
for pull, the SDK's ``client.projects.exports.as_json``. Ours adds what they lack: listing the
row_ids already present (idempotence), batches with progress, retries, the parquet it writes.
Reviews are made with Label Studio's bulk "create annotations from predictions" action.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.common import header, table
from benchmarks.noise import read_banking77
from curatune.config import Config, LabelStudioConfig
from curatune.curate.labelstudio import DIALOGUE_KEY, TEXT_KEY, _task, labeling_config, pull, push, review_rows
from curatune.curate.pipeline import run_curation
from curatune.curate.reviews import apply_reviews_to_run
from curatune.rundir import read_json, write_json
from tests.curate.labelstudio_server import BINARY, LabelStudioServer

GOAL_S = 60.0


def _curate_dir(root: Path, data_dir: Path, n: int) -> Path:
    rows = read_banking77(data_dir)
    rows = [rows[i % len(rows)] for i in range(n)]
    src = root / "bank.csv"
    pl.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]}).write_csv(src)
    cfg = Config()
    cfg.curate.steps = []
    run_curation(cfg, root / "run" / "curate", [str(src)])
    ledger_path = root / "run" / "curate" / "ledger.parquet"
    ledger = pl.read_parquet(ledger_path)
    labels = sorted(set(ledger["final_label"].to_list()))
    rng = random.Random(0)
    flagged = [rng.random() < 0.1 for _ in range(ledger.height)]
    suggested = [rng.choice(labels) if f else None for f in flagged]
    quality = [rng.uniform(0.0, 0.3) if f else rng.uniform(0.5, 1.0) for f in flagged]
    ledger.with_columns(pl.Series("is_label_issue", flagged), pl.Series("suggested_label", suggested, pl.String),
                        pl.Series("label_quality", quality)).write_parquet(ledger_path)
    return root / "run"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out



def _server_version() -> str:
    """The Label Studio release the server runs, read from its own virtual environment."""
    import subprocess

    from tests.curate.labelstudio_server import BINARY

    out = subprocess.run([str(BINARY.parent / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('label-studio'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()

def run(data_dir: Path, quick: bool) -> str | None:
    from label_studio_sdk import LabelStudio

    if not BINARY.exists():
        print("   not measured: Label Studio is not installed (run `make labelstudio`)", flush=True)
        return None
    n = 1000 if quick else 10_000
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run_dir = _curate_dir(tmp, data_dir, n)
        server = LabelStudioServer(data_dir=tmp / "ls-data")
        t_start, _ = _timed(server.start)
        old_token = os.environ.get("LABEL_STUDIO_API_KEY")
        os.environ["LABEL_STUDIO_API_KEY"] = server.token
        try:
            cfg = LabelStudioConfig(url=server.url, project="bench", only="all", require_anonymised=False)
            client = LabelStudio(base_url=server.url, api_key=server.token, max_retries=0, timeout=600)
            curate_dir = run_dir / "curate"
            run_id = read_json(curate_dir / "manifest.json")["run_id"]
            rows, labels = review_rows(curate_dir, cfg)
            tasks = [_task(r, run_id, TEXT_KEY) for r in rows.to_dicts()]
            assert DIALOGUE_KEY not in tasks[0]["data"]
            anchor = client.projects.create(title="anchor", label_config=labeling_config(labels, dialogue=False))

            t_anchor_push, _ = _timed(lambda: client.projects.import_tasks(anchor.id, request=tasks))
            t_push, pushed = _timed(lambda: push(run_dir, cfg))
            t_repush, repushed = _timed(lambda: push(run_dir, cfg))
            assert pushed["created"] == n and repushed["created"] == 0 and repushed["updated"] == 0

            # Reviewers accept a prediction on every task (Label Studio's bulk action), in both projects.
            t_annotate = 0.0
            for pid in (pushed["project_id"], anchor.id):
                dt, _ = _timed(lambda p=pid: client.actions.create(
                    id="predictions_to_annotations", project=p, selected_items={"all": True, "excluded": []}))
                t_annotate += dt

            t_pull, pulled = _timed(lambda: pull(run_dir, cfg))
            t_anchor_pull, exported = _timed(lambda: client.projects.exports.as_json(anchor.id))
            n_exported = sum(len(t["annotations"]) for t in exported)
            # The action turns each prediction into an annotation: flagged rows get two, by the same user.
            assert pulled["rows"] == n and pulled["reviews"] == n_exported
            t_apply, applied = _timed(lambda: apply_reviews_to_run(run_dir, Config()))

            # A later curate run (new run id) whose label quality moved on one row in ten: those tasks
            # get new predictions; tasks of rows whose data apply-reviews changed are updated too.
            manifest = read_json(curate_dir / "manifest.json")
            manifest["run_id"] = "cur-00000000a1a7"
            write_json(manifest, curate_dir / "manifest.json")
            ledger = pl.read_parquet(curate_dir / "ledger.parquet").with_row_index("i")
            moved = (pl.col("i") % 10 == 0)
            ledger.with_columns(pl.when(moved).then((pl.col("label_quality") + 0.25) % 1.0)
                                .otherwise("label_quality").alias("label_quality")).drop("i") \
                .write_parquet(curate_dir / "ledger.parquet")
            t_later, later = _timed(lambda: push(run_dir, cfg))
            n_moved = ledger.filter(moved).height
            assert later["created"] == 0 and later["updated"] >= n_moved, (later, n_moved)
        finally:
            server.stop()
            if old_token is None:
                os.environ.pop("LABEL_STUDIO_API_KEY", None)
            else:
                os.environ["LABEL_STUDIO_API_KEY"] = old_token

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f}"

    rows_out = [
        ("push (new project)", n, f"{t_push:.1f}", rate(t_push), f"{t_anchor_push:.1f}", rate(t_anchor_push),
         f"{t_push / t_anchor_push:.2f}x", "yes" if t_push <= GOAL_S else "no"),
        ("pull (annotations -> reviews.parquet)", n, f"{t_pull:.1f}", rate(t_pull), f"{t_anchor_pull:.1f}",
         rate(t_anchor_pull), f"{t_pull / t_anchor_pull:.2f}x", "yes" if t_pull <= GOAL_S else "no"),
        ("push again (nothing to do)", n, f"{t_repush:.1f}", rate(t_repush), "-", "-", "-", "-"),
        (f"push of a later run ({later['updated']:,} tasks updated, {n_moved:,} of them for new predictions)", n,
         f"{t_later:.1f}", rate(t_later),
         "-", "-", "-", "-"),
        ("apply-reviews (local)", n, f"{t_apply:.2f}", rate(t_apply), "-", "-", "-", "-"),
    ]
    out = header(f"Label Studio round trip ({n:,} tasks)")
    # The server and this client share the machine's cores with whatever else runs: say how busy it was.
    out += (f"- load average (1 min) at start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores\n\n")
    out += (f"Local Label Studio {_server_version()} (Community, SQLite, Django development server) on 127.0.0.1; "
            f"first start {t_start:.0f} s. Banking77 train texts; every task carries 1-2 predictions and "
            "its issue reasons. Anchor for push: one `client.projects.import_tasks` call with the same payloads; "
            "for pull: `client.projects.exports.as_json`. Time vs anchor = our time / anchor time (below 1: faster). "
            f"Goal: <= {GOAL_S:.0f} s each way.\n\n")
    out += table(["operation", "tasks", "curatune s", "tasks/s", "anchor s", "anchor tasks/s",
                  "time vs anchor (ours / anchor)", f"<= {GOAL_S:.0f} s"], rows_out)
    out += (f"\nPush sends batches of {cfg.batch_size}; it first lists the row_ids the project holds, so a "
            "second push creates nothing. Making the reviews (bulk action, both projects) took "
            f"{t_annotate:.1f} s ({pulled['reviews']:,} annotations on {n:,} rows: flagged rows get one per "
            "prediction, all by the one benchmark user, and a reviewer's latest annotation of a row is their vote); "
            f"apply-reviews confirmed {applied['confirmed']:,} rows, relabelled {applied['relabelled']:,}, dropped "
            f"{applied['dropped']:,} and kept {applied['conflicts']:,} conflicts for a person to settle.\n")
    return out

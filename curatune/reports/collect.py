"""Read a run directory into the report's content: one plain, JSON-serialisable dict.

This dict is ``audit.json`` and is what every HTML page renders, so the JSON twin and the pages
say the same thing. It is built only from the run directory's files (manifests, metrics.json,
trainer_log.jsonl, Parquet tables): nothing is recomputed, a stage that is absent is "not run", one
whose inputs from another stage changed after it ran is "out of date", and a key a stage did not
write is "not available" rather than guessed.

Safety: transcript text is read only from curated/excluded tables written after the anonymise
step, only when its leak scan ran with NER, and never for a row in which the scan still found
personal data; otherwise examples show row ids and labels, not text.
Tables are scanned lazily and only the example rows are read, so a 1M-row run reports quickly and
the report stays small.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from curatune.config import ReportConfig
from curatune.dataset import (
    DROPPED_BY_NOT_RECORDED,
    DUPLICATE_REASONS,
    INFORMATIONAL_REASONS,
    LABEL_CONFLICT,
    LABEL_ISSUE,
    LEDGER_BASE,
    relabelled_digest,
)
from curatune.errors import CuratuneError, first_line
from curatune.formatting import signed
from curatune.rundir import (
    CURATED,
    EXCLUDED,
    LEDGER,
    MANIFEST,
    METRICS,
    TRAINER_LOG,
    anonymise_step,
    edited_files,
    ran_without_ner,
    read_json,
    scan_run_table,
    sha256_tree,
    unvouched_anonymisation,
)

SCHEMA_VERSION = 1
STAGE_TITLES = {"curate": "Curation", "train": "Training", "evaluate": "Evaluation"}
NOT_RUN = {"status": "not run"}


def collect(run_dir: str | Path, cfg: ReportConfig | None = None) -> dict[str, Any]:
    run = Path(run_dir)
    cfg = cfg or ReportConfig()
    try:
        return _collect(run, cfg)
    except pl.exceptions.PolarsError as exc:
        # A table damaged past its footer (its schema read fine): name it. Any other polars error is ours.
        for path in sorted(run.glob("*/*.parquet")):
            try:
                pl.read_parquet(path)
            except Exception:  # polars raises several types for a damaged file
                raise CuratuneError(f"cannot read Parquet table ({first_line(exc)}); re-run the stage that wrote "
                                    "it", file=str(path)) from None
        raise


def _collect(run: Path, cfg: ReportConfig) -> dict[str, Any]:
    manifests = {s: _manifest(run / s) for s in STAGE_TITLES}
    # A stage whose inputs changed after it ran (curate again, apply-reviews after training) describes
    # other data: shown as out of date, as `curatune run` would mark it, never beside this data's figures.
    stale: dict[str, str] = {}
    for s, m in manifests.items():  # pipeline order: a stage that read an out-of-date stage's files is one too
        if m and (why := _out_of_date(run, m, stale)):
            stale[s] = why
    for s in stale:
        manifests[s] = None

    def absent(stage: str) -> dict[str, Any]:
        return {"status": "out of date", "reason": stale[stage]} if stage in stale else dict(NOT_RUN)

    curation = _curation(run / "curate", manifests["curate"], cfg) if manifests["curate"] else absent("curate")
    training = _training(run / "train", manifests["train"]) if manifests["train"] else absent("train")
    evaluation = _evaluation(run / "evaluate", manifests["evaluate"], cfg, _chose_checkpoint(manifests["train"])) \
        if manifests["evaluate"] else absent("evaluate")
    content = {
        "schema_version": SCHEMA_VERSION,
        "title": cfg.title,
        "run": _run_info(run, manifests, stale),
        "curation": curation,
        "training": training,
        "evaluation": evaluation,
    }
    content["verdict"] = _verdict(content)
    return _clean(content)


# --------------------------------------------------------------------------------------------
# common


def _manifest(stage_dir: Path) -> dict[str, Any] | None:
    p = stage_dir / MANIFEST
    if not p.is_file():
        return None
    doc = _clean(read_json(p))  # NaN as null from here: a sentence never says "nan"
    # Another stage's manifest in this folder (written there by hand, or by a report sent into it).
    if doc.get("stage", stage_dir.name) != stage_dir.name:
        return None
    return doc if doc.get("status", "complete") == "complete" else None


def _out_of_date(run: Path, manifest: dict[str, Any], stale: dict[str, str]) -> str | None:
    """Why a stage no longer describes this run's files: an input it read from another stage of this
    run (by stage folder and file name) has changed since, or that stage is out of date itself
    (``stale``: an evaluation of a model trained before apply-reviews). None when all match, or none
    is recorded."""
    held_out = manifest.get("held_out_excluded_sha256")  # train's: the rows its validation could not draw
    if isinstance(held_out, str) and (run / "curate" / LEDGER).is_file() \
            and relabelled_digest(run / "curate") != held_out:
        return ("curate/ledger.parquet changed which rows training may hold out for validation (a review of a "
                "model's relabel): run it again")
    for item in manifest.get("inputs") or []:
        recorded = Path(str(item.get("path", "")))
        stage = recorded.parent.name
        # Manifests are left out: a stage re-run to the same tables rewrites only its timings.
        if stage not in STAGE_TITLES or stage == manifest.get("stage") or recorded.name == MANIFEST \
                or not item.get("sha256"):
            continue
        current = run / stage / recorded.name
        if current.exists() and sha256_tree(current) != item["sha256"]:
            return f"{stage}/{recorded.name} changed after this stage ran: run it again"
        if stage in stale:
            return f"it read {stage}/{recorded.name} of a {stage} stage that is out of date: run both again"
    return None


def _reviews_applied_later(m: dict[str, Any]) -> bool:
    """Whether `curatune apply-reviews` rewrote this (curate) stage's outputs after it ran."""
    return any(isinstance(s, dict) and (s.get("summary") or {}).get("applied_by") == "apply-reviews"
               for s in m.get("steps") or [])


def iso_time(ts: Any) -> str | None:
    """A run's own timestamp (data, not the render time) as UTC text."""
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples become lists. Floats stay as the stages wrote them:
    rounding here and again at display time made numbers on one page disagree in the last digit."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):  # numpy scalars
        return _clean(obj.item())
    return str(obj)


def _run_info(run: Path, manifests: dict[str, dict | None], stale: dict[str, str]) -> dict[str, Any]:
    stages = []
    for stage, title in STAGE_TITLES.items():
        m = manifests[stage]
        if m is None:
            stages.append({"stage": stage, "title": title, "status": "out of date" if stage in stale else "not run",
                           "started_at": None, "finished_at": None, "seconds": None})
            continue
        started, finished = m.get("started_at"), m.get("finished_at")
        seconds = round(finished - started, 1) if isinstance(started, int | float) \
            and isinstance(finished, int | float) else None
        timings = m.get("timings")
        if _reviews_applied_later(m) and isinstance(timings, dict):
            # Curated on one day, reviews applied on another: the clock between them is no stage's time.
            seconds = round(sum(v for v in timings.values() if isinstance(v, int | float)), 1)
        stages.append({
            "stage": stage, "title": title, "status": "complete",
            "started_at": iso_time(started), "finished_at": iso_time(finished), "seconds": seconds,
        })
    versions = next((m.get("versions") for m in reversed(list(manifests.values())) if m and m.get("versions")), {})
    run_id = (manifests["curate"] or {}).get("run_id")
    return {"name": run.resolve().name, "run_id": run_id, "stages": stages, "versions": versions or {},
            "edited": edited_run_files(run, [s for s, m in manifests.items() if m])}


def edited_run_files(run: Path, stages: list[str] | tuple[str, ...] = tuple(STAGE_TITLES)) -> list[str]:
    """"evaluate/metrics.json" for each file of these stages changed after its stage wrote it."""
    return [f"{s}/{name}" for s in stages for name in edited_files(run / s)]


NOT_ENFORCED = "fail (not enforced)"


def _gate(stage: str, g: dict[str, Any], anchor: str) -> dict[str, Any]:
    name = str(g.get("name", "gate"))
    passed = g.get("passed")
    comparison = g.get("comparison") or g.get("op") or g.get("direction")
    comparison = {">=": "≥", "min": "≥", "at_least": "≥", "<=": "≤", "max": "≤", "at_most": "≤"}.get(
        str(comparison), comparison)
    if not comparison:
        comparison = "≥" if name.startswith("min_") else "≤"
    value, threshold = g.get("value"), g.get("threshold")
    # A value past its threshold is never a pass, whatever was recorded: older runs wrote a gate that
    # was switched off ([curate.anonymise] fail_on_leak = false) as passed.
    breached = _is_num(value) and _is_num(threshold) and (value < threshold if comparison == "≥"
                                                          else value > threshold)
    if passed is False or breached:
        status = NOT_ENFORCED if g.get("enforced") is False or passed is True else "fail"
    else:
        status = "pass" if passed is True else "not checked"
    return {
        "stage": stage, "name": name, "status": status,
        "value": value, "threshold": threshold, "comparison": comparison,
        "detail": g.get("detail") or g.get("description") or "", "anchor": g.get("anchor") or anchor,
    }


# --------------------------------------------------------------------------------------------
# curation


def _curation(cdir: Path, m: dict[str, Any], cfg: ReportConfig) -> dict[str, Any]:
    steps = m.get("steps") or []
    by_name = {s.get("name"): s for s in steps}
    counts = m.get("counts") or {}
    group_cols = list(m.get("group_cols") or [])
    ledger_path = cdir / LEDGER
    ledger = scan_run_table(ledger_path, LEDGER_BASE) if ledger_path.is_file() else None
    ledger_cols = ledger.collect_schema().names() if ledger is not None else []
    text_ok, withheld, leaked_rows = _text_allowed(m, ledger, ledger_cols, cfg)
    texts = _TextSource(cdir, text_ok, cfg.text_chars, leaked_rows)

    gates = []
    for s in steps:
        for g in [*(s.get("gates") or []), *_unenforced_checks(s)]:
            gates.append(_gate("curate", g, _step_anchor(s.get("name", ""))))
    if not gates:
        gates = [_gate("curate", g, "curation") for g in m.get("gates") or []]

    out: dict[str, Any] = {
        "status": "complete",
        "input": _input_summary(m),
        "outcome": {
            "input": counts.get("input"), "kept": counts.get("kept"), "dropped": counts.get("dropped"),
            "relabelled": counts.get("relabelled"),
            "by_reason": [{"reason": r, "rows": n} for r, n in sorted((counts.get("by_reason") or {}).items(),
                                                                       key=lambda kv: (-kv[1], kv[0]))],
        },
        "steps": [_step_row(s) for s in steps],
        "group_cols": group_cols,
        "text_shown": text_ok,
        # 0 shows no example: an empty table must not read as "none dropped" or "none flagged".
        "max_examples": cfg.max_examples,
        "text_withheld_reason": withheld,
        # Rows left out of the examples because the leak scan still found personal data in them.
        "text_left_out_rows": len(leaked_rows),
        "gates": gates,
        "truth": m.get("truth") or {},
        "timings": m.get("timings") or {},
    }
    out["duplicates"] = _duplicates(by_name.get("dedup"), ledger, ledger_cols, texts, cfg)
    out["pii"] = _pii(by_name.get("anonymise"))
    out["label_issues"] = _label_issues(by_name.get("label_issues"), ledger, ledger_cols, texts, cfg)
    out["reviews"] = _reviews(by_name.get("human_review"), ledger, ledger_cols, cfg)
    out["changes"] = _changes(counts, ledger, ledger_cols, texts, cfg)
    out["groups"] = _group_shares(counts, group_cols, cfg)
    # Curated by an older curatune: its manifest has no per-group counts (the report never counts them).
    out["groups_not_counted"] = [c for c in group_cols if c not in (counts.get("by_group") or {})]
    out["text_left_out"] = sorted(texts.left_out)
    return out


def _step_anchor(step: str) -> str:
    return {"dedup": "curation-duplicates", "anonymise": "curation-pii", "label_issues": "curation-label-issues",
            "human_review": "curation-reviews"}.get(step, "curation-steps")


def _unenforced_checks(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The leak scan of a step run with fail_on_leak = false is no gate (it must not stop the run),
    but the verdict still lists it, with its true outcome."""
    leak = (step.get("summary") or {}).get("leak_scan")
    if step.get("name") != "anonymise" or not isinstance(leak, dict) or leak.get("enforced") is not False \
            or any(g.get("name") == "leak_scan" for g in step.get("gates") or []):
        return []
    return [{"name": "leak_scan", "passed": leak.get("passed"), "enforced": False, "value": leak.get("remaining"),
             "threshold": leak.get("max_leaks"),
             "detail": "personal data still found after anonymisation (not enforced: fail_on_leak = false)"}]


def _text_allowed(m: dict[str, Any], ledger: pl.LazyFrame | None, cols: list[str],
                  cfg: ReportConfig) -> tuple[bool, str | None, frozenset[str]]:
    """Whether transcript text may be shown, why not, and the rows whose text must be left out
    (``m``: the curate manifest)."""
    none: frozenset[str] = frozenset()
    anon = anonymise_step(m)
    if anon is None:
        if cfg.show_text_without_anonymisation:
            return True, None, none
        return False, ("text withheld: the anonymise step did not run on this data ([report] "
                       "show_text_without_anonymisation = true shows it for data without personal data)"), none
    failed = [g for g in anon.get("gates") or [] if g.get("passed") is False]
    leak = (anon.get("summary") or {}).get("leak_scan") or {}
    if failed or leak.get("passed") is False:
        return False, "text withheld: the leak scan still found personal data after anonymisation", none
    if leak.get("passed") is not True:  # shown only on a recorded pass, never on a missing record
        return False, "text withheld: the anonymise step recorded no leak-scan result", none
    if unvouched := unvouched_anonymisation(m):
        return False, f"text withheld: {unvouched}", none
    remaining = leak.get("remaining")
    if not _is_num(remaining):
        return False, "text withheld: the anonymise step recorded no count of what the leak scan found", none
    if remaining == 0:
        return True, None, none
    # Passed only because [curate.anonymise] max_leaks allows some: the ledger names the rows.
    unknown = (f"text withheld: the leak scan still found {remaining} personal-data entities (within "
               "[curate.anonymise] max_leaks) and the ledger does not say in which rows")
    if ledger is None or "pii_leaked" not in cols:
        return False, unknown, none
    rows = ledger.filter(pl.col("pii_leaked").fill_null(0) > 0).select("row_id", "pii_leaked").collect()
    if rows["pii_leaked"].sum() < remaining:  # the ledger accounts for fewer than the scan found
        return False, unknown, none
    return True, None, frozenset(rows["row_id"].to_list())


class _TextSource:
    """Anonymised transcript text for a handful of row ids, read from curated/excluded tables; never
    the text of a row in which the leak scan still found personal data."""

    def __init__(self, cdir: Path, allowed: bool, chars: int, leaked: frozenset[str] = frozenset()) -> None:
        self.paths = [p for p in (cdir / CURATED, cdir / EXCLUDED) if p.is_file()]
        self.allowed, self.chars, self.leaked = allowed, chars, leaked
        self.left_out: set[str] = set()  # example rows asked for whose text is left out

    def get(self, row_ids: list[str]) -> dict[str, str]:
        if self.allowed:
            self.left_out.update(r for r in row_ids if r in self.leaked)
        row_ids = [r for r in row_ids if r not in self.leaked]
        if not self.allowed or not row_ids:
            return {}
        found: dict[str, str] = {}
        for p in self.paths:
            lf = scan_run_table(p)
            if "text" not in lf.collect_schema().names():
                continue
            rows = lf.filter(pl.col("row_id").is_in(row_ids)).select("row_id", "text").collect()
            for rid, text in rows.iter_rows():
                if rid not in found and text is not None:
                    found[rid] = text if len(text) <= self.chars else text[: self.chars] + " …[cut]"
        return found


def _input_summary(m: dict[str, Any]) -> dict[str, Any]:
    files = [{"name": Path(str(i.get("path", ""))).name, "role": i.get("role", "data"), "rows": i.get("rows"),
              "records": i.get("records"), "sha256": i.get("sha256")} for i in m.get("inputs") or []]
    counts = m.get("counts") or {}
    return {"files": files, "rows": counts.get("input"), "labels": counts.get("labels"),
            "splits": [{"split": s, "rows": n} for s, n in (counts.get("by_split") or {}).items()]}


def _step_row(s: dict[str, Any]) -> dict[str, Any]:
    return {"name": s.get("name"), "rows_in": s.get("rows_in"), "issues": s.get("issues"),
            "dropped": s.get("dropped"), "relabelled": s.get("relabelled"), "seconds": s.get("seconds"),
            "anchor": _step_anchor(s.get("name", ""))}


def _duplicates(step: dict | None, ledger: pl.LazyFrame | None, cols: list[str], texts: _TextSource,
                cfg: ReportConfig) -> dict[str, Any]:
    if step is None:
        return {"ran": False}
    summary = step.get("summary") or {}
    out: dict[str, Any] = {"ran": True, "summary": _scalars(summary),
                           "dropped_by_reason": summary.get("dropped_by_reason") or {}, "examples": [],
                           "kept_label_conflicts": []}
    if ledger is None or "reasons" not in cols:
        return out
    for reason in DUPLICATE_REASONS:
        sel = (ledger.filter(pl.col("reasons").list.contains(reason) & (pl.col("fate") == "dropped"))
               .select("row_id", "split", "duplicate_of", "original_label").sort("row_id")
               .head(cfg.max_examples).collect())
        if sel.height:
            out["examples"].append({"reason": reason, "rows": _pairs(sel, ledger, texts)})
    if "dedup_cluster" in cols:
        # Near copies with another label stay for a person to settle (curate/dedup.py): shown beside the
        # row that represents their cluster, whose label they contradict.
        sel = (ledger.filter(pl.col("reasons").list.contains(LABEL_CONFLICT) & (pl.col("fate") != "dropped")
                             & pl.col("dedup_cluster").is_not_null() & (pl.col("dedup_cluster") != pl.col("row_id")))
               .select("row_id", "split", pl.col("dedup_cluster").alias("duplicate_of"), "original_label")
               .sort("row_id").head(cfg.max_examples).collect())
        out["kept_label_conflicts"] = _pairs(sel, ledger, texts)
    return out


def _pairs(sel: pl.DataFrame, ledger: pl.LazyFrame, texts: _TextSource) -> list[dict[str, Any]]:
    """Rows (row_id, split, duplicate_of, original_label) beside the row each names, with both texts."""
    ids = sel["row_id"].to_list()
    partners = [d for d in sel["duplicate_of"].to_list() if d]
    # The partner's fate too: a later step (label_issues' drop policy, a reviewer) can drop the row a
    # copy was dropped for, and the table called it the kept row.
    dropped_by = pl.when(pl.col("fate") == "dropped").then(pl.col("dropped_by").fill_null(DROPPED_BY_NOT_RECORDED))
    partner_rows = ledger.filter(pl.col("row_id").is_in(partners)).select(
        "row_id", "split", "original_label", dropped_by.alias("dropped_by")).collect()
    partner_info = {r: (s, lab, by) for r, s, lab, by in partner_rows.iter_rows()}
    text = texts.get(ids + partners)
    out = []
    for rid, split, dup, label in sel.iter_rows():
        dup_split, dup_label, dup_dropped_by = partner_info.get(dup, (None, None, None))
        out.append({"row_id": rid, "split": split, "label": label, "text": text.get(rid), "duplicate_of": dup,
                    "duplicate_split": dup_split, "duplicate_label": dup_label, "duplicate_dropped_by": dup_dropped_by,
                    "duplicate_text": text.get(dup)})
    return out


def _pii(step: dict | None) -> dict[str, Any]:
    if step is None:
        return {"ran": False}
    s = step.get("summary") or {}
    leak = s.get("leak_scan") or {}
    gates = step.get("gates") or []
    passed = leak.get("passed")
    if passed is None and gates:
        passed = all(g.get("passed") for g in gates)
    return {
        "ran": True,
        "entities_by_type": [{"type": t, "count": n} for t, n in sorted((s.get("entities_by_type") or {}).items(),
                                                                        key=lambda kv: (-kv[1], kv[0]))],
        "entities_total": sum((s.get("entities_by_type") or {}).values()),
        "rows_with_pii": s.get("rows_with_pii"),
        "rows_scanned": leak.get("rows_scanned"),
        "operator": s.get("operator"),
        "leak_scan": {"passed": passed, "remaining": leak.get("remaining"),
                      "remaining_by_type": leak.get("remaining_by_type") or {},
                      "rows_given_a_second_pass": leak.get("rows_given_a_second_pass"),
                      "enforced": leak.get("enforced", True if gates else None),
                      "max_leaks": leak.get("max_leaks")},
        "no_ner": ran_without_ner(step),
        "spacy_model": s.get("spacy_model"),
        "summary": _scalars({k: v for k, v in s.items() if k not in ("entities_by_type", "leak_scan")}),
    }


def _first(cols: list[str], *names: str) -> str | None:
    return next((c for c in names if c in cols), None)


def _label_issues(step: dict | None, ledger: pl.LazyFrame | None, cols: list[str], texts: _TextSource,
                  cfg: ReportConfig) -> dict[str, Any]:
    if step is None:
        return {"ran": False}
    summary = step.get("summary") or {}
    shares, not_shown = _flagged_shares(summary.get("flagged_share_by_group") or {}, cfg.max_groups)
    out: dict[str, Any] = {
        "ran": True, "summary": _scalars({k: v for k, v in summary.items() if k != "flagged_share_by_group"}),
        "flagged": step.get("issues"), "dropped": step.get("dropped"), "relabelled": step.get("relabelled"),
        "flagged_share_by_group": shares, "flagged_share_not_shown": not_shown,
        "examples": []}
    if ledger is None:
        return out
    flag_col = _first(cols, "is_label_issue", "label_issues_is_issue")
    score_col = _first(cols, "label_quality", "label_issues_score")
    rank_col = _first(cols, "label_issue_rank")
    suggest_col = _first(cols, "suggested_label", "label_issues_suggested_label")
    conf_col = _first(cols, "suggested_confidence")
    if flag_col:
        flagged = pl.col(flag_col).fill_null(False)
    elif "reasons" in cols:
        flagged = pl.col("reasons").list.eval(pl.element().str.contains(f"{LABEL_ISSUE}|mislabel")).list.any()
    else:
        return out
    extra = [c for c in (score_col, rank_col, suggest_col, conf_col, "review_decision", "reviewed_by") if c in cols]
    sel = ledger.filter(flagged).select("row_id", "split", "original_label", "final_label", "fate", *extra)
    order = [c for c in (rank_col, score_col) if c] + ["row_id"]
    rows = sel.sort(order, nulls_last=True).head(cfg.max_examples).collect()
    text = texts.get(rows["row_id"].to_list())
    for r in rows.iter_rows(named=True):
        out["examples"].append({
            "row_id": r["row_id"], "split": r["split"], "label": r["original_label"],
            "final_label": r["final_label"], "fate": r["fate"],
            "suggested_label": r.get(suggest_col) if suggest_col else None,
            "suggested_confidence": r.get(conf_col) if conf_col else None,
            "score": r.get(score_col) if score_col else None,
            "review": r.get("review_decision") or "not reviewed", "reviewed_by": r.get("reviewed_by"),
            "text": text.get(r["row_id"]),
        })
    return out


def _flagged_shares(by_group: dict[str, Any], max_groups: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each column's groups, highest flagged share first (ties: the larger group), cut to
    ``max_groups``, and how many were cut per column. Older runs wrote a bare share per group, sorted
    by name: those have no size, and sort by share alone."""
    rows: list[dict[str, Any]] = []
    not_shown: dict[str, int] = {}
    for col, groups in by_group.items():
        if not isinstance(groups, dict):
            continue
        entries = []
        for g, v in groups.items():
            share = v.get("share") if isinstance(v, dict) else v
            size = v.get("rows") if isinstance(v, dict) else None
            entries.append({"column": col, "group": g, "share": share, "rows": size})
        entries.sort(key=lambda e: (-(e["share"] if _is_num(e["share"]) else -1.0),
                                    -(e["rows"] if _is_num(e["rows"]) else 0), e["group"]))
        rows.extend(entries[:max_groups])
        not_shown[col] = max(0, len(entries) - max_groups)
    return rows, not_shown


def _reviews(step: dict | None, ledger: pl.LazyFrame | None, cols: list[str], cfg: ReportConfig) -> dict[str, Any]:
    if step is None:
        return {"ran": False}
    s = step.get("summary") or {}
    return {"ran": True, "summary": _scalars({k: v for k, v in s.items() if k != "conflict_rows"}),
            "conflict_rows": list(s.get("conflict_rows") or [])[: cfg.max_examples]}


def _changes(counts: dict[str, Any], ledger: pl.LazyFrame | None, cols: list[str], texts: _TextSource,
             cfg: ReportConfig) -> dict[str, Any]:
    """Dropped rows by step, as the curate manifest counted them (None: an older manifest without the
    count), and the first relabelled rows from the ledger."""
    by = counts.get("dropped_by_step")
    # Most first (as by_reason): the manifest's keys are written sorted by name.
    dropped_by = None if by is None else [{"step": s, "rows": n}
                                          for s, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))]
    if ledger is None or "fate" not in cols:
        return {"dropped_by": dropped_by, "relabelled_examples": []}
    rel = (ledger.filter(pl.col("fate") == "relabelled")
           .select("row_id", "split", "original_label", "final_label", "reasons").sort("row_id")
           .head(cfg.max_examples).collect())
    text = texts.get(rel["row_id"].to_list())
    return {
        "dropped_by": dropped_by,
        "relabelled_examples": [
            {"row_id": r["row_id"], "split": r["split"], "from": r["original_label"], "to": r["final_label"],
             "reasons": ", ".join(x for x in r["reasons"] or [] if x not in INFORMATIONAL_REASONS),
             "text": text.get(r["row_id"])}
            for r in rel.iter_rows(named=True)],
    }


def _group_shares(counts: dict[str, Any], group_cols: list[str], cfg: ReportConfig) -> list[dict[str, Any]]:
    """Per group: share of rows dropped, relabelled and flagged, as the curate manifest counted them."""
    by_group = counts.get("by_group") or {}
    out: list[dict[str, Any]] = []
    for col in [c for c in group_cols if c in by_group]:
        groups = by_group[col] or []
        rows = [{**g, **{f"{k}_share": g[k] / g["rows"] if g["rows"] else None
                         for k in ("dropped", "relabelled", "flagged")}} for g in groups[: cfg.max_groups]]
        out.append({"column": col, "groups": len(groups), "rows": rows, "not_shown": len(groups) - len(rows)})
    for g, anchor in zip(out, unique_anchors("curation-groups", [g["column"] for g in out]), strict=True):
        g["anchor"] = anchor
    return out


def _scalars(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a step summary into (key, value) rows; nested tables become "a.b" keys, long lists a count."""
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            if not v:
                rows.append({"key": prefix, "value": "none"})
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, list):
            rows.append({"key": prefix, "value": ", ".join(map(str, v)) if len(v) <= 10 else f"{len(v)} items"})
        else:
            rows.append({"key": prefix, "value": v})

    walk("", d)
    return rows


# --------------------------------------------------------------------------------------------
# training


def _folder_name(value: Any) -> Any:
    """A local model folder by its name: the config records it as an absolute path, which can name the
    user's home folder, and the report is made to be shared."""
    return Path(value).name if isinstance(value, str) and Path(value).is_absolute() else value


def _training(tdir: Path, m: dict[str, Any]) -> dict[str, Any]:
    cfg_train = (m.get("config") or {}).get("train") or {}
    model = m.get("model") or {}
    curated_input = next((i for i in m.get("inputs") or [] if Path(str(i.get("path", ""))).name == CURATED),
                         None)
    metrics, base = m.get("metrics") or {}, m.get("base_metrics") or {}
    split_rows = []
    for split in sorted(set(metrics) | set(base)):
        t, b = metrics.get(split) or {}, base.get(split) or {}
        split_rows.append({"split": split, "rows": t.get("rows") or b.get("rows"),
                           "accuracy": t.get("accuracy"), "macro_f1": t.get("macro_f1"),
                           "base_accuracy": b.get("accuracy"), "base_macro_f1": b.get("macro_f1")})
    verdict = m.get("verdict") or {}
    trunc = (m.get("truncation") or {})
    return {
        "status": "complete",
        "model": {"base_model": model.get("base_model"), "requested": _folder_name(model.get("requested")),
                  "method": m.get("method") or cfg_train.get("method"), "pooling": model.get("pooling"),
                  "parameters": model.get("parameters"), "trainable_parameters": model.get("trainable_parameters"),
                  "labels": len(m.get("labels") or []) or None},
        "device": m.get("device"), "precision": m.get("precision"),
        "data": {"curated_sha256": (curated_input or {}).get("sha256"), "counts": m.get("counts") or {},
                 "validation_held_out_from_train": m.get("validation_held_out_from_train")},
        "config": [{"key": k, "value": _folder_name(v) if not isinstance(v, list | dict) else
                    json.dumps(v, sort_keys=True)} for k, v in sorted(cfg_train.items())],
        "settings": _scalars({k: _folder_name(v) for k, v in model.items() if k not in ("path",)}),
        "curves": _curves(tdir / TRAINER_LOG),
        "timings": m.get("timings") or {},
        # No GPU: no peak memory to show (it read "not available", as if a measurement had failed).
        "throughput": {k: v for k, v in (m.get("throughput") or {}).items()
                       if not (k == "peak_gpu_memory_mb" and v is None)},
        "training": {k: ("no" if k == "resumed_from" and v is None else v)
                     for k, v in (m.get("training") or {}).items()},
        # Where the curves also went: the run each report_to tracker opened (names and ids only).
        "tracker_runs": {str(k): {str(a): b for a, b in v.items()} for k, v in (m.get("tracker_runs") or {}).items()
                         if isinstance(v, dict)},
        "truncation": {"strategy": trunc.get("strategy"), "max_length": trunc.get("max_length"),
                       "measured_max_length": m.get("measured_max_length"),
                       "splits": [{"split": s, **v} for s, v in sorted((trunc.get("splits") or {}).items())]},
        "splits": split_rows,
        "chose_checkpoint": _chose_checkpoint(m),
        "verdict": {"summary": verdict.get("summary"), "beats_frozen_baseline": verdict.get("beats_frozen_baseline"),
                    "outcome": _baseline_outcome(verdict),
                    "comparison": {k: verdict.get(k) for k in ("accuracy", "macro_f1") if k in verdict},
                    "rows": verdict.get("rows")},
    }


def _baseline_outcome(verdict: dict[str, Any]) -> str:
    """better | worse | unclear | not available, as the train stage's verdict states it."""
    beats = verdict.get("beats_frozen_baseline")
    if beats is True:
        return "better"
    if beats is None:
        return "not available"
    ci = (verdict.get("accuracy") or {}).get("ci")
    return "worse" if isinstance(ci, list) and len(ci) == 2 and _is_num(ci[1]) and ci[1] < 0 else "unclear"


MAX_CURVE_POINTS = 400


def _curves(path: Path) -> dict[str, Any]:
    """Training loss and validation metrics by step, from trainer_log.jsonl (at most 400 points each)."""
    if not path.is_file():
        return {"available": False}
    series: dict[str, list[list[Any]]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CuratuneError(f"cannot read the training log ({first_line(exc)}); re-run the train stage",
                            file=str(path)) from None
    for line in lines:
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
        if not isinstance(e, dict):
            continue
        step = e.get("step")
        if not isinstance(step, int | float) or e.get("event"):
            continue
        for key, name in (("loss", "training loss"), ("eval_loss", "validation loss"),
                          ("eval_accuracy", "validation accuracy"), ("eval_macro_f1", "validation macro-F1")):
            v = e.get(key)
            if isinstance(v, int | float) and math.isfinite(v):
                series.setdefault(name, []).append([int(step) if float(step).is_integer() else float(step),
                                                    float(v)])
    thinned = {k: _thin(v) for k, v in series.items()}
    return {"available": bool(thinned), "series": thinned}


def _thin(points: list[list[Any]]) -> list[list[Any]]:
    if len(points) <= MAX_CURVE_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_CURVE_POINTS)
    kept = points[::stride]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


# --------------------------------------------------------------------------------------------
# evaluation


VALIDATION_NOTE = ("There is no labelled test split: training chose its checkpoint on these validation rows (best "
                   "macro-F1), so the fine-tuned model's figures, its gain over the frozen baseline and the accuracy "
                   "gate may lean high.")


def _chose_checkpoint(train: dict[str, Any] | None) -> bool:
    """Whether training kept its best checkpoint on validation. Not so when the head is the linear probe
    (method frozen with lp_init): nothing was trained, and the probe's C is fixed, so validation chose nothing.
    A manifest that does not say counts as having chosen."""
    training = (train or {}).get("training")
    return not isinstance(training, dict) or "best_step" not in training or training["best_step"] is not None


def _evaluation(edir: Path, m: dict[str, Any], cfg: ReportConfig, chose_checkpoint: bool) -> dict[str, Any]:
    path = edir / METRICS
    metrics = _clean(read_json(path)) if path.is_file() else {}
    # The verdict is the sealed manifest's when metrics.json was changed after the stage wrote it: a gate
    # edited to pass there read "pass", with only a warning naming the file.
    edited = edited_files(edir)
    sealed = METRICS in edited and MANIFEST not in edited and isinstance(m.get("gates"), list)
    gates_raw = (m["gates"] if sealed else metrics.get("gates") or m.get("gates")) or []
    if isinstance(gates_raw, dict):
        gates_raw = [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in gates_raw.items()]
    gates = [_gate("evaluate", g, _eval_anchor(str(g.get("name", "")))) for g in gates_raw]
    base_probe = (metrics.get("forgetting") or {}).get("probe_accuracy_base")
    for g in gates:
        if g["name"] == "min_probe_retention" and _probe_saturated(base_probe):
            # A pass here says little: the finding explains it, and the verdict table must not read as proof.
            g["detail"] = (f"{g['detail']}; the base model's probe already scores {base_probe:.3f}, so this gate "
                           "can hardly fail").lstrip("; ")
    # Keys shown in the section's header or merged into another block rather than drawn alone.
    consumed = ({"gates", "labels", "split", "rows", "unseen_labels", "interval_method"}
                | ({"base"} if "comparison" in metrics else set()))
    keys = sorted((k for k in metrics if k not in consumed), key=_block_rank)
    blocks = []
    for k in keys:
        anchor = f"evaluation-{_slug(k)}"
        special = SPECIAL_BLOCKS.get(k)
        block = special(k, metrics, cfg, anchor) if special else None
        blocks.append(block if block is not None else to_block(k, metrics[k], cfg, anchor))
    blocks = [b for b in blocks if b is not None]
    # A gate whose measure is off ([evaluate] forgetting = false) links to a section that is not drawn.
    drawn = {"evaluation", *_anchors(blocks)}
    for g in gates:
        if g["anchor"] not in drawn:
            g["anchor"] = "evaluation-gates"
    labels, method = metrics.get("labels"), metrics.get("interval_method")
    return {"status": "complete", "metrics_file": path.name if path.is_file() else None,
            "split": metrics.get("split"), "rows": metrics.get("rows"),
            "split_note": VALIDATION_NOTE if metrics.get("split") == "validation" and chose_checkpoint else None,
            "labels": len(labels) if isinstance(labels, list) else None,
            "confidence": ((m.get("config") or {}).get("evaluate") or {}).get("confidence"),
            # Runs before it was recorded made percentile intervals: they read "bootstrap".
            "interval_method": method if isinstance(method, str) else None,
            "unseen_labels": metrics.get("unseen_labels") if isinstance(metrics.get("unseen_labels"), dict) else None,
            "gates": gates, "blocks": blocks,
            "tables": sorted(p.name for p in edir.glob("*.parquet"))}


def _anchors(blocks: list[dict[str, Any]]) -> list[str]:
    return [a for b in blocks for a in (b["anchor"], *_anchors(b.get("children") or []))]


def _comparison_block(key: str, metrics: dict[str, Any], cfg: ReportConfig, anchor: str) -> dict[str, Any] | None:
    """Fine-tuned against base on the same rows: both models' metrics, the paired difference, McNemar."""
    comp, head, base = metrics.get("comparison"), metrics.get("headline") or {}, metrics.get("base") or {}
    if not isinstance(comp, dict) or not isinstance(base, dict):
        return None
    rows = []
    for name in [k for k in base if k in head]:
        t, b = head.get(name), base.get(name)
        diff = comp.get(f"{name}_difference")
        rows.append({"metric": name.replace("_", " "), "tuned": cell(t), "base": cell(b),
                     "difference": cell(diff) if diff is not None else {"value": None}})
    mc = comp.get("mcnemar") if isinstance(comp.get("mcnemar"), dict) else {}
    return {"key": key, "title": "fine-tuned against base", "anchor": anchor, "kind": "comparison",
            "rows": rows,
            "mcnemar": {"tuned_only_correct": mc.get("a_only_correct", mc.get("tuned_only_correct")),
                        "base_only_correct": mc.get("b_only_correct", mc.get("base_only_correct")),
                        "statistic": mc.get("statistic"), "p_value": mc.get("p_value"), "method": mc.get("method")},
            "other": [{"name": str(k).replace("_", " "), **cell(v)} for k, v in comp.items()
                      if k != "mcnemar" and not any(k == f"{r}_difference" for r in base) and _is_cell(v)]}


def _fairness_block(key: str, metrics: dict[str, Any], cfg: ReportConfig, anchor: str) -> dict[str, Any] | None:
    fair = metrics.get(key)
    if not isinstance(fair, dict) or not all(isinstance(v, dict) and "by_group" in v for v in fair.values()):
        return None
    children = []
    anchors = unique_anchors(anchor, [str(col) for col in fair])
    for (col, rep), col_anchor in zip(fair.items(), anchors, strict=True):
        groups = []
        # Ranked groups first (the gap names two of them), then by size, as [report] max_groups promises.
        by_size = sorted(rep.get("by_group") or [], key=lambda g: (bool(g.get("too_small")), -(g.get("n") or 0)))
        for g in by_size[: cfg.max_groups]:
            ci, f1_ci = ci_of(g.get("accuracy_ci")), ci_of(g.get("macro_f1_ci"))
            groups.append({"group": str(g.get("group")), "n": g.get("n"), "too_small": bool(g.get("too_small")),
                           "accuracy": point_of(g.get("accuracy")), "low": ci[0] if ci else None,
                           "high": ci[1] if ci else None, "macro_f1": point_of(g.get("macro_f1")),
                           "macro_f1_low": f1_ci[0] if f1_ci else None, "macro_f1_high": f1_ci[1] if f1_ci else None})
        diff = rep.get("difference") or {}
        acc = diff.get("accuracy") if isinstance(diff.get("accuracy"), dict) else {}
        dci_raw = acc.get("difference_ci") if isinstance(acc.get("difference_ci"), dict) else None
        dci = ci_of(dci_raw) if dci_raw else None
        multi = rep.get("multiclass") or {}
        f1 = diff.get("macro_f1") if isinstance(diff.get("macro_f1"), dict) else None
        f1_dci = ci_of(f1.get("difference_ci")) if f1 else None
        recall = rep.get("recall_gap") if isinstance(rep.get("recall_gap"), dict) else None
        worst = []
        for m in ("demographic_parity", "equalized_odds"):
            w = multi.get(f"worst_{m}")
            if w:
                worst.append({"measure": m.replace("_", " "), "label": w.get("label"),
                              "value": w.get(f"{m}_difference"), "note": None})
            elif multi.get("per_class"):
                # Classes were compared, but none on enough rows: say so rather than drop the row.
                worst.append({"measure": m.replace("_", " "), "label": None, "value": None,
                              "note": f"no class has {multi['min_class_support']} rows in two ranked groups"
                              if _is_num(multi.get("min_class_support")) else
                              "no class has enough rows in two ranked groups"})
        children.append({
            "key": col, "title": col, "anchor": col_anchor, "kind": "groups",
            "groups": groups, "not_shown": max(0, len(rep.get("by_group") or []) - len(groups)),
            "too_small": list(rep.get("too_small") or []), "groups_ranked": diff.get("groups_ranked"),
            "difference": {"value": acc.get("difference"), "low": dci[0] if dci else None,
                           "high": dci[1] if dci else None, "confidence": dci_raw.get("confidence") if dci else None,
                           "ratio": acc.get("ratio"), "best": acc.get("best"), "worst": acc.get("worst"),
                           "p_value": acc.get("equal_accuracy_p_value"),
                           "permutations": acc.get("permutations")} if acc else None,
            "overall": {k: point_of(v) for k, v in (rep.get("overall") or {}).items()},
            "worst_classes": worst, "class_support": multi.get("min_class_support"),
            "macro_f1_difference": {**{k: f1.get(k) for k in ("difference", "ratio", "best", "worst")},
                                    "low": f1_dci[0] if f1_dci else None, "high": f1_dci[1] if f1_dci else None,
                                    "confidence": f1["difference_ci"].get("confidence") if f1_dci else None}
            if f1 else None,
            "recall_gap": {k: recall.get(k) for k in ("label", "difference", "best", "worst", "groups")}
            if recall else None,
            # Everything else evaluate wrote for this column (per-class disparities, ...) goes to the
            # JSON twin as written, so nothing is lost to the page's summary.
            "recorded": {k: v for k, v in rep.items() if k != "by_group"},
        })
    # Evaluate writes no column at all when the data names no group column.
    note = {} if children else {"note": "No group column ([data] group_cols): accuracy is not compared across groups."}
    return {"key": key, "title": key.replace("_", " "), "anchor": anchor, "kind": "section", "rows": [],
            "children": children, **note}


def _forgetting_block(key: str, metrics: dict[str, Any], cfg: ReportConfig, anchor: str) -> dict[str, Any] | None:
    f = metrics.get(key)
    if not isinstance(f, dict):
        return None
    layers = f.get("cka_by_layer")
    scalars = {k: v for k, v in f.items() if k != "cka_by_layer"}
    block = to_block(key, scalars, cfg, anchor) or {"key": key, "title": key, "anchor": anchor, "kind": "scalars",
                                                    "rows": []}
    layers = layers if isinstance(layers, list) else []
    points = [[i, float(v)] for i, v in enumerate(layers) if _is_num(v) and math.isfinite(v)]
    if points:
        # A layer whose CKA evaluate could not compute (null) is left out of the line, and said so.
        missing = [i for i, v in enumerate(layers) if not (_is_num(v) and math.isfinite(v))]
        block["line"] = {"title": "Representation similarity (linear CKA) between base and tuned, by layer"
                                  + (f" (not available for layer {', '.join(map(str, missing))})" if missing else ""),
                         "x_label": "layer (0 = embeddings)", "y_label": "linear CKA",
                         "series": [{"name": "linear CKA", "points": points}]}
    return block


SPECIAL_BLOCKS = {"comparison": _comparison_block, "fairness": _fairness_block, "forgetting": _forgetting_block}


# metrics.json is written with sorted keys; the report reads in this order: headline numbers first.
BLOCK_ORDER = ("headline", "overall", "summary", "accuracy", "comparison", "base", "mcnemar", "label_doubt",
               "per_class", "by_class", "confusion", "calibration", "forgetting", "fairness", "group", "counterfactual",
               "curation")


def _block_rank(key: str) -> tuple[int, str]:
    k = key.lower()
    return next((i for i, w in enumerate(BLOCK_ORDER) if k.startswith(w)), len(BLOCK_ORDER)), k


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"


def unique_anchors(prefix: str, names: list[str]) -> list[str]:
    """``prefix-slug`` per name, numbered where names slug alike (every non-ASCII name slugs to "x"),
    so no two elements of a page share an id."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = f"{prefix}-{_slug(name)}"
        anchor, n = base, 1
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        out.append(anchor)
    return out


def _eval_anchor(name: str) -> str:
    n = name.lower()
    for words, anchor in ((("retention", "forget", "cka", "drift"), "forgetting"),
                          (("counterfactual", "flip"), "counterfactual"),
                          (("group", "fairness", "parity", "odds"), "fairness"),
                          (("accuracy", "f1", "calibration", "ece"), "headline")):
        if any(w in n for w in words):
            return f"evaluation-{anchor}"
    return "evaluation"


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def ci_of(v: Any) -> tuple[float, float] | None:
    """The interval of a "scalar with CI" result, in any of the usual spellings."""
    if not isinstance(v, dict):
        return None
    ci = v.get("ci")
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_is_num(x) for x in ci):
        return float(ci[0]), float(ci[1])
    if isinstance(ci, dict):
        lo, hi = ci.get("low", ci.get("lower")), ci.get("high", ci.get("upper"))
        if _is_num(lo) and _is_num(hi):
            return float(lo), float(hi)
    for lo_k, hi_k in (("ci_low", "ci_high"), ("low", "high"), ("lower", "upper"), ("ci_lower", "ci_upper")):
        if _is_num(v.get(lo_k)) and _is_num(v.get(hi_k)):
            return float(v[lo_k]), float(v[hi_k])
    return None


POINT_KEYS = ("value", "point", "estimate", "mean")


def point_of(v: Any) -> float | None:
    if _is_num(v):
        return float(v)
    if isinstance(v, dict):
        for k in POINT_KEYS:
            if _is_num(v.get(k)):
                return float(v[k])
    return None


def is_ci_scalar(v: Any) -> bool:
    if not isinstance(v, dict):
        return False
    plain = {*POINT_KEYS, "n", "rows", "confidence", "resamples", "ci"}
    if point_of(v) is not None:
        return ci_of(v) is not None or set(v) <= plain
    # A point recorded as null (NaN where it was measured): still one number, "not available".
    return any(k in v for k in POINT_KEYS) and set(v) <= plain | {"low", "high"}


def _is_cell(v: Any) -> bool:
    return v is None or isinstance(v, str | bool) or _is_num(v) or is_ci_scalar(v) or (
        isinstance(v, list) and len(v) <= 12 and all(isinstance(x, str | bool) or _is_num(x) for x in v))


def cell(v: Any) -> dict[str, Any]:
    """One table cell: a value, or a value with its interval."""
    if is_ci_scalar(v):
        ci = ci_of(v)
        out = {"value": point_of(v), "low": ci[0] if ci else None, "high": ci[1] if ci else None}
        if ci and _is_num(v.get("confidence")):
            out["confidence"] = float(v["confidence"])
        return out
    if isinstance(v, list):
        return {"value": ", ".join(map(str, v))}
    return {"value": v}


MAX_TABLE_ROWS = 200


def to_block(key: str, value: Any, cfg: ReportConfig, anchor: str, depth: int = 0) -> dict[str, Any] | None:
    """Recognise the result shapes metrics.json uses (scalar with CI, by-group / by-class tables,
    confusion matrix, calibration bins) and turn each into a block the templates know how to draw;
    anything else is shown as nested key/value sections, never dropped."""
    title = key.replace("_", " ")
    base = {"key": key, "title": title, "anchor": anchor}
    if _is_cell(value):
        return {**base, "kind": "scalars", "rows": [{"name": title, **cell(value)}]}
    if value == {}:  # a table of no rows was a heading over a header row
        return {**base, "kind": "section", "rows": [], "children": [],
                "note": f"Nothing recorded ({key} is empty in metrics.json)."}
    if isinstance(value, dict):
        cm = _confusion(value)
        if cm:
            return {**base, "kind": "confusion", **cm, **_heatmap_subset(cm, cfg)}
        cal = _calibration(value)
        if cal:
            return {**base, "kind": "calibration", **cal}
        if all(_is_cell(v) for v in value.values()):
            return {**base, "kind": "scalars",
                    "rows": [{"name": str(k).replace("_", " "), **cell(v)} for k, v in value.items()]}
        inner = [v for v in value.values() if isinstance(v, dict)]
        if (value and len(inner) == len(value) and all(v and all(_is_cell(x) for x in v.values()) for v in inner)
                and len({frozenset(v) for v in inner}) == 1):
            return _table_block(base, [{"": k, **v} for k, v in value.items()], key_col="")
        if depth >= 3:
            return {**base, "kind": "json", "text": json.dumps(value, sort_keys=True, indent=1)[:4000]}
        # Plain values of a mixed table are one small table under the heading; nested ones get their own.
        rows = [{"name": str(k).replace("_", " "), **cell(v)} for k, v in value.items() if _is_cell(v)]
        nested = [(str(k), v) for k, v in value.items() if not _is_cell(v)]
        children = [to_block(k, v, cfg, a, depth + 1)
                    for (k, v), a in zip(nested, unique_anchors(anchor, [k for k, _ in nested]), strict=True)]
        return {**base, "kind": "section", "rows": rows, "children": [c for c in children if c is not None]}
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and all(_is_cell(x) for x in v.values()) for v in value):
            return _table_block(base, value, key_col=None)
        if value and depth < 3 and all(isinstance(v, dict) for v in value):
            # Records holding their own tables (a category and its terms): one section per record, named
            # by its first text field, so each nested table is drawn as a table, not printed as JSON. The
            # record stands in for the list, so it keeps the list's depth.
            names = [next((x for x in v.values() if isinstance(x, str)), str(i + 1)) for i, v in enumerate(value)]
            unique = len(set(names)) == len(names)  # else the index keeps the anchors apart
            children = [to_block(n, v, cfg, f"{anchor}-{_slug(n) if unique else i + 1}", depth)
                        for i, (n, v) in enumerate(zip(names, value, strict=True))]
            return {**base, "kind": "section", "rows": [], "children": [c for c in children if c is not None]}
        return {**base, "kind": "json", "text": json.dumps(value, sort_keys=True)[:4000]}
    return None


ID_COLUMNS = ("", "group", "groups", "class", "label", "name", "column", "metric")


# What a table's rows and columns mean, where their names cannot say it.
TABLE_NOTES = {
    "label_doubt": "Doubted: evaluated rows whose label the label-issues step flagged and no person settled in "
                   "review; trusted: the other evaluated rows. Predicted suggested label: rows where the model "
                   "predicted the label curation suggested instead of the given one.",
}


def _table_block(base: dict[str, Any], rows: list[dict[str, Any]], key_col: str | None) -> dict[str, Any]:
    columns: list[str] = []
    for r in rows:
        for c in r:
            if c not in columns:
                columns.append(c)
    # Identifying columns first (the row header), then text columns, then numbers, each as written.
    columns.sort(key=lambda c: (0 if c in ID_COLUMNS else 1 if all(isinstance(r.get(c), str) for r in rows) else 2,
                                ID_COLUMNS.index(c) if c in ID_COLUMNS else 0))
    shown = rows[:MAX_TABLE_ROWS]
    table_rows = [[cell(r.get(c)) for c in columns] for r in shown]
    block = {**base, "kind": "table", "columns": [c.replace("_", " ") for c in columns], "rows": table_rows,
             "not_shown": len(rows) - len(shown), "note": TABLE_NOTES.get(base.get("key", ""))}
    block["chart"] = _bar_spec(columns, shown)
    return block


def _bar_spec(columns: list[str], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A by-group or by-class table gets a bar chart of its first interval-bearing metric in [0, 1]."""
    if not rows or len(rows) > 60:
        return None
    label_col = next((c for c in columns if all(isinstance(r.get(c), str) for r in rows)), None)
    if label_col is None:
        return None
    for c in columns:
        vals = [r.get(c) for r in rows]
        if all(is_ci_scalar(v) for v in vals) and all(0 <= (point_of(v) or 0) <= 1 for v in vals):
            return {"label_col": label_col, "metric": c,
                    "bars": [{"label": str(r[label_col]), **cell(r[c])} for r in rows]}
    # No interval anywhere: a share or rate column is still worth a picture.
    for c in columns:
        vals = [r.get(c) for r in rows]
        if c.endswith(("rate", "share", "accuracy")) and all(_is_num(v) and 0 <= v <= 1 for v in vals):
            return {"label_col": label_col, "metric": c,
                    "bars": [{"label": str(r[label_col]), "value": r[c], "low": None, "high": None} for r in rows]}
    return None


def _confusion(v: dict[str, Any]) -> dict[str, Any] | None:
    labels = v.get("labels")
    matrix = v.get("matrix", v.get("counts"))
    if isinstance(labels, list) and isinstance(matrix, list) and len(matrix) == len(labels) and all(
            isinstance(r, list) and len(r) == len(labels) for r in matrix):
        return {"labels": [str(x) for x in labels], "matrix": matrix}
    return None


def _heatmap_subset(cm: dict[str, Any], cfg: ReportConfig) -> dict[str, Any]:
    labels, matrix = cm["labels"], cm["matrix"]
    n = len(labels)
    # Shades are shares of the whole true-label row, also when only some columns are drawn.
    row_totals = [sum(x for x in r if _is_num(x)) for r in matrix]
    if n <= cfg.max_heatmap_classes:
        return {"heatmap_labels": labels, "heatmap_matrix": matrix, "heatmap_row_totals": row_totals,
                "heatmap_note": ""}
    errors = [sum(matrix[i]) - matrix[i][i] + sum(matrix[j][i] for j in range(n)) - matrix[i][i] for i in range(n)]
    keep = sorted(sorted(range(n), key=lambda i: (-errors[i], i))[: cfg.max_heatmap_classes])
    return {"heatmap_labels": [labels[i] for i in keep],
            "heatmap_matrix": [[matrix[i][j] for j in keep] for i in keep],
            "heatmap_row_totals": [row_totals[i] for i in keep],
            "heatmap_note": f"the {len(keep)} of {n} classes with the most errors"}


def _calibration(v: dict[str, Any]) -> dict[str, Any] | None:
    bins = v.get("bins")
    if not isinstance(bins, list) or not bins or not all(isinstance(b, dict) for b in bins):
        return None
    conf_k = _first(list(bins[0]), "confidence", "mean_confidence", "avg_confidence")
    acc_k = _first(list(bins[0]), "accuracy", "mean_accuracy", "avg_accuracy")
    n_k = _first(list(bins[0]), "count", "n", "rows")
    if not conf_k or not acc_k:
        return None
    rows = [{"confidence": b.get(conf_k), "accuracy": b.get(acc_k), "count": b.get(n_k) if n_k else None,
             "low": b.get("low", b.get("bin_low")), "high": b.get("high", b.get("bin_high"))} for b in bins]
    others = {k: x for k, x in v.items() if k != "bins"}
    return {"bins": rows, "scalars": [{"name": str(k).replace("_", " "), **cell(x)}
                                      for k, x in others.items() if _is_cell(x)]}


# --------------------------------------------------------------------------------------------
# verdict


def _verdict(content: dict[str, Any]) -> dict[str, Any]:
    gates: list[dict[str, Any]] = []
    for section in ("curation", "evaluation"):
        gates.extend(content[section].get("gates") or [])
    findings = [{"warning": False, **f} for f in _findings(content)]
    statuses = [g["status"] for g in gates]
    missing = [s["title"] + (" (out of date)" if s["status"] == "out of date" else "")
               for s in content["run"]["stages"] if s["status"] != "complete"]
    # A configured gate that could not be measured is not a pass: the reviewer asked for that check.
    # Nor is one past its threshold that was not enforced: the run went on, the data still failed it.
    if {"fail", "not checked", NOT_ENFORCED} & set(statuses):
        overall = "fail"
    elif missing:
        overall = "incomplete"
    elif not gates:
        overall = "no gates"  # nothing was held to a threshold: that is not a pass
    else:
        overall = "pass"
    return {"overall": overall, "gates": gates, "findings": findings, "stages_not_run": missing,
            "notes": [f["text"] for f in findings if f.get("warning")],
            "gates_passed": statuses.count("pass"), "gates_failed": statuses.count("fail"),
            "gates_failed_not_enforced": statuses.count(NOT_ENFORCED),
            "gates_unchecked": statuses.count("not checked")}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _findings(content: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in content["run"]["edited"]:
        stage = path.split("/")[0]
        out.append({"stage": stage, "anchor": STAGE_TITLES[stage].lower(), "warning": True,
                    "text": f"warning: {path} was changed after the {stage} stage wrote it: what this report "
                            "shows from it may not be what the stage measured"})
    cur = content["curation"]
    if cur.get("status") == "complete":
        o = cur["outcome"]
        reasons = ", ".join(f"{r['reason'].replace('_', ' ')} {r['rows']:,}" for r in o["by_reason"]
                            if r["reason"] not in INFORMATIONAL_REASONS)
        out.append({"stage": "curate", "anchor": "curation-changes",
                    # Relabelled rows are kept rows (curated.parquet holds them): "K kept, D dropped,
                    # R relabelled" summed to more than the input.
                    "text": f"{o.get('input') or 0:,} input rows: {o.get('kept') or 0:,} kept "
                            f"({o.get('relabelled') or 0:,} of them relabelled), {o.get('dropped') or 0:,} dropped"
                            + (f"; rows per reason, kept rows included: {reasons}" if reasons else "")})
        pii = cur["pii"]
        if pii.get("ran"):
            leak = pii["leak_scan"]
            verdict = {True: "passed", False: "FAILED", None: "not available"}[leak.get("passed")]
            if leak.get("passed") is False and leak.get("enforced") is False:
                verdict = "FAILED (not enforced: [curate.anonymise] fail_on_leak = false)"
            elif leak.get("passed") and _is_num(leak.get("remaining")) and leak["remaining"] > 0:
                verdict = "passed within [curate.anonymise] max_leaks"
            out.append({"stage": "curate", "anchor": "curation-pii",
                        "text": f"{pii['entities_total']:,} personal-data entities replaced in "
                                f"{pii.get('rows_with_pii') or 0:,} rows; leak scan {verdict}"
                                + (f" ({leak['remaining']} remaining)" if leak.get("remaining") is not None else "")
                                # A pass read as "no personal data left": the scan runs the same detectors.
                                + "; the leak scan re-runs the same detectors, so it cannot count what they miss"})
            if pii.get("no_ner"):
                out.append({"stage": "curate", "anchor": "curation-pii", "warning": True,
                            "text": "warning: anonymisation ran without a NER model, so names were found by "
                                    "context cues and the name gazetteer only, and the leak scan could not look "
                                    "for others"})
            if cur.get("text_left_out_rows"):
                out.append({"stage": "curate", "anchor": "curation-pii", "warning": True,
                            "text": f"warning: the leak scan still found personal data in "
                                    f"{cur['text_left_out_rows']:,} rows; their text is left out of this report"})
        else:
            out.append({"stage": "curate", "anchor": "curation-pii",
                        "text": "anonymisation did not run: the data may hold personal data"})
        li = cur["label_issues"]
        if li.get("ran"):
            out.append({"stage": "curate", "anchor": "curation-label-issues",
                        "text": f"{li.get('flagged') or 0:,} rows flagged as probable label errors"})
        for g in cur["groups"]:
            rows = [r for r in g["rows"] if r["rows"] >= 30] or g["rows"]
            if len(rows) > 1:
                hi = max(rows, key=lambda r: (r["dropped_share"], r["group"]))
                lo = min(rows, key=lambda r: (r["dropped_share"], r["group"]))
                out.append({"stage": "curate", "anchor": g["anchor"],
                            "text": f"rows dropped by {g['column']}: from {_pct(lo['dropped_share'])} "
                                    f"({lo['group']}) to {_pct(hi['dropped_share'])} ({hi['group']})"})
    tr = content["training"]
    if tr.get("status") == "complete" and tr["verdict"].get("summary"):
        out.append({"stage": "train", "anchor": "training-verdict", "text": tr["verdict"]["summary"]})
    ev = content["evaluation"]
    if ev.get("status") == "complete":
        unseen = ev.get("unseen_labels") or {}
        if _is_num(unseen.get("rows")) and unseen["rows"] > 0:
            names = ", ".join(str(x) for x in (unseen.get("labels") or [])[:5])
            out.append({"stage": "evaluate", "anchor": "evaluation", "warning": True,
                        "text": f"warning: {unseen['rows']:,} {ev.get('split') or 'evaluation'} rows have a label the "
                                f"model was never trained on ({names}); they are scored as errors"})
        for b in ev["blocks"]:
            out.extend({"stage": "evaluate", "anchor": b["anchor"], "text": t} for t in _block_findings(b, ev))
    return out


# A forgetting probe the base model scores this high on has no room to show a loss.
PROBE_CEILING = 0.99


def _probe_saturated(base_probe_accuracy: Any) -> bool:
    return _is_num(base_probe_accuracy) and base_probe_accuracy >= PROBE_CEILING


def _interval(v: dict[str, Any], *, sign: bool = False) -> str:
    """" (95% interval a to b)", three decimals; the level where the result recorded one."""
    if v.get("low") is None or v.get("high") is None:
        return ""
    level = f"{round(100 * v['confidence']):d}% " if _is_num(v.get("confidence")) else ""
    lo, hi = (signed(x, 3) if sign else f"{x:.3f}" for x in (v["low"], v["high"]))
    return f" ({level}interval {lo} to {hi})"


def _block_findings(b: dict[str, Any], ev: dict[str, Any]) -> list[str]:
    """One line per headline result of an evaluation block, as a reader would say it."""
    where = f"{ev['split']} " if ev.get("split") else ""
    if b["kind"] == "scalars" and _block_rank(b["key"])[0] < 3:
        # Micro-F1 of one label a row is accuracy again (evaluate writes it for completeness): listed, it
        # took the place of weighted F1 among the four.
        rows = [r for r in b["rows"] if r["name"] != "micro f1"]
        return [f"{where}{r['name']} {r['value']:.3f}{_interval(r)}" for r in rows[:4]
                if _is_num(r.get("value")) and r.get("low") is not None]
    if b["kind"] == "comparison":
        lines = [f"fine-tuned minus base {r['metric']}: {signed(r['difference']['value'], 3)}"
                 f"{_interval(r['difference'], sign=True)}" for r in b["rows"] if _is_num(r["difference"].get("value"))]
        mc = b["mcnemar"]
        if _is_num(mc.get("p_value")):
            lines.append(f"McNemar's test: p = {mc['p_value']:.3g} ({mc.get('method') or 'method not recorded'}; "
                         f"only fine-tuned right {mc.get('tuned_only_correct')}, only base right "
                         f"{mc.get('base_only_correct')})")
        return lines
    if b["kind"] == "section" and b["key"] == "fairness":
        ranked = [c for c in b["children"] if c.get("difference") and _is_num(c["difference"].get("value"))]
        if not b["children"]:
            return ["fairness not measured: the data has no group column ([data] group_cols)"]
        if not ranked:
            return ["no group is large enough to compare accuracy across groups (see [evaluate] min_group_size)"]
        # The first column on a tie, in metrics.json's (sorted) order, as the group-gap gate picks it.
        worst = max(ranked, key=lambda c: c["difference"]["value"])
        d = worst["difference"]
        if not d["value"]:
            return [f"no accuracy gap between groups: in every column the ranked groups score the same{_interval(d)}"]
        test = (f"; permutation test of equal accuracy across its {worst.get('groups_ranked')} ranked groups: "
                f"p = {d['p_value']:.3g}" if _is_num(d.get("p_value")) else "")
        return [f"largest accuracy gap between groups: {d['value']:.3f}{_interval(d)} by {worst['title']} "
                f"({d.get('best')} best, {d.get('worst')} worst{test})"]
    if b["key"] == "forgetting" and b["kind"] == "scalars":
        vals = {r["name"]: r["value"] for r in b["rows"]}
        parts = [f"{k} {vals[k]:.3f}" for k in ("probe retention", "similarity retention") if _is_num(vals.get(k))]
        base = vals.get("probe accuracy base")
        if parts and _probe_saturated(base) and _is_num(vals.get("probe retention")):
            # A probe the base model already aces cannot fall much before the tuned one does too.
            parts[0] += (f" (the base model's probe already scores {base:.3f} on the reference rows, so this "
                         "probe can hardly show forgetting)")
        return [f"forgetting: {', '.join(parts)}"] if parts else []
    if b["key"] == "label_doubt" and b["kind"] == "table" and {"rows", "accuracy"} <= set(b["columns"]):
        n_at, acc_at = b["columns"].index("rows"), b["columns"].index("accuracy")
        part = {r[0]["value"]: (r[n_at]["value"], r[acc_at]) for r in b["rows"]}
        if "doubted" in part and "trusted" in part and part["doubted"][0]:
            (n_d, acc_d), (n_t, acc_t) = part["doubted"], part["trusted"]
            line = (f"{where}accuracy on the {n_d} rows whose label curation doubts (no person has settled them): "
                    f"{acc_d['value']:.3f}{_interval(acc_d)}")
            if "predicted suggested label" in b["columns"]:
                # Errors there may be the label's or the model's: how often the model sides with curation says which.
                row = next(r for r in b["rows"] if r[0]["value"] == "doubted")
                n_s = row[b["columns"].index("predicted suggested label")]["value"]
                line += f", the model choosing curation's suggested label on {n_s} of them" if _is_num(n_s) else ""
            if _is_num(acc_t.get("value")):
                line += f"; on the other {n_t}: {acc_t['value']:.3f}{_interval(acc_t)}"
            return [line]
    if b["key"] == "counterfactual" and b["kind"] == "section":
        groups = next((c for c in b["children"] if c["kind"] == "table"), None)
        scal = {r["name"]: r["value"] for r in b["rows"]}
        if _is_num(scal.get("max flip rate")):
            top = ""
            if groups and "flip rate" in groups["columns"]:
                i = groups["columns"].index("flip rate")
                cols = groups["columns"]
                n_at = (cols.index("flips"), cols.index("rows")) if {"flips", "rows"} <= set(cols) else None
                rates = [(r[0]["value"], r[i]["value"],
                          f": {r[n_at[0]]['value']} of {r[n_at[1]]['value']} rows" if n_at else "")
                         for r in groups["rows"] if _is_num(r[i]["value"])]
                most = max((v for _, v, _ in rates), default=0)
                # Every group at the largest rate (they tie often on small sets); none when nothing flipped.
                if most > 0:
                    top = f" ({', '.join(f'{g} names{n}' for g, v, n in rates if v == most)})"
            return [f"largest prediction flip rate when names are swapped: {100 * scal['max flip rate']:.1f}%{top}"]
    return []

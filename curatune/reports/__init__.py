"""Self-contained HTML audit reports with a JSON twin, rendered from a run directory's files.

``render_reports(run_dir)`` writes ``RUN/report/``: ``audit.html`` (a verdict table of every gate,
then curation, training and evaluation), one page per stage, and ``audit.json`` (the same content
for machines). Rendering reads files only and never recomputes; a stage that did not run is shown
as "not run". The same run directory renders to the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curatune.config import ReportConfig
from curatune.reports.collect import STAGE_TITLES, collect, edited_run_files
from curatune.reports.render import PAGES, render_pages
from curatune.rundir import AUDIT_JSON, CURATED, EXCLUDED, LEDGER, MANIFEST, METRICS, TRAINER_LOG

REPORT_FILES = (*PAGES, AUDIT_JSON)
# What a report reads: a change in any of these (and only these) makes a report out of date.
INPUT_FILES = tuple(f"{stage}/{name}" for stage, names in (("curate", (MANIFEST, LEDGER, CURATED, EXCLUDED)),
                                                           ("train", (MANIFEST, TRAINER_LOG)),
                                                           ("evaluate", (MANIFEST, METRICS))) for name in names)

__all__ = ["REPORT_FILES", "collect", "render_reports", "report_inputs"]


def report_inputs(run_dir: str | Path) -> list[Path]:
    """The files of ``run_dir`` a report is rendered from (those that exist)."""
    run = Path(run_dir)
    found = [run / p for p in INPUT_FILES if (run / p).is_file()]
    return found + sorted((run / "evaluate").glob("*.parquet")) if (run / "evaluate").is_dir() else found


def render_reports(run_dir: str | Path, out_dir: str | Path | None = None, *,
                   config: ReportConfig | None = None) -> dict[str, Any]:
    """Render every report page of ``run_dir`` into ``out_dir`` (default ``run_dir/report``).

    ``config``: the [report] section; by default the one recorded in the run's latest manifest.
    Returns the paths written, keyed ``audit_html``, ``audit_json``, ``curation_html`` ...
    """
    from curatune.errors import CuratuneError
    from curatune.rundir import MANIFEST, Manifest, output_dir, read_manifest, read_own_manifest, write_text

    run = Path(run_dir)
    if not run.is_dir():
        raise CuratuneError("run directory not found", file=str(run))
    own = read_manifest(run)
    if own is not None and own.get("stage") in STAGE_TITLES:
        raise CuratuneError(f"this is the {own['stage']} stage's folder, not a run directory: pass the folder "
                            "that holds curate/, train/ and evaluate/", file=str(run))
    if not any(read_manifest(run / s) is not None for s in STAGE_TITLES):
        # A report of nothing would write report/ into an unrelated folder and read as an audit.
        raise CuratuneError("not a run directory: no stage has written a manifest.json in curate/, train/ or "
                            "evaluate/ here", file=str(run))
    cfg = config or _recorded_config(run)
    cfg.check()  # a config built in code never passed through the loader
    target = Path(out_dir) if out_dir is not None else run / "report"
    # The report replaces the manifest of its folder: never a stage's (its counts, gates and input
    # hashes would be lost, and the next report's verdict read from what is left).
    theirs = read_own_manifest(target, "report") if target.is_dir() else None
    if (theirs and theirs.get("stage") != "report") or any(
            target.resolve() == (run / s).resolve() for s in STAGE_TITLES):
        raise CuratuneError("the report's folder must not be a stage's folder: choose another --out",
                            file=str(target))
    if target.resolve() == run.resolve():  # its manifest would sit beside the stage folders, as if a stage's
        raise CuratuneError("the report's folder must not be the run directory itself: choose another --out "
                            "(RUN/report by default)", file=str(target))
    out = output_dir(target)
    manifest = Manifest(stage="report", config={"report": vars(cfg).copy()})
    for p in report_inputs(run):
        manifest.add_input(p)
    try:
        content = collect(run, cfg)
        pages = render_pages(content)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # A value of a type no stage writes. Where a file was edited after its stage wrote it, that
        # file is the cause and is named; otherwise the files are the stages' own and the fault is
        # ours, so it is raised as it is.
        edited = edited_run_files(run)
        if not edited:
            raise
        raise CuratuneError(f"the report cannot read {', '.join(edited)}: changed after its stage wrote it "
                            f"({type(exc).__name__} on a value of an unexpected type); re-run that stage, or "
                            "put the file back as it was", file=str(run)) from exc
    # Pages are about to be replaced one by one: a run stopped midway is not the earlier complete one.
    (out / MANIFEST).unlink(missing_ok=True)
    paths = {}
    for name, text in pages.items():
        paths[name.replace(".", "_")] = str(write_text(text, out / name))
    manifest.counts = {"pages": len(pages), "bytes": {n: len(t.encode("utf-8")) for n, t in pages.items()},
                       "verdict": content["verdict"]["overall"]}
    manifest.write(out)
    return paths


def _recorded_config(run: Path) -> ReportConfig:
    """The [report] section the run was configured with (latest stage first), else the defaults."""
    from curatune.config import recorded_config
    from curatune.rundir import read_manifest

    found = recorded_config(run, "report")
    cfg = found[0].report if found is not None else ReportConfig()
    # Text without anonymisation is shown only when every stage that ran asked for it: the latest
    # stage's record wins otherwise, and an evaluation left from data without personal data showed the
    # raw text of data curated since with the setting off. Each record is read as written: one this
    # version no longer parses as a config (recorded_config skips it) cannot vouch for the setting.
    if cfg.show_text_without_anonymisation:
        for stage in STAGE_TITLES:
            record = read_manifest(run / stage)
            if record is None:
                continue  # the stage did not run
            recorded = record.get("config")
            report = recorded.get("report") if isinstance(recorded, dict) else None
            if not isinstance(report, dict) or report.get("show_text_without_anonymisation") is not True:
                cfg.show_text_without_anonymisation = False
    return cfg

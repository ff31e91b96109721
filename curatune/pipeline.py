"""``curatune run``: curate -> (Label Studio) -> train -> evaluate -> report, and ``curatune demo``.

A stage is skipped when its manifest says it completed and the fingerprint of its inputs
(file contents) and its config section is the one recorded for it in ``RUN/pipeline.json``;
``--force STAGE`` redoes that stage and every stage after it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curatune.config import Config, load_config
from curatune.errors import CuratuneError
from curatune.rundir import inputs_fingerprint, read_json, read_manifest, stage_dir, write_json

ORDER = ("curate", "labelstudio", "train", "evaluate", "report")
# Library entry points of the later stages, looked up when the pipeline runs.
ENTRY_POINTS = {"train": ("curatune.train", "train_model"), "evaluate": ("curatune.evaluate", "evaluate_run"),
                "report": ("curatune.reports", "render_reports")}
PIPELINE_STATE = "pipeline.json"


def _entry(stage: str) -> Callable[..., Any] | None:
    module, name = ENTRY_POINTS[stage]
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def _fingerprint(stage: str, cfg: Config, run: Path) -> str:
    resolved = cfg.resolved()
    if stage == "curate":
        reviews = run / "curate" / "reviews.parquet"
        paths = [*cfg.data.inputs, *([reviews] if reviews.is_file() else [])]
        if cfg.data.truth:
            paths.append(cfg.data.truth)
        return inputs_fingerprint(paths, {"data": resolved["data"], "curate": resolved["curate"]})
    upstream = {"train": ["curate"], "evaluate": ["curate", "train"], "report": ["curate", "train", "evaluate"]}
    paths = [run / s / "manifest.json" for s in upstream[stage] if (run / s / "manifest.json").is_file()]
    section = {"train": ["train"], "evaluate": ["evaluate", "data"], "report": ["report"]}[stage]
    return inputs_fingerprint(paths, {k: resolved[k] for k in section})


def run_pipeline(config: Config, *, force: list[str] | None = None, out_dir: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every built stage in order; return what ran, what was up to date, and the audit path."""
    force = list(force or [])
    unknown = [f for f in force if f not in ORDER]
    if unknown:
        raise CuratuneError(f"unknown stage '{unknown[0]}' for --force (stages: {', '.join(ORDER)})")
    run = Path(out_dir or config.run.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    config.run.out_dir = str(run)
    say = progress or (lambda _msg: None)
    state_path = run / PIPELINE_STATE
    state: dict[str, Any] = read_json(state_path) if state_path.is_file() else {"stages": {}}
    first_forced = min((ORDER.index(f) for f in force), default=len(ORDER))
    ran, skipped, not_built = [], [], []
    for idx, stage in enumerate(ORDER):
        if stage == "labelstudio":
            if config.labelstudio.enabled:
                _labelstudio_round(config, run, say)
                ran.append(stage)
            continue
        fn = None if stage == "curate" else _entry(stage)
        if stage != "curate" and fn is None:
            not_built.append(stage)
            say(f"{stage}: not built yet in this version, skipped")
            continue
        fp = _fingerprint(stage, config, run)
        done = read_manifest(stage_dir(run, stage)) is not None
        if done and idx < first_forced and state["stages"].get(stage) == fp:
            skipped.append(stage)
            say(f"{stage}: up to date, skipped")
            continue
        say(f"{stage}: running")
        _run_stage(stage, fn, config, run, say)
        state["stages"][stage] = _fingerprint(stage, config, run) if stage == "curate" else fp
        write_json(state, state_path)
        ran.append(stage)
    audit = run / "report" / "audit.html"
    return {"out_dir": str(run), "ran": ran, "skipped": skipped, "not_built": not_built,
            "audit_html": str(audit) if audit.is_file() else None}


def _run_stage(stage: str, fn: Callable[..., Any] | None, cfg: Config, run: Path,
               say: Callable[[str], None]) -> None:
    if stage == "curate":
        from curatune.curate.pipeline import run_curation

        run_curation(cfg, run / "curate", progress=say)
    elif stage == "train":
        fn(cfg, run / "curate", run / "train", progress=say)
    elif stage == "evaluate":
        fn(cfg, run / "curate", run / "train", run / "evaluate", progress=say)
    elif stage == "report":
        fn(run, None)


def _labelstudio_round(cfg: Config, run: Path, say: Callable[[str], None]) -> None:
    from curatune.curate.labelstudio import pull, push

    push(run / "curate", cfg.labelstudio, progress=say)
    pull(run / "curate", cfg.labelstudio, progress=say)


def run_demo(out: Path, *, rows: int | None = None, seed: int = 7,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate the demo data beside the run directory (it holds raw personal data, so never
    inside it) and run the pipeline on it with the demo config."""
    from curatune.demo import generate_demo

    out = Path(out)
    data_dir = out.parent / f"{out.name}-data"
    say = progress or (lambda _msg: None)
    say(f"generate: demo transcripts -> {data_dir}")
    paths = generate_demo(data_dir, n_conversations=rows, seed=seed)
    cfg = load_config(paths["config"])
    return run_pipeline(cfg, out_dir=out, progress=progress)

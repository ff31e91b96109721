"""``curatune run``: curate -> (Label Studio) -> train -> evaluate -> report, and ``curatune demo``.

A stage is skipped when its manifest says it completed and records the fingerprint the stage
would have now: one hash over the contents of the files it reads and its config section
(``rundir.inputs_fingerprint``). The pipeline writes that fingerprint into the manifest after the
stage succeeds, so a stage run by hand (or one that failed a gate) is redone by the next ``run``.
Hashes cover data files, not other manifests, whose timestamps change on every write.
``--force STAGE`` redoes that stage and every stage after it.

A failed curation gate (e.g. the leak scan) stops the run before training, because the data
must not be used; the report is still written, so the failure can be read. A failed evaluation
gate fails the run after the report is written when ``[run] fail_on_gate`` is true.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curatune.config import Config, load_config, refuse_unmeasurable_gates
from curatune.dataset import read_reference, relabelled_digest, source_names
from curatune.errors import CuratuneError, GateFailed
from curatune.rundir import (
    AUDIT_HTML,
    AUDIT_JSON,
    CURATED,
    LEDGER,
    MANIFEST,
    OUTPUTS,
    REVIEWS,
    edited_files,
    inputs_fingerprint,
    installed_version,
    output_dir,
    package_versions,
    read_json,
    read_manifest,
    read_own_manifest,
    stage_dir,
    unvouched_settings,
    write_manifest,
)

ORDER = ("curate", "labelstudio", "train", "evaluate", "report")
# Each stage's config sections (or single keys, dotted): a change in any of them redoes the stage.
# Curation applies pulled reviews by the conflict rule; the server's address and project do not matter.
# Evaluation takes the data through the curate outputs; of [data] it reads only the reference set.
SECTIONS = {"curate": ("data", "curate", "labelstudio.conflict_rule"), "train": ("train",),
            "evaluate": ("data.reference", "data.reference_text_col", "data.reference_label_col", "evaluate"),
            "report": ("report",)}
# Keys of those sections a stage does not read: the reference set is evaluation's alone.
NOT_READ = {"curate": ("data.reference", "data.reference_text_col", "data.reference_label_col")}
FINGERPRINT_KEY = "pipeline_fingerprint"
Progress = Callable[[str], None]


def stage_inputs(stage: str, cfg: Config, run: Path) -> list[Path]:
    """The files ``stage`` reads (those that exist)."""
    cur, tr = run / "curate", run / "train"
    if stage == "curate":
        paths = [Path(p) for p in cfg.data.inputs]
        paths += [Path(p) for p in (cfg.data.truth, cfg.curate.label_issues.pred_probs) if p]
        paths.append(cur / REVIEWS)
        spacy_model = cfg.curate.anonymise.spacy_model  # "" (no NER) is no folder, though Path("") is "."
        if "anonymise" in cfg.curate.steps and spacy_model and Path(spacy_model).is_dir():
            paths.append(Path(spacy_model))
    elif stage == "train":
        paths = [cur / CURATED, *_model_dir(cfg)]
    elif stage == "evaluate":
        paths = [cur / CURATED, cur / LEDGER, *(tr / name for name in OUTPUTS["train"])]
        if cfg.data.reference:
            paths.append(Path(cfg.data.reference))
    else:
        from curatune.reports import report_inputs

        paths = report_inputs(run)
    return [p for p in paths if p.exists()]


def _model_dir(cfg: Config) -> list[Path]:
    """The base model's folder: replaced in place with other weights, it must retrain. Unresolvable
    here means training will stop with its own message."""
    from curatune.embeddings import resolve_model_path

    try:
        return [Path(resolve_model_path(cfg.train.model))]
    except CuratuneError:
        return []


# Config keys that hold paths. A path counts by name: the file's contents are hashed, so a project
# moved or copied elsewhere with its data is up to date where it lands.
PATH_KEYS = ("data.inputs", "data.truth", "data.reference", "curate.label_issues.pred_probs",
             "curate.anonymise.spacy_model", "train.model")


def _holder(resolved: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The dict holding a dotted key ("data.inputs") of a resolved config, and the key's last part."""
    *parents, last = key.split(".")
    return functools.reduce(lambda node, part: node[part], parents, resolved), last


def _portable(resolved: dict[str, Any]) -> None:
    for key in PATH_KEYS:
        node, last = _holder(resolved, key)
        value = node[last]
        values = value if isinstance(value, list) else [value]
        # Inputs by the names their rows are keyed by: with the folders that tell namesakes apart
        # ("2024/train:0"), so renaming such a folder redoes curation rather than keep the old ids.
        shown = dict(zip(values, source_names(values), strict=True)) if key == "data.inputs" else {}
        names = [shown.get(v, Path(v).name) if Path(v).is_absolute() else v for v in values]
        node[last] = names if isinstance(value, list) else names[0]


def fingerprint(stage: str, cfg: Config, run: Path) -> str:
    resolved = cfg.resolved()
    _portable(resolved)
    for key in NOT_READ.get(stage, ()):
        node, last = _holder(resolved, key)
        node.pop(last)
    section = {}
    for key in SECTIONS[stage]:
        node, last = _holder(resolved, key)
        section[key] = node[last]
    secret = cfg.curate.anonymise.secret() if stage == "curate" and "anonymise" in cfg.curate.steps else b""
    if secret:
        # Another secret writes other surrogates; a digest, never the secret itself.
        section["_secret"] = hashlib.sha256(b"curatune-fingerprint:" + secret).hexdigest()
    # What made the outputs counts as well as what they were made from: after an upgrade of curatune, a
    # library or the spaCy model package (a package name is no folder to hash), the stage is redone
    # instead of its old outputs being called up to date.
    section["_versions"] = package_versions()
    spacy_model = cfg.curate.anonymise.spacy_model
    if stage == "curate" and "anonymise" in cfg.curate.steps and spacy_model and not Path(spacy_model).is_dir():
        section["_versions"]["spacy_model"] = installed_version(spacy_model)
    if stage == "train":
        # The ledger says which rows a held-out validation may draw (not those a model relabelled): a
        # person's confirmation changes that with curated.parquet unchanged.
        section["_model_relabelled"] = relabelled_digest(run / "curate")
    paths = stage_inputs(stage, cfg, run)
    # Names (relative to the run where inside it), so adding or removing a file changes the hash.
    section["_files"] = [str(p.relative_to(run)) if p.is_relative_to(run) else p.name for p in paths]
    return inputs_fingerprint(paths, section)


def check_setup(cfg: Config) -> None:
    """What the stages check when they start, done before any work (``curatune validate``): the
    anonymiser's entity types, operators and secret, the base model, trackers and device."""
    from curatune.curate.base import get_step

    for step in cfg.curate.steps:
        get_step(step)  # a misspelt step would otherwise be refused only when curation starts
    if "anonymise" in cfg.curate.steps:
        _check_anonymiser(cfg)
    _check_labelstudio_setup(cfg)
    refuse_unmeasurable_gates(cfg)
    _check_train_setup(cfg)


def _check_anonymiser(cfg: Config) -> None:
    """Builds the detector (and drops it: the step builds its own), which refuses what it cannot use;
    and, with a Label Studio round, refuses settings whose text the push would refuse after curation."""
    from curatune.curate.anonymise import Anonymiser

    detector = Anonymiser(cfg.curate.anonymise).detector
    if cfg.labelstudio.enabled and cfg.labelstudio.require_anonymised and (why := unvouched_settings(
            {"types_not_looked_for": detector.defaults_left_out,
             "score_threshold": cfg.curate.anonymise.score_threshold}, ner=detector.has_ner)):
        raise CuratuneError(f"[labelstudio] enabled = true sends only text a leak scan vouches for, and {why}: use "
                            "the default settings, or set [labelstudio] require_anonymised = false for data without "
                            "personal data")


def _check_labelstudio_setup(cfg: Config) -> None:
    if cfg.labelstudio.enabled:
        from curatune.curate.labelstudio import check_round_setup

        check_round_setup(cfg.labelstudio, cfg.curate.steps)


def missing_data_files(cfg: Config) -> list[str]:
    """'[data] key: path' for each data file the config names that is not there (yet: the demo's
    configs name data that `curatune generate` writes)."""
    named = [("inputs", p) for p in cfg.data.inputs] + [("reference", cfg.data.reference), ("truth", cfg.data.truth)]
    return [f"[data] {key}: {p}" for key, p in named if p and not Path(p).is_file()]


def _check_train_setup(cfg: Config) -> None:
    from curatune.train.run import check_train_setup

    check_train_setup(cfg.train)


def _train_is_current(cfg: Config, run: Path, first_forced: int) -> bool:
    """Whether this run will skip training: curate and train up to date, neither forced, and no Label
    Studio round that could change the curated rows. Then the training setup (the device, trackers)
    need not be on this machine: a project trained on a GPU, copied to a laptop to re-render its
    report, was refused for the GPU it would not use."""
    if cfg.labelstudio.enabled or first_forced <= ORDER.index("train"):
        return False
    return all(_up_to_date(s, stage_dir(run, s), fingerprint(s, cfg, run)) for s in ("curate", "train"))


def _record(stage_out: Path, fp: str) -> None:
    manifest = read_json(stage_out / MANIFEST)
    manifest[FINGERPRINT_KEY] = fp
    write_manifest(manifest, stage_out)


def _up_to_date(stage: str, stage_out: Path, fp: str) -> bool:
    m = read_own_manifest(stage_out, stage, surely_own=True)
    # An output gone (deleted to save space, a copy that left it out) or edited after the stage wrote
    # it is not the stage's output: the stage runs again.
    return m is not None and m.get("status") == "complete" and m.get(FINGERPRINT_KEY) == fp and all(
        (stage_out / name).exists() for name in OUTPUTS[stage]) and not edited_files(stage_out)


def run_pipeline(config: Config, *, force: list[str] | None = None, out_dir: Path | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Run every built stage in order; return what ran, what was up to date, and the audit path."""
    force = list(force or [])
    unknown = [f for f in force if f not in ORDER]
    if unknown:
        raise CuratuneError(f"unknown stage '{unknown[0]}' for --force (stages: {', '.join(ORDER)})")
    if not config.data.inputs:
        raise CuratuneError("no input files: set [data] inputs in the config")
    if "anonymise" in config.curate.steps:
        config.curate.anonymise.secret()  # its digest is in curate's fingerprint: an unset one is no change
    _check_labelstudio_setup(config)  # the round comes after curation, which can take long
    refuse_unmeasurable_gates(config)
    if config.evaluate.forgetting and config.data.reference:
        read_reference(config.data)  # read again at evaluation, after curation and training
    run = Path(out_dir or config.run.out_dir)
    output_dir(run)
    config.run.out_dir = str(run)
    say = progress or (lambda _msg: None)
    first_forced = min((ORDER.index(f) for f in force), default=len(ORDER))
    if "anonymise" in config.curate.steps and not (
            first_forced > 0 and _up_to_date("curate", stage_dir(run, "curate"), fingerprint("curate", config, run))):
        _check_anonymiser(config)  # its entity types, operators, id_patterns and spaCy model: else found after dedup
    if not _train_is_current(config, run, first_forced):
        _check_train_setup(config)  # a missing model would otherwise surface after curation
    ran: list[str] = []
    skipped: list[str] = []
    failure: GateFailed | None = None
    total = len(ORDER)
    for idx, stage in enumerate(ORDER):
        tag = f"[{idx + 1}/{total}] {stage}"
        if stage == "labelstudio":
            if not config.labelstudio.enabled:
                say(f"{tag}: off ([labelstudio] enabled = false)")
            elif failure is None:
                say(f"{tag}: push rows for review, pull decisions")
                _labelstudio_round(config, run, say)
                # The curate outputs now reflect the pulled reviews (applied, or nothing new to apply).
                _record(run / "curate", fingerprint("curate", config, run))
                ran.append(stage)
            continue
        out = stage_dir(run, stage)
        if failure is not None and stage != "report":
            # Outputs made from the data before this curation must not be reported as this run's.
            _invalidate_if_stale(stage, config, run, say, tag)
            say(f"{tag}: not run (an earlier gate failed)")
            continue
        fp = fingerprint(stage, config, run)
        if idx < first_forced and _up_to_date(stage, out, fp):
            skipped.append(stage)
            say(f"{tag}: up to date, skipped")
            continue
        say(f"{tag}: running")
        if read_own_manifest(out, stage, surely_own=True) == {}:
            # Damaged, in the run's own folder for the stage: recorded as that stage's, incomplete, since
            # the stage cannot tell whose it is once the outputs beside it are gone too.
            write_manifest({"stage": stage, "status": "incomplete"}, out)
        try:
            _run_stage(stage, config, run, say)
        except GateFailed as exc:
            if stage != "curate":
                raise
            failure = exc  # the curate outputs exist; the report shows the failed gate, nothing trains on them
            say(f"{tag}: {exc}")
            ran.append(stage)
            continue
        # The fingerprint taken before the stage read its inputs: a file edited meanwhile is redone.
        _record(out, fp)
        ran.append(stage)
    audit = run / "report" / AUDIT_HTML
    result = {"out_dir": str(run), "ran": ran, "skipped": skipped,
              "audit_html": str(audit) if audit.is_file() else None, "verdict": _verdict(run, config)}
    if failure is not None:
        raise GateFailed(f"{failure} — audit: {audit}")
    _check_evaluation_gates(config, run, audit)
    return result


def _invalidate_if_stale(stage: str, cfg: Config, run: Path, say: Progress, tag: str) -> None:
    """Outputs of a stage that is not run (an earlier gate failed) that no longer match their
    inputs are marked incomplete, so the report shows the stage as not run instead of describing
    another model."""
    out = stage_dir(run, stage)
    m = read_own_manifest(out, stage, surely_own=True)
    if m is not None and m.get(FINGERPRINT_KEY) != fingerprint(stage, cfg, run):
        (out / MANIFEST).unlink()
        say(f"{tag}: earlier outputs are out of date; marked incomplete")


def _run_stage(stage: str, cfg: Config, run: Path, say: Progress) -> None:
    # Imported when the stage runs: torch and transformers load only for the stages that need them.
    if stage == "curate":
        from curatune.curate.pipeline import run_curation

        run_curation(cfg, run / "curate", progress=say)
    elif stage == "train":
        from curatune.train import train_model
        from curatune.train.run import can_resume

        train_model(cfg, run / "curate", run / "train", progress=say,
                    resume=can_resume(cfg, run / "curate", run / "train"))
    elif stage == "evaluate":
        from curatune.evaluate.run import evaluate_run

        evaluate_run(cfg, run / "curate", run / "train", run / "evaluate", fail_on_gate=False, progress=say)
    elif stage == "report":
        from curatune.reports import render_reports

        paths = render_reports(run, None, config=cfg.report)
        say(f"report: {paths['audit_html']}")


def _labelstudio_round(cfg: Config, run: Path, say: Progress) -> bool:
    """Push, pull, and apply new decisions to the curate outputs; True when they changed."""
    from curatune.curate.labelstudio import pull, push
    from curatune.curate.reviews import CurateAgain, apply_reviews_to_run
    from curatune.rundir import sha256_file

    curate_dir = run / "curate"
    push(curate_dir, cfg.labelstudio, progress=say)
    pulled = pull(curate_dir, cfg.labelstudio, progress=say)
    if not cfg.curate.apply_reviews:
        return False
    applied = [s for s in (read_manifest(curate_dir) or {}).get("steps", []) if s.get("name") == "human_review"]
    last = (applied[-1].get("summary") or {}) if applied else {}
    # No reviews now and none applied before: nothing to do. Reviews withdrawn since (annotations
    # deleted) must still be applied: that undoes the decisions they made.
    if not pulled["reviews"] and not last.get("annotations"):
        return False
    sha = sha256_file(pulled["path"])
    if last.get("reviews_sha256") == sha:
        say("labelstudio: no new decisions since they were last applied")
        return False
    try:
        summary = apply_reviews_to_run(curate_dir, cfg)
    except CurateAgain:
        # The decisions change what label issues' drop or relabel policy does, which only that step decides.
        say("labelstudio: the decisions change what the label-issues policy does; curating again")
        _run_stage("curate", cfg, run, say)
        return True
    say(f"labelstudio: applied {summary['applied']} decisions ({summary['relabelled']} relabelled, "
        f"{summary['dropped']} dropped)")
    return True


def _verdict(run: Path, cfg: Config) -> dict[str, Any] | None:
    """The audit's verdict in short, for the last line a run prints: with [run] fail_on_gate = false a
    failed gate changes no exit code, and the audit's path alone would hide it."""
    report = run / "report" / AUDIT_JSON
    if not report.is_file():
        return None
    verdict = read_json(report).get("verdict", {})
    gates = verdict.get("gates", [])
    return {"overall": verdict.get("overall"), "gates": len(gates), "enforced": cfg.run.fail_on_gate,
            "failed": [g["name"] for g in gates if g.get("status") == "fail"],
            # A check switched off ([curate.anonymise] fail_on_leak = false) that failed all the same.
            "failed_not_enforced": [g["name"] for g in gates if str(g.get("status", "")).startswith("fail (")],
            "unchecked": [g["name"] for g in gates if g.get("status") == "not checked"]}


def _check_evaluation_gates(cfg: Config, run: Path, audit: Path) -> None:
    if not cfg.run.fail_on_gate:
        return
    report = run / "report" / AUDIT_JSON
    if not report.is_file():
        return
    gates = read_json(report).get("verdict", {}).get("gates", [])
    failed = [g["name"] for g in gates if g.get("status") == "fail"]
    unchecked = [g["name"] for g in gates if g.get("status") == "not checked"]
    if failed or unchecked:
        raise GateFailed(f"gate {GateFailed.outcome(failed, unchecked)} — audit: {audit}")


def demo_data_dir(out: Path) -> Path:
    """The demo's raw transcripts (with personal data) live beside the run directory, never inside it."""
    out = out.resolve()  # "." has no name of its own: the data folder would land inside the run
    return out.parent / f"{out.name}-data"


def run_demo(out: Path, *, rows: int | None = None, seed: int = 7,
             progress: Progress | None = None) -> dict[str, Any]:
    """Generate the demo data beside ``out`` and run the whole pipeline on it with the demo config.

    Generation is seeded, so a second call writes the same files and every stage is skipped.
    """
    from curatune.demo import generate_demo

    out = output_dir(out)  # a file given as --out is refused before the data is written beside it
    data_dir = demo_data_dir(out)
    say = progress or (lambda _msg: None)
    say(f"generate: demo transcripts -> {data_dir}")
    paths = generate_demo(data_dir, n_conversations=rows, seed=seed)
    cfg = load_config(paths["config"])
    result = run_pipeline(cfg, out_dir=out, progress=progress)
    result["data_dir"] = str(data_dir)
    return result

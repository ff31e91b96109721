"""Command line: parse, load the config, call one library function. No logic lives here.

Every user-fixable problem is a :class:`CuratuneError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from curatune.config import Config, LabelStudioConfig, load_config, recorded_config
from curatune.errors import CuratuneError, first_line

# Presidio's tldextract would fetch the public suffix list; nothing may be fetched at run time.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Curate, fine-tune and audit classifiers on customer-support transcripts.")
ls_app = typer.Typer(no_args_is_help=True, help="Review flagged rows in Label Studio.")
app.add_typer(ls_app, name="labelstudio")
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")]


@app.callback()
def _one_process_unless_training(ctx: typer.Context) -> None:
    # Under torchrun / accelerate launch every process runs the command: only training shares its
    # work; any other command would run N times over, each copy writing the same files.
    from curatune.train.device import launched_processes

    processes = launched_processes()
    if processes > 1 and ctx.invoked_subcommand not in (None, "train"):
        raise CuratuneError(f"`curatune {ctx.invoked_subcommand}` was launched as {processes} processes "
                            "(WORLD_SIZE): only `curatune train` runs across processes; run the other stages "
                            "as one process, and launch `curatune train` through torchrun / accelerate launch")


def _config(path: Path | None, **overrides: str | None) -> Config:
    cfg = load_config(path)
    for key, value in overrides.items():
        if value:
            setattr(cfg.data, key, value)
    return cfg


def _say(msg: str) -> None:
    # Results name paths: "runs/[v2]" is text, not rich markup, and a long path stays on one line.
    console.print(msg, markup=False, soft_wrap=True)


def _progress(msg: str) -> None:
    # Messages carry config names like "[train] epochs": text, not rich markup. soft_wrap: a log file or
    # pipe gets whole lines, not lines cut at rich's 80-column default.
    console.print(f"[bold cyan]»[/] {escape(msg)}", soft_wrap=True)


@app.command()
def curate(
    inputs: Annotated[list[Path] | None, typer.Argument(help="CSV / TSV / JSONL / Parquet files")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("runs/latest/curate"),
    config: ConfigOpt = None,
    text_col: Annotated[str | None, typer.Option("--text-col")] = None,
    label_col: Annotated[str | None, typer.Option("--label-col")] = None,
    id_col: Annotated[str | None, typer.Option("--id-col")] = None,
    truth: Annotated[str | None, typer.Option("--truth", help="planted ground truth (Parquet)")] = None,
) -> None:
    """Deduplicate, anonymise and check labels; write curated, excluded, ledger and manifest."""
    from curatune.curate.pipeline import run_curation

    cfg = _config(config, text_col=text_col, label_col=label_col, id_col=id_col, truth=truth)
    outcome = run_curation(cfg, out, [str(p) for p in inputs] if inputs else None, progress=_progress)
    c = outcome.counts
    _say(f"curated {c['input']} rows: kept {c['kept']}, dropped {c['dropped']}, "
         f"relabelled {c['relabelled']} -> {out}")


def _run_config(config: Path | None, run_dir: Path, section: str, stages: tuple[str, ...]) -> Config:
    """``--config``, else the config recorded in the run directory's manifests (so `evaluate RUN
    --fail-on-gate` checks the gates the run was configured with), else the defaults."""
    from curatune.rundir import find_stage_dir

    find_stage_dir(run_dir, "curate")  # a mistyped run directory is one line, not a note about configs first
    if config is not None:
        return load_config(config)
    found = recorded_config(Path(run_dir), section, stages, strict=True)
    if found is None:
        _say("no config recorded in the run directory: using the defaults")
        return load_config(None)
    _say(f"using the config recorded in {found[1]}")
    return found[0]


@app.command("apply-reviews")
def apply_reviews(run_dir: Path, config: ConfigOpt = None) -> None:
    """Apply reviews pulled from Label Studio to the curated tables and the ledger."""
    from curatune.curate.reviews import apply_reviews_to_run

    summary = apply_reviews_to_run(run_dir, _run_config(config, run_dir, "labelstudio", ("curate",)))
    set_aside = [f"{summary[k]} {what}" for k, what in (
        ("stale_reviews", "made on text the row no longer has"), ("invalid_reviews", "invalid"),
        # A row label_issues dropped stays dropped here; a curate with the reviews lets the decision outrank it.
        ("not_in_run", "on rows the run does not keep (dropped by an earlier step, or not in its input; "
                       "`curatune curate` again lets a decision outrank a label-issues drop)")) if summary.get(k)]
    undecided = [f"{summary[k]} {what}" for k, what in (("conflicts", "in conflict"), ("unsure", "unsure"))
                 if summary.get(k)]
    _say(f"applied {summary['applied']} decisions ({summary['relabelled']} relabelled, "
         f"{summary['dropped']} dropped)" + (f"; rows kept undecided: {', '.join(undecided)} (review_conflict / "
                                             "review_unsure in the ledger)" if undecided else "")
         + (f"; not applied: {', '.join(set_aside)}" if set_aside else ""))


def _labelstudio_config(config: Path | None, run_dir: Path, url: str | None, project: str | None) -> LabelStudioConfig:
    """The run's [labelstudio] settings (``--config``, else as recorded), with --url/--project over them."""
    cfg = _run_config(config, run_dir, "labelstudio", ("curate",)).labelstudio
    cfg.url = url or cfg.url
    cfg.project = project or cfg.project
    return cfg


@ls_app.command("push")
def labelstudio_push(
    run_dir: Path,
    url: Annotated[str | None, typer.Option("--url")] = None,
    project: Annotated[str | None, typer.Option("--project")] = None,
    only: Annotated[str | None, typer.Option("--only", help="flagged | all | sample")] = None,
    config: ConfigOpt = None,
) -> None:
    """Send rows (anonymised text only) to a Label Studio project for review."""
    from curatune.curate.labelstudio import push

    cfg = _labelstudio_config(config, run_dir, url, project)
    if only:
        cfg.only = only  # validated by push
    result = push(run_dir, cfg, progress=_progress)
    _say(f"pushed to project {result['project_id']}: {result['created']} new tasks, "
         f"{result['updated']} updated, {result['text_changed']} with new text"
         + (f" ({result['replaced']} in a new task)" if result["replaced"] else "")
         + (f"; {result['left_out_leaked']} rows left out (the leak scan found personal data in them)"
            if result["left_out_leaked"] else ""))


@ls_app.command("pull")
def labelstudio_pull(
    run_dir: Path,
    url: Annotated[str | None, typer.Option("--url")] = None,
    project: Annotated[str | None, typer.Option("--project")] = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch reviewers' decisions into reviews.parquet."""
    from curatune.curate.labelstudio import pull

    # --project is passed on its own: it outranks the project push recorded, the config's does not.
    cfg = _labelstudio_config(config, run_dir, url, None)
    result = pull(run_dir, cfg, progress=_progress, project=project)
    _say(f"pulled {result['reviews']} reviews -> {result['path']}")


@app.command()
def train(
    curated: Annotated[Path, typer.Argument(help="curate output (or run) directory")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/latest/train"),
    config: ConfigOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint")] = False,
) -> None:
    """Fine-tune the model (LoRA, full or frozen encoder + head) on the curated set."""
    from curatune.rundir import find_stage_dir
    from curatune.train import train_model
    from curatune.train.device import is_main_process

    curate_dir = find_stage_dir(curated, "curate")
    # Without --config, the settings the run was curated with (its [train] among them), as evaluate and
    # apply-reviews do: the defaults silently trained with another batch size, epochs or model.
    result = train_model(_run_config(config, curate_dir, "train", ("curate",)), curate_dir, out, resume=resume,
                         progress=_progress)
    if is_main_process():
        _say(f"model and predictions -> {result['out_dir']}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="run directory holding curate/ and train/")],
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
    config: ConfigOpt = None,
    fail_on_gate: Annotated[bool, typer.Option("--fail-on-gate")] = False,
) -> None:
    """Accuracy with confidence intervals, base vs tuned, forgetting and fairness."""
    from curatune.evaluate.run import evaluate_run
    from curatune.rundir import find_stage_dir

    # The stages first: for a mistyped run directory, their error is the one line to print.
    curate_dir, train_dir = find_stage_dir(run_dir, "curate"), find_stage_dir(run_dir, "train")
    result = evaluate_run(_run_config(config, run_dir, "evaluate", ("evaluate", "train", "curate")),
                          curate_dir, train_dir, out or Path(run_dir) / "evaluate",
                          fail_on_gate=fail_on_gate, progress=_progress)
    _say(f"metrics -> {result['out_dir']}")


@app.command()
def report(
    run_dir: Path,
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
) -> None:
    """Render the HTML audit (and its JSON twin) from a run directory's files."""
    from curatune.reports import render_reports

    paths = render_reports(run_dir, out)
    _say(f"audit -> {paths['audit_html']}")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="TOML config")],
    force: Annotated[list[str] | None, typer.Option(
        "--force", help="redo this stage and the later ones (curate, train, evaluate, report)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
) -> None:
    """curate -> (Label Studio) -> train -> evaluate -> report, skipping stages that are up to date."""
    from curatune.pipeline import run_pipeline

    _summary(run_pipeline(load_config(config), force=force or [], out_dir=out, progress=_progress))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo"),
    rows: Annotated[int | None, typer.Option("--rows", help="conversations to generate (2000 by default)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Generate the demo transcripts and run the whole pipeline on them."""
    from curatune.pipeline import run_demo

    _summary(run_demo(out, rows=rows, seed=seed, progress=_progress))


def _summary(result: dict) -> None:
    verdict = result.get("verdict")
    if verdict and verdict["overall"]:
        failed, unchecked, unenforced = verdict["failed"], verdict["unchecked"], verdict["failed_not_enforced"]
        passed = verdict["gates"] - len(failed) - len(unchecked) - len(unenforced)
        _say(f"verdict: {verdict['overall'].upper()} ({passed} of {verdict['gates']} gates passed)"
             + (f"; failed: {', '.join(failed)}" if failed else "")
             + (f"; failed, not enforced: {', '.join(unenforced)}" if unenforced else "")
             + (f"; not checked: {', '.join(unchecked)}" if unchecked else "")
             + (" — not enforced ([run] fail_on_gate = false)" if (failed or unchecked) and not verdict["enforced"]
                else ""))
    if result["audit_html"]:
        print(result["audit_html"])
    else:
        _say(f"results in {result['out_dir']} (no audit report: the report stage has not run)")


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo-data"),
    rows: Annotated[int | None, typer.Option("--rows", help="conversations to generate (2000 by default)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Write the synthetic demo dataset and its ground truth."""
    from curatune.demo import generate_demo

    paths = generate_demo(out, n_conversations=rows, seed=seed)
    _say(f"demo data -> {paths['data']}")


@app.command()
def validate(config: Path) -> None:
    """Check a config file (unknown or wrong keys are reported by name) and what its stages need
    here: entity types, operators, the base model, trackers, the device."""
    from curatune.pipeline import check_setup, missing_data_files

    cfg = load_config(config)
    try:
        check_setup(cfg)
    except CuratuneError as exc:
        # A setting named without its file ("[curate] steps ...") could be in any config of a project.
        raise exc if exc.file else CuratuneError(str(exc), file=str(config)) from None
    # Not an error: a config may name data written later (`curatune generate`) or on another machine.
    for missing in missing_data_files(cfg):
        _say(f"warning: {missing} not found here")
    _say(f"{config}: ok")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # CURATUNE_LOG sets curatune's own loggers only: at DEBUG, Presidio logs the words around every
    # finding (a customer's name and card number), and other libraries log what they read.
    level = os.environ.get("CURATUNE_LOG", "").strip().upper() or "WARNING"
    if level not in logging.getLevelNamesMapping():  # setLevel's ValueError was a traceback
        console.print(f"[red]error:[/] {escape(f'CURATUNE_LOG={level}')} is not a log level: use DEBUG, INFO, WARNING "
                      "or ERROR", highlight=False, soft_wrap=True)
        sys.exit(2)
    logging.getLogger("curatune").setLevel(level)
    try:
        # Outside standalone mode typer returns an exit code instead of raising: its typer.Exit, and
        # 130 for a Ctrl-C it caught (it turns KeyboardInterrupt into Exit(130)).
        code = app(standalone_mode=False)
        if code == 130:
            console.print("interrupted")
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except CuratuneError as exc:
        # Errors name config tables ("[train] batch_size"): text, not rich markup.
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        # A file or folder the system refused (permissions, a file where a folder belongs, a full
        # disk) that no earlier check caught: the path and the reason, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        console.print(f"[red]error:[/] {escape(where + (exc.strerror or first_line(exc)))}", highlight=False,
                      soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # click usage errors carry their own exit code 2
        if isinstance(exc, _usage_errors()):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's exception base, and the one typer raises: typer >= 0.20 bundles its own copy of click,
    whose errors are not ``click.ClickException``s (a usage mistake was shown as a traceback)."""
    import click

    bundled = next((c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"), click.ClickException)
    return (click.ClickException, bundled)


if __name__ == "__main__":
    main()

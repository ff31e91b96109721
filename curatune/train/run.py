"""``curatune train``: fine-tune on the curated set and write everything evaluation needs.

Order of work: read the curated table and split it; tokenise with the chosen truncation and a
measured maximum length; embed every split with the frozen base encoder and fit a logistic
regression on train (the frozen baseline, and the head's initialisation, LP-FT); fine-tune with
the transformers Trainer (LoRA, full, or head only); predict validation and test; save adapter,
merged model, tokenizer and label map; write predictions for both models, the log, the model card,
and the manifest last (it marks the stage complete).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from curatune.config import Config, TrainConfig
from curatune.dataset import relabelled_digest
from curatune.embeddings import load_model_config, load_tokenizer, pooling_mode, resolve_model_path
from curatune.errors import CuratuneError, GateFailed, first_line
from curatune.rundir import (
    BASE_PREDICTIONS,
    CURATED,
    MANIFEST,
    MODEL_DIR,
    PREDICTIONS,
    SPLITS_FILE,
    TRAINER_LOG,
    Manifest,
    failed_gates,
    inputs_fingerprint,
    output_dir,
    package_versions,
    read_json,
    read_manifest,
    read_own_manifest,
    sha256_file,
    write_json,
    write_parquet,
    write_text,
)
from curatune.train.data import TrainData, load_train_data
from curatune.train.device import gpus_per_process, is_main_process, launched_processes

if TYPE_CHECKING:
    from curatune.train.device import DeviceChoice

CHECKPOINTS = "checkpoints"
RUN_STATE = "run.json"
# What report_to trackers wrote into the Trainer's output directory (TensorBoard's runs/, CodeCarbon's
# emissions.csv), kept when the checkpoints are removed.
TRACKERS = "trackers"
ADAPTER_DIR = "adapter"
LABEL_MAP = "label_map.json"
TRAIN_CONFIG = "train_config.json"

# Learning rates when [train] lr / head_lr are 0 (see benchmarks/bench_train.py for how they were chosen).
DEFAULT_LR = {"lora": 1e-3, "full": 1e-4, "frozen": 0.0}
# Epochs when [train] epochs is 0. Measured on Banking77: at 3 epochs LoRA kept its last epoch in every seed
# (still gaining; rank 16 or lr 2e-3 at 3 epochs gained less than 2 more epochs); full fine-tuning peaks in
# its fourth or fifth (benchmarks/bench_train_seeds.py). The best checkpoint by validation macro-F1 is kept.
DEFAULT_EPOCHS = {"lora": 5.0, "full": 5.0, "frozen": 3.0}
# A probe-initialised head needs only small corrections; a fresh head on unit-length features needs
# large weights to produce confident logits and learns them slowly at body learning rates (the
# head learning-rate table of benchmarks/bench_train.py measures it).
HEAD_LR_AFTER_PROBE = 1e-3
HEAD_LR_FRESH = 1e-1


class TrainingInterrupted(CuratuneError):
    """Ctrl-C during training: a checkpoint was saved; ``--resume`` continues from it."""

    exit_code = 130


def training_epochs(tc: TrainConfig) -> float:
    """The epochs trained: the configured ones, else the method's default; none when the head is the
    linear probe itself (frozen encoder, ``lp_init``: the probe is already fit to convergence)."""
    if probe_only(tc):
        return 0.0
    return tc.epochs or DEFAULT_EPOCHS[tc.method]


def probe_only(tc: TrainConfig) -> bool:
    return tc.method == "frozen" and tc.lp_init


def learning_rates(tc: TrainConfig) -> tuple[float, float]:
    """(body, head) learning rates: the configured ones, else the method's defaults."""
    body = tc.lr or DEFAULT_LR[tc.method]
    head = tc.head_lr or (HEAD_LR_AFTER_PROBE if tc.lp_init else HEAD_LR_FRESH)
    return body, head


def _run_fingerprint(config: Config, curate_dir: Path) -> str:
    """What a checkpoint was trained on: the curated table, the rows a held-out validation may not
    draw, the base model's files (a folder whose weights were replaced in place starts afresh), the
    [train] config and the libraries' versions (as the pipeline's fingerprint: an upgrade redoes it)."""
    return inputs_fingerprint([curate_dir / CURATED, Path(resolve_model_path(config.train.model))],
                              {**config.resolved()["train"], "_model_relabelled": relabelled_digest(curate_dir),
                               "_versions": package_versions()})


def can_resume(config: Config, curate_dir: str | Path, out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a checkpoint of an interrupted run on the same data and [train]
    config: ``curatune run`` then resumes the train stage instead of starting it again."""
    ckpt, state = Path(out_dir) / CHECKPOINTS, Path(out_dir) / CHECKPOINTS / RUN_STATE
    last = _last_complete_checkpoint(ckpt)
    if not state.is_file() or (Path(out_dir) / MANIFEST).is_file() or last is None:
        return False
    try:
        run_state = read_json(state)
        gone = _gone_best_checkpoint(last)
    except CuratuneError:  # damaged: the stage starts afresh (run without --resume) and writes a new one
        return False
    # Its best checkpoint gone, or (below) written on another device or precision (the folder moved between
    # machines): --resume refuses it, so the stage starts afresh rather than stop at it every time.
    if run_state.get("fingerprint") != _run_fingerprint(config, Path(curate_dir)) or gone:
        return False
    from curatune.train.device import choose_device

    try:
        now = choose_device(config.train.device, config.train.precision)
    except CuratuneError:  # the train stage itself names the setting
        return True
    return _device_written(run_state, now) == (now.device, now.precision)


def _device_written(run_state: dict[str, Any], choice: DeviceChoice) -> tuple[str, str]:
    """The device and precision the checkpoint's run resolved "auto" to (``choice``'s where earlier
    versions did not record them: such a checkpoint resumes as before)."""
    return run_state.get("device", choice.device), run_state.get("precision", choice.precision)


def _gone_best_checkpoint(checkpoint: str) -> str | None:
    """The name of the best checkpoint ``checkpoint``'s state records, when that folder is no longer in
    the checkpoint folder (deleted by hand). The Trainer drops such a record without a word: resumed
    after training ended it kept the untrained start as the model; mid-training, the best so far."""
    best = read_json(Path(checkpoint) / "trainer_state.json").get("best_model_checkpoint")
    # Emptied or without its weights, the Trainer would warn and keep the weights it has: gone as well.
    return Path(best).name if best and not _is_complete(Path(checkpoint).parent / Path(best).name) else None


def _training_was_over(checkpoint: Path) -> bool:
    """Whether the run that wrote ``checkpoint`` had ended its training there: all its steps, or an
    early stop (its patience used up, as the callback's saved state records)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if state.get("max_steps") and state.get("global_step", 0) >= state["max_steps"]:
        return True
    early = (state.get("stateful_callbacks") or {}).get("EarlyStoppingCallback") or {}
    patience = (early.get("args") or {}).get("early_stopping_patience")
    return bool(patience) and (early.get("attributes") or {}).get("early_stopping_patience_counter", 0) >= patience


def _stopped_early(trainer) -> bool:
    """A Ctrl-C at the step whose evaluation used up early stopping's patience: training is over
    (resuming would train on past the uninterrupted run's end)."""
    from transformers import EarlyStoppingCallback

    return any(isinstance(cb, EarlyStoppingCallback)
               and cb.early_stopping_patience_counter >= cb.early_stopping_patience
               for cb in trainer.callback_handler.callbacks)


def _last_complete_checkpoint(ckpt: Path) -> str | None:
    """The newest checkpoint with its trainer state and weights: a kill during a save leaves the
    newest one half written, and resuming from it fails inside the Trainer."""
    found = sorted((int(p.name.split("-")[-1]), p) for p in ckpt.glob("checkpoint-*")
                   if p.is_dir() and p.name.split("-")[-1].isdigit())
    return next((str(p) for _, p in reversed(found) if _is_complete(p)), None)


def _is_complete(checkpoint: Path) -> bool:
    """A checkpoint with its trainer state and weights (not one a kill left half written, nor one whose
    weights were deleted). Every checkpoint holds training_args.bin, which is no weights."""
    return (checkpoint / "trainer_state.json").is_file() and (any(checkpoint.glob("*.safetensors")) or any(
        p.name != "training_args.bin" for p in checkpoint.glob("*.bin")))


def _resume_point(out: Path, fingerprint: str, resume: bool, choice: DeviceChoice) -> str | None:
    """The checkpoint a resumed run continues from (None for a fresh run); refuses a resume that
    cannot reach the interrupted run's result. Reads only: a refused resume changes nothing."""
    if not resume:
        return None
    ckpt = out / CHECKPOINTS
    last = _last_complete_checkpoint(ckpt)
    if last is None:
        raise CuratuneError("nothing to resume: no complete checkpoint in this output directory "
                            "(run without --resume to start)", file=str(ckpt))
    state = ckpt / RUN_STATE
    run_state = read_json(state) if state.is_file() else {}
    recorded = run_state.get("fingerprint")
    # Each step averages batch_size x grad_accum rows per process: with another process count the steps
    # per epoch, the learning-rate schedule and where the data resumes would all differ.
    was, now = run_state.get("processes", 1), launched_processes()
    if recorded == fingerprint and was != now:
        raise CuratuneError(f"cannot resume: the checkpoint was written by {was} process{'es' if was > 1 else ''} "
                            f"and this run has {now}; resume with the same number (torchrun --nproc_per_node "
                            f"{was}{'' if was > 1 else ', or without torchrun'})", file=str(ckpt))
    # One process on several GPUs (DataParallel) takes batch_size rows on each: the same holds for them.
    # (Not recorded by earlier versions: such a checkpoint is resumed as before.)
    gpus = gpus_per_process(choice)
    was = run_state.get("gpus_per_process", gpus)
    if recorded == fingerprint and was != gpus:
        raise CuratuneError(f"cannot resume: the checkpoint's run spread each batch over {was} GPU"
                            f"{'s' if was > 1 else ''} and this run over {gpus}; make the same number visible "
                            "(CUDA_VISIBLE_DEVICES)", file=str(ckpt))
    # The config says "auto": the device and precision it resolved to are the run's. In other ones the
    # numbers differ from the first step on (and fp16 resumed in bf16 or fp32 drops its loss scaler).
    was_on = _device_written(run_state, choice)
    if recorded == fingerprint and was_on != (choice.device, choice.precision):
        raise CuratuneError(f"cannot resume: the checkpoint was trained on {was_on[0]} in {was_on[1]} and this run "
                            f"would go on on {choice.device} in {choice.precision}; resume where it was written, or "
                            "run without --resume to train again", file=str(ckpt))
    if recorded != fingerprint:
        raise CuratuneError("cannot resume: the curated data, the rows a model relabelled, the base model's files, "
                            "the [train] config or the installed libraries changed since the checkpoint was written "
                            "(run without --resume to start again)", file=str(ckpt))
    if gone := _gone_best_checkpoint(last):
        raise CuratuneError(f"cannot resume: the best checkpoint ({gone}) is gone or lost its weights; delete {ckpt} "
                            "(or run without --resume) to train again", file=str(out))
    return last


def _refuse_failed_curation(curate_dir: Path) -> None:
    """`curatune run` stops before training when a curation gate fails (the leak scan: personal data
    left in the text); `curatune train` given that curation by hand must stop too, before any work."""
    manifest = read_manifest(curate_dir) if curate_dir.is_dir() else None
    if failed := failed_gates(manifest):
        raise GateFailed(f"refusing to train: this curation failed its gate ({', '.join(failed)}); fix what it "
                         "found and curate again", file=str(curate_dir / MANIFEST))


def _refuse_foreign_folder(out: Path) -> None:
    """A run replaces its model/, adapter/, checkpoints/ and README.md: a folder holding files, but no
    train run's manifest or checkpoint, is someone's own, whose files of those names would be lost."""
    if read_own_manifest(out, "train") is not None or (out / CHECKPOINTS / RUN_STATE).is_file() or all(
            p.name.startswith(".") for p in out.iterdir()):  # .gitkeep, .DS_Store
        return
    raise CuratuneError("this folder holds files no train run wrote, and a run replaces its model/, adapter/, "
                        "checkpoints/ and README.md: choose a new or empty --out", file=str(out))


def _start_out_dir(out: Path, fingerprint: str, resume: bool, choice: DeviceChoice,
                   say: Callable[[str], None]) -> None:
    """Once every setting is checked and training is about to start: a fresh run starts from an empty
    checkpoint folder, and the earlier run's manifest goes (a rerun is incomplete until it writes its own).

    In that order: the new run state is written before the manifest goes, so a kill at any moment
    leaves the folder marked as a train run's by one of them. A rerun killed between the two, the
    other way round, left neither, and every later run refused the folder as someone's own."""
    if not is_main_process():
        return
    if not resume:
        ckpt = out / CHECKPOINTS
        steps = sorted(int(p.name.split("-")[-1]) for p in ckpt.glob("checkpoint-*") if p.name[11:].isdigit())
        if steps and not (out / MANIFEST).is_file():  # a finished run's is one a kill left behind
            say(f"train: the interrupted run's checkpoint (step {steps[-1]}) is removed and this run starts afresh "
                "(--resume continues from it)")
        ckpt.mkdir(parents=True, exist_ok=True)
        # The old run state stays until the new one replaces it: it names the old run's settings, so
        # its half-removed checkpoints resume only for those.
        for p in ckpt.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            elif p.name != RUN_STATE:
                p.unlink()
        write_json({"fingerprint": fingerprint, "processes": launched_processes(),
                    "gpus_per_process": gpus_per_process(choice), "device": choice.device,
                    "precision": choice.precision}, ckpt / RUN_STATE)
    (out / MANIFEST).unlink(missing_ok=True)
    if not resume:
        shutil.rmtree(out / TRACKERS, ignore_errors=True)
        (out / TRAINER_LOG).unlink(missing_ok=True)


def _keep_tracker_outputs(out: Path) -> str | None:
    """Moves what trackers wrote beside the checkpoints (the Trainer's output directory is the
    checkpoint folder, removed once training completes) to ``out/trackers``; returns that name, or
    None when no tracker wrote there."""
    ckpt = out / CHECKPOINTS
    if not ckpt.is_dir():
        return None
    written = [p for p in ckpt.iterdir() if p.name != RUN_STATE and not p.name.startswith("checkpoint-")]
    if not written:
        return None
    (out / TRACKERS).mkdir(exist_ok=True)
    for p in written:
        # A resumed run adds its own TensorBoard run folder beside the interrupted one's: both are kept.
        shutil.move(str(p), str(out / TRACKERS / p.name))
    return TRACKERS


def _rebase_best_checkpoint(resume_from: str, output_dir: str) -> None:
    """Points the resumed checkpoint's record of the best checkpoint at that folder as it is now. The
    Trainer records it by the path it saved under; after the run folder moved (or from another working
    directory, for runs recorded before the path was absolute) that path names nothing, and the
    Trainer silently drops it: a run resumed after training ended kept its untrained start, and one
    resumed mid-training could rotate the best checkpoint away. Every process rewrites it alike."""
    state_file = Path(resume_from) / "trainer_state.json"
    state = read_json(state_file)
    best = state.get("best_model_checkpoint")
    if best and best != (here := str(Path(output_dir) / Path(best).name)):
        write_json({**state, "best_model_checkpoint": here}, state_file)


class TrainSetup(NamedTuple):
    base_path: str
    device: DeviceChoice
    tokenizer: Any  # with a pad token (load_tokenizer)
    base_config: Any
    length_limit: int  # the longest input the model takes (tokens.model_length_limit)


def check_train_setup(tc: TrainConfig) -> TrainSetup:
    """What training needs from this machine, checked before any work: the base model (a complete
    local directory whose config and tokenizer transformers loads), the trackers and the device.
    Training uses what it returns rather than load the tokenizer and config a second time."""
    from curatune.train.device import choose_device

    base_path = resolve_model_path(tc.model)
    base_config = load_model_config(base_path)
    _check_architecture(base_config, base_path)
    tokenizer = load_tokenizer(base_path)
    limit = _checked_length_limit(tc.max_length, tokenizer, base_path, base_config)
    _check_trackers(tc.report_to)
    return TrainSetup(base_path, choose_device(tc.device, tc.precision), tokenizer, base_config, limit)


def _checked_length_limit(max_length: int, tokenizer: Any, base_path: str, base_config: Any) -> int:
    """The model's length limit, and [train] max_length checked against it here, not at tokenizing:
    found there, a max_length the model cannot take stopped a `curatune run` after all of curation."""
    from curatune.train.tokens import model_length_limit

    limit = model_length_limit(tokenizer, base_path, base_config)
    if max_length > limit:
        raise CuratuneError(f"[train] max_length = {max_length} exceeds what the model takes ({limit})")
    specials = tokenizer.num_special_tokens_to_add()
    if 0 < max_length <= specials:
        raise CuratuneError(f"[train] max_length = {max_length} leaves no room for text: the model adds "
                            f"{specials} special tokens to every input")
    return limit


def _check_architecture(base_config: Any, base_path: str) -> None:
    """The classifier pools one stack's hidden states: an encoder-decoder model's forward wants decoder
    inputs, and a config without a hidden size leaves the head unsized (both stopped with a traceback)."""
    kind = f"model_type '{base_config.model_type}'"
    if getattr(base_config, "is_encoder_decoder", False):
        raise CuratuneError(f"{kind} is an encoder-decoder model; curatune trains a classifier on the hidden states "
                            "of one stack: use an encoder (BERT, RoBERTa, DeBERTa, MiniLM, ...) or a decoder-only "
                            "model", file=base_path)
    if not isinstance(getattr(base_config, "hidden_size", None), int):
        raise CuratuneError(f"{kind} gives no hidden size in config.json, which the classifier's head is sized by",
                            file=base_path)


def _check_trackers(names: list[str]) -> None:
    """Before any work: the Trainer refuses an unknown or uninstalled tracker only once it is built."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise CuratuneError(f"[train] report_to: unknown tracker '{name}' (known: "
                                f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in get_available_reporting_integrations():
            raise CuratuneError(f"[train] report_to: '{name}' is not installed in this environment "
                                f"(pip install {name})")
        if name == "mlflow":
            _check_mlflow_store()
        if name == "wandb":
            _check_wandb_login()


def _check_mlflow_store() -> None:
    """MLflow opens its tracking store when the Trainer starts its run, after the model is loaded and
    the first checkpoint folder made: its default store (sqlite) needs the full ``mlflow`` package,
    not ``mlflow-skinny``, and its file store is refused unless opted into. Opening it here (a client
    opens it as it is made; a server address is not contacted) turns those into one line up front."""
    import mlflow

    try:
        mlflow.MlflowClient()
    except Exception as exc:  # whatever the store's error, the run would stop on it: say it now
        raise CuratuneError(f"[train] report_to: mlflow cannot use its tracking store "
                            f"{mlflow.get_tracking_uri()!r}: {first_line(exc)} (set MLFLOW_TRACKING_URI to a "
                            "store this installation supports)") from None


def _check_wandb_login() -> None:
    """W&B logs in when the Trainer starts its run, after the model is loaded: without credentials and
    without a terminal that was a traceback from inside the Trainer. Offline (where machines reach no
    server) and disabled runs need none; credentials are looked up, not verified with the server."""
    import wandb

    if wandb.setup().settings.mode in ("offline", "dryrun", "disabled"):
        return
    if not wandb.login(verify=False, prompt=False):
        raise CuratuneError("[train] report_to: wandb has no credentials (run `wandb login` or set WANDB_API_KEY; "
                            "or set WANDB_MODE=offline to keep the run on disk and `wandb sync` it later)")


@contextlib.contextmanager
def quiet_peft_deprecation():
    """peft calls a transformers method deprecated in v5 when it wraps or loads a model; the warning is
    nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)


def _wrap_for_method(model, tc: TrainConfig):
    """LoRA adapters (head in modules_to_save), the whole network, or the head alone."""
    if tc.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        from curatune.train.modeling import lora_targets

        defaults = lora_targets(model.config.encoder.get("model_type", ""))
        targets = tc.lora_target_modules or defaults
        lcfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=tc.lora_r, lora_alpha=tc.lora_alpha,
                          lora_dropout=tc.lora_dropout, target_modules=targets, modules_to_save=["classifier"])
        try:
            return get_peft_model(model, lcfg)
        except ValueError as exc:
            # peft's message for a block it cannot adapt goes on with the block's whole repr.
            block = re.match(r"Target module (\w+)", str(exc))
            if block:
                why = f"one names a {block.group(1)} block, not a layer LoRA adapts"
            elif re.search(r"No modules were targeted|not found in the base model", str(exc)):
                why = "no layer of this model has such a name"
            else:
                why = first_line(exc).rstrip(".")
            raise CuratuneError(f"[train] lora_target_modules = {list(targets)} do not fit this model ({why}); "
                                f"the default for it is {defaults!r}") from None
    if tc.method == "frozen":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    return model


def _sorted_dataset(enc):
    from curatune.train.loop import FeatureDataset

    order = np.argsort([len(f["input_ids"]) for f in enc.features], kind="stable")
    return FeatureDataset([enc.features[i] for i in order]), order


def _training_args(tc: TrainConfig, choice, ckpt: Path, n_train: int, epochs: float, body_lr: float):
    from transformers import TrainingArguments

    steps_per_epoch = max(1, math.ceil(n_train / (tc.batch_size * tc.grad_accum * launched_processes())))
    strategy = "steps" if tc.eval_steps > 0 else "epoch"
    return TrainingArguments(
        # Absolute: the Trainer records the best checkpoint by this path, and a relative one named
        # nothing once resumed from another working directory.
        output_dir=str(ckpt.resolve()),
        num_train_epochs=epochs,
        per_device_train_batch_size=tc.batch_size,
        per_device_eval_batch_size=tc.batch_size * 2,
        gradient_accumulation_steps=tc.grad_accum,
        learning_rate=body_lr,
        weight_decay=tc.weight_decay,
        warmup_steps=tc.warmup_ratio,
        lr_scheduler_type=tc.scheduler,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=tc.eval_steps or None,
        save_steps=tc.eval_steps or 500,
        save_total_limit=2,
        load_best_model_at_end=True,
        # Early stopping's patience count lives in a callback: without this a resumed run starts it
        # at zero, trains longer and keeps another checkpoint than the uninterrupted run would.
        restore_callback_states_from_checkpoint=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, min(50, steps_per_epoch // 5)),
        seed=tc.seed,
        data_seed=tc.seed,
        use_cpu=choice.device == "cpu",
        bf16=choice.precision == "bf16",
        fp16=choice.precision == "fp16",
        report_to=list(tc.report_to) or "none",
        dataloader_num_workers=0,
        dataloader_pin_memory=choice.device == "cuda",
        remove_unused_columns=False,
        disable_tqdm=True,
        log_level="warning",
    )


def _base_name(model: str) -> str:
    """What the model card and report call the base model: a hub id where one is known, else the
    directory's own name. A local path is not a hub id, and it can name the user's home folder."""
    from curatune.train.outputs import DEFAULT_BASE_NAME

    if model in ("", "default"):
        return DEFAULT_BASE_NAME
    p = Path(model).expanduser()
    if not p.is_dir():
        return model  # a hub id, resolved from the local cache
    # The Hugging Face cache keeps a snapshot at .../models--org--name/snapshots/<revision>.
    cached = next((part for part in reversed(p.resolve().parts) if part.startswith("models--")), None)
    if cached is not None:
        return cached.removeprefix("models--").replace("--", "/")
    return p.resolve().name


def train_model(config: Config, curate_dir: Path, out_dir: Path, *, resume: bool = False,
                progress: Callable[[str], None] | None = None, callbacks: list | None = None) -> dict[str, Any]:
    """Fine-tune on ``curate_dir/curated.parquet`` into ``out_dir``; see the module docstring.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (trackers, custom stopping).
    Returns ``out_dir``, the model directory, validation/test metrics and the verdict.
    """
    tc = config.train
    tc.check()  # configs built in code skip the loader's check
    _refuse_failed_curation(Path(curate_dir))
    # Every process of a multi-process launch runs this; one account of it is enough.
    say = progress if progress is not None and is_main_process() else (lambda _msg: None)
    out, curate_dir = output_dir(out_dir, "train"), Path(curate_dir)
    _refuse_foreign_folder(out)
    manifest = Manifest(stage="train", config=config.resolved())

    with manifest.timed("load"):
        data = load_train_data(curate_dir, seed=tc.seed)
    # Rows it cannot score (no label, or one it never trains on) leave every evaluation at macro-F1 0,
    # and the "best" checkpoint would silently be the first.
    if not data.validation["label"].is_in(data.labels).any():
        raise CuratuneError("no validation rows with a label the model trains on: add a validation split or more "
                            "training rows per label (10% of train per label is held out when there is no "
                            "validation split)", file=str(curate_dir / CURATED))
    manifest.add_input(curate_dir / CURATED, rows=data.counts["rows"])
    if (curate_dir / MANIFEST).is_file():
        manifest.add_input(curate_dir / MANIFEST)
    setup = check_train_setup(tc)
    choice = setup.device
    body_lr, head_lr = learning_rates(tc)
    fingerprint = _run_fingerprint(config, curate_dir)
    resume_from = _resume_point(out, fingerprint, resume, choice)
    say(f"train: {data.counts['train']} train / {data.counts['validation']} validation / "
        f"{data.counts['test']} test rows, {len(data.labels)} labels, {tc.method} on {choice.name}"
        + (f" x {n} processes" if (n := launched_processes()) > 1 else "")
        + (f", resuming from {Path(resume_from).name}" if resume_from else ""))
    if unseen := data.counts["unseen_label_rows"]["validation"]:
        say(f"train: {unseen} validation rows have a label unseen in training: the checkpoint is chosen on the "
            "others (the final validation metrics count them, as wrong)")
    with quiet_peft_deprecation():
        return _train(config, data, setup, (body_lr, head_lr), out, curate_dir, manifest, say,
                      resume_from, callbacks or [], fingerprint)


def _train(config: Config, data: TrainData, setup: TrainSetup, lrs: tuple[float, float], out: Path,
           curate_dir: Path, manifest: Manifest, say: Callable[[str], None], resume_from: str | None,
           extra_callbacks: list, fingerprint: str) -> dict[str, Any]:
    import torch
    from transformers import EarlyStoppingCallback, TrainerState, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from curatune.train.callbacks import (
        EpochSeed,
        InterruptCheckpoint,
        JsonlLog,
        ProgressReporter,
        TrackerRuns,
        continue_tracker_runs,
    )
    from curatune.train.loop import (
        CuratuneTrainer,
        FeatureDataset,
        SeededLengthSampler,
        check_launch_supported,
        compute_metrics,
        launch_sharding,
        unused_trainable_parameters,
    )
    from curatune.train.modeling import build_classifier
    from curatune.train.probe import PROBE_C, fit_probe, init_head_from_probe, pooled_features, predict_probabilities
    from curatune.train.tokens import encode, length_percentile, measured_max_length, token_lengths

    tc = config.train
    body_lr, head_lr = lrs
    splits = ("train", "validation", "test")
    set_seed(tc.seed)
    base_path, choice, tokenizer, _, limit = setup
    with manifest.timed("tokenize"):
        pre = {s: token_lengths(tokenizer, data.frame(s)["text"].to_list()) for s in splits}
        max_length = tc.max_length or measured_max_length(pre["train"][1], limit)
        enc = {s: encode(tokenizer, [], max_length, tc.truncation, data.label_ids(s), pre_tokenized=pre[s])
               for s in splits}
    trunc = {s: enc[s].stats() for s in splits}
    if trunc["train"]["truncated"]:
        say(f"train: max_length {max_length} ({'set' if tc.max_length else 'measured'}) truncates "
            f"{trunc['train']['truncated']} of {trunc['train']['rows']} training texts ({tc.truncation})")
    pooling = pooling_mode(base_path) if tc.pooling == "auto" else tc.pooling
    model = build_classifier(base_path, data.labels, pooling=pooling)
    # The saved model's config names the token its saved tokenizer pads with (a stand-in for a
    # tokenizer that had none).
    model.config.pad_token_id = tokenizer.pad_token_id
    n_classes = len(data.labels)
    y_train = data.label_ids("train")

    args = _training_args(tc, choice, out / CHECKPOINTS, len(enc["train"].features),
                          training_epochs(tc), body_lr)
    if probe_only(tc) and (tc.epochs or tc.head_lr or tc.early_stopping_patience):
        say("train: method frozen with lp_init: the head is the linear probe, so epochs, head_lr and "
            "early_stopping_patience are not used (set lp_init = false to train a head by gradient steps)")
    device = str(args.device)
    model.to(device)

    # Frozen baseline and LP-FT initialisation: one probe on the base encoder's features.
    say(f"train: frozen baseline (logistic regression on {pooling}-pooled base embeddings)")
    with manifest.timed("frozen_baseline"):
        # In fp32, as the model is predicted from below and as evaluation reloads the base encoder: with
        # method "frozen" the probe is the model, and its features under autocast are not the ones it
        # is applied to.
        feats = {s: pooled_features(model, tokenizer, enc[s], device=device, precision="fp32",
                                    batch_size=tc.batch_size * 2) for s in splits}
        probe = fit_probe(feats["train"], y_train, n_classes, class_weights=tc.class_weights, seed=tc.seed)
        base_probs = {s: probe.probabilities(feats[s]) for s in ("validation", "test")}
    if tc.lp_init:
        init_head_from_probe(model, probe)
    if tc.class_weights:
        model.loss_weights.copy_(torch.as_tensor(_class_weights(y_train, n_classes)))
    model = _wrap_for_method(model, tc)
    check_launch_supported({"sam_rho": tc.sam_rho, "adversarial_eps": tc.adversarial_eps}, **launch_sharding(args))
    # Only now, with the LoRA targets found in this model too, is the earlier run's output unmade.
    _start_out_dir(out, fingerprint, resume_from is not None, choice, say)
    if resume_from:
        _rebase_best_checkpoint(resume_from, args.output_dir)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    sampler = SeededLengthSampler([len(f["input_ids"]) for f in enc["train"].features],
                                  tc.batch_size * tc.grad_accum, tc.seed)
    val_ds, _ = _sorted_dataset(enc["validation"])
    interrupt, tracker_runs = InterruptCheckpoint(), TrackerRuns(out / CHECKPOINTS / RUN_STATE)
    callbacks = [ProgressReporter(say), JsonlLog(out / TRAINER_LOG), interrupt, EpochSeed(sampler), tracker_runs,
                 *extra_callbacks]
    if tc.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=tc.early_stopping_patience))
    if launched_processes() > 1:
        # Read by the Trainer when it wraps the model in DDP, so it is settled before.
        sample = [{k: v for k, v in f.items() if k != "labels"} for f in enc["train"].features[:2]]
        unused = unused_trainable_parameters(model, tokenizer.pad(sample, return_tensors="pt").to(device))
        args.ddp_find_unused_parameters = bool(unused)
        if unused:
            say(f"train: {len(unused)} trainable parameters take no part in the forward pass ({unused[0]}, ...); "
                "DDP searches for them at every step")
    train_metrics: dict[str, Any] = {}
    # Read before training: the checkpoint resumed from may be rotated out (save_total_limit) on the way.
    start_epoch = json.loads((Path(resume_from) / "trainer_state.json").read_text())["epoch"] if resume_from else 0.0
    # A resumed training logs on into the runs the interrupted one opened (recorded by TrackerRuns).
    resumed_runs = read_json(out / CHECKPOINTS / RUN_STATE).get("tracker_runs", {}) \
        if resume_from and is_main_process() else {}
    with continue_tracker_runs(resumed_runs, list(tc.report_to), say):
        trainer = CuratuneTrainer(model=model, args=args, train_dataset=FeatureDataset(enc["train"].features),
                                  eval_dataset=val_ds, processing_class=tokenizer, compute_metrics=compute_metrics,
                                  callbacks=callbacks, head_lr=head_lr, length_sampler=sampler,
                                  sam_rho=tc.sam_rho, adversarial_eps=tc.adversarial_eps)
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)

        if args.num_train_epochs > 0:
            say(f"train: {tc.method}, {training_epochs(tc):g} epochs, lr body {body_lr:g} / head {head_lr:g}, "
                f"max_length {max_length}, {n_trainable:,} of {n_params:,} parameters trainable")
            if choice.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with manifest.timed("train"):
                try:
                    if resume_from and _training_was_over(Path(resume_from)):
                        # Killed after training ended (saving, predicting): the Trainer would train on past
                        # the end it had reached (its loop checks for the end only after a step).
                        say(f"train: training had ended at {Path(resume_from).name}; loading its best checkpoint")
                        trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
                        if trainer.state.best_model_checkpoint:  # there: _resume_point refuses a gone one
                            trainer._load_best_model()  # as train() ends, with load_best_model_at_end
                    else:
                        train_metrics = dict(trainer.train(resume_from_checkpoint=resume_from).metrics)
                finally:
                    interrupt.restore()
            if interrupt.requested and not _stopped_early(trainer) \
                    and trainer.state.global_step < trainer.state.max_steps:
                raise TrainingInterrupted(
                    f"interrupted at step {trainer.state.global_step}/{trainer.state.max_steps}; a checkpoint is in "
                    f"{out / CHECKPOINTS}: continue with `curatune train ... --resume`, or run `curatune run` again "
                    "(it resumes)")

    if not trainer.is_world_process_zero():
        return {"out_dir": str(out)}
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if choice.device == "cuda" else None
    with manifest.timed("save"):
        merged, saved = _save_model(trainer.model, tokenizer, tc, out, data.labels, {
            "base_model": _base_name(tc.model), "pooling": pooling,
            "normalize": True, "max_length": max_length, "truncation": tc.truncation,
            "lr": body_lr, "head_lr": head_lr,
        })
    # Predictions come from the saved (merged) model itself, so evaluation can reproduce them: in fp32,
    # as it is saved and as a reload runs it (bf16/fp16 autocast moves probabilities by far more than
    # 1e-4, and can flip a near tie).
    with manifest.timed("predict"):
        t0 = time.perf_counter()
        probs = {s: predict_probabilities(merged, tokenizer, enc[s], device=device, precision="fp32",
                                          batch_size=tc.batch_size * 2) for s in ("validation", "test")}
        seconds = time.perf_counter() - t0
    p99 = length_percentile(enc["train"].lengths)
    return _write_outputs(
        config=config, data=data, out=out, curate_dir=curate_dir, manifest=manifest, trainer=trainer,
        probs=probs, base_probs=base_probs, probe=probe, probe_c=PROBE_C, enc=enc, trunc=trunc,
        train_metrics=train_metrics, predict_seconds=seconds, peak_mb=peak_mb, choice=choice,
        settings={"method": tc.method, "pooling": pooling, "max_length": max_length,
                  "max_length_source": _max_length_source(tc.max_length, p99, limit),
                  "model_limit": limit, "truncation": tc.truncation, "lr": body_lr, "head_lr": head_lr,
                  "epochs": training_epochs(tc), "batch_size": tc.batch_size, "grad_accum": tc.grad_accum,
                  # Rows per optimizer step: batch_size on each GPU one process drives (the Trainer's
                  # train_batch_size; DataParallel over several), times grad_accum, times the processes.
                  "processes": args.world_size,
                  "effective_batch_size": args.train_batch_size * tc.grad_accum * args.world_size,
                  "lp_init": tc.lp_init, "class_weights": tc.class_weights, "seed": tc.seed,
                  "parameters": n_params, "trainable_parameters": n_trainable},
        base_path=base_path, saved=saved, resumed_from=resume_from, start_epoch=start_epoch,
        measured_max=p99, tracker_runs=tracker_runs.runs,
    )


def _max_length_source(configured: int, p99: int | None, limit: int) -> str:
    """Where the maximum length came from. Past the model's limit the 99th percentile is not what was
    used: "measured" then read as if most texts fitted (half of STAR's dialogues were cut)."""
    if configured:
        return "config"
    if p99 is not None and p99 > limit:
        return f"the model's limit (the 99th percentile of train is {p99} tokens)"
    return "measured (99th percentile of train)"


def _save_model(model, tokenizer, tc: TrainConfig, out: Path, labels: list[str], settings: dict):
    """Adapter (LoRA only) and the merged model, each with tokenizer, label map and resolved config.

    Returns the merged model (in eval mode) and the saved directories."""
    saved = {}
    for name in (MODEL_DIR, ADAPTER_DIR):
        shutil.rmtree(out / name, ignore_errors=True)
    label_map = {"labels": labels, "label2id": {lab: i for i, lab in enumerate(labels)}}
    # As peft's adapter_config.json records peft_version: the versions a reader needs to load it alike.
    # A local model folder by its name only: these folders are what gets shared, and a path can name
    # the user's home folder (the manifest keeps it, for reloading here).
    local = Path(tc.model).expanduser().is_dir()
    resolved = {**vars(tc), "model": _base_name(tc.model) if local else tc.model, **settings,
                "versions": package_versions()}

    # The saved tokenizer cuts where training cut, so plain transformers reproduces the predictions
    # (head and tail; head_tail needs curatune.train.tokens.encode, as the model card says).
    tokenizer.model_max_length = settings["max_length"]
    tokenizer.truncation_side = "left" if tc.truncation == "tail" else "right"

    def save(m, where: Path) -> str:
        # Each saved directory carries its tokenizer, label map and config: it loads on its own.
        m.save_pretrained(str(where))
        tokenizer.save_pretrained(str(where))
        write_json(label_map, where / LABEL_MAP)
        write_json(resolved, where / TRAIN_CONFIG)
        return str(where)

    if tc.method == "lora":
        saved["adapter"] = save(model, out / ADAPTER_DIR)
        model = model.merge_and_unload()
    saved["model"] = save(model, out / MODEL_DIR)
    return model.eval(), saved


def _write_outputs(*, config: Config, data: TrainData, out: Path, curate_dir: Path, manifest: Manifest, trainer,
                   probs, base_probs, probe, probe_c: float, enc, trunc, train_metrics, predict_seconds: float,
                   peak_mb, choice, settings: dict, base_path: str, saved: dict, resumed_from: str | None,
                   start_epoch: float, measured_max: int | None,
                   tracker_runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import polars as pl

    from curatune.train.outputs import model_card, paired_comparison, prediction_frame, split_metrics, verdict

    tc = config.train
    labels = data.labels
    preds = pl.concat([prediction_frame(data.frame(s), s, probs[s], labels) for s in ("validation", "test")])
    base = pl.concat([prediction_frame(data.frame(s), s, base_probs[s], labels) for s in ("validation", "test")])
    write_parquet(preds, out / PREDICTIONS)
    write_parquet(base, out / BASE_PREDICTIONS)
    write_parquet(data.splits, out / SPLITS_FILE)
    metrics = {s: split_metrics(preds.filter(pl.col("split") == s)) for s in ("validation", "test")}
    base_metrics = {s: split_metrics(base.filter(pl.col("split") == s)) for s in ("validation", "test")}
    gold = data.label_ids("validation")
    comparison = paired_comparison(gold, probs["validation"].argmax(1), base_probs["validation"].argmax(1),
                                   len(labels), seed=tc.seed)
    verdict_info = verdict(comparison, same_model=probe_only(tc))

    state = trainer.state
    probe_entry = {"step": 0, "epoch": 0.0, "event": "frozen_baseline", "C": probe_c,
                   "iterations": probe.iterations,
                   **{f"base_{s}_{k}": v for s, m in base_metrics.items() for k, v in m.items()}}
    log_lines = [json.dumps(probe_entry)] + [json.dumps(e) for e in state.log_history]
    write_text("\n".join(log_lines) + "\n", out / TRAINER_LOG)

    data_sha = sha256_file(curate_dir / CURATED)
    card = model_card(base_name=_base_name(tc.model), method=tc.method, labels=labels, data_sha256=data_sha,
                      metrics=metrics, base_metrics=base_metrics, verdict_info=verdict_info, settings=settings,
                      unseen_validation_rows=data.counts["unseen_label_rows"]["validation"])
    # peft writes an empty template card into the adapter directory; ours replaces it there too.
    for where in (out, *(Path(saved[k]) for k in ("model", "adapter") if k in saved)):
        write_text(card, where / "README.md")

    n_train = len(enc["train"].features)
    runtime = train_metrics.get("train_runtime")
    tokens = int(sum(len(f["input_ids"]) for f in enc["train"].features))
    # Epochs this process trained: an early stop ends before the configured ones, a resume starts after
    # the checkpoint's (the Trainer's own samples/s assumes every configured epoch ran here).
    epochs_run = max(0.0, (state.epoch or 0.0) - start_epoch)
    n_pred = data.validation.height + data.test.height
    trackers = _keep_tracker_outputs(out)
    manifest.counts = data.counts
    manifest.extra = {
        "labels": labels,
        "method": tc.method,
        "device": choice.name + (f" x {settings['processes']} processes" if settings["processes"] > 1 else ""),
        "precision": choice.precision,
        "model": {"requested": tc.model, "base_model": _base_name(tc.model), "path": base_path, **settings},
        "measured_max_length": measured_max,
        "truncation": {"strategy": tc.truncation, "max_length": settings["max_length"], "splits": trunc},
        "throughput": {
            "train_examples_per_s": round(n_train * epochs_run / runtime, 1) if runtime else None,
            "train_tokens_per_s": round(tokens * epochs_run / runtime, 1) if runtime else None,
            "train_runtime_s": runtime,
            "inference_examples_per_s": round(n_pred / predict_seconds, 1) if predict_seconds else None,
            "peak_gpu_memory_mb": round(peak_mb, 1) if peak_mb is not None else None,
            "train_rows": n_train,
        },
        "training": {
            "global_step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
            "best_checkpoint_metric": state.best_metric,
            # It is the macro-F1 of the validation rows whose label the model trains on; metrics.validation
            # also counts the rows with an unseen label (all wrong), so the two differ.
            "best_checkpoint_rows": comparison.get("rows", 0),
            "best_checkpoint_excluded_unseen_label_rows": data.counts["unseen_label_rows"]["validation"],
            "best_step": int(Path(state.best_model_checkpoint).name.split("-")[-1])
            if state.best_model_checkpoint else None,
            "stopped_early": bool(state.max_steps and state.global_step < state.max_steps),
            "resumed_from": Path(resumed_from).name if resumed_from else None,
        },
        "probe": {"C": probe_c, "iterations": probe.iterations, "used_as_head_init": tc.lp_init},
        "metrics": metrics,
        "base_metrics": base_metrics,
        "verdict": verdict_info,
        "validation_held_out_from_train": data.validation_held_out,
        # What the held-out draw read from the ledger: the report sees a person's review change it.
        "held_out_excluded_sha256": relabelled_digest(curate_dir) if data.validation_held_out else None,
        "outputs": {"model": MODEL_DIR, "adapter": ADAPTER_DIR if "adapter" in saved else None,
                    "predictions": PREDICTIONS, "base_predictions": BASE_PREDICTIONS, "splits": SPLITS_FILE,
                    "trainer_log": TRAINER_LOG, "model_card": "README.md", "label_map": f"{MODEL_DIR}/{LABEL_MAP}",
                    "trackers": trackers},
        # The run each tracker logged to (a resumed training continues the interrupted one's).
        "tracker_runs": tracker_runs,
    }
    manifest.steps = [{"name": k, "seconds": v} for k, v in manifest.timings.items()]
    manifest.written = [TRAINER_LOG]
    # The manifest first: a kill between the two leaves a finished run with a spare checkpoint, not
    # a run that has lost both its checkpoint and its record of completion.
    manifest.write(out)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(out / CHECKPOINTS)
    return {"out_dir": str(out), "model_dir": saved["model"], "adapter_dir": saved.get("adapter"),
            "metrics": metrics, "base_metrics": base_metrics, "verdict": verdict_info}

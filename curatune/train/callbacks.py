"""Trainer callbacks: progress with ETA, the JSONL training log, the trackers' runs, and Ctrl-C that
saves a checkpoint."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from curatune.rundir import write_json


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressReporter(TrainerCallback):
    """A tqdm bar with ETA on a terminal; elsewhere (CI, nohup, a pipe) a plain line with the step, the
    time elapsed and the ETA at most every ``interval`` seconds; one progress line per evaluation
    everywhere. Every line goes through ``say``, so it has the prefix and the stream of the others."""

    def __init__(self, say: Callable[[str], None], bar: bool | None = None, interval: float = 30.0) -> None:
        self.say = say
        self.bar_wanted = sys.stderr.isatty() if bar is None else bar
        self.bar = None
        self.interval = interval
        self.t0 = 0.0
        self.step0 = 0
        self.last_line = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.t0, self.step0 = time.perf_counter(), state.global_step
        self.last_line = self.t0
        if self.bar_wanted:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                            dynamic_ncols=True, mininterval=0.5)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            return
        now = time.perf_counter()
        if not state.is_world_process_zero or now - self.last_line < self.interval:
            return
        self.last_line = now
        eta = self._eta(state)
        self.say(f"train: step {state.global_step}/{state.max_steps}, {_fmt_eta(now - self.t0)} elapsed"
                 + ("" if math.isnan(eta) else f", ETA {_fmt_eta(eta)}"))

    def _eta(self, state) -> float:
        done = state.global_step - self.step0
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        return (state.max_steps - state.global_step) / rate if rate > 0 else float("nan")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        f1, acc = metrics.get("eval_macro_f1"), metrics.get("eval_accuracy")
        eta = self._eta(state)
        line = (f"train: step {state.global_step}/{state.max_steps} (epoch {state.epoch:.2f}): validation "
                f"macro-F1 {f1:.4f}, accuracy {acc:.4f}" + ("" if math.isnan(eta) else f", ETA {_fmt_eta(eta)}"))
        if self.bar is None:
            self.say(line)
            return
        self.bar.set_postfix(val_f1=f"{f1:.3f}", refresh=False)
        # The bar is cleared while the line is written (to stderr, where the bar is) and redrawn below it.
        with self.bar.external_write_mode(file=sys.stderr):
            self.say(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonlLog(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, eval metrics) to a JSONL file as it happens,
    so a running job can be followed with ``tail -f``; the run rewrites it whole at the end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")


class TrackerRuns(TrainerCallback):
    """The run each tracker opened for this training, read once the trackers' callbacks (which come
    before ours) have started it: the manifest names it, so a reviewer can go from the run directory
    to its curves. Names and ids only: a tracking URI can hold credentials or a home folder.

    The runs are also written into the checkpoint folder's run state (``run_state``), so that a
    resumed training logs on into them (:func:`continue_tracker_runs`) instead of splitting its
    curves over two runs."""

    def __init__(self, run_state: Path | None = None) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.run_state = run_state

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        if "mlflow" in args.report_to:
            import mlflow

            if (run := mlflow.active_run()) is not None:
                self.runs["mlflow"] = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}
        if "wandb" in args.report_to:
            import wandb

            if (run := wandb.run) is not None:
                self.runs["wandb"] = {"run_id": run.id, "project": run.project,
                                      "mode": "offline" if run.offline else "online"}
        if self.runs and self.run_state is not None and self.run_state.is_file():
            write_json({**json.loads(self.run_state.read_text()), "tracker_runs": self.runs}, self.run_state)


@contextlib.contextmanager
def continue_tracker_runs(runs: dict[str, dict[str, Any]], report_to: list[str],
                          say: Callable[[str], None]) -> Iterator[None]:
    """While a resumed training runs: its trackers log into the runs the interrupted one opened
    (``runs``, as :class:`TrackerRuns` recorded them), so the curves continue where they stopped.

    MLflow's callback starts the run named by ``MLFLOW_RUN_ID`` (MLflow reopens a finished run);
    one the user set is left alone. W&B reads its environment once per process, so its run is
    opened here with the recorded id, and the Trainer's callback logs into the open run. A run the
    tracking store no longer has is said, and the training logs to a new one."""
    set_here: str | None = None
    if "mlflow" in report_to and "mlflow" in runs and not os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        run_id = runs["mlflow"]["run_id"]
        try:
            found = mlflow.MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
        except mlflow.exceptions.MlflowException:
            found = False
        if found:
            os.environ["MLFLOW_RUN_ID"] = set_here = run_id
        else:
            # Not the store's URI: it can hold credentials.
            say(f"train: the interrupted training's MLflow run {run_id} is not in this tracking store "
                "(MLFLOW_TRACKING_URI); this training logs to a new run")
    if "wandb" in report_to and "wandb" in runs:
        import wandb

        if wandb.run is None:
            wandb.init(project=runs["wandb"]["project"], id=runs["wandb"]["run_id"], resume="allow")
    try:
        yield
    finally:
        # MLflow takes the variable out of the environment when it starts the run; not when it failed first.
        if set_here and os.environ.get("MLFLOW_RUN_ID") == set_here:
            del os.environ["MLFLOW_RUN_ID"]


class InterruptCheckpoint(TrainerCallback):
    """First Ctrl-C (or SIGTERM): finish the current step, save a checkpoint, stop cleanly.

    A second Ctrl-C falls through to Python's default handler and stops at once. In a multi-process
    launch every process stops after the same step: a signal that reached one of them, or reached
    them on either side of a step's end, would otherwise leave the others waiting forever in the
    next step's gradient all-reduce.
    """

    def __init__(self) -> None:
        self.requested = False  # the decision to stop, the same in every process
        self._signalled = False  # a signal reached this process
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        self._signalled = True
        # The next one should not wait for the step to finish.
        signal.signal(signum, self._previous.get(signum, signal.default_int_handler))

    def on_train_begin(self, args, state, control, **kwargs):
        self.requested = self._signalled = False
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous.clear()

    def on_step_end(self, args, state, control, **kwargs):
        self.requested = _any_process(self._signalled, args.device)
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        # Stopping mid-epoch must not add an evaluation (or a second save) the full run never made;
        # at a whole epoch, or at the last step (a fractional last epoch ends mid-epoch), the full run
        # evaluates here too, so let it.
        whole = abs(state.epoch - round(state.epoch)) < 1e-6
        if self.requested and not whole and state.global_step < state.max_steps:
            control.should_evaluate = False
            control.should_save = False
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Give the signals back; also called when training raises, so a library caller's process is
        not left with a Ctrl-C that only sets a flag."""
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()


def _any_process(flag: bool, device) -> bool:
    """``flag`` or-ed over the processes of a multi-process launch (one small all-reduce on the
    launch's own backend: a CUDA tensor for NCCL, a CPU one for gloo); ``flag`` itself otherwise."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class EpochSeed(TrainerCallback):
    """Tells the length-grouped sampler which epoch starts, so a resumed run draws the same batches."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.sampler.set_epoch(math.floor(state.epoch + 1e-6))

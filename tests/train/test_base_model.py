"""Base models beyond the tiny BERT: a tokenizer without a pad token, a config that needs the model's
own code, sentencepiece-only tokenizers, and where a model not in the cache can be downloaded from."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import distribution
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from curatune.embeddings import load_tokenizer, resolve_model_path
from curatune.errors import CuratuneError
from curatune.train import train_model
from tests.conftest import error_lines
from tests.train.conftest import tiny_config


def _without_pad_token(tiny_model: Path, dest: Path, **tokens: str) -> Path:
    """The tiny model with a tokenizer that names no special token but ``tokens`` (as a GPT-2 style
    tokenizer names no pad token), and no padding in tokenizer.json either."""
    shutil.copytree(tiny_model, dest)
    tj = json.loads((dest / "tokenizer.json").read_text())
    (dest / "tokenizer.json").write_text(json.dumps({**tj, "padding": None}))
    tc = json.loads((dest / "tokenizer_config.json").read_text())
    tc = {k: v for k, v in tc.items() if not k.endswith("_token")}
    (dest / "tokenizer_config.json").write_text(json.dumps({**tc, "tokenizer_class": "PreTrainedTokenizerFast",
                                                            **tokens}))
    (dest / "special_tokens_map.json").unlink(missing_ok=True)
    return dest


@pytest.mark.parametrize(("tokens", "pad"), [
    ({"eos_token": "[SEP]", "unk_token": "[UNK]"}, "[SEP]"),
    ({"unk_token": "[UNK]", "sep_token": "[SEP]"}, "[UNK]"),
    ({"sep_token": "[SEP]"}, "[SEP]"),
])
def test_a_tokenizer_without_a_pad_token_pads_with_a_stand_in(tiny_model, tmp_path, tokens, pad):
    model_dir = _without_pad_token(tiny_model, tmp_path / "model", **tokens)
    assert AutoTokenizer.from_pretrained(model_dir).pad_token is None
    assert load_tokenizer(str(model_dir)).pad_token == pad


def test_a_model_whose_tokenizer_has_no_pad_token_trains_and_saves_the_stand_in(tiny_model, curated_dir, tmp_path):
    # tokenizer.pad raised a traceback in the frozen baseline (and the Trainer's collator after it).
    model_dir = _without_pad_token(tiny_model, tmp_path / "model", unk_token="[UNK]")
    train_model(tiny_config(model_dir, epochs=1), curated_dir, tmp_path / "out")
    saved = tmp_path / "out" / "model"
    tokenizer = AutoTokenizer.from_pretrained(saved)
    assert tokenizer.pad_token == "[UNK]"
    assert AutoConfig.from_pretrained(saved).pad_token_id == tokenizer.pad_token_id == 100


def _train_or_validate(cli_run, command: str, model_dir: Path, curated_dir: Path, tmp_path: Path) -> tuple[int, str]:
    """`curatune train` (or `validate`) with ``model_dir`` as the base model: its exit code and output."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nmodel = "{model_dir}"\n')
    args = ("train", curated_dir, "--out", tmp_path / "out", "-c", cfg) if command == "train" else ("validate", cfg)
    return cli_run(*args)


@pytest.mark.parametrize("command", ["train", "validate"])
def test_a_tokenizer_with_nothing_to_pad_with_is_refused_in_one_line(cli_run, tiny_model, curated_dir, tmp_path,
                                                                    command):
    model_dir = _without_pad_token(tiny_model, tmp_path / "model")
    code, text = _train_or_validate(cli_run, command, model_dir, curated_dir, tmp_path)
    assert code == 2 and error_lines(text) == [
        f"error: {model_dir}: the tokenizer has no padding token, nor an end-of-sequence, unknown or separator "
        "token to pad with: set pad_token in tokenizer_config.json"], text
    assert not (tmp_path / "out" / "manifest.json").exists()


def _own_code(config: dict) -> dict:
    return {**config, "model_type": "acme_bert",
            "auto_map": {"AutoConfig": "configuration_acme.AcmeConfig", "AutoModel": "modeling_acme.AcmeModel"}}


def _unknown_type(config: dict) -> dict:
    return {**config, "model_type": "acme_bert"}


@pytest.mark.parametrize(("change", "message"), [
    (_own_code, "model_type 'acme_bert' is built by the model's own code (config.json auto_map); curatune does "
                "not run a model's own code: use a model transformers supports natively"),
    (_unknown_type, "model_type 'acme_bert' is no architecture transformers "),
])
@pytest.mark.parametrize("command", ["train", "validate"])
def test_a_model_that_needs_its_own_code_is_refused_in_one_line(cli_run, tiny_model, curated_dir, tmp_path, change,
                                                                message, command):
    # `train` stopped with a traceback once the data was loaded, and `validate` said ok.
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    (model_dir / "config.json").write_text(json.dumps(change(json.loads((model_dir / "config.json").read_text()))))
    code, text = _train_or_validate(cli_run, command, model_dir, curated_dir, tmp_path)
    errors = error_lines(text)
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {model_dir}: {message}"), text
    assert "curatune does not run a model's own code" in errors[0] and "Traceback" not in text


@pytest.mark.parametrize("vocab", ["spm.model", "tokenizer.model", "sentencepiece.model"])
def test_a_sentencepiece_only_tokenizer_counts_as_a_tokenizer(tmp_path, vocab):
    # DeBERTa-v2/v3 (spm.model), Llama/Mistral (tokenizer.model), RemBERT (sentencepiece.model).
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "DebertaV2Tokenizer"}))
    (d / vocab).write_bytes(b"")
    (d / "model.safetensors").write_bytes(b"")
    assert resolve_model_path(str(d)) == str(d)


def test_a_model_not_in_the_cache_names_the_download_command_huggingface_hub_installs():
    scripts = {ep.name for ep in distribution("huggingface_hub").entry_points if ep.group == "console_scripts"}
    assert "hf" in scripts
    with pytest.raises(CuratuneError) as err:
        resolve_model_path("someorg/not-cached-model")
    assert "download it once elsewhere (hf download) or point to a local directory" in str(err.value)


def _tiny_decoder(tiny_model: Path, dest: Path) -> Path:
    """A 2-layer GPT-2 built from config, with the tiny model's tokenizer and no pooling config."""
    import torch
    from transformers import GPT2Config, GPT2Model

    shutil.copytree(tiny_model, dest, ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling"))
    vocab = AutoTokenizer.from_pretrained(dest).vocab_size
    torch.manual_seed(0)
    GPT2Model(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=128)).save_pretrained(dest)
    return dest


def test_a_decoder_only_model_trains_on_the_mean_of_its_states(tiny_model, curated_dir, tmp_path):
    """GPT-2's config names its width n_embd: sizing the head stopped with KeyError 'd_model'. Its first
    token attends to nothing after it, so [CLS]-style pooling would give the head one word per text."""
    model_dir = _tiny_decoder(tiny_model, tmp_path / "gpt2")
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "gpt2"
    out = tmp_path / "out"
    for method in ("full", "lora"):  # the BERT tests' 5e-3 makes this GPT-2's training diverge
        train_model(tiny_config(model_dir, method=method, epochs=1, lr=1e-4, head_lr=1e-4), curated_dir, out / method)
        manifest = json.loads((out / method / "manifest.json").read_text())
        assert manifest["model"]["pooling"] == "mean"
        assert manifest["metrics"]["validation"]["accuracy"] > 0.6  # three keyword-separable labels
    assert AutoConfig.from_pretrained(out / "full" / "model").encoder["model_type"] == "gpt2"


@pytest.mark.parametrize("command", ["train", "validate"])
def test_an_encoder_decoder_model_is_refused_in_one_line(cli_run, tiny_model, curated_dir, tmp_path, command):
    # Its forward wants decoder inputs: the frozen baseline stopped with a traceback.
    from transformers import T5Config

    model_dir = tmp_path / "t5"
    shutil.copytree(tiny_model, model_dir)  # weights are looked for first; these are never loaded
    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64).save_pretrained(model_dir)
    code, text = _train_or_validate(cli_run, command, model_dir, curated_dir, tmp_path)
    assert code == 2 and error_lines(text) == [
        f"error: {model_dir}: model_type 't5' is an encoder-decoder model; curatune trains a classifier on the "
        "hidden states of one stack: use an encoder (BERT, RoBERTa, DeBERTa, MiniLM, ...) or a decoder-only model",
    ], text

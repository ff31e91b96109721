"""What the train stage writes besides the model: prediction tables, the verdict, the model card."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curatune.evaluate.stats import Bootstrap
from curatune.formatting import signed
from curatune.train.data import IGNORE

BOOTSTRAP = 1000
CONFIDENCE = 0.95
DEFAULT_BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prediction_frame(frame: pl.DataFrame, split: str, probabilities: np.ndarray, labels: list[str]) -> pl.DataFrame:
    """row_id, split, label (gold), predicted, confidence, probabilities (list[f64] in ``labels`` order)."""
    pred = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
    return pl.DataFrame({
        "row_id": frame["row_id"],
        "split": [split] * frame.height,
        "label": frame["label"],
        "predicted": [labels[i] for i in pred],
        "confidence": probabilities.max(axis=1) if len(probabilities) else np.zeros(0),
        "probabilities": pl.Series(probabilities.tolist(), dtype=pl.List(pl.Float64)),
    }, schema_overrides={"label": pl.String, "predicted": pl.String})


def paired_comparison(gold: np.ndarray, tuned: np.ndarray, base: np.ndarray, n_classes: int, *,
                      seed: int = 0, resamples: int = BOOTSTRAP) -> dict[str, Any]:
    """Tuned minus base on the same rows: accuracy and macro-F1, with paired bootstrap intervals
    (the evaluation stage's ``Bootstrap``, so a run's verdict and its evaluation resample alike)."""
    keep = gold != IGNORE
    gold, tuned, base = gold[keep], tuned[keep], base[keep]
    n = len(gold)
    if n == 0:
        return {"rows": 0}
    boot = Bootstrap(n, resamples=resamples, confidence=CONFIDENCE, seed=seed)
    hit_t, hit_b = tuned == gold, base == gold
    f1_t, f1_b = boot.macro_f1(gold, tuned, n_classes), boot.macro_f1(gold, base, n_classes)
    out: dict[str, Any] = {"rows": n, "resamples": resamples, "confidence": CONFIDENCE}
    for name, (t_point, b_point, diff) in {
        "accuracy": (float(hit_t.mean()), float(hit_b.mean()), boot.paired_difference(hit_t, hit_b)),
        "macro_f1": (f1_t.value, f1_b.value, boot.macro_f1_difference(gold, tuned, base, n_classes)),
    }.items():
        out[name] = {"tuned": t_point, "base": b_point, "difference": diff.value, "ci": [diff.low, diff.high]}
    out["tuned_only_correct"] = int((hit_t & ~hit_b).sum())
    out["base_only_correct"] = int((~hit_t & hit_b).sum())
    return out


def verdict(comparison: dict[str, Any], *, same_model: bool = False) -> dict[str, Any]:
    """Whether fine-tuning beat the frozen encoder + linear probe on validation, said plainly.
    ``same_model``: nothing was fine-tuned (the frozen method's head is that probe)."""
    if same_model:
        return {"beats_frozen_baseline": None, "metric": "accuracy", **comparison,
                "summary": "nothing fine-tuned: method frozen with lp_init, the model is the frozen baseline"}
    if not comparison.get("rows"):
        return {"beats_frozen_baseline": None, "summary": "no labelled validation rows: nothing to compare"}
    acc = comparison["accuracy"]
    lo, hi = acc["ci"]
    pct = int(round(comparison["confidence"] * 100))
    detail = (f"validation accuracy {acc['tuned']:.4f} vs {acc['base']:.4f} ({signed(acc['difference'])}, "
              f"{pct}% CI {signed(lo)} to {signed(hi)}, n={comparison['rows']})")
    if lo > 0:
        beats, summary = True, f"fine-tuning beat the frozen baseline: {detail}"
    elif hi < 0:
        beats, summary = False, f"fine-tuning is WORSE than the frozen baseline: {detail}"
    else:
        beats, summary = False, f"fine-tuning did NOT clearly beat the frozen baseline (interval includes 0): {detail}"
    return {"beats_frozen_baseline": beats, "summary": summary, "metric": "accuracy", **comparison}


def split_metrics(frame: pl.DataFrame) -> dict[str, float]:
    from sklearn.metrics import f1_score

    known = frame.filter(pl.col("label").is_not_null())
    if known.height == 0:
        return {}
    gold, pred = known["label"].to_list(), known["predicted"].to_list()
    return {"accuracy": float(np.mean([g == p for g, p in zip(gold, pred, strict=True)])),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)), "rows": known.height}


def _yaml_str(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _truncation_note(settings: dict[str, Any]) -> str:
    """How inputs were cut in training, and how to cut them the same way."""
    strategy, max_length = settings.get("truncation", "head"), settings.get("max_length")
    if max_length is None:
        return ""
    if strategy == "head_tail":
        return (f"Training kept the head and tail of inputs longer than {max_length} tokens; the tokenizer alone "
                "cannot: cut them with `curatune.train.tokens.encode` to reproduce the predictions.")
    return (f"Inputs were cut to {max_length} tokens ({'the end' if strategy == 'tail' else 'the start'} kept); "
            "the saved tokenizer cuts the same way with `truncation=True`.")


def _adapter_note(method: str) -> str:
    if method != "lora":
        return ""
    return ("\nThe LoRA adapter alone (`adapter/`, classification head included) goes back on the base model "
            "with `curatune.train.encoder.load_tuned_model(run_dir, adapter=True)`, which rebuilds the pooled "
            "classifier it was trained on; a plain `AutoModelForSequenceClassification` of the base model is "
            "another architecture and does not take it.\n")


def _unseen_note(unseen: int, scored: int | None) -> str:
    if not unseen:
        return ""
    return (f" The checkpoint was chosen (and the verdict compares) on the {scored} validation rows with a label "
            f"seen in training; the table also counts the {unseen} rows with an unseen label, all wrong.")


def model_card(*, base_name: str, method: str, labels: list[str], data_sha256: str, metrics: dict[str, Any],
               base_metrics: dict[str, Any], verdict_info: dict[str, Any], settings: dict[str, Any],
               unseen_validation_rows: int = 0) -> str:
    """A Hugging Face model card: YAML metadata (base model, data hash, metrics) and a short text.
    ``unseen_validation_rows``: validation rows whose label train never had; the table counts them,
    the checkpoint choice and the verdict cannot."""
    tags = ["curatune", "text-classification"] + (["peft", "lora"] if method == "lora" else [])
    lines = ["---", "library_name: transformers", f"base_model: {_yaml_str(base_name)}"]
    # The embedded default's weights are Apache-2.0; another base model's licence is its own to state.
    lines += ["license: apache-2.0"] if base_name == DEFAULT_BASE_NAME else []
    lines += ["pipeline_tag: text-classification", "tags:"] + [f"- {t}" for t in tags]
    lines += ["datasets:", f"- {_yaml_str('curated:sha256:' + data_sha256)}", "model-index:",
              f"- name: {_yaml_str('curatune-' + method)}", "  results:"]
    for split, m in metrics.items():
        if not m:
            continue
        lines += ["  - task:", "      type: text-classification", "    dataset:",
                  f"      name: {_yaml_str('curated ' + split)}", "      type: curated",
                  f"      split: {split}", "    metrics:"]
        for key, kind in (("accuracy", "accuracy"), ("macro_f1", "f1")):
            lines += [f"    - type: {kind}", f"      value: {m[key]:.4f}", f"      name: {split} {key}"]
    lines.append("---")
    rows = "\n".join(
        f"| {split} | {m.get('rows', 0)} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
        f"{base_metrics.get(split, {}).get('accuracy', float('nan')):.4f} | "
        f"{base_metrics.get(split, {}).get('macro_f1', float('nan')):.4f} |"
        for split, m in metrics.items() if m
    )
    setting_lines = "\n".join(f"- `{k}`: {v}" for k, v in settings.items())
    return f"""{chr(10).join(lines)}

# curatune classifier ({method})

Fine-tuned from `{base_name}` on a curated dataset (curated.parquet sha256 `{data_sha256[:16]}…`) to
classify into {len(labels)} labels. The head reads the encoder's {settings.get('pooling', 'mean')}-pooled,
L2-normalised sentence vector, the way the base model was pretrained.

## Results

| split | rows | accuracy | macro-F1 | frozen baseline accuracy | frozen baseline macro-F1 |
|---|---|---|---|---|---|
{rows}

The frozen baseline is the base encoder's pooled embeddings with a logistic regression (C=10) fitted
on the same training rows.

**Verdict:** {verdict_info.get('summary', '')}

The validation rows also chose the checkpoint kept, so the fine-tuned validation figures lean high.\
{_unseen_note(unseen_validation_rows, verdict_info.get('rows'))}
Accuracy per customer group, forgetting and calibration are not on this card: `curatune evaluate`
measures them and the run's audit report shows them.

## Training

{setting_lines}

## Use

```python
import curatune.train  # registers the model class with transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained("model")
tokenizer = AutoTokenizer.from_pretrained("model")
```

Without curatune, transformers alone loads it from the modeling file saved beside the weights
(`modeling.py`, which imports only torch and transformers; read it first):
`AutoModelForSequenceClassification.from_pretrained("model", trust_remote_code=True)`.
{_adapter_note(method)}

{_truncation_note(settings)}

Labels (class id order): {", ".join(f"`{lab}`" for lab in labels[:50])}{" …" if len(labels) > 50 else ""}
"""

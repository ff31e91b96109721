"""The shape every curation step returns, and the registry that names steps.

Modelled on cleanlab Datalab's issue managers (one result shape per check: per-row flag, per-row
score, summary) and datatrove's filters (a step keeps a row or drops it with a reason, and keeps
stats). The pipeline, the ledger, the reports and the tests treat every step alike because of it.

A step's ``run`` gets the rows still in play (or all rows, for a step that rewrites text, so that
no written file keeps personal data) and returns a :class:`StepResult` whose ``rows`` table has

    row_id    str    one row per input row of the step
    is_issue  bool   the check found something
    score     f64    quality in [0, 1]: lower means more likely a problem (cleanlab's convention)
    action    str    "keep" | "drop" | "relabel"
    reason    str    reason code when is_issue (e.g. "exact_duplicate"), else null

plus optional columns: ``new_label`` (for "relabel"), ``duplicate_of``, and step-specific score
columns, which go into the ledger under their own names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from curatune.config import Config

ACTIONS = ("keep", "drop", "relabel")
# Optional columns the pipeline itself folds into the ledger's shared columns.
SHARED_COLUMNS = ("new_label", "duplicate_of")
REQUIRED_COLUMNS = {"row_id": pl.String, "is_issue": pl.Boolean, "score": pl.Float64, "action": pl.String,
                    "reason": pl.String}


@dataclass
class StepContext:
    """What a step may know besides its rows: configuration and where it may cache things."""

    config: Config
    out_dir: Path
    run_id: str
    group_cols: list[str] = field(default_factory=list)
    # Every label in the input, whatever rows earlier steps dropped (a reviewer may choose any).
    labels: list[str] = field(default_factory=list)
    # The annotations pulled from Label Studio (reviews.parquet), applied by the last step; None without.
    reviews: pl.DataFrame | None = None

    def decided_rows(self, view: pl.DataFrame, *, text_is_final: bool = True) -> frozenset[str]:
        """The rows of ``view`` (row_id, text, label) the review step will settle: a policy that would drop
        or relabel them leaves them to that decision. Votes that step sets aside (on a text the row no
        longer has, not one choice among the labels) settle nothing, nor do unsure or conflicting ones.
        ``text_is_final`` false: a later step still rewrites the text the reviewer saw (anonymisation),
        so the text cannot be compared yet."""
        if self.reviews is None:
            return frozenset()
        from curatune.curate.reviews import decided_rows  # reviews.py imports the curation pipeline

        return decided_rows(self.reviews, view, self.labels, self.config.labelstudio.conflict_rule,
                            check_text=text_is_final)

    @property
    def cache_dir(self) -> Path:
        d = self.out_dir / "cache"
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass
class Gate:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str = ""


@dataclass
class StepResult:
    rows: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    # Rewritten text for rows (row_id, text[, turns]); used by anonymisation.
    text: pl.DataFrame | None = None
    gates: list[Gate] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.rows.columns]
        if missing:
            raise ValueError(f"step result lacks columns {missing}")
        self.rows = self.rows.with_columns(
            [pl.col(c).cast(t) for c, t in REQUIRED_COLUMNS.items()]
        )
        bad = set(self.rows["action"].unique().to_list()) - set(ACTIONS)
        if bad:
            raise ValueError(f"unknown actions {sorted(bad)}")
        if self.rows.filter(pl.col("action") == "relabel").height and "new_label" not in self.rows.columns:
            raise ValueError("a relabel action needs a new_label column")

    @property
    def extra_columns(self) -> list[str]:
        """Step-specific columns that go into the ledger (besides the shared ones)."""
        return [c for c in self.rows.columns if c not in REQUIRED_COLUMNS and c not in SHARED_COLUMNS]


class CurationStep(ABC):
    """One curation check. Subclasses set ``name`` and are registered with :func:`register_step`."""

    name: ClassVar[str]
    # True for steps that rewrite text: they see dropped and unusable rows (null text) too, so
    # excluded.parquet is clean.
    sees_all_rows: ClassVar[bool] = False
    # True for steps that need labels (rows with a null label are excluded before them).
    needs_labels: ClassVar[bool] = False
    # The ledger columns the step adds besides ``<name>_score``: declared, so an input column of the
    # same name is refused before any work (see ``ledger_column_names``).
    ledger_columns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_input(cls, rows: pl.DataFrame, config: Config, group_cols: list[str]) -> None:
        """Refuse input this step cannot handle, before any output is touched (raise CuratuneError)."""
        return None  # most steps take any input the loader accepts

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def run(self, table: pl.DataFrame) -> StepResult:
        """Check ``table`` (canonical dataset columns plus ``active``) and return one row per row."""

    def score_against_truth(self, result: StepResult, truth: pl.DataFrame) -> dict[str, Any]:
        """Compare with planted ground truth (demo data, benchmarks); empty when not applicable."""
        return {}


_REGISTRY: dict[str, type[CurationStep]] = {}


def register_step(cls: type[CurationStep]) -> type[CurationStep]:
    """Register a step under ``cls.name``; a second step with the same name is refused."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__name__} has no name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a curation step named {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls


def registered_steps() -> dict[str, type[CurationStep]]:
    _load_builtin_steps()
    return dict(_REGISTRY)


def ledger_column_names() -> dict[str, str]:
    """Every ledger column a registered step can add, with the step's name. A later step (the reviews
    applied after training, say) writes into the same ledger, so all are reserved, not only this run's."""
    return {col: name for name, cls in registered_steps().items()
            for col in (f"{name}_score", *cls.ledger_columns)}


def get_step(name: str) -> type[CurationStep]:
    steps = registered_steps()
    if name not in steps:
        from curatune.errors import CuratuneError

        raise CuratuneError(f"unknown curation step '{name}' (known: {', '.join(sorted(steps))})")
    return steps[name]


def _load_builtin_steps() -> None:
    # Importing the modules runs their @register_step decorators.
    import importlib

    for mod in ("dedup", "anonymise", "label_issues", "reviews"):
        importlib.import_module(f"curatune.curate.{mod}")


def issue_rows(row_ids: pl.Series, *, is_issue: Any, score: Any, reason: Any, action: Any = "keep",
               **extra: Any) -> pl.DataFrame:
    """Build the per-row table of a StepResult from arrays or scalars."""
    n = len(row_ids)

    def col(v: Any, name: str) -> pl.Series:
        if isinstance(v, pl.Series):
            return v.alias(name)
        if hasattr(v, "__len__") and not isinstance(v, str):
            return pl.Series(name, v)
        return pl.Series(name, [v] * n)

    cols = [row_ids.alias("row_id"), col(is_issue, "is_issue"), col(score, "score").cast(pl.Float64),
            col(action, "action"), col(reason, "reason").cast(pl.String)]
    cols += [col(v, k) for k, v in extra.items()]
    return pl.DataFrame(cols)

"""Evaluation: accuracy with intervals, base vs tuned, forgetting, fairness (see run.py)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

METRICS_DIR = Path(__file__).parent / "metrics"
METRIC_NAMES = ("accuracy", "f1", "confusion_matrix", "ece")


@lru_cache(maxsize=1)
def metric_modules() -> dict:
    """The project's own `evaluate.Metric` modules, loaded by file path: loading a metric by its hub
    name would fetch it from the hub, and nothing may be fetched at run time."""
    import evaluate

    return {name: evaluate.load(str(METRICS_DIR / f"{name}.py")) for name in METRIC_NAMES}

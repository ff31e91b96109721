"""Number formatting shared by the stages' one-line summaries and the reports."""

from __future__ import annotations


def signed(v: float, digits: int = 4) -> str:
    """``v`` with its sign, rounded first: a bound of -2.8e-18 (float noise on a true 0) reads
    "+0.0000", not "-0.0000"."""
    return f"{round(v, digits) + 0.0:+.{digits}f}"

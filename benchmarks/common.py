"""Shared by every benchmark: the header (command, machine, date) and markdown tables.

Each benchmark module ``bench_<name>.py`` defines ``run(data_dir: Path, quick: bool) -> str | None``
that measures our code and its anchor tool side by side in the same process and returns a markdown
section (None when it cannot be measured on this machine, which keeps the earlier results); ``run_all`` writes it to
``benchmarks/results/<name>.md`` and rebuilds BENCHMARKS.md.
Numbers come only from these runs, never typed by hand.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def code_version() -> str:
    """The commit measured (and whether the tree had changes), so a stale section can be told apart."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        # The results an earlier benchmark of the same run just wrote are no change to the code measured.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results", ":(exclude)BENCHMARKS.md"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + (" with uncommitted changes" if dirty else "")


def header(title: str, command: str | None = None) -> str:
    cmd = command or "python -m benchmarks.run_all " + " ".join(sys.argv[1:])
    return (f"## {title}\n\n- command: `{cmd.strip()}`\n- machine: {machine()}\n"
            f"- date: {dt.date.today().isoformat()}\n- code: {code_version()}\n\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out) + "\n"

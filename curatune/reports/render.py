"""Render the report pages from the collected content with Jinja2 (autoescape on for everything).

Pages: ``audit.html`` (verdict + all three stages, the one to read), ``curation.html``,
``training.html``, ``evaluation.html`` (one stage each) and ``audit.json`` (the content itself).
The only markup not produced by escaping is the chart SVG from :mod:`curatune.reports.svg`,
which escapes every string it places.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader, StrictUndefined, Undefined
from markupsafe import Markup

from curatune.formatting import signed
from curatune.reports import svg
from curatune.rundir import AUDIT_HTML, AUDIT_JSON

PAGES = {
    AUDIT_HTML: ("Audit report", ("verdict", "curation", "training", "evaluation")),
    "curation.html": ("Curation report", ("curation",)),
    "training.html": ("Training report", ("training",)),
    "evaluation.html": ("Evaluation report", ("evaluation",)),
}


class NotAvailable(ChainableUndefined):
    """A key a stage did not write renders as "not available" (and chains: ``a.b.c`` is fine)."""

    def __str__(self) -> str:
        return "not available"


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None or isinstance(v, Undefined):
        return "not available"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "not available"
        if v.is_integer() and abs(v) >= 1000:
            return f"{int(v):,}"
        if v and abs(v) < 0.5 * 10 ** -digits:
            # A learning rate of 2e-5 or a p-value of 3e-7 read "0.000", as if nothing or unset.
            return f"{v:.2g}"
        return f"{v:,.{digits}f}"
    return str(v)


def fmt_beside(v: Any, other: Any) -> str:
    """``v`` with as many digits as it takes to differ from ``other`` when they differ: a failed gate
    must not read "0.800 | >= 0.800"."""
    digits = 3
    while _number(v) and _number(other) and v != other and fmt_num(v, digits) == fmt_num(other, digits) \
            and digits < 12:
        digits += 1
    return fmt_num(v, digits)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fmt_pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if _number(v) else "not available"


def fmt_signed(v: Any, digits: int = 4) -> str:
    return signed(v, digits) if _number(v) else "not available"


def slug(s: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(s).lower()).strip("-") or "x"


class Charts:
    """Chart builders the templates call; each takes a piece of the content and returns SVG markup."""

    def scalar_bars(self, b: dict[str, Any]) -> Markup | None:
        rows = [r for r in b["rows"] if isinstance(r.get("value"), int | float) and not isinstance(r["value"], bool)]
        with_ci = [r for r in rows if r.get("low") is not None]
        if len(with_ci) < 2 or not all(0 <= r["value"] <= 1 for r in with_ci):
            return None
        groups = [svg.BarGroup(r["name"], [svg.Bar("", r["value"], r.get("low"), r.get("high"))]) for r in with_ci]
        return svg.bar_chart(f"chart-{b['anchor']}", b["title"].capitalize(), groups, max_value=1.0,
                             desc=_describe(groups))

    def table_bars(self, b: dict[str, Any]) -> Markup:
        spec = b["chart"]
        groups = [svg.BarGroup(x["label"], [svg.Bar("", x["value"], x.get("low"), x.get("high"))])
                  for x in spec["bars"]]
        title = f"{spec['metric'].replace('_', ' ')} by {spec['label_col'].replace('_', ' ') or 'row'}"
        return svg.bar_chart(f"chart-{b['anchor']}", title, groups, max_value=1.0, desc=_describe(groups))

    def comparison(self, b: dict[str, Any]) -> Markup | None:
        groups = [svg.BarGroup(r["metric"], [svg.Bar("fine-tuned", r["tuned"].get("value"), r["tuned"].get("low"),
                                                     r["tuned"].get("high")),
                                             svg.Bar("base", r["base"].get("value"), r["base"].get("low"),
                                                     r["base"].get("high"))])
                  for r in b["rows"]]
        if not groups:
            return None
        return svg.bar_chart(f"chart-{b['anchor']}", "Fine-tuned and base model", groups,
                             series=("fine-tuned", "base"), max_value=1.0, desc=_describe(groups))

    def group_accuracy(self, b: dict[str, Any]) -> Markup | None:
        groups = [svg.BarGroup(g["group"], [svg.Bar("", g["accuracy"], g["low"], g["high"],
                                                    " (too small)" if g["too_small"] else "")])
                  for g in b["groups"]]
        if not groups:
            return None
        return svg.bar_chart(f"chart-{b['anchor']}", f"Accuracy by {b['title']}", groups, max_value=1.0,
                             desc=_describe(groups))

    def line(self, b: dict[str, Any]) -> Markup:
        spec = b["line"]
        series = [svg.Series(s["name"], [(p[0], p[1]) for p in s["points"]]) for s in spec["series"]]
        desc = "; ".join(f"{s.name}: " + ", ".join(f"{x:g}: {y:.4f}" for x, y in s.points) for s in series)
        return svg.line_chart(f"chart-{b['anchor']}-line", spec["title"], series, x_label=spec["x_label"],
                              y_label=spec["y_label"], desc=desc[:1500])

    def confusion(self, b: dict[str, Any]) -> Markup:
        n = len(b["labels"])
        correct = sum(b["matrix"][i][i] for i in range(n))
        total = sum(sum(r) for r in b["matrix"])
        desc = f"Confusion matrix over {n} classes: {correct:,} of {total:,} predictions on the diagonal."
        return svg.heatmap(f"chart-{b['anchor']}", "Confusion matrix", b["heatmap_labels"], b["heatmap_matrix"],
                           desc=desc, row_totals=b["heatmap_row_totals"])

    def calibration(self, b: dict[str, Any]) -> Markup:
        bins = [(float(x["confidence"]), float(x["accuracy"]), int(x["count"] or 0)) for x in b["bins"]
                if isinstance(x.get("confidence"), int | float) and isinstance(x.get("accuracy"), int | float)]
        desc = "Reliability diagram: " + "; ".join(f"confidence {c:.2f} accuracy {a:.2f} (n={n})" for c, a, n in bins)
        return svg.calibration_plot(f"chart-{b['anchor']}", "Calibration", bins, desc=desc[:1500])

    def reasons(self, cu: dict[str, Any]) -> Markup:
        groups = [svg.BarGroup(r["reason"].replace("_", " "), [svg.Bar("", r["rows"])])
                  for r in cu["outcome"]["by_reason"]]
        return svg.bar_chart("chart-curation-reasons", "Rows per reason code", groups, digits=0,
                             desc=_describe(groups))

    def pii(self, cu: dict[str, Any]) -> Markup:
        groups = [svg.BarGroup(e["type"], [svg.Bar("", e["count"])]) for e in cu["pii"]["entities_by_type"]]
        return svg.bar_chart("chart-curation-pii", "Personal-data entities by type", groups, digits=0,
                             desc=_describe(groups))

    def group_shares(self, g: dict[str, Any]) -> Markup:
        groups = [svg.BarGroup(r["group"], [svg.Bar("dropped", r["dropped_share"]),
                                            svg.Bar("flagged", r["flagged_share"])]) for r in g["rows"]]
        top = max([r["dropped_share"] for r in g["rows"]] + [r["flagged_share"] for r in g["rows"]] + [0.01])
        return svg.bar_chart(f"chart-{g['anchor']}",
                             f"Share of rows dropped and flagged by {g['column']}", groups,
                             series=("dropped", "flagged"), max_value=min(1.0, top * 1.15), percent=True,
                             desc=_describe(groups, percent=True))

    def loss(self, t: dict[str, Any]) -> Markup | None:
        return self._lines(t, "chart-training-loss", "Loss by step", ("training loss", "validation loss"), "loss")

    def validation(self, t: dict[str, Any]) -> Markup | None:
        return self._lines(t, "chart-training-validation", "Validation metrics by step",
                           ("validation accuracy", "validation macro-F1"), "score", y_range=(None, 1.0))

    def _lines(self, t: dict[str, Any], chart_id: str, title: str, names: tuple[str, ...], y_label: str,
               y_range: tuple[float | None, float | None] = (None, None)) -> Markup | None:
        series = [svg.Series(n, [(p[0], p[1]) for p in t["curves"]["series"][n]])
                  for n in names if n in t["curves"]["series"]]
        if not series:
            return None
        desc = "; ".join(f"{s.name}: {len(s.points)} points from {s.points[0][1]:.4f} to {s.points[-1][1]:.4f}"
                         for s in series)
        return svg.line_chart(chart_id, title, series, x_label="step", y_label=y_label, desc=desc,
                              y_min=y_range[0], y_max=y_range[1])


def _describe(groups: list[svg.BarGroup], percent: bool = False) -> str:
    parts = []
    for g in groups[:40]:
        shown = [("not available" if b.value is None else fmt_pct(b.value) if percent else fmt_num(b.value))
                 for b in g.bars]
        vals = ", ".join(f"{b.label + ' ' if b.label else ''}{v}" for b, v in zip(g.bars, shown, strict=True))
        parts.append(f"{g.label}: {vals}")
    return "; ".join(parts) + ("; …" if len(groups) > 40 else "")


def environment(strict: bool = False) -> Environment:
    """``strict``: a missing key raises instead of showing "not available" (the tests render a complete
    run this way, so a misspelt key in a template cannot hide behind the lenient default)."""
    env = Environment(loader=PackageLoader("curatune.reports", "templates"), autoescape=True,
                      undefined=StrictUndefined if strict else NotAvailable, keep_trailing_newline=True)
    env.filters.update(num=fmt_num, beside=fmt_beside, pct=fmt_pct, signed=fmt_signed, slug=slug)
    env.globals["charts"] = Charts()
    return env


def render_pages(content: dict[str, Any], *, strict: bool = False) -> dict[str, str]:
    """Every page's text, keyed by file name."""
    env = environment(strict)
    css = Markup(resources.files("curatune.reports").joinpath("templates/style.css").read_text(encoding="utf-8"))
    macros = env.get_template("_macros.html.j2").module
    page = env.get_template("page.html.j2")
    out = {}
    for name, (title, parts) in PAGES.items():
        others = [(PAGES[o][0], o) for o in PAGES if o != name]
        out[name] = page.render(c=content, m=macros, css=css, page_title=title, parts=parts, others=others)
    out[AUDIT_JSON] = json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out

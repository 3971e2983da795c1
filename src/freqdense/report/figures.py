"""Curves for the report: series from ``log.jsonl`` rows and a grid of titled, labelled plots drawn to PNG bytes.

matplotlib's Agg canvas is used directly (no pyplot, no global state), as everywhere else in freqdense.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Panel", "numeric_keys", "render_panels", "series"]

#: Row keys of ``log.jsonl`` that are bookkeeping, not curves.
BOOKKEEPING = frozenset({"kind", "step", "epoch", "images_per_s", "time", "seconds"})
_LINE_STYLES = ("-", "--", ":", "-.")


@dataclass
class Panel:
    """One plot: a title, the y label and one line per label (``{label: (steps, values)}``)."""

    title: str
    ylabel: str
    lines: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    log_y: bool = False
    #: Lines of one group share a colour and differ in line style (e.g. the seeds of one ablation row).
    groups: dict[str, str] = field(default_factory=dict)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(rows: Sequence[Mapping[str, Any]], key: str, *, kind: str | None = None) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of ``key`` over the rows of one ``kind`` (``train``/``eval``; None: all rows)."""
    steps: list[float] = []
    values: list[float] = []
    for row in rows:
        if kind is not None and row.get("kind") != kind:
            continue
        step, value = row.get("step"), row.get(key)
        if _finite(step) and _finite(value):
            steps.append(float(step))
            values.append(float(value))
    return steps, values


def numeric_keys(rows: Sequence[Mapping[str, Any]], *, kind: str) -> list[str]:
    """Keys with at least one finite number in the rows of ``kind``, in first-seen order, bookkeeping excluded."""
    keys: dict[str, None] = {}
    for row in rows:
        if row.get("kind") == kind:
            for k, v in row.items():
                if k not in BOOKKEEPING and _finite(v):
                    keys.setdefault(k, None)
    return list(keys)


def render_panels(panels: Sequence[Panel], *, title: str | None = None, columns: int = 3, dpi: int = 100) -> bytes:
    """Draw the panels on a grid (at most ``columns`` wide) and return the PNG bytes.

    Every panel gets its title, ``step`` on the x axis, its y label and a legend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [p for p in panels if any(steps for steps, _ in p.lines.values())]
    if not panels:
        raise ValueError("render_panels: no panel has data")
    cols = min(columns, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.1 * nrows + (0.4 if title else 0.0)), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        groups = list(dict.fromkeys(panel.groups.get(label, label) for label in panel.lines))
        seen: dict[str, int] = {}
        for label, (steps, values) in panel.lines.items():
            group = panel.groups.get(label, label)
            style = _LINE_STYLES[seen.get(group, 0) % len(_LINE_STYLES)]
            seen[group] = seen.get(group, 0) + 1
            if steps:
                marker = "o" if len(steps) < 25 else None
                color = f"C{groups.index(group) % 10}"
                ax.plot(steps, values, style, color=color, marker=marker, markersize=3, linewidth=1.4, label=label)
        positive = all(v > 0 for _, values in panel.lines.values() for v in values)
        if panel.log_y and positive:
            ax.set_yscale("log")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()

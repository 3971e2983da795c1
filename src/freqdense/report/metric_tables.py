"""Metric tables: headline metrics (``task/metric``) apart from per-class ones (``task/metric/<class>``).

Flat metric dicts are what ``metrics.json`` (``"val"``), ``log.jsonl`` eval rows and ``demo.json`` rows hold:
``{"semantic/miou": 0.41, "semantic/iou/wall": 0.7, "depth/rmse": 0.52, ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..metrics import HIGHER_IS_BETTER
from .html import table

__all__ = ["arrow", "headline_keys", "higher_is_better", "metrics_by_row", "metrics_by_column", "per_class_table"]


def higher_is_better(key: str) -> bool | None:
    """Direction of a metric key (``"depth/rmse"`` -> False); None when unknown."""
    parts = key.split("/")
    metric = parts[1] if len(parts) > 1 else parts[0]
    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    if metric == "iou" or metric.startswith("boundary_") or metric in ("accuracy", "f1", "precision", "recall"):
        return True
    return None


def arrow(key: str) -> str:
    """``↑`` (higher is better), ``↓`` or ``""``."""
    direction = higher_is_better(key)
    return "" if direction is None else ("↑" if direction else "↓")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def headline_keys(*metric_dicts: Mapping[str, Any]) -> list[str]:
    """``task/metric`` keys with a number (or null) in any of the dicts, in first-seen order."""
    keys: dict[str, None] = {}
    for metrics in metric_dicts:
        for key, value in metrics.items():
            if key.count("/") <= 1 and (_number(value) or value is None):
                keys.setdefault(key, None)
    return list(keys)


def _best(values: Sequence[Any], direction: bool | None) -> int | None:
    finite = [(v, i) for i, v in enumerate(values) if _number(v) and math.isfinite(v)]
    if direction is None or len(finite) < 2 or len({v for v, _ in finite}) < 2:
        return None
    return (max if direction else min)(finite)[1]


def metrics_by_column(columns: Mapping[str, Mapping[str, Any]], *, css_id: str) -> str:
    """One row per headline metric, one column per source (e.g. final / best checkpoint / trivial)."""
    keys = headline_keys(*columns.values())
    rows, best = [], []
    for i, key in enumerate(keys):
        values = [columns[c].get(key) for c in columns]
        rows.append([key, arrow(key), *values])
        j = _best(values, higher_is_better(key))
        if j is not None:
            best.append((i, j + 2))
    return table(["metric", "better", *columns], rows, css_id=css_id, css_class="metrics", row_keys=keys, best=best)


def metrics_by_row(
    rows: Sequence[tuple[str, Sequence[Any], Mapping[str, Any]]],
    *,
    lead: Sequence[str],
    css_id: str,
    keys: Sequence[str] | None = None,
) -> str:
    """One row per named entry (``(key, lead cells, metrics)``), one column per headline metric with its arrow;
    the best value of each column is highlighted."""
    keys = list(keys) if keys is not None else headline_keys(*(m for _, _, m in rows))
    body = [[*cells, *(metrics.get(k) for k in keys)] for _, cells, metrics in rows]
    best = []
    for j, key in enumerate(keys):
        i = _best([m.get(key) for _, _, m in rows], higher_is_better(key))
        if i is not None:
            best.append((i, len(lead) + j))
    header = [*lead, *(f"{k} {arrow(k)}".strip() for k in keys)]
    return table(header, body, css_id=css_id, css_class="metrics", row_keys=[k for k, _, _ in rows], best=best)


def per_class_table(columns: Mapping[str, Mapping[str, Any]], *, css_id: str) -> str:
    """Per-class metrics (``task/metric/<class>``): one row per class, one column per (source, metric).

    Returns an empty string when no per-class metric exists.
    """
    groups: dict[str, None] = {}  # "semantic/iou"
    classes: dict[str, None] = {}
    for metrics in columns.values():
        for key, value in metrics.items():
            if key.count("/") >= 2 and (_number(value) or value is None):
                prefix, _, name = key.rpartition("/")
                groups.setdefault(prefix, None)
                classes.setdefault(name, None)
    if not groups:
        return ""
    header, cells = ["class"], []
    for group in groups:
        for source in columns:
            header.append(f"{group} {arrow(group)}".strip() + (f" ({source})" if len(columns) > 1 else ""))
            cells.append((source, group))
    rows = [[name, *(columns[s].get(f"{g}/{name}") for s, g in cells)] for name in classes]
    return table(header, rows, css_id=css_id, css_class="per-class", row_keys=list(classes))

"""Multi-task performance Δm (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021, Eq. 10).

    Δm = (100 % / T) · Σ_t  s_t · (M_mt,t − M_st,t) / M_st,t,   s_t = +1 if higher is better else −1

where ``M_st`` is the single-task baseline with the same backbone (the denominator is always the baseline).
By default each task enters with one metric, as in Multi-Task-Learning-PyTorch's
``calculate_multi_task_performance`` (semantic: mIoU, depth: RMSE). Passing several metrics for a task, or
``metrics="all"``, first averages that task's relative changes over its metrics and then over tasks (LibMTL's
Δp variant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from ..errors import ConfigError

__all__ = ["delta_m", "delta_m_terms", "DEFAULT_DELTA_M_METRICS", "HIGHER_IS_BETTER"]

#: One metric per task, as MTL-PyTorch: task -> (metric key, higher is better).
DEFAULT_DELTA_M_METRICS: dict[str, tuple[str, bool]] = {
    "semantic": ("miou", True),
    "depth": ("rmse", False),
}

#: Direction of every summary metric freqdense computes; ``metrics="all"`` uses those present in a baseline.
HIGHER_IS_BETTER: dict[str, bool] = {
    "miou": True,
    "mean_acc": True,
    "pixel_acc": True,
    "abs_rel": False,
    "sq_rel": False,
    "rmse": False,
    "rmse_log": False,
    "log10": False,
    "mae": False,
    "delta1": True,
    "delta2": True,
    "delta3": True,
}

MetricSpec = Mapping[str, "tuple[str, bool] | Sequence[tuple[str, bool]]"]


def _lookup(table: Mapping[str, Mapping[str, float]], task: str, metric: str, what: str) -> float:
    if task not in table:
        raise ConfigError(
            f"Δm needs task {task!r} in the {what} results, which have tasks {sorted(table)}; "
            + (
                "run the single-task baseline for it or drop the task from `metrics`"
                if what == "baseline"
                else "evaluate it or drop the task from `metrics`"
            )
        )
    if metric not in table[task]:
        raise ConfigError(
            f"Δm needs metric {metric!r} for task {task!r} in the {what} results, which have "
            f"{sorted(table[task])}; evaluate it or choose another metric in `metrics`"
        )
    value = float(table[task][metric])
    if not math.isfinite(value):
        raise ConfigError(f"Δm: {what} {task}/{metric} is {value}; it must be a finite number")
    return value


def _resolve(
    results: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    metrics: MetricSpec | Literal["all"] | None,
) -> dict[str, list[tuple[str, bool]]]:
    if metrics is None:
        unknown = [t for t in results if t not in DEFAULT_DELTA_M_METRICS]
        if unknown:
            raise ConfigError(
                f"Δm has no default metric for tasks {unknown} (defaults: {DEFAULT_DELTA_M_METRICS}); pass "
                "metrics={task: (metric, higher_is_better)}"
            )
        return {t: [DEFAULT_DELTA_M_METRICS[t]] for t in results}
    if isinstance(metrics, str):
        if metrics != "all":
            raise ConfigError(f"Δm metrics must be None, 'all' or a dict, got {metrics!r}")
        out: dict[str, list[tuple[str, bool]]] = {}
        for task in results:
            if task not in baselines:
                _lookup(baselines, task, "", "baseline")
            chosen = [(m, HIGHER_IS_BETTER[m]) for m in baselines[task] if m in HIGHER_IS_BETTER]
            if not chosen:
                raise ConfigError(
                    f"Δm metrics='all': baseline for task {task!r} has none of the known metrics "
                    f"{sorted(HIGHER_IS_BETTER)}; pass metrics explicitly"
                )
            out[task] = chosen
        return out
    out = {}
    for task, spec in metrics.items():
        pairs = [spec] if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) else list(spec)
        if not pairs or not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise ConfigError(
                f"Δm metrics[{task!r}] must be (metric, higher_is_better) or a list of such pairs, got {spec!r}"
            )
        out[task] = [(name, bool(higher)) for name, higher in pairs]
    if not out:
        raise ConfigError("Δm metrics is empty; name at least one task")
    return out


def delta_m_terms(
    results: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    metrics: MetricSpec | Literal["all"] | None = None,
) -> dict[str, float]:
    """Per-task signed relative change in percent, ``100 · mean_k s_k (M_mt − M_st) / M_st``.

    Args and errors as ``delta_m``; ``delta_m`` is the mean of these values.
    """
    spec = _resolve(results, baselines, metrics)
    terms: dict[str, float] = {}
    for task, pairs in spec.items():
        changes = []
        for metric, higher in pairs:
            value = _lookup(results, task, metric, "multi-task")
            base = _lookup(baselines, task, metric, "baseline")
            if base == 0:
                raise ConfigError(f"Δm: baseline {task}/{metric} is 0, so the relative change is undefined")
            sign = 1.0 if higher else -1.0
            changes.append(sign * (value - base) / base)
        terms[task] = 100.0 * sum(changes) / len(changes)
    return terms


def delta_m(
    results: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    metrics: MetricSpec | Literal["all"] | None = None,
) -> float:
    """Multi-task performance Δm in percent (positive = the multi-task model beats its single-task baselines).

    Args:
        results: multi-task model metrics, ``{task: {metric: value}}`` (e.g. ``{"semantic": {"miou": 0.41}}``).
        baselines: single-task baselines with the same backbone, same layout.
        metrics: ``None`` uses ``DEFAULT_DELTA_M_METRICS`` for every task in ``results``; a dict maps each task
            to ``(metric, higher_is_better)`` or to a list of such pairs (averaged within the task first);
            ``"all"`` uses every metric of ``HIGHER_IS_BETTER`` found in each task's baseline.

    Raises:
        ConfigError: a task or metric is missing, not finite, has no default, or a baseline value is 0.

    Example:
        >>> round(delta_m({"semantic": {"miou": 0.44}, "depth": {"rmse": 0.54}},
        ...               {"semantic": {"miou": 0.40}, "depth": {"rmse": 0.60}}), 6)
        10.0
    """
    terms = delta_m_terms(results, baselines, metrics)
    return sum(terms.values()) / len(terms)

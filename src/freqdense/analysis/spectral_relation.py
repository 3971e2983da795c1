"""The relation of the spectral-analysis paper's Fig. 6: relative mIoU against ``R(nu_max)``, with a rank correlation.

Input is a list of per-run records (what ``scripts/experiments/spectral_synthetic.py`` writes to
``results.json``)::

    {"family": "pixelwise", "seed": 0, "miou": 0.61, "r_model": {"4": 0.21, ...}}       # full-band model
    {"family": "blockwise", "nu_max": 8, "void": "keep", "seed": 0, "miou": 0.55}       # trained on block labels
    {"family": "truncation_eval", "grid": 13, "nu_max": 6, "seed": 0, "miou": 0.58}     # full model, decoder on 13x13
    {"family": "truncation_train", "grid": 13, "nu_max": 6, "seed": 0, "miou": 0.59}    # trained with the 13x13 decoder

``r_model`` is Eq. 14 of the same seed's pixel-wise model on the validation data (the paper's Table 1 value, which
Fig. 6 uses for both applications). The relative mIoU of a run is its mIoU over the pixel-wise model of the same
seed (paper: "the ratio of IoU score over that at nu_max = 256"); the drop is ``1 - relative``. Points are means
over seeds. :func:`spearman` ranks with average ranks for ties (the usual definition, as ``scipy.stats.spearmanr``).

A block-wise run's ``void`` says what its labels did with void pixels (:func:`freqdense.spectral.blockwise_annotation`:
``"fill"`` gives them the block's label, ``"keep"`` keeps them void; records without it are ``"fill"``, the only
behaviour before the option existed). Each convention is its own series: its own points, correlations and line.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = [
    "rank",
    "spearman",
    "series_name",
    "relation_points",
    "relation_correlations",
    "relation_table",
    "plot_relation",
]

#: Families of runs compared with the pixel-wise model, in table order.
FAMILIES = ("blockwise", "truncation_eval", "truncation_train")

#: Void convention of block-wise records that do not name one.
DEFAULT_VOID = "fill"


def series_name(point: Mapping[str, Any]) -> str:
    """Display name of a point's series: the family, plus ``(void=...)`` for block-wise points."""
    void = point.get("void")
    return f"{point['family']} (void={void})" if void else str(point["family"])


def rank(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties get the mean of the ranks they span.

    Example:
        >>> rank([10.0, 30.0, 20.0, 30.0])
        [1.0, 3.5, 2.0, 3.5]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson correlation of :func:`rank` (``nan`` if undefined).

    Undefined (``nan``) for fewer than 2 points or when one side is constant.

    Example:
        >>> spearman([1, 2, 3], [30, 20, 10])
        -1.0
    """
    if len(x) != len(y):
        raise DataError(f"spearman needs paired values, got {len(x)} x values and {len(y)} y values")
    if len(x) < 2:
        return math.nan
    rx, ry = rank([float(v) for v in x]), rank([float(v) for v in y])
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def relation_points(
    runs: Sequence[Mapping[str, Any]], *, label_r: Mapping[Any, float] | None = None
) -> list[dict[str, Any]]:
    """One point per (family, setting): mean/std over seeds of mIoU, relative mIoU, drop and ``R``.

    Args:
        runs: per-run records (module docstring). Every non-pixel-wise run needs the pixel-wise run of its seed.
        label_r: optional ``nu_max -> R`` of the labels alone (label-energy tail, ``analyze labels``), attached as
            ``r_label``.

    Returns:
        Dicts with ``family``, ``setting`` (``nu_max`` or grid), ``nu_max``, ``void`` (block-wise: ``"fill"`` or
        ``"keep"``; else ``None``), ``seeds``, ``miou``/``miou_std``, ``relative``/``relative_std``, ``drop``,
        ``r_model``/``r_model_std`` and ``r_label`` (or ``None``). The first point is the pixel-wise reference
        (relative 1, ``R = 0``).

    Raises:
        DataError: a run without a pixel-wise run of the same seed, or without its ``R`` at the run's ``nu_max``.
    """
    base = {int(r["seed"]): r for r in runs if r["family"] == "pixelwise"}
    if not base:
        raise DataError("no pixel-wise ('family': 'pixelwise') run: relative mIoU needs the full-band model")
    label_r = {int(k): float(v) for k, v in (label_r or {}).items()}
    b_miou = _mean_std([float(r["miou"]) for r in base.values()])
    points: list[dict[str, Any]] = [
        {
            "family": "pixelwise",
            "setting": "full",
            "nu_max": None,
            "void": None,
            "seeds": len(base),
            "miou": b_miou[0],
            "miou_std": b_miou[1],
            "relative": 1.0,
            "relative_std": 0.0,
            "drop": 0.0,
            "r_model": 0.0,
            "r_model_std": 0.0,
            "r_label": 0.0 if label_r else None,
        }
    ]
    groups: dict[tuple[str, str, Any], list[Mapping[str, Any]]] = {}
    for r in runs:
        if r["family"] == "pixelwise":
            continue
        if r["family"] not in FAMILIES:
            raise DataError(f"unknown run family {r['family']!r}; expected pixelwise or one of {', '.join(FAMILIES)}")
        setting = r["grid"] if r["family"].startswith("truncation") else r["nu_max"]
        void = str(r.get("void", DEFAULT_VOID)) if r["family"] == "blockwise" else ""
        groups.setdefault((r["family"], void, setting), []).append(r)
    order = {f: i for i, f in enumerate(FAMILIES)}
    for (family, void, setting), rs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], -kv[0][2])):
        nu = int(rs[0]["nu_max"])
        rel, r_model = [], []
        for r in rs:
            ref = base.get(int(r["seed"]))
            if ref is None:
                raise DataError(f"{family} run {setting} seed {r['seed']} has no pixel-wise run of the same seed")
            r_curve = {int(k): float(v) for k, v in ref["r_model"].items()}
            if nu not in r_curve:
                raise DataError(f"pixel-wise run seed {r['seed']} has no r_model at nu_max={nu}; recompute its R")
            rel.append(float(r["miou"]) / float(ref["miou"]) if float(ref["miou"]) > 0 else math.nan)
            r_model.append(r_curve[nu])
        m, rl, rm = _mean_std([float(r["miou"]) for r in rs]), _mean_std(rel), _mean_std(r_model)
        points.append(
            {
                "family": family,
                "setting": setting,
                "nu_max": nu,
                "void": void or None,
                "seeds": len(rs),
                "miou": m[0],
                "miou_std": m[1],
                "relative": rl[0],
                "relative_std": rl[1],
                "drop": 1.0 - rl[0],
                "r_model": rm[0],
                "r_model_std": rm[1],
                "r_label": label_r.get(nu),
            }
        )
    return points


def relation_correlations(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Spearman correlation between ``R`` and the mIoU drop, per series and pooled (pixel-wise point excluded).

    The pixel-wise point (``R = 0``, drop 0 by construction) is left out: it would reward any monotone ``R``.
    Series are :func:`series_name` (one per block-wise void convention). The pooled row ``"all"`` takes every
    point; with block-wise points of both void conventions it is replaced by one pooled row per convention,
    ``"all (void=keep)"`` / ``"all (void=fill)"`` (that convention's block-wise points and every truncation point),
    so no setting counts twice.
    Rows: ``{"predictor": "r_model" | "r_label", "family": series or pooled name, "n": points, "rho": value}``.
    """
    pts = [p for p in points if p["family"] != "pixelwise"]
    names = list(dict.fromkeys(series_name(p) for p in pts))
    voids = sorted({p["void"] for p in pts if p.get("void")})
    pools: list[tuple[str, Any]] = [(n, lambda p, n=n: series_name(p) == n) for n in names]
    if len(voids) > 1:
        pools += [(f"all (void={v})", lambda p, v=v: p.get("void") in (None, v)) for v in voids]
    else:
        pools.append(("all", lambda p: True))
    rows = []
    for predictor in ("r_model", "r_label"):
        for name, keep in pools:
            sel = [p for p in pts if keep(p) and p.get(predictor) is not None]
            if not sel:
                continue
            rho = spearman([p[predictor] for p in sel], [p["drop"] for p in sel])
            rows.append({"predictor": predictor, "family": name, "n": len(sel), "rho": rho})
    return rows


def _pm(mean: float, std: float, seeds: int, fmt: str = ".4f") -> str:
    return f"{mean:{fmt}}" if seeds < 2 else f"{mean:{fmt}} ± {std:{fmt}}"


def relation_table(points: Sequence[Mapping[str, Any]], correlations: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: the points table, then the Spearman table."""
    lines = [
        "| family | setting | ν_max | seeds | mIoU | relative mIoU | R(ν_max), model (Eq. 14) | R, labels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        nu = "full" if p["nu_max"] is None else str(p["nu_max"])
        setting = f"{p['setting']}×{p['setting']}" if str(p["family"]).startswith("truncation") else str(p["setting"])
        r_label = "-" if p["r_label"] is None else f"{p['r_label']:.4f}"
        lines.append(
            f"| {series_name(p)} | {setting} | {nu} | {p['seeds']} | {_pm(p['miou'], p['miou_std'], p['seeds'])} "
            f"| {_pm(p['relative'], p['relative_std'], p['seeds'], '.3f')} "
            f"| {_pm(p['r_model'], p['r_model_std'], p['seeds'])} | {r_label} |"
        )
    lines += ["", "| R | family | points | Spearman ρ(R, mIoU drop) |", "|---|---|---|---|"]
    for c in correlations:
        rho = "undefined" if math.isnan(c["rho"]) else f"{c['rho']:+.3f}"
        lines.append(f"| {c['predictor']} | {c['family']} | {c['n']} | {rho} |")
    return "\n".join(lines) + "\n"


_XLABEL = {
    "r_model": "R(ν_max) of the pixel-wise model (Eq. 14)",
    "r_label": "R(ν_max) of the labels (label-energy tail)",
}


def plot_relation(points: Sequence[Mapping[str, Any]], path: str | Path, *, predictor: str = "r_model") -> Path:
    """Fig. 6 layout via :func:`freqdense.spectral.plot_relative_iou`: one series per family, labelled by setting."""
    from ..spectral.plot import plot_relative_iou

    series: dict[str, tuple[list[float], list[float]]] = {}
    notes: dict[str, list[str]] = {}
    for name in dict.fromkeys(series_name(p) for p in points if p["family"] != "pixelwise"):
        sel = [p for p in points if series_name(p) == name and p.get(predictor) is not None]
        if not sel:
            continue
        sel.sort(key=lambda p: p[predictor])
        series[name] = ([p[predictor] for p in sel], [p["relative"] for p in sel])
        prefix = "ν=" if sel[0]["family"] == "blockwise" else "grid "
        notes[name] = [f"{prefix}{p['setting']}" for p in sel]
    if not series:
        raise DataError(f"no points with {predictor!r} to plot")
    return plot_relative_iou(series, path, annotations=notes, xlabel=_XLABEL[predictor])

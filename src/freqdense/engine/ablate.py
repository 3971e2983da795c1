"""Ablations: train a list of configs over several seeds and tabulate them in the shape of FAFE's Table 1.

``run_ablation`` trains every (config, seed) pair with :func:`freqdense.engine.train.train` into
``<out>/<row>/seed<k>`` and reads each run's final validation metrics (``metrics.json``); finished runs are
reused (``resume=True``). ``summarise`` turns the per-seed numbers into one row per config: mean and sample
standard deviation per metric, the change against the reference row (signed so that positive is better, as the
paper's "(+2.16)" / "(+0.057)" columns) and Δm against the reference row (:func:`freqdense.metrics.delta_m`, the
metric directions of ``HIGHER_IS_BETTER``) in one or more conventions (:data:`DELTA_M_CONVENTIONS`): ``"mtl"``
(default) uses one metric per task as Multi-Task-Learning-PyTorch does (semantic mIoU, depth RMSE), ``"columns"``
averages every table column within its task first. ``format_markdown`` writes the table. ``freqdense ablate`` is
the CLI.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._progress import format_duration
from ..config import ExperimentConfig, config_to_dict, load_config
from ..errors import ConfigError
from ..metrics import DEFAULT_DELTA_M_METRICS, HIGHER_IS_BETTER, delta_m
from .run_config import experiment_differences, stored_config

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_METRICS",
    "DELTA_M_CONVENTIONS",
    "config_slugs",
    "metric_direction",
    "run_ablation",
    "summarise",
    "delta_m_label",
    "delta_m_note",
    "format_markdown",
]

#: Table columns when none are given: the metrics of MTL-PyTorch's Δm (one per task) that the runs report.
DEFAULT_METRICS = ("semantic/miou", "depth/rmse")
#: Δm conventions ``summarise`` computes: what each averages (the first one given is the table's main Δm).
DELTA_M_CONVENTIONS: dict[str, str] = {
    "mtl": "one metric per task as Multi-Task-Learning-PyTorch (semantic: miou, depth: rmse)",
    "columns": "every table column, averaged within its task first, then over tasks",
}
#: Bookkeeping file of one run (seconds spent, finished flag), next to train's ``metrics.json``.
RUN_RECORD = "ablate.json"


def config_slugs(configs: Sequence[str | Path]) -> list[str]:
    """Directory / row names of configs: the file stem, prefixed by parent folders only where stems collide.

    Examples:
        >>> config_slugs(["a/fafe/mti.yaml", "b/fafe/mti.yaml", "pad.yaml"])
        ['a-fafe-mti', 'b-fafe-mti', 'pad']
    """
    parts = [Path(str(c)).with_suffix("").parts for c in configs]
    if len(set(parts)) != len(parts):
        dup = sorted({"/".join(p) for p in parts if parts.count(p) > 1})
        raise ConfigError(f"ablate: config(s) {dup} are listed more than once; list each config once")
    depth = [1] * len(parts)
    while True:
        slugs = ["-".join(p[-d:]) for p, d in zip(parts, depth)]
        clashes = {s for s in slugs if slugs.count(s) > 1}
        if not clashes:
            return slugs
        grown = False
        for i, s in enumerate(slugs):
            if s in clashes and depth[i] < len(parts[i]):
                depth[i] += 1
                grown = True
        if not grown:  # pragma: no cover - distinct paths always separate eventually
            raise ConfigError(f"ablate: cannot give distinct names to {list(map(str, configs))}")


def metric_direction(key: str) -> tuple[str, str, bool]:
    """``"semantic/miou"`` -> ``("semantic", "miou", True)``: task, metric and whether higher is better.

    Raises:
        ConfigError: the key is not ``<task>/<metric>`` or the metric's direction is unknown.
    """
    task, sep, metric = key.partition("/")
    if not sep or not task or not metric:
        raise ConfigError(f"ablate: metric {key!r} must be '<task>/<metric>' as in metrics.json (e.g. depth/rmse)")
    if metric in HIGHER_IS_BETTER:
        return task, metric, HIGHER_IS_BETTER[metric]
    if metric.startswith("iou/"):  # per-class IoU
        return task, metric, True
    raise ConfigError(
        f"ablate: the direction of metric {key!r} is unknown; use one of "
        f"{', '.join(sorted(HIGHER_IS_BETTER))} (or iou/<class>) after '<task>/'"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ConfigError(f"ablate: {path} is not valid JSON ({err}); delete it to re-run that run") from err


def _finished(run_dir: Path, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The final metrics of a finished run in ``run_dir`` (None if it has not finished)."""
    result = _read_json(run_dir / "metrics.json")
    if result is None or int(result.get("step", -1)) < cfg.schedule.total_steps:
        return None
    return {k: (math.nan if v is None else float(v)) for k, v in result["val"].items()}


def _check_same_config(run_dir: Path, cfg: ExperimentConfig, *, resume: bool) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        if any(p.name != RUN_RECORD for p in run_dir.iterdir()):
            raise ConfigError(f"ablate: {run_dir} is not empty but has no config.yaml; delete it or use another --out")
        return
    if not resume:
        raise ConfigError(
            f"ablate: {run_dir} already holds a run; pass --resume to reuse finished runs (and continue unfinished "
            "ones), or choose another --out"
        )
    old, _ = stored_config(run_dir, None)
    differing = list(experiment_differences(old or {}, config_to_dict(cfg)))
    if differing:
        raise ConfigError(
            f"ablate: {saved} differs from the config this ablation would train in {', '.join(differing)} (another "
            "config, seed or --set); use another --out, or delete that run directory to retrain it"
        )


def run_ablation(
    configs: Sequence[str | Path],
    seeds: Sequence[int],
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    names: Sequence[str] | None = None,
    resume: bool = False,
    train_fn: Callable[[ExperimentConfig, Path], Any] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Train every config x seed (``train.seed=<k>`` plus ``overrides``) and collect the final metrics.

    Args:
        configs: YAML files or shipped config names; one table row each, in this order.
        seeds: training seeds (``train.seed``).
        out: root directory; run ``(config, seed)`` lives in ``out/<name>/seed<k>``.
        overrides: dotted ``section.key=value`` overrides applied to every config (before the seed).
        names: row names (default :func:`config_slugs`), also the directory names.
        resume: reuse runs that finished, continue unfinished ones from their checkpoints; without it an existing
            run directory is an error. Either way a run directory holding another config is an error.
        train_fn: ``train(cfg, run_dir)`` (default :func:`freqdense.engine.train.train`; tests pass a stub).

    Returns:
        ``{name: [{"seed", "seconds", "trained", "run_dir", "metrics": {"<task>/<metric>": value}}, ...]}`` with
        ``seconds`` the training wall time summed over the invocations that worked on the run.
    """
    if not configs:
        raise ConfigError("ablate: give at least one config")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"ablate: seeds must be a non-empty list without repeats, got {seeds}")
    names = list(names) if names is not None else config_slugs(configs)
    if len(names) != len(configs) or len(set(names)) != len(names):
        raise ConfigError(f"ablate: need one distinct name per config ({len(configs)} configs), got {names}")
    if train_fn is None:
        from .train import train as train_fn
    out = Path(out)
    loaded = {name: [load_config(c, [*overrides, f"train.seed={s}"]) for s in seeds] for c, name in zip(configs, names)}
    for name in names:  # refuse before training anything
        for seed, cfg in zip(seeds, loaded[name]):
            if (out / name / f"seed{seed}").is_dir():
                _check_same_config(out / name / f"seed{seed}", cfg, resume=resume)
    results: dict[str, list[dict[str, Any]]] = {}
    total, done = len(configs) * len(seeds), 0
    run_seconds: list[float] = []  # wall time of the runs trained by this call: the ETA of the remaining ones
    for config, name in zip(configs, names):
        results[name] = []
        for seed, cfg in zip(seeds, loaded[name]):
            done += 1
            run_dir = out / name / f"seed{seed}"
            record_path = run_dir / RUN_RECORD
            record = {"config": str(config), "seed": seed, "seconds": 0.0, "finished": False}
            trained = False
            if run_dir.is_dir():
                record.update(_read_json(record_path) or {})
            metrics = _finished(run_dir, cfg) if run_dir.is_dir() else None
            if metrics is None:
                eta = _eta(run_seconds, total - done + 1)
                log.info("[%d/%d] %s seed %d: training into %s%s", done, total, name, seed, run_dir, eta)
                run_dir.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                try:
                    train_fn(cfg, run_dir)
                finally:
                    record["seconds"] = float(record["seconds"]) + time.perf_counter() - start
                    _write_json(record_path, record)
                metrics = _finished(run_dir, cfg)
                if metrics is None:
                    raise ConfigError(f"ablate: training {run_dir} ended without a final metrics.json")
                record["finished"], trained = True, True
                _write_json(record_path, record)
                run_seconds.append(time.perf_counter() - start)
                log.info(
                    "[%d/%d] %s seed %d: trained in %s%s",
                    done,
                    total,
                    name,
                    seed,
                    format_duration(run_seconds[-1]),
                    _eta(run_seconds, total - done),
                )
            else:
                log.info("[%d/%d] %s seed %d: finished earlier, reusing %s", done, total, name, seed, run_dir)
            results[name].append(
                {
                    "seed": seed,
                    "seconds": float(record["seconds"]),
                    "trained": trained,
                    "run_dir": str(run_dir),
                    "metrics": metrics,
                }
            )
    return results


def _eta(run_seconds: Sequence[float], remaining: int) -> str:
    """``"; about 12 min 30 s left for 5 runs"`` from the mean time of the runs trained so far (or ``""``)."""
    if not run_seconds or remaining <= 0:
        return ""
    left = statistics.fmean(run_seconds) * remaining
    return f"; about {format_duration(left)} left for {remaining} run{'s' if remaining > 1 else ''}"


def _write_json(path: Path, data: Any) -> None:
    from .checkpoint import write_json_atomic

    write_json_atomic(path, data)


def _value(record: Mapping[str, Any], key: str, row: str) -> float:
    metrics = record.get("metrics", record)
    if key not in metrics:
        raise ConfigError(
            f"ablate: row {row!r} (seed {record.get('seed', '?')}) has no metric {key!r}; it has "
            f"{sorted(k for k in metrics if '/iou/' not in k)}; choose --metrics among those"
        )
    value = metrics[key]
    return math.nan if value is None else float(value)


def _delta_m_spec(convention: str, columns: Sequence[str]) -> dict[str, list[tuple[str, bool]]]:
    """``{task: [(metric, higher_is_better), ...]}`` of a Δm convention for a table with these columns."""
    if convention == "columns":
        spec: dict[str, list[tuple[str, bool]]] = {}
        for key in columns:
            task, metric, higher = metric_direction(key)
            spec.setdefault(task, []).append((metric, higher))
        return spec
    if convention == "mtl":
        tasks = list(dict.fromkeys(metric_direction(key)[0] for key in columns))
        spec = {t: [DEFAULT_DELTA_M_METRICS[t]] for t in tasks if t in DEFAULT_DELTA_M_METRICS}
        if not spec:
            raise ConfigError(
                f"ablate: Δm convention 'mtl' defines one metric for tasks {sorted(DEFAULT_DELTA_M_METRICS)}, and "
                f"the table's columns {list(columns)} have none of them; use --delta-m columns"
            )
        return spec
    raise ConfigError(
        f"ablate: unknown Δm convention {convention!r}; choose from {', '.join(map(repr, DELTA_M_CONVENTIONS))}"
    )


def summarise(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] | None = None,
    *,
    reference: str | None = None,
    delta_m_conventions: Sequence[str] = ("mtl",),
) -> dict[str, Any]:
    """Mean, sample std, change vs the reference and Δm per row.

    Args:
        rows: ``{name: [per-seed record, ...]}`` as returned by :func:`run_ablation`; a record is
            ``{"metrics": {"<task>/<metric>": value}, "seconds": s, ...}`` (or the flat metrics dict itself).
        metrics: table columns, ``"<task>/<metric>"``; default: those of :data:`DEFAULT_METRICS` the first
            record has.
        reference: the row Δm and the changes are measured against (default: the first row).
        delta_m_conventions: names from :data:`DELTA_M_CONVENTIONS`; the first is the main Δm. ``"mtl"`` reads
            its metrics from the runs even where they are not table columns.

    Returns:
        ``{"metrics", "reference", "delta_m_metrics", "delta_m_conventions", "rows": [{"name", "seeds", "mean",
        "std", "improvement", "delta_m", "delta_m_by", "seconds"}]}``. ``std`` is the sample standard deviation
        (n - 1; NaN for one seed). ``improvement[m] = s_m (mean_m - mean_m^ref)`` with ``s_m = +1`` if higher is
        better else ``-1``, so positive is better (the convention of FAFE's Table 1). ``delta_m_by[c]`` is
        :func:`freqdense.metrics.delta_m` of the row's means against the reference row's means in percent under
        convention ``c`` (metrics per task in ``delta_m_conventions[c]``); ``delta_m`` and ``delta_m_metrics``
        are those of the first convention.

    Raises:
        ConfigError: empty rows, unknown reference or convention, a missing metric or one without a known
            direction.
    """
    if not rows or any(len(r) == 0 for r in rows.values()):
        raise ConfigError("ablate: nothing to summarise (every row needs at least one run)")
    names = list(rows)
    reference = names[0] if reference is None else reference
    if reference not in rows:
        raise ConfigError(f"ablate: reference row {reference!r} is not one of {names}")
    if metrics is None:
        first = rows[names[0]][0]
        available = first.get("metrics", first)
        metrics = [m for m in DEFAULT_METRICS if m in available]
        if not metrics:
            raise ConfigError(
                f"ablate: the runs report none of {list(DEFAULT_METRICS)}; pick columns with --metrics "
                f"(available: {sorted(k for k in available if '/iou/' not in k)})"
            )
    metrics = list(metrics)
    directions = {m: metric_direction(m) for m in metrics}
    conventions = list(dict.fromkeys(delta_m_conventions))
    if not conventions:
        raise ConfigError(f"ablate: name at least one Δm convention ({', '.join(DELTA_M_CONVENTIONS)})")
    specs = {c: _delta_m_spec(c, metrics) for c in conventions}
    needed = list(metrics)
    for spec in specs.values():
        needed += [f"{task}/{metric}" for task, pairs in spec.items() for metric, _ in pairs]
    needed = list(dict.fromkeys(needed))

    table: list[dict[str, Any]] = []
    all_means: dict[str, dict[str, float]] = {}
    for name in names:
        values = {m: [_value(r, m, name) for r in rows[name]] for m in needed}
        means = {m: statistics.fmean(v) for m, v in values.items()}
        all_means[name] = means
        seconds = [float(r["seconds"]) for r in rows[name] if r.get("seconds") is not None]
        table.append(
            {
                "name": name,
                "seeds": len(rows[name]),
                "mean": {m: means[m] for m in metrics},
                "std": {m: (statistics.stdev(values[m]) if len(values[m]) > 1 else math.nan) for m in metrics},
                "seconds": statistics.fmean(seconds) if seconds else None,
            }
        )

    def nested(means: Mapping[str, float], spec: Mapping[str, Sequence[tuple[str, bool]]]) -> dict[str, Any]:
        return {task: {metric: means[f"{task}/{metric}"] for metric, _ in pairs} for task, pairs in spec.items()}

    ref_means = all_means[reference]
    for row in table:
        row["improvement"] = {m: (1.0 if directions[m][2] else -1.0) * (row["mean"][m] - ref_means[m]) for m in metrics}
        row["delta_m_by"] = {}
        for convention, spec in specs.items():
            used = [f"{t}/{m}" for t, pairs in spec.items() for m, _ in pairs]
            means = all_means[row["name"]]
            finite = all(math.isfinite(means[k]) and math.isfinite(ref_means[k]) for k in used)
            row["delta_m_by"][convention] = (
                delta_m(nested(means, spec), nested(ref_means, spec), spec) if finite else math.nan
            )
        row["delta_m"] = row["delta_m_by"][conventions[0]]
    return {
        "metrics": metrics,
        "reference": reference,
        "delta_m_metrics": specs[conventions[0]],
        "delta_m_conventions": specs,
        "rows": table,
    }


def _cell(mean: float, std: float, change: float | None, digits: int) -> str:
    text = f"{mean:.{digits}f}"
    if math.isfinite(std):
        text += f" ± {std:.{digits}f}"
    if change is not None:
        text += f" ({change:+.{digits}f})"
    return text


def delta_m_label(convention: str, spec: Mapping[str, Sequence[Any]]) -> str:
    """Column label of a Δm convention: its metrics when few, else their count (``"Δm [%] (miou, rmse)"``)."""
    used = [str(m[0]) if isinstance(m, (list, tuple)) else str(m) for pairs in spec.values() for m in pairs]
    listed = ", ".join(used) if len(used) <= 3 else f"{len(used)} metrics"
    return f"Δm [%] ↑ ({listed})"


def delta_m_note(specs: Mapping[str, Mapping[str, Sequence[Any]]]) -> str:
    """One sentence per Δm convention: its name, what it averages and its metrics per task."""
    parts = []
    for convention, spec in specs.items():
        used = "; ".join(
            f"{task}: {', '.join(str(m[0]) if isinstance(m, (list, tuple)) else str(m) for m in pairs)}"
            for task, pairs in spec.items()
        )
        what = DELTA_M_CONVENTIONS.get(convention, convention)
        parts.append(f"Δm `{convention}` ({what}) uses {used}.")
    return " ".join(parts)


def format_markdown(
    summary: Mapping[str, Any],
    *,
    title: str = "Ablation",
    command: str | None = None,
    notes: Sequence[str] = (),
    digits: int = 4,
) -> str:
    """The summary as a markdown page: reproducing command, then one row per config in the shape of Table 1.

    Columns: method, seeds, one per metric (``↑``/``↓`` for its direction; ``mean ± std (change vs reference)``,
    positive change = better), one ``Δm [%] ↑ (metrics)`` per convention vs the reference row, ``s/run`` (mean
    training wall time per run).
    """
    metrics = list(summary["metrics"])
    specs = summary.get("delta_m_conventions") or {"mtl": summary["delta_m_metrics"]}
    arrows = [f"{m} {'↑' if metric_direction(m)[2] else '↓'}" for m in metrics]
    dm_headers = [delta_m_label(c, spec) for c, spec in specs.items()]
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Reproduce: `{command}`", ""]
    lines += [
        "| method | seeds | " + " | ".join(arrows + dm_headers) + " | s/run |",
        "|---|---|" + "---|" * (len(metrics) + len(dm_headers)) + "---|",
    ]
    for row in summary["rows"]:
        is_ref = row["name"] == summary["reference"]
        cells = [
            _cell(row["mean"][m], row["std"][m], None if is_ref else row["improvement"][m], digits) for m in metrics
        ]
        by = row.get("delta_m_by") or {next(iter(specs)): row["delta_m"]}
        for convention in specs:
            dm = by.get(convention, math.nan)
            cells.append("0 (reference)" if is_ref else (f"{dm:+.2f}" if math.isfinite(dm) else "n/a"))
        seconds = "n/a" if row["seconds"] is None else f"{row['seconds']:.0f}"
        lines.append(f"| {row['name']} | {row['seeds']} | " + " | ".join(cells) + f" | {seconds} |")
    lines += [
        "",
        "mean ± sample standard deviation over seeds of the final validation metrics; in parentheses the change "
        f"against the reference row `{summary['reference']}`, signed so that positive is better (FAFE "
        "Table 1). Δm (Maninis et al. 2019; freqdense docs/conventions.md): mean relative change of the row means "
        f"against the reference row's means, in percent. {delta_m_note(specs)} s/run: training wall time per run "
        "(evaluation included).",
    ]
    for note in notes:
        lines += ["", note]
    lines.append("")
    return "\n".join(lines)

"""The report of one training run directory (``freqdense train``): metrics, curves, predictions, analyses, config
and provenance.

Read: ``config.yaml``, ``metrics.json`` (``{"step", "val", "best"}``), ``log.jsonl`` (``{"kind", "step", ...}``),
``run.json`` (provenance of every start), images at the top level, and ``analysis/<name>/``.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engine.logger import read_jsonl
from ..errors import ReportError
from .analyses import image_caption, render_analysis
from .figures import Panel, numeric_keys, render_panels, series
from .html import Section, compact, details, esc, figure, fmt, image_file, key_value_table, note, png_uri, pre, table
from .layout import ANALYSIS_DIR, read_json
from .metric_tables import arrow, headline_keys, metrics_by_column, per_class_table

log = logging.getLogger(__name__)

__all__ = ["RunData", "load_run", "run_sections", "curve_panels"]

#: Config keys shown in the summary table, per section (``None``: every key of the section).
SUMMARY_KEYS: dict[str, tuple[str, ...] | None] = {
    "model": None,
    "data": ("dataset", "args", "batch_size", "train_split", "val_split", "train_transforms"),
    "task": ("name", "inputs", "ignore_index", "loss_weights", "depth_loss", "max_depth"),
    "optim": (
        "name",
        "lr",
        "weight_decay",
        "momentum",
        "clip_grad_norm",
        "backbone_lr_mult",
        "bias_lr_mult",
        "lr_mult",
    ),
    "schedule": ("name", "total_steps", "warmup_steps", "power", "milestones"),
    "eval": ("every", "metric", "mode", "scales", "flip"),
    "train": ("seed", "device", "amp", "log_every"),
}
_IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
#: At most this many validation metrics get their own curve.
MAX_METRIC_CURVES = 8


@dataclass
class RunData:
    """What a run directory holds (missing files are None / empty)."""

    path: Path
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    info: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def final(self) -> dict[str, Any]:
        """Final validation metrics: ``metrics.json`` ``val``, else the last eval row of ``log.jsonl``."""
        if self.metrics and isinstance(self.metrics.get("val"), Mapping):
            return dict(self.metrics["val"])
        evals = [r for r in self.rows if r.get("kind") == "eval"]
        return {k: v for k, v in evals[-1].items() if k not in ("kind", "step")} if evals else {}


def load_run(path: Path) -> RunData:
    """Read a run directory.

    Raises:
        ReportError: ``config.yaml``, ``metrics.json`` or ``run.json`` exists but cannot be parsed.
    """
    data = RunData(Path(path))
    config_path = data.path / "config.yaml"
    if config_path.is_file():
        try:
            data.config = yaml.safe_load(config_path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ReportError(
                f"report: {config_path} is not readable YAML ({err.__class__.__name__}); the resolved config is also "
                "in checkpoints/*/meta.json: restore it from there, or delete the file"
            ) from err
    if (data.path / "metrics.json").is_file():
        data.metrics = read_json(
            data.path / "metrics.json",
            fix="delete it and run `freqdense train` on this run again: it re-evaluates the final checkpoint and "
            "rewrites the file",
        )
    if (data.path / "run.json").is_file():
        data.info = read_json(data.path / "run.json", fix="delete it: the next `freqdense train` start rewrites it")
    data.rows = read_jsonl(data.path / "log.jsonl")
    return data


def _metrics_part(run: RunData, anchor: str) -> str:
    parts = []
    metrics = run.metrics or {}
    if not run.metrics:
        evals = [r for r in run.rows if r.get("kind") == "eval"]
        if evals:
            parts.append(
                note(
                    f"No metrics.json: the run has not finished. The numbers are the last evaluation in log.jsonl "
                    f"(step {evals[-1].get('step')}).",
                    warn=True,
                )
            )
        else:
            return note("No metrics yet: neither metrics.json nor an evaluation in log.jsonl.", warn=True)
    best = metrics.get("best")
    if isinstance(best, Mapping) and "metric" in best:
        parts.append(
            f"<p>Best checkpoint: <strong>{esc(best['metric'])} = {esc(fmt(best.get('value')))}</strong> "
            f"{arrow(str(best['metric']))} at step {esc(best.get('step'))}; final evaluation at step "
            f"{esc(metrics.get('step'))}.</p>"
        )
    step = metrics.get("step")
    columns: dict[str, Mapping[str, Any]] = {f"final (step {step})" if step is not None else "last eval": run.final}
    for key, value in metrics.items():  # further flat metric dicts (e.g. the demo's trivial predictor)
        if key not in ("val", "best") and isinstance(value, Mapping) and headline_keys(value):
            columns[key.replace("_", " ")] = value
    parts.append(metrics_by_column(columns, css_id=f"{anchor}metrics-table"))
    classes = per_class_table(columns, css_id=f"{anchor}per-class-table")
    if classes:
        parts.append(f"<h3>Per class</h3>\n{classes}")
    return "\n".join(parts)


def curve_panels(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    losses: Sequence[str] | None = None,
    metrics: Sequence[str],
    groups: Mapping[str, str] | None = None,
) -> tuple[list[Panel], list[Panel]]:
    """Training panels (losses, learning rate) and validation panels (one per metric) over several runs.

    With one run every loss key shares one panel; with several runs each run is a line (``groups``: runs of one
    group share a colour) and only ``loss/total`` is drawn when the runs log it.
    """
    train_panels: list[Panel] = []
    loss_keys = list(losses) if losses is not None else []
    if losses is None:
        for rows in runs.values():
            loss_keys += [k for k in numeric_keys(rows, kind="train") if k.startswith("loss") and k not in loss_keys]
        if len(runs) > 1 and "loss/total" in loss_keys:  # several runs: one line each, so only the total
            loss_keys = ["loss/total"]
    if len(runs) == 1:
        (rows,) = runs.values()
        lines = {k: series(rows, k, kind="train") for k in loss_keys}
        train_panels.append(Panel("Training loss", "loss", lines, log_y=True))
    else:
        for key in loss_keys:
            lines = {name: series(rows, key, kind="train") for name, rows in runs.items()}
            train_panels.append(Panel(f"Training {key}", "loss", lines, log_y=True, groups=dict(groups or {})))
    lr_lines = {name if len(runs) > 1 else "lr": series(rows, "lr", kind="train") for name, rows in runs.items()}
    train_panels.append(Panel("Learning rate", "learning rate", lr_lines, groups=dict(groups or {})))
    eval_panels = []
    for key in metrics:
        lines = {name if len(runs) > 1 else "validation": series(rows, key, kind="eval") for name, rows in runs.items()}
        eval_panels.append(Panel(f"Validation {key} {arrow(key)}".strip(), key, lines, groups=dict(groups or {})))
    return train_panels, eval_panels


def curve_figures(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str],
    *,
    what: str,
    groups: Mapping[str, str] | None = None,
) -> str:
    """The training and validation figures of :func:`curve_panels`, or a note when the log holds no curves."""
    train_panels, eval_panels = curve_panels(runs, metrics=metrics, groups=groups)
    parts = []
    for panels, title, caption in (
        (train_panels, "Training", f"Training loss (log scale) and learning rate against the step, {what}."),
        (eval_panels, "Validation", f"Validation metrics against the step, {what} (↑ higher / ↓ lower is better)."),
    ):
        if any(steps for p in panels for steps, _ in p.lines.values()):
            parts.append(figure(png_uri(render_panels(panels, title=title)), caption))
    return "\n".join(parts) or note("log.jsonl holds no curves yet.")


def _eval_metric_keys(run: RunData) -> list[str]:
    keys = [k for k in numeric_keys(run.rows, kind="eval") if k.count("/") <= 1]
    return keys[:MAX_METRIC_CURVES]


def _images_part(run: RunData) -> str:
    images = sorted(
        (p for p in run.path.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES),
        key=lambda p: (p.name != "predictions.png", p.name),
    )
    if not images:
        return note("The run directory holds no images (predictions.png and the like) at its top level.")
    return "\n".join(image_file(p, image_caption(p)) for p in images)


def analyses_part(run_dir: Path, *, level: int = 3) -> str:
    """Every ``analysis/<name>/`` folder of a run, one heading each."""
    root = run_dir / ANALYSIS_DIR
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        return note(
            f"No analyses yet. `freqdense analyze spectrum {run_dir}` (and similarity, alignment, truncation) "
            f"write into {ANALYSIS_DIR}/<name>/ of the run, where this report finds them."
        )
    return "\n".join(f"<h{level}>{folder.name}</h{level}>\n{render_analysis(folder)}" for folder in folders)


def config_summary(config: Mapping[str, Any]) -> str:
    """Key values of each config section as one table."""
    rows = []
    for section, keys in SUMMARY_KEYS.items():
        values = config.get(section)
        if not isinstance(values, Mapping):
            continue
        for key in keys if keys is not None else values:
            if key in values:
                rows.append((section, key, compact(values[key])))
    return table(["section", "key", "value"], rows, css_class="config")


def _config_part(run: RunData) -> str:
    if run.config is None:
        return note("No config.yaml in the run directory.", warn=True)
    full = yaml.safe_dump(run.config, sort_keys=False)
    return config_summary(run.config) + "\n" + details("Full resolved config (config.yaml)", pre(full))


def _command(argv: Any) -> str:
    if not isinstance(argv, list) or not argv:
        return ""
    return shlex.join([Path(str(argv[0])).name, *map(str, argv[1:])])


def _changes(start: Mapping[str, Any]) -> str:
    changes = start.get("config_changes") or {}
    if not isinstance(changes, Mapping):
        return str(compact(changes))
    return "; ".join(
        f"{k}: {compact(v.get('from'))} → {compact(v.get('to'))}" if isinstance(v, Mapping) else f"{k}: {v}"
        for k, v in changes.items()
    )


def _provenance_part(run: RunData) -> str:
    info = run.info
    if not info:
        return note("No run.json: the freqdense version, git revision and start dates were not recorded.", warn=True)
    top = [
        ("freqdense version", info.get("freqdense_version")),
        ("git revision", info.get("git_revision")),
        ("date (last start)", info.get("date")),
        ("command", _command(info.get("argv"))),
        ("torch", info.get("torch")),
        ("python", info.get("python")),
    ]
    parts = [key_value_table([(k, v) for k, v in top if v not in (None, "")], css_class="provenance")]
    starts = info.get("starts")
    if isinstance(starts, list) and starts:
        rows = [
            [
                i + 1,
                s.get("step"),
                s.get("date"),
                s.get("freqdense_version"),
                s.get("git_revision"),
                _command(s.get("argv")),
                _changes(s) or "none",
            ]
            for i, s in enumerate(s for s in starts if isinstance(s, Mapping))
        ]
        parts.append("<p><strong>Every start of the run</strong></p>")
        parts.append(
            table(
                ["#", "at step", "date", "freqdense", "git revision", "command", "config changes"],
                rows,
                css_class="starts",
            )
        )
    return "\n".join(parts)


def run_sections(run: RunData, *, anchor: str = "", level: int = 2) -> list[Section]:
    """The sections of a run's report; ``anchor`` prefixes every id (several runs on one page), ``level`` is the
    heading level the sections will be rendered at."""
    what = f"run {run.name}"
    return [
        Section(f"{anchor}metrics", "Metrics", _metrics_part(run, anchor)),
        Section(f"{anchor}curves", "Curves", curve_figures({run.name: run.rows}, _eval_metric_keys(run), what=what)),
        Section(f"{anchor}predictions", "Prediction panels and figures", _images_part(run)),
        Section(f"{anchor}analyses", "Analyses", analyses_part(run.path, level=level + 1)),
        Section(f"{anchor}config", "Configuration", _config_part(run)),
        Section(f"{anchor}provenance", "Provenance", _provenance_part(run)),
    ]

"""The report of an ablation directory (``freqdense ablate``): the Table-1-style table and every run's curves.

Read: ``ablation.json`` (``{"command", "configs", "names", "seeds", "overrides", "runs": {row: [per-seed record]},
"summary": {"metrics", "reference", "delta_m_conventions", "rows": [{"name", "seeds", "mean", "std", "improvement",
"delta_m", "delta_m_by", "seconds"}]}}``, written by ``freqdense ablate``), ``ablation.md`` (its title and notes)
and the runs in ``<row>/seed<k>/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.ablate import delta_m_label, delta_m_note
from ..errors import ReportError
from .html import Section, details, note, pre, table
from .layout import ABLATION_FILE, is_run_dir, read_json
from .metric_tables import arrow
from .run import curve_figures, load_run

__all__ = ["ablation_page"]

_FIX = "re-run the same `freqdense ablate ... --resume` command to rewrite it (finished runs are reused)"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell(mean: Any, std: Any, change: Any, digits: int = 4) -> str:
    if not _finite(mean):
        return "n/a"
    text = f"{mean:.{digits}f}"
    if _finite(std):
        text += f" ± {std:.{digits}f}"
    if _finite(change):
        text += f" ({change:+.{digits}f})"
    return text


def _load(path: Path) -> dict[str, Any]:
    data = read_json(path / ABLATION_FILE, fix=_FIX)
    summary = data.get("summary") if isinstance(data, Mapping) else None
    if not isinstance(summary, Mapping) or not isinstance(summary.get("rows"), list) or "metrics" not in summary:
        raise ReportError(
            f"report: {path / ABLATION_FILE} has no 'summary' with 'metrics' and 'rows' (is it from `freqdense "
            f"ablate`?); {_FIX}"
        )
    return data


def _conventions(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Δm conventions of a summary; files written before conventions existed have one, ``delta_m_metrics``."""
    specs = summary.get("delta_m_conventions")
    if isinstance(specs, Mapping) and specs:
        return dict(specs)
    return {"": summary.get("delta_m_metrics") or {}}


def _table(summary: Mapping[str, Any]) -> str:
    metrics = list(summary["metrics"])
    reference = summary.get("reference")
    specs = _conventions(summary)
    dm_headers = [delta_m_label(c, spec) if c else "Δm [%] ↑" for c, spec in specs.items()]
    header = ["method", "seeds", *(f"{m} {arrow(m)}".strip() for m in metrics), *dm_headers, "s/run"]
    rows, keys, best = [], [], []
    for i, row in enumerate(summary["rows"]):
        is_ref = row.get("name") == reference
        mean, std, change = (row.get(k) or {} for k in ("mean", "std", "improvement"))
        cells = [_cell(mean.get(m), std.get(m), None if is_ref else change.get(m)) for m in metrics]
        by = row.get("delta_m_by") if isinstance(row.get("delta_m_by"), Mapping) else {}
        for j, convention in enumerate(specs):
            dm = by.get(convention, row.get("delta_m") if j == 0 else None)
            cells.append("0 (reference)" if is_ref else (f"{dm:+.2f}" if _finite(dm) else "n/a"))
            if not is_ref and _finite(dm) and dm > 0:
                best.append((i, len(metrics) + 2 + j))
        seconds = row.get("seconds")
        rows.append([str(row.get("name")), row.get("seeds"), *cells, f"{seconds:.0f}" if _finite(seconds) else None])
        keys.append(str(row.get("name")))
    numeric = range(2, len(header))
    return table(header, rows, css_id="ablation-table", css_class="metrics", row_keys=keys, best=best, numeric=numeric)


def _per_seed(runs: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str]) -> str:
    rows = []
    for name, records in runs.items():
        for rec in records:
            values = rec.get("metrics") or {}
            rows.append([name, rec.get("seed"), *(values.get(m) for m in metrics), rec.get("seconds")])
    return table(["method", "seed", *metrics, "seconds"], rows, css_class="per-seed")


def _run_dirs(path: Path, name: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    found = {}
    for rec in records:
        for candidate in (path / name / f"seed{rec.get('seed')}", Path(str(rec.get("run_dir", "")))):
            if str(candidate) and is_run_dir(candidate):
                found[f"{name} seed{rec.get('seed')}"] = candidate
                break
    return found


def ablation_page(path: Path) -> tuple[str, str, list[Section]]:
    """Title, subtitle and sections of an ablation directory's report."""
    data = _load(path)
    summary = data["summary"]
    metrics = [str(m) for m in summary["metrics"]]
    markdown = path / "ablation.md"
    text = markdown.read_text(errors="replace") if markdown.is_file() else ""
    first = text.splitlines()[0] if text else ""
    title = first[2:].strip() if first.startswith("# ") else f"Ablation: {path.name}"
    subtitle = (
        f"Ablation of {len(summary['rows'])} configs over seeds {data.get('seeds', '?')}, reference row "
        f"{summary.get('reference')}"
    )

    intro = []
    if data.get("command"):
        intro.append(f"<p>Reproduce:</p>{pre(str(data['command']))}")
    intro.append(_table(summary))
    specs = _conventions(summary)
    if "" in specs:
        used = "; ".join(
            f"{task}: {', '.join(str(m[0]) if isinstance(m, (list, tuple)) else str(m) for m in pairs)}"
            for task, pairs in specs[""].items()
        )
        dm_text = f"metrics per task: {used or 'as listed'}."
    else:
        dm_text = delta_m_note(specs)
    intro.append(
        note(
            "Mean ± sample standard deviation over seeds of the final validation metrics; in parentheses the change "
            f"against the reference row {summary.get('reference')}, signed so that positive is better (FAFE "
            f"Table 1). Δm: mean relative change against the reference row, in percent, highlighted where "
            f"positive; {dm_text} s/run: training wall time per run."
        )
    )
    runs = data.get("runs") if isinstance(data.get("runs"), Mapping) else {}
    if runs:
        intro.append(details("Every run (per-seed final metrics)", _per_seed(runs, metrics)))
    if text:
        intro.append(details("ablation.md", pre(text)))

    all_runs: dict[str, list] = {}
    groups: dict[str, str] = {}
    row_parts = []
    for name, records in runs.items():
        dirs = _run_dirs(path, str(name), records)
        loaded = {label: load_run(d).rows for label, d in dirs.items()}
        all_runs.update(loaded)
        groups.update(dict.fromkeys(loaded, str(name)))
        if loaded:
            body = curve_figures(loaded, metrics, what=f"the seeds of {name}")
        else:
            body = note(f"No run directories found under {path / str(name)}.", warn=True)
        row_parts.append(details(f"{name}: curves of {len(loaded)} run(s)", body))
    curves = []
    if all_runs:
        what = "one colour per configuration, one line style per seed"
        curves.append(curve_figures(all_runs, metrics, what=what, groups=groups))
    curves += row_parts
    sections = [
        Section("ablation", "Ablation table", "\n".join(intro)),
        Section("curves", "Curves", "\n".join(curves) or note("No run directories found.", warn=True)),
    ]
    return title, subtitle, sections

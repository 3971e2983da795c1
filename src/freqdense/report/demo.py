"""The report of a demo directory (``freqdense demo``): the frequency-aware method against its control and a
trivial predictor, then each trained arm side by side.

``demo.json``::

    {"kind": "demo", "title": str, "wall_time_s": float, "seed": int, "steps": int,
     "rows": [{"name": str, "role": "method" | "control" | "trivial", "run_dir": "method" | "control" | null,
               "config": str, "metrics": {"semantic/miou": ..., "semantic/iou/<class>": ..., "depth/rmse": ...},
               "analyses": {"spectrum": {...}, "similarity": {"intra": ..., "inter": ..., "margin": ...}}}]}

``run_dir`` is relative to the demo directory and holds an ordinary run (see :mod:`freqdense.report.run`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ReportError
from .analyses import flatten_scalars, image_caption
from .html import Section, details, esc, image_file, note, table
from .layout import DEMO_FILE, is_run_dir, read_json
from .metric_tables import headline_keys, higher_is_better, metrics_by_row, per_class_table
from .run import RunData, curve_figures, load_run, run_sections

__all__ = ["demo_page"]

_ROLE_ORDER = {"method": 0, "control": 1, "trivial": 2}
_MAX_ANALYSIS_ROWS = 40


def _load_demo(path: Path) -> dict[str, Any]:
    fix = "re-run `freqdense demo --out DIR` to rewrite it"
    data = read_json(path / DEMO_FILE, fix=fix)
    rows = data.get("rows") if isinstance(data, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and "name" in r for r in rows):
        raise ReportError(
            f"report: {path / DEMO_FILE} needs a 'rows' list of objects with 'name', 'role', 'run_dir' and "
            f"'metrics' (the demo contract, see docs/report.md); {fix}"
        )
    return data


def _verdict(method: Mapping[str, Any], control: Mapping[str, Any], names: tuple[str, str]) -> str:
    better, compared = [], 0
    for key in headline_keys(method, control):
        direction, a, b = higher_is_better(key), method.get(key), control.get(key)
        if direction is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            continue
        compared += 1
        if (a > b) if direction else (a < b):
            better.append(key)
    if not compared:
        return ""
    which = f" ({', '.join(better)})" if better else ""
    return (
        f"<p><strong>{esc(names[0])}</strong> is better than <strong>{esc(names[1])}</strong> on "
        f"{len(better)} of {compared} metrics{esc(which)}.</p>"
    )


def _analyses_table(rows: list[Mapping[str, Any]]) -> str:
    """One table per analysis named in the rows' ``analyses``: a row per value, a column per arm."""
    names: dict[str, None] = {}
    for row in rows:
        if isinstance(row.get("analyses"), Mapping):
            names.update(dict.fromkeys(row["analyses"]))
    parts = []
    for name in names:
        flat = {
            str(r["name"]): dict(flatten_scalars(r["analyses"][name]))
            for r in rows
            if isinstance(r.get("analyses"), Mapping) and r["analyses"].get(name) is not None
        }
        keys = list(dict.fromkeys(k for values in flat.values() for k in values))[:_MAX_ANALYSIS_ROWS]
        if not keys:
            continue
        body = [[key, *(values.get(key) for values in flat.values())] for key in keys]
        parts.append(
            f"<h3>{esc(name)}</h3>\n"
            + table(["value", *flat], body, css_id=f"demo-analysis-{name}", row_keys=keys, css_class="analysis")
        )
    return "\n".join(parts) or note("demo.json lists no analyses.")


def demo_page(path: Path) -> tuple[str, str, list[Section]]:
    """Title, subtitle and sections of a demo directory's report."""
    data = _load_demo(path)
    rows = sorted(data["rows"], key=lambda r: _ROLE_ORDER.get(str(r.get("role")), 3))
    title = str(data.get("title") or f"freqdense demo: {path.name}")
    facts = [
        f"{data['steps']} training steps" if data.get("steps") is not None else "",
        f"seed {data['seed']}" if data.get("seed") is not None else "",
        f"{float(data['wall_time_s']):.0f} s wall time" if isinstance(data.get("wall_time_s"), (int, float)) else "",
    ]
    subtitle = "Demo: " + ", ".join(f for f in facts if f) if any(facts) else "Demo"

    metrics = {str(r["name"]): r.get("metrics") if isinstance(r.get("metrics"), Mapping) else {} for r in rows}
    table_rows = [(str(r["name"]), [r["name"], r.get("role", "")], metrics[str(r["name"])]) for r in rows]
    by_role = {r.get("role"): r for r in rows}
    comparison = [
        note(
            "The frequency-aware method, its control (the same model with plain bilinear fusion) and a trivial "
            "predictor, evaluated on the same validation split. The best value of each column is highlighted."
        ),
        metrics_by_row(table_rows, lead=["arm", "role"], css_id="demo-metrics"),
    ]
    if "method" in by_role and "control" in by_role:
        m, c = by_role["method"], by_role["control"]
        comparison.append(_verdict(metrics[str(m["name"])], metrics[str(c["name"])], (str(m["name"]), str(c["name"]))))
    classes = per_class_table(metrics, css_id="demo-per-class")
    if classes:
        comparison.append(f"<h3>Per class</h3>\n{classes}")

    arms: dict[str, RunData] = {}
    missing = []
    for r in rows:
        if r.get("run_dir"):
            run_path = path / str(r["run_dir"])
            if is_run_dir(run_path):
                arms[str(r["name"])] = load_run(run_path)
            else:
                missing.append(f"{r['name']} ({run_path} is not a run directory)")
    eval_keys = [
        k
        for k in headline_keys(*metrics.values())
        if any(k in row for run in arms.values() for row in run.rows if row.get("kind") == "eval")
    ][:8]
    curves = curve_figures({name: run.rows for name, run in arms.items()}, eval_keys, what="one line per arm")

    sections = [
        Section("comparison", "Method vs control vs trivial", "\n".join(p for p in comparison if p)),
        Section("curves", "Curves: the arms compared", curves if arms else note("No arm has a run directory.")),
        Section("demo-analyses", "Analyses (from demo.json)", _analyses_table(rows)),
    ]
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".svg", ".jpg"))
    if images:
        sections.append(Section("figures", "Figures", "\n".join(image_file(p, image_caption(p)) for p in images)))
    columns = []
    for name, run in arms.items():
        row = next(r for r in rows if str(r["name"]) == name)
        config = f", config {row['config']}" if row.get("config") else ""
        anchor = "arm-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        parts = run_sections(run, anchor=f"{anchor}-", level=4)
        body = "\n".join(p.render(level=4) for p in parts if p.anchor.endswith(("predictions", "analyses", "curves")))
        rest = "\n".join(p.render(level=4) for p in parts if p.anchor.endswith(("config", "provenance")))
        columns.append(
            f'<section id="{esc(anchor)}">\n<h3>{esc(name)} <span class="muted">({esc(row.get("role"))}, '
            f"{esc(run.path.name)}/{esc(config)})</span></h3>\n{body}\n"
            f"{details('Configuration and provenance', rest)}\n</section>"
        )
    arm_body = f'<div class="grid">{"".join(columns)}</div>' if columns else ""
    if missing:
        arm_body += note("Missing run directories: " + "; ".join(missing), warn=True)
    sections.append(Section("arms", "Each arm side by side", arm_body or note("No arm has a run directory.")))
    return title, subtitle, sections

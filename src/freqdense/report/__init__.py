"""Self-contained HTML reports of run, demo and ablation directories (``freqdense report DIR``).

One page a person reads without the terminal: metrics tables, curves, prediction panels, analyses, config and
provenance, with every image inlined as a ``data:`` URI (no other file, network or JavaScript needed).
"""

from __future__ import annotations

from .layout import analysis_out, detect_kind, run_dir_of
from .write import render_report, try_write_report, write_report

__all__ = ["analysis_out", "detect_kind", "render_report", "run_dir_of", "try_write_report", "write_report"]

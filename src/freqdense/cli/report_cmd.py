"""``freqdense report DIR [--out FILE]``: one self-contained HTML page of a run, demo or ablation directory.

The page (default ``DIR/report.html``) holds the metrics tables, loss and metric curves, prediction panels, every
analysis under ``DIR/analysis/``, the config and the provenance; images are inlined, so it opens in any browser
without the directory, the network or JavaScript. ``freqdense train``, ``ablate`` and ``demo`` write it when they
finish; this command rewrites it (e.g. after ``freqdense analyze``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_DESCRIPTION = """\
Write one HTML page that a person reads without the terminal:

- a training run: metrics (headline and per class), loss and metric curves,
  prediction panels, every analysis in DIR/analysis/<name>/, the config and
  the provenance (version, git revision, every start);
- a demo directory (demo.json): method vs control vs trivial, then each arm's
  curves, panels and analyses side by side;
- an ablation directory (ablation.json): the mean ± std table with Δm, and
  every run's curves.

Images are inlined as data URIs and the CSS is inline: the file needs no other
file, no network and no JavaScript."""

_EPILOG = """\
examples:
  freqdense report runs/x                      # runs/x/report.html
  freqdense report runs/ab --out ab.html       # an ablation (freqdense ablate --out runs/ab)
  freqdense report runs/demo                   # the demo: method vs control vs trivial
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run, demo or ablation directory",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="run, demo or ablation directory")
    p.add_argument("--out", type=Path, default=None, help="HTML file to write (default: DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.directory, out=args.out)
    sys.stdout.write(f"wrote {path}\n")
    return 0

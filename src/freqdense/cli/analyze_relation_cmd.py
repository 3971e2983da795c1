"""``freqdense analyze relation RESULTS.json [--out DIR] [--predictor r_model|r_label] [--void keep|fill|both]``
(Fig. 6 of the spectral-analysis paper).

Reads the per-run records written by ``scripts/experiments/spectral_synthetic.py`` (``{"runs": [...], "label_r":
{...}}``, format in :mod:`freqdense.analysis.spectral_relation`), prints the relative-mIoU / ``R(nu_max)`` table and
the Spearman correlations between ``R`` and the mIoU drop, and with ``--out`` writes ``relation.png`` and
``relation.json``. ``--void`` picks the block-wise runs by their void convention (``keep``: void pixels stayed void,
``fill``: they took their block's label; runs recorded without one are ``fill``); ``both`` (the default) shows each
convention as its own series.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import DataError

__all__ = ["register"]


def register(analyses: argparse._SubParsersAction) -> None:
    """Add ``relation`` to the ``analyze`` subparsers."""
    p = analyses.add_parser("relation", help="relative mIoU against R(nu_max) with Spearman correlation (Fig. 6)")
    p.add_argument("results", type=Path, help="results.json of scripts/experiments/spectral_synthetic.py")
    p.add_argument("--out", type=Path, default=None, help="write relation.png and relation.json here")
    p.add_argument("--predictor", choices=["r_model", "r_label"], default="r_model", help="R on the plot's x axis")
    p.add_argument(
        "--void",
        choices=["keep", "fill", "both"],
        default="both",
        help="block-wise runs to show: void pixels kept void, filled with the block's label, or both (default)",
    )
    p.set_defaults(func=_run_relation)


def _run_relation(args: argparse.Namespace) -> int:
    from ..analysis.spectral_relation import (
        DEFAULT_VOID,
        plot_relation,
        relation_correlations,
        relation_points,
        relation_table,
    )

    try:
        data = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read results file {args.results}: {err}; pass the experiment's results.json") from err
    if not isinstance(data, dict) or "runs" not in data:
        raise DataError(f"{args.results} has no 'runs' list; pass the results.json of spectral_synthetic.py")
    runs = [
        r
        for r in data["runs"]
        if args.void == "both" or r.get("family") != "blockwise" or r.get("void", DEFAULT_VOID) == args.void
    ]
    if args.void != "both" and not any(r.get("family") == "blockwise" for r in runs):
        raise DataError(f"{args.results} has no block-wise runs with void={args.void!r}; pass --void both to see all")
    points = relation_points(runs, label_r=data.get("label_r"))
    correlations = relation_correlations(points)
    sys.stdout.write(relation_table(points, correlations))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_relation(points, args.out / "relation.png", predictor=args.predictor)
        (args.out / "relation.json").write_text(json.dumps({"points": points, "correlations": correlations}, indent=2))
        sys.stdout.write(f"wrote {args.out / 'relation.png'} and {args.out / 'relation.json'}\n")
    return 0

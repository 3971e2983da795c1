"""``freqdense analyze relation RESULTS.json [--out DIR] [--predictor r_model|r_label]`` (Fig. 6 of the
spectral-analysis paper).

Reads the per-run records written by ``scripts/experiments/spectral_synthetic.py`` (``{"runs": [...], "label_r":
{...}}``, format in :mod:`freqdense.analysis.spectral_relation`), prints the relative-mIoU / ``R(nu_max)`` table and
the Spearman correlations between ``R`` and the mIoU drop, and with ``--out`` writes ``relation.png`` and
``relation.json``.
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
    p.set_defaults(func=_run_relation)


def _run_relation(args: argparse.Namespace) -> int:
    from ..analysis.spectral_relation import plot_relation, relation_correlations, relation_points, relation_table

    try:
        data = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read results file {args.results}: {err}; pass the experiment's results.json") from err
    if not isinstance(data, dict) or "runs" not in data:
        raise DataError(f"{args.results} has no 'runs' list; pass the results.json of spectral_synthetic.py")
    points = relation_points(data["runs"], label_r=data.get("label_r"))
    correlations = relation_correlations(points)
    sys.stdout.write(relation_table(points, correlations))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_relation(points, args.out / "relation.png", predictor=args.predictor)
        (args.out / "relation.json").write_text(json.dumps({"points": points, "correlations": correlations}, indent=2))
        sys.stdout.write(f"wrote {args.out / 'relation.png'} and {args.out / 'relation.json'}\n")
    return 0

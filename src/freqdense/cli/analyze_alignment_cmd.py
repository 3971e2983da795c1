"""``freqdense analyze alignment RUN``: FAFNet's learned RGB-depth flows against the known sensor misalignment.

Writes ``alignment.json`` and ``alignment.md`` (per RGBDFuse stage: mean end-point error of the learned flow and
of the zero-flow baseline) and Fig. 6-like panels ``alignment_<id>_fuse<k>.png`` to ``--out``. The run must be a
FAFNet-style model trained on data with ``sensor_flow`` (the synthetic scenes with the sensor modality). See
docs/methods/fafnet_analysis.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(analyses: argparse._SubParsersAction) -> None:
    """Add ``alignment`` to the ``analyze`` subparsers."""
    from .analyze_cmd import _add_run_arguments, _default_out_help

    p = analyses.add_parser(
        "alignment", help="EPE of FAFNet's RGBDFuse flows vs. the true depth misalignment; Fig. 6-like panels"
    )
    _add_run_arguments(p)
    p.add_argument("--out", type=Path, default=None, help=_default_out_help("alignment", "JSON, markdown and panels"))
    p.add_argument("--panels", type=int, default=2, help="number of Fig. 6-like panels (first samples; default 2)")
    p.add_argument("--stage", type=int, default=1, help="fusion stage shown in the panels (default 1)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..analysis.flow_alignment import alignment_markdown, compute_flow_alignment, write_alignment_panels
    from .analyze_cmd import _default_out, _jsonable, _load_run

    model, dataset, cfg, device = _load_run(args)
    _default_out(args, "alignment")
    inputs = tuple(cfg.task.inputs)
    result = compute_flow_alignment(
        model, dataset, inputs=inputs, num=args.num, batch_size=args.batch_size, device=device
    )
    result.update(
        checkpoint=str(args.checkpoint),
        split=args.split or cfg.data.val_split,
        model=cfg.model.name,
        model_kwargs=dict(cfg.model.kwargs),
        dataset_args=dict(cfg.data.args),
    )
    table = alignment_markdown(result)
    sys.stdout.write(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "alignment.json").write_text(json.dumps(_jsonable(result), indent=2, sort_keys=True) + "\n")
        (args.out / "alignment.md").write_text(table)
        if args.panels > 0:
            n = min(args.panels, len(dataset))
            paths = write_alignment_panels(
                model, dataset, args.out, inputs=inputs, indices=range(n), stage=args.stage, device=device
            )
            log.info("wrote %d panels to %s", len(paths), args.out)
        log.info("wrote %s", args.out / "alignment.json")
    return 0

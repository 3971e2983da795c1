"""``freqdense convert FORMAT SOURCE --out DIR``: an official checkpoint -> a freqdense checkpoint folder.

The folder (``model.safetensors``, ``meta.json``, ``config.yaml``, ``convert.json``) is accepted by ``eval``,
``predict``, ``export`` and ``analyze`` like a trained run. The model (its name, backbone, class count, tasks) is read
from the weights; ``model.*`` overrides set what the weights cannot tell (``model.output_stride=8``,
``model.min_depth=0.1``) and are checked against them; ``--config`` names the data and evaluation protocol the
model is evaluated with (default: the paper's config for that model). Files are read without unpickling code.

Examples::

    freqdense convert mtl-pytorch results/nyud/hrnet_w18/mti_net/best_model.pth.tar --out runs/mti_official
    freqdense convert monodepth2 models/mono_640x192 --out runs/md2_mono --config kitti/monodepth2_m_r18_192x640
    freqdense convert deeplab-jfzhang95 run/pascal/deeplab-resnet/model_best.pth.tar --out runs/deeplab_voc
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from ..models.convert import FORMATS

    p = sub.add_parser(
        "convert",
        help="official checkpoint -> freqdense checkpoint folder (" + ", ".join(FORMATS) + ")",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=sorted(FORMATS), help="layout of SOURCE")
    p.add_argument("source", type=Path, help="the official checkpoint file (Monodepth2: its weights folder)")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint folder (must not exist or be empty)")
    p.add_argument("--config", default=None, help="config for data / task / evaluation (default: per model)")
    p.add_argument("overrides", nargs="*", help="model.* options the weights cannot tell; other section.key=value")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.convert import convert_checkpoint
    from ..models.convert.freqfusion import PARTIAL_REPORT, PartialConversion

    out, conv = convert_checkpoint(args.format, args.source, args.out, config=args.config, overrides=args.overrides)
    if isinstance(conv, PartialConversion):
        print(f"converted {args.source} ({args.format}, {conv.kind}) PARTIALLY -> {out}")
        print(f"  {len(conv.mapped)} tensors of the backbone ({conv.backbone}) and the FreqFusion FPN neck")
        print(f"  not converted: {len(conv.unmapped)} keys of the R-CNN heads (freqdense has no two-stage detector)")
        for note in conv.notes:
            print(f"  note: {note}")
        print(f"  not a run directory: load it with load_state_dict(strict=False) (see {out}/{PARTIAL_REPORT})")
        return 0
    model = ", ".join(f"{k}={v}" for k, v in conv.model.items())
    print(f"converted {args.source} ({args.format}) -> {out}")
    print(f"  model: {model}")
    for old, new, n in conv.renamed:
        print(f"  renamed {old} -> {new} ({n} keys)")
    if conv.dropped:
        print(
            f"  dropped {len(conv.dropped)} keys: "
            + "; ".join(f"{k} ({why})" for k, why in list(conv.dropped.items())[:6])
        )
    for note in conv.notes:
        print(f"  note: {note}")
    print(f"  {len(conv.state_dict)} tensors loaded strictly; evaluate with `freqdense eval {out}`")
    return 0

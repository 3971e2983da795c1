"""Monodepth2 / Freq-aware depth model folders (``models/weights_<epoch>/``): ``encoder.pth`` (with ``height``,
``width``, ``use_stereo``), ``depth.pth`` and optionally ``pose_encoder.pth`` + ``pose.pth`` (the "separate_resnet"
pose network, Monodepth2's default).

The ResNet depth (18/34/50/101) and the presence of the pose network are read from the files; the depth range
(Monodepth2's ``--min_depth 0.1 --max_depth 100``) is not stored in them and comes from the model options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ..monodepth import load_monodepth2_weights, monodepth
from ._common import Conversion, read_checkpoint_file

__all__ = ["convert_monodepth2", "detect_resnet_depth"]

_BLOCKS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34}
_BOTTLENECK_BLOCKS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101}


def detect_resnet_depth(state: dict[str, Any], prefix: str) -> int:
    """18 / 34 / 50 / 101 from the number of blocks per stage and the block type."""
    counts = []
    for stage in range(1, 5):
        blocks = {int(k[len(prefix) :].split(".")[1]) for k in state if k.startswith(f"{prefix}layer{stage}.")}
        counts.append(len(blocks))
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    table = _BOTTLENECK_BLOCKS if bottleneck else _BLOCKS
    depth = table.get(tuple(counts))
    if depth is None:
        raise CheckpointError(
            f"ResNet with {counts} blocks per stage ({'bottleneck' if bottleneck else 'basic'} blocks) is not "
            "ResNet-18/34/50/101"
        )
    return depth


def convert_monodepth2(source: str | Path, model_options: dict[str, Any] | None = None) -> Conversion:
    """Read a Monodepth2 weights folder; ``model_options`` may set ``min_depth``, ``max_depth``, ``scales``."""
    folder = Path(source)
    if not folder.is_dir():
        raise CheckpointError(
            f"{str(folder)!r} is not a Monodepth2 weights folder; give the folder holding encoder.pth and depth.pth"
        )
    files = {stem: folder / f"{stem}.pth" for stem in ("encoder", "depth", "pose_encoder", "pose")}
    for required in ("encoder", "depth"):
        if not files[required].is_file():
            raise CheckpointError(f"{folder}: {required}.pth is missing (Monodepth2 saves encoder.pth and depth.pth)")
    states = {stem: read_checkpoint_file(p) for stem, p in files.items() if p.is_file()}
    for stem, state in states.items():
        if not isinstance(state, dict):
            raise CheckpointError(f"{files[stem]}: expected a state dict, got {type(state).__name__}")
    encoder = states["encoder"]
    depth = detect_resnet_depth(encoder, "encoder.")
    width = int(encoder["encoder.conv1.weight"].shape[0])
    has_pose = "pose" in states
    conv = Conversion(model={}, state_dict={})
    if has_pose and "pose_encoder" not in states:
        raise CheckpointError(
            f"{folder}: pose.pth without pose_encoder.pth is Monodepth2's 'shared' or 'posecnn' pose network; "
            "freqdense implements the default 'separate_resnet' one. Move pose.pth away to convert the depth network"
        )
    if "pose_encoder" in states and not has_pose:
        conv.notes.append("pose_encoder.pth without pose.pth: the pose network is left out")
        states.pop("pose_encoder")
    options = dict(model_options or {})
    unknown = set(options) - {"min_depth", "max_depth", "scales"}
    if unknown:
        raise CheckpointError(f"model options {sorted(unknown)} cannot be set for a Monodepth2 folder (read from it)")
    model_cfg: dict[str, Any] = {"name": "monodepth", "backbone": f"resnet{depth}", "pose": has_pose, **options}
    if width != 64:
        model_cfg["backbone_kwargs"] = {"base_width": width}
    kwargs = {k: v for k, v in model_cfg.items() if k != "name"}
    model = monodepth(**kwargs)
    load_monodepth2_weights(model, {stem: state for stem, state in states.items()})
    conv.model = model_cfg
    conv.state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    conv.renamed = [(f"{stem}.pth", attr, len(states[stem])) for stem, attr in _ATTRS.items() if stem in states]
    dropped = [k for k in encoder if k.startswith("encoder.fc.")]
    conv.dropped.update({k: "ImageNet classifier, unused by the depth network" for k in dropped})
    conv.dropped.update(
        {
            k: "training resolution / mode, recorded in meta.json"
            for k in ("height", "width", "use_stereo")
            if k in encoder
        }
    )
    conv.extra = {
        "train_height": int(encoder["height"]) if "height" in encoder else None,
        "train_width": int(encoder["width"]) if "width" in encoder else None,
        "use_stereo": bool(encoder["use_stereo"]) if "use_stereo" in encoder else None,
    }
    conv.notes.append(
        f"detected ResNet-{depth} (base width {width}), pose network {'yes' if has_pose else 'no'}, trained at "
        f"{conv.extra['train_height']}x{conv.extra['train_width']}; depth range min {model.min_depth} / max "
        f"{model.max_depth} m (not stored in the files: set model.min_depth / model.max_depth if yours differ)"
    )
    return conv


_ATTRS = {"encoder": "backbone", "depth": "depth_decoder", "pose_encoder": "pose_encoder", "pose": "pose_decoder"}

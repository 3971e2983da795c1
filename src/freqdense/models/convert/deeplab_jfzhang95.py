"""pytorch-deeplab-xception (jfzhang95) checkpoints with the ResNet backbone: ``model_best.pth.tar`` /
``checkpoint.pth.tar`` holding ``{"epoch", "state_dict", "optimizer", "best_pred"}``.

freqdense's :func:`~freqdense.models.deeplabv3plus.deeplabv3plus` uses the same module names (``backbone.*``,
``aspp.aspp1..4``, ``aspp.global_avg_pool``, ``decoder.last_conv.0..8``), so the weights load unchanged. ResNet-50 vs
101 and the class count are read from the weights; the output stride (16 or 8: dilations, not weights) is a model
option (default 16). The Xception, MobileNet and DRN backbones have no freqdense counterpart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...errors import CheckpointError
from ._common import Conversion
from .monodepth2 import detect_resnet_depth

__all__ = ["convert_deeplab_jfzhang95"]

_OTHER_BACKBONES = {
    "backbone.entry_flow": "xception",
    "backbone.conv1.0": "xception",
    "backbone.features.": "mobilenet",
    "backbone.layer0.": "drn",
    "backbone.block1.": "xception",
}


def convert_deeplab_jfzhang95(state: Mapping[str, Tensor], model_options: dict[str, Any] | None = None) -> Conversion:
    """Map a jfzhang95 DeepLab v3+ state dict; ``model_options`` may set ``output_stride`` (8 or 16)."""
    for prefix, name in _OTHER_BACKBONES.items():
        if any(k.startswith(prefix) for k in state):
            raise CheckpointError(
                f"this DeepLab v3+ checkpoint uses the {name} backbone (keys {prefix}*); freqdense converts the "
                "ResNet-50/101 backbone only"
            )
    if "decoder.last_conv.8.weight" not in state or not any(k.startswith("aspp.") for k in state):
        raise CheckpointError(
            "not a pytorch-deeplab-xception DeepLab v3+ state dict: decoder.last_conv.8.weight / aspp.* not found "
            f"(first keys: {list(state)[:4]})"
        )
    depth = detect_resnet_depth(dict(state), "backbone.")
    if depth not in (50, 101):
        raise CheckpointError(f"DeepLab v3+ backbone ResNet-{depth}: freqdense builds ResNet-50 and ResNet-101")
    options = dict(model_options or {})
    unknown = set(options) - {"output_stride", "multi_grid", "aspp_rates"}
    if unknown:
        raise CheckpointError(f"model options {sorted(unknown)} are read from the checkpoint and cannot be set")
    conv = Conversion(model={}, state_dict={})
    dropped = {k: "ImageNet classifier, unused" for k in state if k.startswith("backbone.fc.")}
    conv.dropped.update(dropped)
    num_classes = int(state["decoder.last_conv.8.weight"].shape[0])
    conv.model = {
        "name": "deeplabv3plus",
        "backbone": f"resnet{depth}",
        "num_classes": num_classes,
        "output_stride": 16,
        **options,
    }
    conv.state_dict = {k: v for k, v in state.items() if k not in dropped}
    conv.notes.append(
        f"detected ResNet-{depth}, {num_classes} classes; output stride {conv.model['output_stride']} "
        "(not stored in the weights: pass model.output_stride=8 for an OS8 model)"
    )
    return conv

"""The multi-task baseline: one shared backbone, one HRNetHead per task ("1-predict" in FAFE, Fu et al. MM'21).

Same structure as Multi-Task-Learning-PyTorch's ``MultiTaskModel`` with HRNet heads
(docs/reference_code.md#hrnet): every task head sees all backbone scales, predicts at stride 4, and the
prediction is bilinearly upsampled to the input size. With one task it is the single-task baseline that Δm
compares against. Task names follow the freqdense sample contract: ``semantic`` (reference: ``semseg``), ``depth``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn.fafe import FAFEOptions, check_fafe_tasks, fafe_block
from ._dense import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    activate_depth,
    check_depth_activation,
    check_image,
    register_normalization,
)
from ._registry import register_model
from .backbones import create_backbone
from .heads import HRNetHead, concat_upsampled

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TASKS",
    "check_tasks",
    "DepthActivation",
    "MultiTaskBaseline",
    "depth_baseline",
    "multitask_baseline",
    "segmentation_baseline",
]

#: Dense tasks the baseline can predict.
TASKS = ("semantic", "depth")

DepthActivation = Literal["none", "relu", "softplus", "exp"]


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """Validate a task list (non-empty, known names, no duplicates) and return it as a tuple."""
    if isinstance(tasks, str):
        tasks = (tasks,)
    tasks = tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks):
        raise ConfigError(f"tasks must be a non-empty list without duplicates drawn from {TASKS}, got {tasks!r}")
    for t in tasks:
        if t not in TASKS:
            close = difflib.get_close_matches(t, TASKS, n=1, cutoff=0.3)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown task {t!r}.{hint} Valid tasks: {', '.join(TASKS)}")
    return tasks


class MultiTaskBaseline(nn.Module):
    """Shared backbone + one :class:`~freqdense.models.heads.HRNetHead` per task.

    Args:
        backbone: any freqdense backbone (``out_channels``; ``forward`` returns features finest first).
        tasks: subset of ``("semantic", "depth")``, in output order.
        num_classes: semantic classes (40 for NYUD-v2).
        depth_activation: applied to the upsampled depth output. ``"none"`` (default) returns the raw conv output,
            as the reference does (its L1 loss acts on it directly); ``"relu"``, ``"softplus"`` and ``"exp"``
            guarantee non-negative / positive metres.

    Input ``image``: ``(B, 3, H, W)`` RGB in [0, 1], any H and W (ImageNet normalisation happens inside, with the
    ``mean``/``std`` buffers). Output: ``{"semantic": (B, num_classes, H, W) logits, "depth": (B, 1, H, W) metres}``
    restricted to ``tasks``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: Sequence[str] = TASKS,
        num_classes: int = 40,
        depth_activation: DepthActivation = "none",
        fafe: FAFEOptions | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.fafe = FAFEOptions.from_config(fafe)
        check_fafe_tasks(self.fafe, self.tasks)
        if "semantic" in self.tasks and int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
        check_depth_activation(depth_activation)
        in_ch = getattr(backbone, "in_channels", 3)
        if in_ch != 3:
            raise ConfigError(f"MultiTaskBaseline takes RGB images; the backbone was built with in_channels={in_ch}")
        self.num_classes = int(num_classes)
        self.depth_activation = depth_activation
        self.backbone = backbone
        outputs = {"semantic": self.num_classes, "depth": 1}
        self.heads = nn.ModuleDict({t: HRNetHead(backbone.out_channels, outputs[t]) for t in self.tasks})
        # FAFE's "1-predict" row (FAFE Table 3): one block on the concatenated multi-scale feature that each
        # head's 1x1 layers read (both tasks get the same tensor, so its PI is the single-input one).
        self.fafe_block = None
        if self.fafe is not None:
            channels = sum(int(c) for c in backbone.out_channels)
            self.fafe_block = fafe_block(self.fafe, channels, stride=int(backbone.strides[0]))
        register_normalization(self)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict every task at the input resolution (see the class docstring for shapes)."""
        check_image(image)
        size = image.shape[-2:]
        features = self.backbone((image - self.mean) / self.std)
        per_task = None
        if self.fafe_block is not None:
            shared = concat_upsampled(features, self.backbone.out_channels)
            per_task = self.fafe_block({t: shared for t in self.tasks})
        out = {}
        for task, head in self.heads.items():
            y = head(features) if per_task is None else head.last_layer(per_task[task])
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out[task] = activate_depth(y, self.depth_activation) if task == "depth" else y
        return out


def _build(
    backbone: str,
    backbone_kwargs: dict[str, Any] | None,
    pretrained: str | None,
    **model_kwargs: Any,
) -> MultiTaskBaseline:
    kwargs = dict(backbone_kwargs or {})
    if "pretrained" in kwargs:
        raise ConfigError("pass pretrained= to the model, not inside backbone_kwargs")
    net = create_backbone(backbone, pretrained=pretrained, **kwargs)
    return MultiTaskBaseline(net, **model_kwargs)


@register_model
def multitask_baseline(
    *,
    backbone: str = "hrnet_w18_small",
    tasks: Sequence[str] = TASKS,
    num_classes: int = 40,
    depth_activation: DepthActivation = "none",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    fafe: dict[str, Any] | None = None,
) -> MultiTaskBaseline:
    """Joint segmentation + depth baseline (shared backbone, HRNet head per task), FAFE's "1-predict" model.

    Args:
        backbone: registered backbone name (``freqdense list`` shows them).
        tasks: subset of ``("semantic", "depth")``.
        num_classes: semantic classes.
        depth_activation: see :class:`MultiTaskBaseline`.
        pretrained: local ImageNet weights file for the backbone (never downloaded).
        backbone_kwargs: extra keywords for the backbone factory (e.g. ``{"output_stride": 16}``).
        fafe: FAFE options (``None`` = plain baseline), keys of :class:`~freqdense.nn.fafe.FAFEOptions`; one block
            in front of the heads' 1x1 layers (FAFE Table 3, "1-predict").
    """
    options = FAFEOptions.from_config(fafe)  # validate before building the backbone
    return _build(
        backbone,
        backbone_kwargs,
        pretrained,
        tasks=tasks,
        num_classes=num_classes,
        depth_activation=depth_activation,
        fafe=options,
    )


@register_model
def segmentation_baseline(
    *,
    backbone: str = "hrnet_w18_small",
    num_classes: int = 40,
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> MultiTaskBaseline:
    """Single-task semantic segmentation baseline (the Δm reference for ``semantic``)."""
    return _build(backbone, backbone_kwargs, pretrained, tasks=("semantic",), num_classes=num_classes)


@register_model
def depth_baseline(
    *,
    backbone: str = "hrnet_w18_small",
    depth_activation: DepthActivation = "none",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> MultiTaskBaseline:
    """Single-task depth baseline (the Δm reference for ``depth``)."""
    return _build(backbone, backbone_kwargs, pretrained, tasks=("depth",), depth_activation=depth_activation)

"""PAD-Net (Xu et al., CVPR'18) as in Multi-Task-Learning-PyTorch (``models/padnet.py``, ``fuse_hrnet: True``).

Reference (docs/reference_code.md#pad-net): backbone + :class:`~freqdense.models.heads.HRNetFuse` (all scales at
stride 4), initial per-task predictions (two Bottlenecks + 1x1 conv), multi-modal distillation and a final head per
task (two Bottlenecks + 1x1 conv). This is FAFE's "2-predict" model (FAFE, Table 3); ``num_predictions=3``
chains one more prediction + distillation stage ("3-predict": "the connection module between multiple prediction
heads is borrowed from PAD-Net"). Module names follow the reference (``backbone.0`` trunk, ``backbone.1`` fuse,
``initial_task_prediction_heads.layers.<t>``, ``multi_modal_distillation.self_attention.<t>.<a>``, ``heads.<t>``).

``fafe=`` (FAFE §3.1: "inserted before intermediate predictions and final predictions separately") puts a
FAFE block in front of every prediction stage: ``fafe_initial`` on the shared fused feature (270 channels for W18;
both tasks receive it, so its PI is the single-input one that splits it into task streams), ``fafe_intermediate``
(3-predict only) and ``fafe_final`` on the per-task distilled features (256 channels). Each block feeds the
per-task prediction module that follows it (two Bottlenecks + 1x1 predictor). See docs/methods/fafe.md and
docs/models/multitask_baselines.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn.distillation import MultiTaskDistillation
from ..nn.fafe import FAFEOptions, check_fafe_tasks, fafe_block
from ._dense import check_depth_activation, check_image, register_normalization
from ._registry import register_model
from .backbones.resnet import Bottleneck
from .heads import HRNetFuse
from .mti_net import _activate_depth, _backbone, _check_rgb, _num_outputs
from .multitask import TASKS, DepthActivation, check_tasks

__all__ = ["PADNet", "TaskPrediction", "pad_net", "pad_net_3predict"]

#: Channels of the task features (torchvision Bottleneck, planes 64, expansion 4).
FEATURE_CHANNELS = 256


def bottleneck(in_channels: int, planes: int = 64) -> Bottleneck:
    """torchvision-style Bottleneck (``planes * 4`` outputs) with a 1x1 conv + BN projection when needed."""
    out = planes * Bottleneck.expansion
    down = None
    if in_channels != out:
        down = nn.Sequential(nn.Conv2d(in_channels, out, 1, bias=False), nn.BatchNorm2d(out))
    return Bottleneck(in_channels, planes, downsample=down)


class TaskPrediction(nn.Module):
    """Per task: two Bottlenecks (``in_channels -> 256``) giving features, and a 1x1 conv (bias) predicting from them.

    Args:
        num_outputs: ``{task: output channels}``.
        in_channels: channels of the shared (or per-task) input features.
    """

    def __init__(self, num_outputs: Mapping[str, int], in_channels: int) -> None:
        super().__init__()
        self.tasks = tuple(num_outputs)
        self.layers = nn.ModuleDict(
            {t: nn.Sequential(bottleneck(in_channels), bottleneck(FEATURE_CHANNELS)) for t in self.tasks}
        )
        self.predictions = nn.ModuleDict({t: nn.Conv2d(FEATURE_CHANNELS, int(k), 1) for t, k in num_outputs.items()})

    def forward(
        self, inputs: torch.Tensor | Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Shared or per-task ``(B, C, h, w)`` -> (``{task: (B, 256, h, w)}``, ``{task: prediction}``)."""
        features = {t: self.layers[t](inputs if isinstance(inputs, torch.Tensor) else inputs[t]) for t in self.tasks}
        return features, {t: self.predictions[t](features[t]) for t in self.tasks}


class PADNet(nn.Module):
    """PAD-Net: shared backbone + fuse, ``num_predictions - 1`` prediction/distillation stages, final heads.

    Args:
        backbone: freqdense multi-scale backbone (features finest first).
        tasks: at least two of ``("semantic", "depth")``.
        num_classes: semantic classes.
        depth_activation: applied to every depth output (``"none"`` = raw, as the reference).
        num_predictions: 2 (PAD-Net, FAFE's "2-predict") or 3 (FAFE's "3-predict").
        fafe: FAFE options (:class:`~freqdense.nn.fafe.FAFEOptions` or its mapping); ``None`` = plain PAD-Net.
            Blocks ``fafe_initial`` (fused feature), ``fafe_intermediate`` (3-predict) and ``fafe_final``
            (distilled features) precede the prediction stages; FD weights are sized at the backbone's finest
            stride.

    Input ``(B, 3, H, W)`` RGB in [0, 1]. Output: ``{"semantic": (B, K, H, W), "depth": (B, 1, H, W)}`` plus the
    stride-4 deep-supervision predictions ``"<task>:initial"`` (and ``"<task>:intermediate"`` for 3 predictions).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: Sequence[str] = TASKS,
        num_classes: int = 40,
        depth_activation: DepthActivation = "none",
        num_predictions: int = 2,
        fafe: FAFEOptions | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if len(self.tasks) < 2:
            raise ConfigError(f"PAD-Net needs at least two tasks, got {self.tasks}; use multitask_baseline instead")
        if num_predictions not in (2, 3):
            raise ConfigError(f"num_predictions must be 2 (PAD-Net) or 3, got {num_predictions!r}")
        self.num_outputs = _num_outputs(self.tasks, num_classes)
        self.num_classes = int(num_classes)
        self.num_predictions = int(num_predictions)
        self.depth_activation = check_depth_activation(depth_activation)
        self.fafe = FAFEOptions.from_config(fafe)
        check_fafe_tasks(self.fafe, self.tasks)
        _check_rgb(backbone, "PADNet")
        fuse = HRNetFuse(backbone.out_channels)
        self.backbone = nn.Sequential(backbone, fuse)
        self.fafe_initial = self.fafe_intermediate = self.fafe_final = None
        if self.fafe is not None:
            stride = int(backbone.strides[0])  # the fuse upsamples every scale to the finest one
            self.fafe_initial = fafe_block(self.fafe, fuse.out_channels, stride=stride)
            if self.num_predictions == 3:
                self.fafe_intermediate = fafe_block(self.fafe, FEATURE_CHANNELS, stride=stride)
            self.fafe_final = fafe_block(self.fafe, FEATURE_CHANNELS, stride=stride)
        self.initial_task_prediction_heads = TaskPrediction(self.num_outputs, fuse.out_channels)
        self.multi_modal_distillation = MultiTaskDistillation(self.tasks, self.tasks, FEATURE_CHANNELS)
        if self.num_predictions == 3:
            self.intermediate_task_prediction_heads = TaskPrediction(self.num_outputs, FEATURE_CHANNELS)
            self.intermediate_distillation = MultiTaskDistillation(self.tasks, self.tasks, FEATURE_CHANNELS)
        self.heads = nn.ModuleDict(
            {
                t: nn.Sequential(
                    bottleneck(FEATURE_CHANNELS), bottleneck(FEATURE_CHANNELS), nn.Conv2d(FEATURE_CHANNELS, k, 1)
                )
                for t, k in self.num_outputs.items()
            }
        )
        register_normalization(self)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final predictions at the input size plus the stride-4 intermediate ones (see the class docstring)."""
        check_image(image)
        size = image.shape[-2:]
        shared = self.backbone((image - self.mean) / self.std)
        if self.fafe_initial is not None:  # both tasks get the shared feature: single-input PI splits it
            shared = self.fafe_initial({t: shared for t in self.tasks})
        features, initial = self.initial_task_prediction_heads(shared)
        features = self.multi_modal_distillation(features)
        aux = {f"{t}:initial": p for t, p in initial.items()}
        if self.num_predictions == 3:
            if self.fafe_intermediate is not None:
                features = self.fafe_intermediate(features)
            features, intermediate = self.intermediate_task_prediction_heads(features)
            features = self.intermediate_distillation(features)
            aux.update({f"{t}:intermediate": p for t, p in intermediate.items()})
        if self.fafe_final is not None:
            features = self.fafe_final(features)
        out = {
            t: F.interpolate(head(features[t]), size=size, mode="bilinear", align_corners=False)
            for t, head in self.heads.items()
        }
        out.update(aux)
        return _activate_depth(out, self.depth_activation)


def _build(
    backbone: str,
    backbone_kwargs: dict[str, Any] | None,
    pretrained: str | None,
    fafe: dict[str, Any] | None,
    **kwargs: Any,
) -> PADNet:
    options = FAFEOptions.from_config(fafe)  # validate before building the backbone
    return PADNet(_backbone(backbone, backbone_kwargs, pretrained), fafe=options, **kwargs)


@register_model
def pad_net(
    *,
    backbone: str = "hrnet_w18_small",
    tasks: Sequence[str] = TASKS,
    num_classes: int = 40,
    depth_activation: DepthActivation = "none",
    num_predictions: int = 2,
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    fafe: dict[str, Any] | None = None,
) -> PADNet:
    """PAD-Net, FAFE's "2-predict" model (7.019 M parameters with hrnet_w18_small, 40 classes + depth).

    Args:
        backbone: registered backbone name (hrnet_w18_small, hrnet_w18, hrnet_w48, resnet18 ...).
        tasks: at least two of ``("semantic", "depth")``.
        num_classes: semantic classes.
        depth_activation: see :class:`PADNet`.
        num_predictions: 2 (default) or 3 (same as :func:`pad_net_3predict`).
        pretrained: local ImageNet weights file for the backbone (never downloaded).
        backbone_kwargs: extra keywords for the backbone factory.
        fafe: FAFE options (``None`` = plain PAD-Net), keys of :class:`~freqdense.nn.fafe.FAFEOptions`:
            ``variant`` ("fafe" | "conv"), ``pi``, ``fd``, ``fr``, ``input_size`` ([H, W], needed with ``fd``),
            ``cutoff``, ``pi_grid``, ``pi_order``, ``merge``, ``fd_kernel_size``, ``fr_reduction``.
    """
    return _build(
        backbone,
        backbone_kwargs,
        pretrained,
        fafe,
        tasks=tasks,
        num_classes=num_classes,
        depth_activation=depth_activation,
        num_predictions=num_predictions,
    )


@register_model
def pad_net_3predict(
    *,
    backbone: str = "hrnet_w18_small",
    tasks: Sequence[str] = TASKS,
    num_classes: int = 40,
    depth_activation: DepthActivation = "none",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    fafe: dict[str, Any] | None = None,
) -> PADNet:
    """FAFE's "3-predict" model (Table 3): PAD-Net with a second prediction + distillation stage.

    Keywords as :func:`pad_net`; with ``fafe`` a third block (``fafe_intermediate``) precedes the intermediate
    predictions.
    """
    return _build(
        backbone,
        backbone_kwargs,
        pretrained,
        fafe,
        tasks=tasks,
        num_classes=num_classes,
        depth_activation=depth_activation,
        num_predictions=3,
    )

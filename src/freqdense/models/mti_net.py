"""MTI-Net (Vandenhende et al., ECCV'20), structure-faithful to Multi-Task-Learning-PyTorch's ``models/mti_net.py``.

Reference (docs/reference_code.md#mti-net): initial task predictions at every backbone scale (coarsest first), a
feature propagation module (FPM) carrying task features from each scale to the next finer one, PAD-Net distillation
per scale and one HRNet head per task over the distilled scales. Module names follow the reference
(``scale_<s>.refinement.<t>``, ``fpm_scale_<s>.non_linear``, ``fpm_scale_<s>.se.<t>.squeeze``,
``distillation_scale_<s>.self_attention.<t>.<a>``, ``heads.<t>.last_layer``); task names are freqdense's
(``semantic`` for the reference's ``semseg``). See docs/models/multitask_baselines.md.

``fafe=`` (FAFE §3.1: "inserted before the intermediate predictions at each scale") adds ``fafe_scale_<s>``
in front of every ``scale_<s>`` initial prediction module, on that module's per-task input (``ch[s] + ch[s + 1]``
channels, ``ch[last]`` at the coarsest scale where both tasks receive the same backbone feature and PI is the
single-input one); the FD weights of each block are sized for its scale. See docs/methods/fafe.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn.distillation import MultiTaskDistillation, SEBlock
from ..nn.fafe import FAFEOptions, check_fafe_tasks, fafe_block
from ._dense import activate_depth, check_image, register_normalization
from ._dense import check_depth_activation as _check_depth_activation
from ._registry import register_model
from .backbones import create_backbone
from .backbones.resnet import BasicBlock
from .heads import HRNetHead
from .multitask import TASKS, DepthActivation, check_tasks

__all__ = ["FPMGrouping", "FeaturePropagation", "InitialTaskPrediction", "MTINet", "mti_net"]

#: FPM softmax grouping: ``"reference"`` = the reference's view (adjacent channel pairs, mostly of one task);
#: ``"tasks"`` = across tasks per channel, as the MTI-Net paper describes.
FPMGrouping = Literal["reference", "tasks"]
_GROUPINGS = ("reference", "tasks")


def basic_block(in_channels: int, out_channels: int) -> BasicBlock:
    """torchvision-style BasicBlock with a 1x1 conv + BN projection shortcut when the channels change."""
    down = None
    if in_channels != out_channels:
        down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
    return BasicBlock(in_channels, out_channels, downsample=down)


class InitialTaskPrediction(nn.Module):
    """Per task: two BasicBlocks (``in_channels -> task_channels``) then a 1x1 conv (bias) to the task's outputs.

    Args:
        num_outputs: ``{task: output channels}``.
        in_channels: channels of the input (backbone scale, plus the propagated features at scales < coarsest).
        task_channels: channels of the refined task features.
    """

    def __init__(self, num_outputs: Mapping[str, int], in_channels: int, task_channels: int) -> None:
        super().__init__()
        self.tasks = tuple(num_outputs)
        self.refinement = nn.ModuleDict(
            {
                t: nn.Sequential(basic_block(in_channels, task_channels), basic_block(task_channels, task_channels))
                for t in self.tasks
            }
        )
        self.decoders = nn.ModuleDict({t: nn.Conv2d(task_channels, int(k), 1) for t, k in num_outputs.items()})

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``{task: (B, C_in, h, w)}`` -> (``{task: features (B, C_task, h, w)}``, ``{task: prediction}``)."""
        features = {t: self.refinement[t](inputs[t]) for t in self.tasks}
        return features, {t: self.decoders[t](features[t]) for t in self.tasks}


class FeaturePropagation(nn.Module):
    """MTI-Net feature propagation module (FPM) for ``N`` tasks with ``C`` channels each.

    ``z = cat_t f_t`` (task-major, ``NC`` channels); ``a = conv1x1(BB(BB(z; NC -> NC/4)))`` (``NC`` channels);
    ``m = softmax`` of ``a`` over groups of ``N`` channels; ``s = BB(m * z; NC -> C)``; ``out_t = SE_t(s) + f_t``.

    Args:
        tasks: task names, in concatenation order.
        channels: ``C``.
        grouping: which channels share a softmax. ``"reference"`` views ``(B, NC, H, W)`` as ``(B, C, N, H, W)``
            and normalises over the ``N`` axis, i.e. over ``N`` *adjacent* channels of the task-major concatenation
            (channels ``N*i .. N*i+N-1``: for two tasks, pairs of one task's channels, never across tasks) -- the
            reference's behaviour, needed for checkpoint parity. ``"tasks"`` views it as ``(B, N, C, H, W)`` and
            normalises over tasks for every channel, as the paper describes. Both have the same parameters.
    """

    def __init__(self, tasks: Sequence[str], channels: int, *, grouping: FPMGrouping = "reference") -> None:
        super().__init__()
        if grouping not in _GROUPINGS:
            raise ConfigError(f"fpm_grouping must be one of {_GROUPINGS}, got {grouping!r}")
        self.tasks = tuple(tasks)
        self.channels = int(channels)
        self.grouping = grouping
        n = len(self.tasks)
        nc = n * self.channels
        if nc // 4 < 1:
            raise ConfigError(f"FPM needs N*C >= 4 (N={n} tasks, C={channels} channels)")
        self.non_linear = nn.Sequential(
            basic_block(nc, nc // 4), basic_block(nc // 4, nc // 4), nn.Conv2d(nc // 4, nc, 1)
        )
        self.dimensionality_reduction = basic_block(nc, self.channels)
        self.se = nn.ModuleDict({t: SEBlock(self.channels, 16) for t in self.tasks})

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: (B, C, H, W)}`` -> ``{task: (B, C, H, W)}``."""
        z = torch.cat([features[t] for t in self.tasks], dim=1)
        b, nc, h, w = z.shape
        n, c = len(self.tasks), self.channels
        a = self.non_linear(z)
        if self.grouping == "reference":
            shared = (torch.softmax(a.view(b, c, n, h, w), dim=2) * z.view(b, c, n, h, w)).view(b, nc, h, w)
        else:
            shared = (torch.softmax(a.view(b, n, c, h, w), dim=1) * z.view(b, n, c, h, w)).view(b, nc, h, w)
        shared = self.dimensionality_reduction(shared)
        return {t: self.se[t](shared) + features[t] for t in self.tasks}


class MTINet(nn.Module):
    """MTI-Net over a multi-scale backbone (features finest first, any number of scales >= 2).

    Args:
        backbone: freqdense backbone (``out_channels``; ``forward`` returns features finest first).
        tasks: subset of ``("semantic", "depth")`` (at least two tasks for the FPM and distillation).
        num_classes: semantic classes.
        depth_activation: applied to every depth output (``"none"``, the reference's raw output, by default).
        fpm_grouping: see :class:`FeaturePropagation` (default ``"reference"``).
        fafe: FAFE options (:class:`~freqdense.nn.fafe.FAFEOptions` or its mapping); ``None`` = plain MTI-Net.
            One block ``fafe_scale_<s>`` per scale precedes ``scale_<s>``; its FD weights are sized
            ``ceil(input_size / strides[s])``.

    Input: ``(B, 3, H, W)`` RGB in [0, 1]. Output: ``{"semantic": (B, K, H, W), "depth": (B, 1, H, W)}`` plus the
    initial predictions ``"<task>:scale_<s>"`` at the resolution of backbone scale ``s`` (deep supervision: the
    task layer upsamples them to the label size, as the reference's ``MTINetLoss`` does).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: Sequence[str] = TASKS,
        num_classes: int = 40,
        depth_activation: DepthActivation = "none",
        fpm_grouping: FPMGrouping = "reference",
        fafe: FAFEOptions | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if len(self.tasks) < 2:
            raise ConfigError(f"MTI-Net needs at least two tasks, got {self.tasks}; use multitask_baseline instead")
        self.num_outputs = _num_outputs(self.tasks, num_classes)
        self.num_classes = int(num_classes)
        self.depth_activation = _check_depth_activation(depth_activation)
        self.fafe = FAFEOptions.from_config(fafe)
        check_fafe_tasks(self.fafe, self.tasks)
        _check_rgb(backbone, "MTINet")
        ch = tuple(int(c) for c in backbone.out_channels)
        if len(ch) < 2:
            raise ConfigError(f"MTI-Net needs a multi-scale backbone, got out_channels={ch}")
        self.backbone = backbone
        self.backbone_channels = ch
        self.fpm_grouping = fpm_grouping
        last = len(ch) - 1
        for s in range(len(ch)):
            in_ch = ch[s] if s == last else ch[s] + ch[s + 1]
            if self.fafe is not None:
                self.add_module(f"fafe_scale_{s}", fafe_block(self.fafe, in_ch, stride=int(backbone.strides[s])))
            self.add_module(f"scale_{s}", InitialTaskPrediction(self.num_outputs, in_ch, ch[s]))
        for s in range(1, len(ch)):
            self.add_module(f"fpm_scale_{s}", FeaturePropagation(self.tasks, ch[s], grouping=fpm_grouping))
        for s in range(len(ch)):
            self.add_module(f"distillation_scale_{s}", MultiTaskDistillation(self.tasks, self.tasks, ch[s]))
        self.heads = nn.ModuleDict({t: HRNetHead(ch, k) for t, k in self.num_outputs.items()})
        register_normalization(self)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final predictions at the input size plus ``"<task>:scale_<s>"`` initial predictions."""
        check_image(image)
        size = image.shape[-2:]
        x = self.backbone((image - self.mean) / self.std)
        last = len(x) - 1
        features: list[dict[str, torch.Tensor]] = [{} for _ in x]
        aux: dict[str, torch.Tensor] = {}
        propagated: dict[str, torch.Tensor] | None = None
        for s in range(last, -1, -1):
            if propagated is None:
                inputs = {t: x[s] for t in self.tasks}
            else:  # the reference upsamples by scale_factor=2; targeting x[s]'s size also covers odd sizes
                inputs = {
                    t: torch.cat(
                        [x[s], F.interpolate(p, size=x[s].shape[-2:], mode="bilinear", align_corners=False)], 1
                    )
                    for t, p in propagated.items()
                }
            if self.fafe is not None:
                inputs = getattr(self, f"fafe_scale_{s}")(inputs)
            features[s], predictions = getattr(self, f"scale_{s}")(inputs)
            for t, p in predictions.items():
                aux[f"{t}:scale_{s}"] = p
            if s > 0:
                propagated = getattr(self, f"fpm_scale_{s}")(features[s])
        distilled = [getattr(self, f"distillation_scale_{s}")(features[s]) for s in range(len(x))]
        out = {}
        for t, head in self.heads.items():
            out[t] = F.interpolate(head([d[t] for d in distilled]), size=size, mode="bilinear", align_corners=False)
        out.update(dict(sorted(aux.items())))
        return _activate_depth(out, self.depth_activation)


def _num_outputs(tasks: Sequence[str], num_classes: int) -> dict[str, int]:
    if "semantic" in tasks and int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
    return {t: (int(num_classes) if t == "semantic" else 1) for t in tasks}


def _check_rgb(backbone: nn.Module, what: str) -> None:
    in_ch = getattr(backbone, "in_channels", 3)
    if in_ch != 3:
        raise ConfigError(f"{what} takes RGB images; the backbone was built with in_channels={in_ch}")


def _activate_depth(out: dict[str, torch.Tensor], activation: str) -> dict[str, torch.Tensor]:
    """Apply the depth activation to ``"depth"`` and every ``"depth:<name>"`` output."""
    if activation == "none":
        return out
    return {k: (activate_depth(v, activation) if k.partition(":")[0] == "depth" else v) for k, v in out.items()}


def _backbone(backbone: str, backbone_kwargs: dict[str, Any] | None, pretrained: str | None) -> nn.Module:
    kwargs = dict(backbone_kwargs or {})
    if "pretrained" in kwargs:
        raise ConfigError("pass pretrained= to the model, not inside backbone_kwargs")
    return create_backbone(backbone, pretrained=pretrained, **kwargs)


@register_model
def mti_net(
    *,
    backbone: str = "hrnet_w18_small",
    tasks: Sequence[str] = TASKS,
    num_classes: int = 40,
    depth_activation: DepthActivation = "none",
    fpm_grouping: FPMGrouping = "reference",
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    fafe: dict[str, Any] | None = None,
) -> MTINet:
    """MTI-Net for joint segmentation + depth (8.578 M parameters with hrnet_w18_small, 40 classes + depth).

    Args:
        backbone: registered backbone name (hrnet_w18_small, hrnet_w18, hrnet_w48, resnet18 ...).
        tasks: at least two of ``("semantic", "depth")``.
        num_classes: semantic classes.
        depth_activation: see :class:`MTINet`.
        fpm_grouping: ``"reference"`` (default, the reference's channel grouping) or ``"tasks"``.
        pretrained: local ImageNet weights file for the backbone (never downloaded).
        backbone_kwargs: extra keywords for the backbone factory.
        fafe: FAFE options (``None`` = plain MTI-Net), keys of :class:`~freqdense.nn.fafe.FAFEOptions`:
            ``variant`` ("fafe" | "conv"), ``pi``, ``fd``, ``fr``, ``input_size`` ([H, W], needed with ``fd``),
            ``cutoff``, ``pi_grid``, ``pi_order``, ``merge``, ``fd_kernel_size``, ``fr_reduction``.
    """
    options = FAFEOptions.from_config(fafe)  # validate before building the backbone
    return MTINet(
        _backbone(backbone, backbone_kwargs, pretrained),
        tasks=tasks,
        num_classes=num_classes,
        depth_activation=depth_activation,
        fpm_grouping=fpm_grouping,
        fafe=options,
    )

"""The official FAFNet checkpoint layout (``models/fafnet_alignD.py`` of github.com/CaliforniaChen/FAFNet @ b9ec9fc)
mapped onto :func:`~freqdense.models.fafnet.fafnet_official`.

The official ``TestNet`` has ``backbone.*`` (a dual ResNet: ``conv1.0..6`` / ``bn1`` stems, ``hha_`` twins of every
conv/BN, ``downsample`` and ``hha_downsample`` naming one shared module, ``sagates.i`` = ``RGBDAlignModule``) and
``head.*`` (``UperNetAlignHead``: ``ppm``, ``fpn_in``, ``fpn_out``, ``fpn_out_align``, ``conv_last``). For ResNet-101
and 40 classes it has 1,398 state-dict keys; all but the four ``sagates.i.flow_make.weight`` (built, never called
in the forward pass) map one-to-one, no tensor is folded. ``flow_make2.weight`` gets its two input halves swapped
(:meth:`~freqdense.nn.rgbd_fuse.RGBDFuse.convert_fafnet_state_dict`). Checkpoints saved by the official
``main.py`` wrap the weights as ``{"model_state": ...}``, possibly with a ``module.`` prefix: pass them through
:func:`~freqdense.models.convert._common.unwrap_state_dict` first (:func:`convert_fafnet` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...errors import CheckpointError
from ...nn.rgbd_fuse import RGBDFuse
from ._common import Conversion

__all__ = ["FAFNetConversionReport", "convert_fafnet", "fafnet_official_to_freqdense", "freqdense_to_fafnet_official"]

_STREAM = {"": "rgb", "hha_": "depth"}
_UNUSED_REASON = "RGBDAlignModule.flow_make: built by the official code but never used in its forward pass"

# (official regex, freqdense template); groups are substituted by name. Fusion blocks are handled separately.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(a), b)
    for a, b in (
        (r"^backbone\.(?P<s>hha_)?(?P<m>conv1\.\d+|conv1|bn1)\.(?P<t>\w+)$", "backbone.{s}.{m}.{t}"),
        (
            r"^backbone\.layer(?P<l>\d)\.(?P<b>\d+)\.(?P<s>hha_)?(?P<m>conv\d|bn\d|downsample\.\d)\.(?P<t>\w+)$",
            "backbone.{s}.layer{l}.{b}.{m}.{t}",
        ),
        (r"^head\.ppm\.stages\.(?P<i>\d+)\.(?P<j>[12])\.(?P<t>\w+)$", "decoder.ppm.stages.{i}.{j}.{t}"),
        (r"^head\.ppm\.bottleneck\.(?P<j>[01])\.(?P<t>\w+)$", "decoder.ppm.bottleneck.{j}.{t}"),
        (r"^head\.fpn_in\.(?P<i>\d+)\.(?P<j>[01])\.(?P<t>\w+)$", "decoder.lateral.{i}.{j}.{t}"),
        (r"^head\.fpn_out\.(?P<i>\d+)\.0\.(?P<j>[01])\.(?P<t>\w+)$", "decoder.output.{i}.{j}.{t}"),
        (
            r"^head\.fpn_out_align\.(?P<i>\d+)\.(?P<m>down_h|down_l|flow_make)\.weight$",
            "decoder.fams.{i}.{m}.weight",
        ),
        (r"^head\.conv_last\.0\.(?P<j>[01])\.(?P<t>\w+)$", "decoder.fuse.{j}.{t}"),
        (r"^head\.conv_last\.1\.(?P<t>weight|bias)$", "decoder.classifier.{t}"),
    )
)
_FUSION = re.compile(r"^backbone\.sagates\.(?P<i>\d+)\.(?P<rest>.+)$")
_FUSION_KEYS = re.compile(r"^(fsp[12]\.filter\.fc\.[02]\.(weight|bias)|flow_make2?\.weight)$")


@dataclass
class FAFNetConversionReport:
    """What :func:`fafnet_official_to_freqdense` did.

    Attributes:
        mapped: ``(official key, freqdense key)`` pairs, in the order of the official state dict.
        folded: official keys whose values were merged into another tensor (none for this layout: the lateral
            conv bias exists in :func:`~freqdense.models.fafnet.fafnet_official`).
        unused: official keys left out, with the reason.
        unknown: keys that are not part of the official layout (listed, not converted; strict loading fails).
    """

    mapped: list[tuple[str, str]] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    unused: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def num_official_keys(self) -> int:
        return len(self.mapped) + len(self.folded) + len(self.unused) + len(self.unknown)

    def summary(self) -> str:
        return (
            f"{self.num_official_keys} official keys: {len(self.mapped)} mapped, {len(self.folded)} folded, "
            f"{len(self.unused)} unused, {len(self.unknown)} unknown"
        )


def fafnet_official_to_freqdense(
    state_dict: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], FAFNetConversionReport]:
    """Rename an official FAFNet state dict (keys ``backbone.*`` / ``head.*``, no ``module.`` prefix) to
    :func:`~freqdense.models.fafnet.fafnet_official` keys.

    Returns:
        ``(state_dict, report)``; the state dict loads with ``strict=True`` into a ``fafnet_official`` model of
        the same backbone depth, class count and depth channels.

    Raises:
        CheckpointError: no key of the official layout, or a fusion block without its ``flow_make2.weight``.
    """
    report = FAFNetConversionReport()
    out: dict[str, Tensor] = {}
    fusion: dict[int, dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        m = _FUSION.match(key)
        if m:
            if _FUSION_KEYS.match(m["rest"]):
                fusion.setdefault(int(m["i"]), {})[m["rest"]] = value
            else:
                report.unknown.append(key)
            continue
        for pattern, template in _RULES:
            r = pattern.match(key)
            if r:
                groups = {k: v for k, v in r.groupdict().items()}
                if "s" in groups:
                    groups["s"] = _STREAM[groups["s"] or ""]
                new = template.format(**groups)
                out[new] = value
                report.mapped.append((key, new))
                break
        else:
            report.unknown.append(key)
    for i, block in sorted(fusion.items()):
        if "flow_make.weight" in block:
            report.unused[f"backbone.sagates.{i}.flow_make.weight"] = _UNUSED_REASON
        try:
            converted = RGBDFuse.convert_fafnet_state_dict(block)
        except CheckpointError as err:
            raise CheckpointError(f"official FAFNet fusion block backbone.sagates.{i}: {err}") from None
        back = {
            "acfm.mlp_rgb.": "fsp1.filter.fc.",
            "acfm.mlp_depth.": "fsp2.filter.fc.",
            "align_depth.flow_make.weight": "flow_make2.weight",
        }
        for new, value in converted.items():
            source = next(new.replace(a, b) for a, b in back.items() if new.startswith(a))
            out[f"fusions.{i}.{new}"] = value
            report.mapped.append((f"backbone.sagates.{i}.{source}", f"fusions.{i}.{new}"))
    if not report.mapped:
        raise CheckpointError(
            "not an official FAFNet state dict: no backbone.* / head.* key of models/fafnet_alignD.py found "
            f"(first keys: {list(state_dict)[:4]}); unwrap {{'model_state': ...}} and strip 'module.' first"
        )
    return out, report


_INVERSE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(a), b)
    for a, b in (
        (r"^backbone\.(?P<s>rgb|depth)\.(?P<m>conv1\.\d+|conv1|bn1)\.(?P<t>\w+)$", "backbone.{s}{m}.{t}"),
        (
            r"^backbone\.(?P<s>rgb|depth)\.layer(?P<l>\d)\.(?P<b>\d+)\.(?P<m>conv\d|bn\d|downsample\.\d)\.(?P<t>\w+)$",
            "backbone.layer{l}.{b}.{s}{m}.{t}",
        ),
        (r"^decoder\.ppm\.stages\.(?P<i>\d+)\.(?P<j>[12])\.(?P<t>\w+)$", "head.ppm.stages.{i}.{j}.{t}"),
        (r"^decoder\.ppm\.bottleneck\.(?P<j>[01])\.(?P<t>\w+)$", "head.ppm.bottleneck.{j}.{t}"),
        (r"^decoder\.lateral\.(?P<i>\d+)\.(?P<j>[01])\.(?P<t>\w+)$", "head.fpn_in.{i}.{j}.{t}"),
        (r"^decoder\.output\.(?P<i>\d+)\.(?P<j>[01])\.(?P<t>\w+)$", "head.fpn_out.{i}.0.{j}.{t}"),
        (r"^decoder\.fams\.(?P<i>\d+)\.(?P<m>down_h|down_l|flow_make)\.weight$", "head.fpn_out_align.{i}.{m}.weight"),
        (r"^decoder\.fuse\.(?P<j>[01])\.(?P<t>\w+)$", "head.conv_last.0.{j}.{t}"),
        (r"^decoder\.classifier\.(?P<t>weight|bias)$", "head.conv_last.1.{t}"),
        (r"^fusions\.(?P<i>\d+)\.acfm\.mlp_rgb\.(?P<t>[02]\.\w+)$", "backbone.sagates.{i}.fsp1.filter.fc.{t}"),
        (r"^fusions\.(?P<i>\d+)\.acfm\.mlp_depth\.(?P<t>[02]\.\w+)$", "backbone.sagates.{i}.fsp2.filter.fc.{t}"),
    )
)


def freqdense_to_fafnet_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`fafnet_official_to_freqdense`: a ``fafnet_official`` state dict in the official key
    layout (the unused ``sagates.i.flow_make.weight`` are written as zeros of their official shape (2, 2C, 3, 3)).

    Raises:
        CheckpointError: a key of the model that has no official counterpart (e.g. a paper-text ``fafnet``).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = re.match(r"^fusions\.(?P<i>\d+)\.align_depth\.flow_make\.weight$", key)
        if m:
            c = value.shape[1] // 2
            out[f"backbone.sagates.{m['i']}.flow_make2.weight"] = torch.cat([value[:, c:], value[:, :c]], dim=1)
            out[f"backbone.sagates.{m['i']}.flow_make.weight"] = torch.zeros_like(value)
            continue
        for pattern, template in _INVERSE:
            r = pattern.match(key)
            if r:
                groups = dict(r.groupdict())
                if "s" in groups:
                    groups["s"] = "" if groups["s"] == "rgb" else "hha_"
                out[template.format(**groups)] = value
                break
        else:
            raise CheckpointError(
                f"{key!r} has no counterpart in the official FAFNet layout; only fafnet_official models convert back"
            )
    return out


_LAYER_DEPTHS = {(3, 4, 6, 3): "resnet50", (3, 4, 23, 3): "resnet101"}


def convert_fafnet(state_dict: Mapping[str, Tensor], model_options: dict[str, Any] | None = None) -> Conversion:
    """A :class:`~freqdense.models.convert._common.Conversion` to ``fafnet_official`` from an (unwrapped) official
    state dict: backbone depth, class count and depth channels are read from the weights; ``model_options`` may set
    ``output_stride``, ``multi_grid``, ``depth_scale``, ``depth_mean``, ``depth_std`` (structure-free options)."""
    options = dict(model_options or {})
    allowed = {"output_stride", "multi_grid", "depth_scale", "depth_mean", "depth_std"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CheckpointError(
            f"model options {unknown} are read from the official FAFNet checkpoint; settable: {sorted(allowed)}"
        )
    new, report = fafnet_official_to_freqdense(state_dict)
    classifier = new.get("decoder.classifier.weight")
    stem = new.get("backbone.depth.conv1.0.weight")
    if classifier is None or stem is None:
        raise CheckpointError(
            "official FAFNet state dict lacks head.conv_last.1.weight or backbone.hha_conv1.0.weight (deep stem); "
            "only the GetFAFNet_D network (models/fafnet_alignD.py) converts"
        )
    blocks = tuple(len({k.split(".")[3] for k in new if k.startswith(f"backbone.rgb.layer{i}.")}) for i in range(1, 5))
    if blocks not in _LAYER_DEPTHS:
        raise CheckpointError(f"official FAFNet backbone with {blocks} blocks per stage: expected ResNet-50 or -101")
    conv = Conversion(
        model={
            "name": "fafnet_official",
            "backbone": _LAYER_DEPTHS[blocks],
            "num_classes": int(classifier.shape[0]),
            "depth_channels": int(stem.shape[1]),
            **options,
        },
        state_dict=new,
    )
    # Widths: the official network is full width; slim variants (tests, users' own trainings) are read too.
    stem_width = int(new["backbone.rgb.conv1.0.weight"].shape[0]) if "backbone.rgb.conv1.0.weight" in new else 64
    if stem_width != 64:
        conv.model["backbone_kwargs"] = {"base_width": stem_width}
    ppm = new.get("decoder.ppm.stages.0.1.weight")
    if ppm is not None and int(ppm.shape[0]) != 256:
        conv.model["decoder_channels"] = int(ppm.shape[0])
    conv.renamed = [("backbone.*/head.*", "backbone.rgb|depth.*/fusions.*/decoder.*", len(report.mapped))]
    conv.dropped = dict(report.unused)
    conv.notes.append(report.summary())
    if report.unknown:
        conv.notes.append(f"keys outside the official layout: {report.unknown[:10]}")
    conv.extra["fafnet_keys"] = {"mapped": len(report.mapped), "unused": len(report.unused)}
    return conv

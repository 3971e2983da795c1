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

_UNUSED_REASON = "RGBDAlignModule.flow_make: built by the official code but never used in its forward pass"

# One table for both directions: (official key, freqdense key). A ``{name:regex}`` field matches ``regex`` and carries
# its value to the same-named ``{name}`` field of the other side; ``{stream}`` is ``""`` / ``"hha_"`` in the official
# keys and ``rgb`` / ``depth`` in ours. The fusion rows only name the keys: the weights themselves go through
# :meth:`~freqdense.nn.rgbd_fuse.RGBDFuse.convert_fafnet_state_dict` (``flow_make2``'s input halves are swapped).
_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"backbone.{stream}{m:conv1\.\d+|conv1|bn1}.{t:\w+}", "backbone.{stream}.{m}.{t}"),
    (
        r"backbone.layer{l:\d}.{b:\d+}.{stream}{m:conv\d|bn\d|downsample\.\d}.{t:\w+}",
        "backbone.{stream}.layer{l}.{b}.{m}.{t}",
    ),
    (r"head.ppm.stages.{i:\d+}.{j:[12]}.{t:\w+}", "decoder.ppm.stages.{i}.{j}.{t}"),
    (r"head.ppm.bottleneck.{j:[01]}.{t:\w+}", "decoder.ppm.bottleneck.{j}.{t}"),
    (r"head.fpn_in.{i:\d+}.{j:[01]}.{t:\w+}", "decoder.lateral.{i}.{j}.{t}"),
    (r"head.fpn_out.{i:\d+}.0.{j:[01]}.{t:\w+}", "decoder.output.{i}.{j}.{t}"),
    (r"head.fpn_out_align.{i:\d+}.{m:down_h|down_l|flow_make}.weight", "decoder.fams.{i}.{m}.weight"),
    (r"head.conv_last.0.{j:[01]}.{t:\w+}", "decoder.fuse.{j}.{t}"),
    (r"head.conv_last.1.{t:weight|bias}", "decoder.classifier.{t}"),
    (r"backbone.sagates.{i:\d+}.fsp1.filter.fc.{t:[02]\.\w+}", "fusions.{i}.acfm.mlp_rgb.{t}"),
    (r"backbone.sagates.{i:\d+}.fsp2.filter.fc.{t:[02]\.\w+}", "fusions.{i}.acfm.mlp_depth.{t}"),
    (r"backbone.sagates.{i:\d+}.flow_make2.weight", "fusions.{i}.align_depth.flow_make.weight"),
)
_STREAMS = {"official": {"": "rgb", "hha_": "depth"}, "freqdense": {"rgb": "", "depth": "hha_"}}
_FIELD = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def _compile(source: str, target: str, side: str) -> tuple[re.Pattern[str], str, str]:
    """``source``'s regex (fields from either template), ``target`` without the field regexes, and ``side``."""
    fields = {m[1]: m[2] for t in (source, target) for m in _FIELD.finditer(t) if m[2]}
    fields["stream"] = "(?:hha_)?" if side == "official" else "rgb|depth"
    pattern, last = "", 0
    for m in _FIELD.finditer(source):
        pattern += re.escape(source[last : m.start()]) + f"(?P<{m[1]}>{fields[m[1]]})"
        last = m.end()
    pattern += re.escape(source[last:])
    return re.compile(f"^{pattern}$"), _FIELD.sub(lambda m: "{" + m[1] + "}", target), side


_TO_FREQDENSE = tuple(_compile(a, b, "official") for a, b in _KEY_MAP)
_TO_OFFICIAL = tuple(_compile(b, a, "freqdense") for a, b in _KEY_MAP)


def _rename(key: str, rules: tuple[tuple[re.Pattern[str], str, str], ...]) -> str | None:
    """``key`` in the other layout, or None when no row of :data:`_KEY_MAP` matches it."""
    for pattern, template, side in rules:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            if "stream" in groups:
                groups["stream"] = _STREAMS[side][groups["stream"]]
            return template.format(**groups)
    return None


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
        new = _rename(key, _TO_FREQDENSE)
        if new is None:
            report.unknown.append(key)
        else:
            out[new] = value
            report.mapped.append((key, new))
    for i, block in sorted(fusion.items()):
        if "flow_make.weight" in block:
            report.unused[f"backbone.sagates.{i}.flow_make.weight"] = _UNUSED_REASON
        try:
            converted = RGBDFuse.convert_fafnet_state_dict(block)
        except CheckpointError as err:
            raise CheckpointError(f"official FAFNet fusion block backbone.sagates.{i}: {err}") from None
        for new, value in converted.items():
            out[f"fusions.{i}.{new}"] = value
            report.mapped.append((_rename(f"fusions.{i}.{new}", _TO_OFFICIAL), f"fusions.{i}.{new}"))
    if not report.mapped:
        raise CheckpointError(
            "not an official FAFNet state dict: no backbone.* / head.* key of models/fafnet_alignD.py found "
            f"(first keys: {list(state_dict)[:4]}); unwrap {{'model_state': ...}} and strip 'module.' first"
        )
    return out, report


def freqdense_to_fafnet_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`fafnet_official_to_freqdense`: a ``fafnet_official`` state dict in the official key
    layout (the unused ``sagates.i.flow_make.weight`` are written as zeros of their official shape (2, 2C, 3, 3)).

    Raises:
        CheckpointError: a key of the model that has no official counterpart (e.g. a paper-text ``fafnet``).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        official = _rename(key, _TO_OFFICIAL)
        if official is None:
            raise CheckpointError(
                f"{key!r} has no counterpart in the official FAFNet layout; only fafnet_official models convert back"
            )
        if key.endswith(".align_depth.flow_make.weight"):
            c = value.shape[1] // 2
            out[official] = torch.cat([value[:, c:], value[:, :c]], dim=1)
            out[official.replace("flow_make2", "flow_make")] = torch.zeros_like(value)
        else:
            out[official] = value
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

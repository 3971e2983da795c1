"""The ``freqfusion`` format: checkpoints released with "Frequency-aware Feature Fusion for Dense Image Prediction"
(Chen et al., TPAMI 2024; github.com/Linwei-Chen/FreqFusion @ 3fb0c70), told apart by their keys.

(a) **mmseg SegNeXt (+ FreqFusion)**, e.g. ``segnext.tiny.freqfusion.512x512.ade.160k.py``: ``{"meta", "state_dict",
    "optimizer"}`` with ``backbone.*`` (MSCAN) and ``decode_head.*`` (``LightHamHead`` / ``LightHamHeadFreqAware``).
    The registered model ``segnext`` has the same module tree, so every key maps to itself; the MSCAN variant
    (widths, blocks, MLP ratios), the head widths, the stages read, the class count and the FreqFusion settings
    (kernels, offset groups and norm, Hamming windows, offset-generator input, compression ratio) are read from the
    tensor shapes. What the weights cannot tell is read from the checkpoint's ``meta["config"]`` (mmseg stores the
    config text there): the NMF settings ``ham_kwargs`` (``MD_R`` = 16 for SegNeXt-T/S); without it, the ADE20K
    config values are assumed and a note says so. ``meta["CLASSES"]`` is recorded in ``extra``.
(b) **mmdet Faster / Mask R-CNN / Panoptic FPN with the ``FreqFusionCARAFEFPN`` neck**: ``backbone.*`` (mmdet ResNet,
    torchvision key names), ``neck.lateral_convs.i.conv.*``, ``neck.alignment.i.*`` (FreqFusion),
    ``neck.fpn_convs.i.conv.*``, ``rpn_head.*``, ``roi_head.*`` (``semantic_head.*``). freqdense has no two-stage
    detector, so this is a **partial** conversion (:func:`convert_detection_partial`,
    :func:`write_partial_conversion`): the backbone and the neck are renamed onto a freqdense ResNet and
    :class:`~freqdense.models.decoders.FreqFusionFPNNeck` (mmcv's ``ConvModule`` wrapper ``.conv`` dropped,
    ``alignment`` -> ``fusions``) and written with the list of unconverted head keys; no run directory is made.

Anything else is refused naming the expected keys and the closest keys of the file.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from ...errors import CheckpointError
from ..backbones.mscan import MSCAN_VARIANTS
from ..decoders.fpn_neck import OFFICIAL_DETECTION_FUSION
from ..decoders.ham_head import nmf_options
from ..decoders.segformer_head import SEGNEXT_FUSION
from ..segnext import SEGNEXT_HEADS
from ._common import Conversion, read_checkpoint_file, unwrap_state_dict

__all__ = [
    "PARTIAL_FILE",
    "PARTIAL_REPORT",
    "PartialConversion",
    "checkpoint_kind",
    "convert_detection_partial",
    "convert_freqfusion",
    "convert_segnext",
    "read_freqfusion_checkpoint",
    "write_partial_conversion",
]

#: Files of a partial (detection) conversion folder.
PARTIAL_FILE = "backbone_neck.safetensors"
PARTIAL_REPORT = "backbone_neck.json"

_SEGNEXT_MARKERS = (
    "backbone.patch_embed1.proj.0.weight",
    "decode_head.squeeze.conv.weight",
    "decode_head.conv_seg.weight",
)
_DETECTION_MARKERS = (
    "backbone.layer1.0.conv1.weight",
    "neck.lateral_convs.0.conv.weight",
    "neck.alignment.0.content_encoder.weight",
)
_HEAD_PREFIXES = {
    "rpn_head.": "region proposal network (RPNHead)",
    "roi_head.": "R-CNN RoI heads (box / mask)",
    "semantic_head.": "Panoptic FPN semantic head",
    "bbox_head.": "detection head",
    "mask_head.": "mask head",
}
_SEGNEXT_OPTIONS = ("nmf_seed", "ham_kwargs", "dropout_ratio")
#: FreqFusion constructor defaults that the detected settings are compared with (listed only when they differ).
_FREQFUSION_DEFAULTS = {"encoder_kernel": 3, "use_high_pass": True}


def read_freqfusion_checkpoint(source: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of an mmseg / mmdet checkpoint file (``meta`` is ``{}`` when absent); read safely."""
    obj = read_checkpoint_file(source)
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    return unwrap_state_dict(obj, str(source)), dict(meta) if isinstance(meta, Mapping) else {}


def _closest(markers: tuple[str, ...], keys: list[str]) -> list[str]:
    found = []
    for marker in markers:
        match = difflib.get_close_matches(marker, keys, n=1, cutoff=0.5)
        if match:
            found.append(f"{match[0]} (for {marker})")
    return found


def checkpoint_kind(state: Mapping[str, Tensor], source: str = "checkpoint") -> str:
    """``"segnext"`` or ``"detection"`` from the keys; anything else raises CheckpointError naming what was expected
    and the closest keys found."""
    keys = list(state)
    if any(k.startswith("decode_head.") for k in keys) and any(k.startswith("backbone.patch_embed") for k in keys):
        return "segnext"
    if any(k.startswith("neck.") for k in keys) and any(k.startswith("backbone.") for k in keys):
        if not any(k.startswith("neck.alignment.") for k in keys):
            raise CheckpointError(
                f"{source}: an mmdet checkpoint whose neck has no FreqFusion modules (no neck.alignment.* key; "
                f"neck keys: {[k for k in keys if k.startswith('neck.')][:4]}); the freqfusion format converts the "
                "FreqFusionCARAFEFPN neck of the FreqFusion detection configs"
            )
        return "detection"
    if any(k.startswith("sem_seg_head.pixel_decoder.") for k in keys):
        raise CheckpointError(
            f"{source}: a Mask2Former (detectron2) checkpoint; freqdense has no Mask2Former, so it is not converted. "
            "The freqfusion format reads mmseg SegNeXt and mmdet FreqFusionCARAFEFPN checkpoints"
        )
    hints = _closest(_SEGNEXT_MARKERS + _DETECTION_MARKERS, keys)
    raise CheckpointError(
        f"{source} is neither an mmseg SegNeXt checkpoint (expected {', '.join(_SEGNEXT_MARKERS)}) nor an mmdet "
        f"checkpoint with a FreqFusionCARAFEFPN neck (expected {', '.join(_DETECTION_MARKERS)}); "
        + (f"closest keys: {'; '.join(hints)}" if hints else f"first keys: {keys[:5]}")
        + ". Unwrap other containers and strip prefixes such as 'module.' first"
    )


# --------------------------------------------------------------------------------------------------- SegNeXt (a)


def _need(state: Mapping[str, Tensor], key: str, what: str) -> Tensor:
    if key not in state:
        pool = [k for k in state if k.split(".")[0] == key.split(".")[0]]
        match = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        raise CheckpointError(
            f"{what}: key {key!r} is missing" + (f" (closest: {match[0]})" if match else "") + "; is this checkpoint "
            "complete (mmseg EncoderDecoder with an MSCAN backbone and a LightHamHead)?"
        )
    return state[key]


def _mscan_structure(state: Mapping[str, Tensor]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]]:
    what = "SegNeXt MSCAN backbone"
    dims = [int(_need(state, "backbone.patch_embed1.proj.3.weight", what).shape[0])]
    for i in range(2, 5):
        dims.append(int(_need(state, f"backbone.patch_embed{i}.proj.weight", what).shape[0]))
    depths, ratios = [], []
    for i in range(1, 5):
        blocks = {int(k.split(".")[2]) for k in state if k.startswith(f"backbone.block{i}.")}
        if not blocks or blocks != set(range(len(blocks))):
            raise CheckpointError(f"{what}: stage {i} has blocks {sorted(blocks)}; expected backbone.block{i}.0 ...")
        depths.append(len(blocks))
        hidden = int(_need(state, f"backbone.block{i}.0.mlp.fc1.weight", what).shape[0])
        ratio = hidden / dims[i - 1]
        ratios.append(int(ratio) if ratio.is_integer() else ratio)
    return tuple(dims), tuple(depths), tuple(ratios)


def _detect_fusion(prefix: str, state: Mapping[str, Tensor], base: Mapping[str, Any]) -> dict[str, Any]:
    """FreqFusion keywords readable from the tensors of the module under ``prefix`` (full dict over ``base``)."""
    kw = dict(base)
    enc = _need(state, f"{prefix}content_encoder.weight", "FreqFusion module")
    kw["lowpass_kernel"] = math.isqrt(int(enc.shape[0]))
    kw["encoder_kernel"] = int(enc.shape[-1])
    enc2 = state.get(f"{prefix}content_encoder2.weight")
    kw["use_high_pass"] = enc2 is not None
    if enc2 is not None:
        kw["highpass_kernel"] = math.isqrt(int(enc2.shape[0]))
    offset = state.get(f"{prefix}dysampler.offset.weight")
    kw["feature_resample"] = offset is not None
    if offset is not None:
        kw["feature_resample_group"] = int(offset.shape[0]) // 8  # 2 * groups * scale^2 offsets, scale 2
        kw["feature_resample_norm"] = f"{prefix}dysampler.norm_hr.weight" in state
        # The offset convs see the 8 local similarities ("sim", SegNeXt copy) or the features too ("sim_concat").
        kw["direction_feat"] = "sim" if int(offset.shape[1]) == 8 else "sim_concat"
    window = state.get(f"{prefix}hamming_lowpass")
    kw["hamming_window"] = window is not None and window.numel() > 1
    return kw


def _compress_ratio(pairs: list[tuple[int, int, int]], what: str) -> int:
    """The ratio ``r`` with ``(C_hr + C_lr) // r == C_c`` at every step (``pairs`` = (hr, lr, compressed))."""
    for r in range(1, 257):
        if all((hr + lr) // r == cc for hr, lr, cc in pairs):
            return r
    raise CheckpointError(
        f"{what}: compressed channels {[cc for _, _, cc in pairs]} for (C_hr, C_lr) = "
        f"{[(hr, lr) for hr, lr, _ in pairs]} follow no (C_hr + C_lr) // compress_ratio rule; not an official layout"
    )


def _int_setting(text: str, name: str) -> int | None:
    match = re.search(rf"""['"]?\b{name}\b['"]?\s*[=:]\s*(\d+)""", text)
    return int(match.group(1)) if match else None


def _ham_kwargs_from_meta(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    text = meta.get("config")
    if not isinstance(text, str) or "decode_head" not in text:
        return None
    if "ham_kwargs" not in text:  # a config without ham_kwargs: the class defaults (MD_R=64)
        return {"MD_R": 64}
    found: dict[str, Any] = {}
    for name in ("MD_S", "MD_R", "TRAIN_STEPS", "EVAL_STEPS"):
        value = _int_setting(text, name)
        if value is not None:
            found[name] = value
    if re.search(r"""['"]?\bRAND_INIT\b['"]?\s*[=:]\s*False""", text):
        found["RAND_INIT"] = False
    found.setdefault("MD_R", 64)  # ham_kwargs present without MD_R: the class default
    return found


def _in_index(dims: tuple[int, ...], squeeze_in: int, hr_channels: list[int] | None) -> tuple[int, ...]:
    subsets = [tuple(i for i in range(4) if mask >> i & 1) for mask in range(1, 16)]
    subsets.sort(key=lambda s: (s != (1, 2, 3), -len(s), s))
    for subset in subsets:
        chans = [dims[i] for i in subset]
        if sum(chans) != squeeze_in:
            continue
        if hr_channels is not None and chans[::-1][1:] != hr_channels:
            continue
        return subset
    raise CheckpointError(
        f"SegNeXt head: decode_head.squeeze.conv.weight reads {squeeze_in} channels, which no set of the MSCAN stages "
        f"{dims} gives" + (f" with FreqFusion inputs {hr_channels}" if hr_channels else "")
    )


def convert_segnext(
    state: Mapping[str, Tensor], meta: Mapping[str, Any] | None = None, model_options: Mapping[str, Any] | None = None
) -> Conversion:
    """A :class:`Conversion` to ``segnext`` from an mmseg SegNeXt(+FreqFusion) state dict (keys unchanged).

    ``model_options`` may set ``nmf_seed``, ``ham_kwargs`` (the NMF settings, not stored in the weights) and
    ``dropout_ratio``; other model keys must agree with the weights.
    """
    meta = dict(meta or {})
    options = dict(model_options or {})
    dims, depths, ratios = _mscan_structure(state)
    variant = next(
        (
            name
            for name, v in MSCAN_VARIANTS.items()
            if v["embed_dims"] == dims and v["depths"] == depths and tuple(v["mlp_ratios"]) == ratios
        ),
        None,
    )
    model: dict[str, Any] = {"name": "segnext", "backbone": variant or "mscan_t"}
    if variant is None:
        model["backbone_kwargs"] = {"embed_dims": list(dims), "depths": list(depths), "mlp_ratios": list(ratios)}
    what = "SegNeXt decode head"
    squeeze = _need(state, "decode_head.squeeze.conv.weight", what)
    align = _need(state, "decode_head.align.conv.weight", what)
    classifier = _need(state, "decode_head.conv_seg.weight", what)
    model["num_classes"] = int(classifier.shape[0])
    freqfusion = any(k.startswith("decode_head.freqfusions.") for k in state)
    model["fusion"] = "freqfusion" if freqfusion else "none"
    hr_channels = None
    n_fusions = 0
    if freqfusion:
        n_fusions = len({int(k.split(".")[2]) for k in state if k.startswith("decode_head.freqfusions.")})
        hr_channels = [
            int(_need(state, f"decode_head.freqfusions.{k}.hr_channel_compressor.weight", what).shape[1])
            for k in range(n_fusions)
        ]
    in_index = _in_index(dims, int(squeeze.shape[1]), hr_channels)
    if in_index != (1, 2, 3):
        model["in_index"] = list(in_index)
    defaults = SEGNEXT_HEADS[model["backbone"]]
    channels, ham_channels = int(align.shape[0]), int(squeeze.shape[0])
    if channels != defaults["channels"]:
        model["channels"] = channels
    if ham_channels != channels:
        model["ham_channels"] = ham_channels
    conv = Conversion(model=model, state_dict={})
    if freqfusion:
        steps = []
        for k in range(n_fusions):
            prefix = f"decode_head.freqfusions.{k}."
            hr = int(state[f"{prefix}hr_channel_compressor.weight"].shape[1])
            lr = int(_need(state, f"{prefix}lr_channel_compressor.weight", what).shape[1])
            cc = int(state[f"{prefix}hr_channel_compressor.weight"].shape[0])
            steps.append((hr, lr, cc))
        ratio = _compress_ratio(steps, what)
        if ratio != 4:
            model["compress_ratio"] = ratio
        kw = _detect_fusion("decode_head.freqfusions.0.", state, SEGNEXT_FUSION)
        reference = {**SEGNEXT_FUSION, **_FREQFUSION_DEFAULTS}
        changed = {k: v for k, v in kw.items() if reference.get(k) != v}
        if changed:
            model["fusion_kwargs"] = changed
    ham = _ham_kwargs_from_meta(meta)
    if "decode_head.hamburger.ham.bases" in state:
        ham = {**(ham or {}), "RAND_INIT": False}
    if ham is None:
        conv.notes.append(
            f"the NMF settings are not stored in the weights and the checkpoint has no config text: assumed the "
            f"official ADE20K config of this backbone (ham_kwargs MD_R={defaults['MD_R']}, 6 / 7 steps); set "
            "model.ham_kwargs if it was trained otherwise"
        )
    elif nmf_options({"MD_R": defaults["MD_R"], **ham}) != nmf_options({"MD_R": defaults["MD_R"]}):
        model["ham_kwargs"] = ham
    # Options the user may set; everything else must agree with the weights.
    clash = {k: (v, model[k]) for k, v in options.items() if k in model and model[k] != v}
    if clash:
        detail = "; ".join(f"model.{k}={a!r} but the checkpoint has {b!r}" for k, (a, b) in clash.items())
        raise CheckpointError(f"the model options contradict the checkpoint: {detail}")
    unknown = sorted(k for k in options if k not in model and k not in _SEGNEXT_OPTIONS)
    if unknown:
        raise CheckpointError(
            f"model options {unknown} are read from the SegNeXt checkpoint; settable: {list(_SEGNEXT_OPTIONS)}"
        )
    model.update(options)
    dropped = {k: "auxiliary head: used in training only" for k in state if k.startswith("auxiliary_head.")}
    conv.state_dict = {k: v for k, v in state.items() if k not in dropped}
    conv.dropped = dropped
    conv.renamed = [("backbone.* / decode_head.*", "backbone.* / decode_head.* (same names)", len(conv.state_dict))]
    kind = "SegNeXt + FreqFusion (LightHamHeadFreqAware)" if freqfusion else "SegNeXt (LightHamHead)"
    conv.notes.insert(0, f"mmseg {kind}, MSCAN {dims} x {depths}, {model['num_classes']} classes")
    conv.extra["checkpoint_kind"] = kind
    classes = meta.get("CLASSES")
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        conv.extra["classes"] = list(classes)
        if len(classes) != model["num_classes"]:
            conv.notes.append(f"meta CLASSES lists {len(classes)} names for {model['num_classes']} classes")
    palette = meta.get("PALETTE")
    if isinstance(palette, (list, tuple)):
        conv.extra["palette"] = [list(map(int, c)) for c in palette]
    return conv


# ------------------------------------------------------------------------------------------------ detection (b)


@dataclass
class PartialConversion:
    """A conversion of the parts freqdense has (backbone + neck) of a model it cannot build whole.

    Attributes:
        kind: what the checkpoint is.
        state_dict: tensors in freqdense names (``backbone.*`` of a ResNet, ``neck.*`` of a FreqFusionFPNNeck).
        mapped: ``(official key, freqdense key)`` pairs.
        unmapped: official keys not converted, with the reason (the R-CNN heads).
        backbone: registered backbone name; ``backbone_kwargs`` its extra keywords.
        neck: :class:`~freqdense.models.decoders.FreqFusionFPNNeck` keywords.
        notes: what the user should know.
        classes: ``meta["CLASSES"]`` of the checkpoint, if any.
    """

    kind: str
    state_dict: dict[str, Tensor]
    mapped: list[tuple[str, str]] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)
    backbone: str = "resnet50"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    neck: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    classes: list[str] | None = None

    def report(self) -> dict[str, Any]:
        """The JSON written next to the weights."""
        fcos = {
            "backbone": self.backbone,
            **({"backbone_kwargs": self.backbone_kwargs} if self.backbone_kwargs else {}),
            "start_level": self.neck["start_level"],
            "num_outs": self.neck["num_outs"],
            "neck_out_channels": self.neck["out_channels"],
            "compress_ratio": self.neck["compress_ratio"],
            "fusion_kwargs": self.neck["fusion_kwargs"],
        }
        return {
            "partial": True,
            "kind": self.kind,
            "what": (
                "backbone + FreqFusion FPN neck only: the R-CNN heads are NOT converted because freqdense has no "
                "two-stage (R-CNN) detector. This folder is not a run directory; eval / predict / export do not take it"
            ),
            "usage": (
                f"build create_backbone({self.backbone!r}) and FreqFusionFPNNeck(**neck) as modules 'backbone' and "
                f"'neck' and load {PARTIAL_FILE} strictly, or load it with load_state_dict(strict=False) into "
                "create_model('fcos', num_classes=..., **fcos_options) (its head.* stays untrained)"
            ),
            "backbone": self.backbone,
            "backbone_kwargs": self.backbone_kwargs,
            "neck": self.neck,
            "fcos_options": fcos,
            "classes": self.classes,
            "notes": self.notes,
            "tensors": len(self.state_dict),
            "mapped": [{"from": a, "to": b} for a, b in self.mapped],
            "unmapped": self.unmapped,
        }


_RESNET_DEPTHS = {
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
}
_DET_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(a), b)
    for a, b in (
        (r"^backbone\.(?P<m>conv1|bn1)\.(?P<t>\w+)$", "backbone.{m}.{t}"),
        (
            r"^backbone\.layer(?P<l>[1-4])\.(?P<b>\d+)\.(?P<m>conv[1-3]|bn[1-3]|downsample\.[01])\.(?P<t>\w+)$",
            "backbone.layer{l}.{b}.{m}.{t}",
        ),
        (r"^neck\.lateral_convs\.(?P<i>\d+)\.conv\.(?P<t>weight|bias)$", "neck.lateral_convs.{i}.{t}"),
        (r"^neck\.fpn_convs\.(?P<i>\d+)\.conv\.(?P<t>weight|bias)$", "neck.fpn_convs.{i}.{t}"),
        (r"^neck\.alignment\.(?P<i>\d+)\.(?P<rest>.+)$", "neck.fusions.{i}.{rest}"),
    )
)


def convert_detection_partial(
    state: Mapping[str, Tensor], meta: Mapping[str, Any] | None = None, source: str = "checkpoint"
) -> PartialConversion:
    """Rename the backbone and the ``FreqFusionCARAFEFPN`` neck of an mmdet state dict onto freqdense modules.

    Raises:
        CheckpointError: a backbone / neck key outside the official layout (e.g. a neck with norm layers, a
            ResNet-D stem), or a backbone depth freqdense does not build.
    """
    meta = dict(meta or {})
    out: dict[str, Tensor] = {}
    conv = PartialConversion(kind="mmdet detector with a FreqFusionCARAFEFPN neck", state_dict=out)
    unknown: list[str] = []
    for key, value in state.items():
        head = next((why for prefix, why in _HEAD_PREFIXES.items() if key.startswith(prefix)), None)
        if head is not None:
            conv.unmapped[key] = f"{head}: not converted, freqdense has no R-CNN"
            continue
        for pattern, template in _DET_RULES:
            m = pattern.match(key)
            if m:
                new = template.format(**m.groupdict())
                out[new] = value
                conv.mapped.append((key, new))
                break
        else:
            unknown.append(key)
    if unknown:
        pool = [f"{p.pattern}" for p, _ in _DET_RULES]
        raise CheckpointError(
            f"{source}: {len(unknown)} backbone / neck keys outside the official ResNet + FreqFusionCARAFEFPN layout: "
            f"{unknown[:6]} (expected keys like {', '.join(_DETECTION_MARKERS)}; patterns {pool[:2]} ...). "
            "Necks with norm layers and ResNet-D stems are not converted"
        )
    # Backbone depth and width.
    bottleneck = "backbone.layer1.0.conv3.weight" in out
    blocks = tuple(len({k.split(".")[2] for k in out if k.startswith(f"backbone.layer{i}.")}) for i in range(1, 5))
    name = _RESNET_DEPTHS.get(("bottleneck" if bottleneck else "basic", blocks))
    if name is None or "backbone.conv1.weight" not in out:
        raise CheckpointError(
            f"{source}: backbone with {blocks} {'bottleneck' if bottleneck else 'basic'} blocks per stage; freqdense "
            "builds ResNet-18/34/50/101 (mmdet style='pytorch')"
        )
    conv.backbone = name
    width = int(out["backbone.conv1.weight"].shape[0])
    if width != 64:
        conv.backbone_kwargs = {"base_width": width}
    expansion = 4 if bottleneck else 1
    stage_channels = [width * 2**i * expansion for i in range(4)]
    # Neck structure.
    n_lat = len({k.split(".")[2] for k in out if k.startswith("neck.lateral_convs.")})
    n_out = len({k.split(".")[2] for k in out if k.startswith("neck.fpn_convs.")})
    laterals = [out.get(f"neck.lateral_convs.{i}.weight") for i in range(n_lat)]
    if any(w is None for w in laterals) or n_out != n_lat or not laterals:
        raise CheckpointError(
            f"{source}: neck with {n_lat} lateral and {n_out} output convs (indices not contiguous or unequal); "
            "the FreqFusionCARAFEFPN layout has one lateral and one fpn conv per output level"
        )
    used = [int(w.shape[1]) for w in laterals if w.shape[-1] == 1]
    start_level = 4 - len(used)
    if start_level < 0 or used != stage_channels[start_level:]:
        raise CheckpointError(
            f"{source}: the neck's 1x1 lateral convs read {used} channels, but the {name} stages give "
            f"{stage_channels}; not a backbone / neck pair freqdense can rebuild"
        )
    c = int(laterals[0].shape[0])
    n_fusions = len({k.split(".")[2] for k in out if k.startswith("neck.fusions.")})
    if n_fusions == n_out:  # one alignment module per used level, the last never called by the official forward
        last = f"neck.fusions.{n_fusions - 1}."
        for key in [k for k in out if k.startswith(last)]:
            official = next(a for a, b in conv.mapped if b == key)
            conv.unmapped[official] = "built by FreqFusionCARAFEFPN but never used by its forward (no extra level)"
            conv.mapped.remove((official, key))
            del out[key]
        n_fusions -= 1
    if n_fusions != n_out - 1:
        raise CheckpointError(
            f"{source}: {n_fusions} FreqFusion modules (neck.alignment.*) for {n_out} outputs; the official forward "
            f"needs {n_out - 1}"
        )
    kw = _detect_fusion("neck.fusions.0.", out, OFFICIAL_DETECTION_FUSION)
    kw = {k: v for k, v in kw.items() if not (k in _FREQFUSION_DEFAULTS and _FREQFUSION_DEFAULTS[k] == v)}
    cc = int(out["neck.fusions.0.hr_channel_compressor.weight"].shape[0])
    ratio = _compress_ratio([(c, c, cc)], "FreqFusionCARAFEFPN neck")
    conv.neck = {
        "in_channels": stage_channels,
        "out_channels": c,
        "num_outs": n_out,
        "start_level": start_level,
        "fusion": "freqfusion",
        "compress_ratio": ratio,
        "fusion_kwargs": kw,
    }
    conv.notes.append(
        f"{name} backbone ({len([k for k in out if k.startswith('backbone.')])} tensors) and FreqFusion FPN neck "
        f"({len([k for k in out if k.startswith('neck.')])} tensors, {n_fusions} FreqFusion modules) converted; "
        f"{len(conv.unmapped)} head keys not converted (freqdense has no R-CNN)"
    )
    conv.notes.append(
        "mmdet ResNet style='caffe' (stride in the 1x1 conv) has the same keys; freqdense assumes 'pytorch'"
    )
    classes = meta.get("CLASSES")
    if isinstance(classes, (list, tuple)) and all(isinstance(x, str) for x in classes):
        conv.classes = list(classes)
    return conv


def write_partial_conversion(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> PartialConversion:
    """Convert an mmdet FreqFusion checkpoint's backbone + neck into ``out`` (:data:`PARTIAL_FILE` +
    :data:`PARTIAL_REPORT`), written under a temporary name and renamed into place; ``out`` must not exist or be
    empty. Refuses SegNeXt checkpoints (they convert to a full run directory)."""
    import safetensors.torch

    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(
            f"{out} already exists and is not an empty folder; converting never overwrites: choose a new --out"
        )
    if not source.is_file():
        raise CheckpointError(f"{str(source)!r} does not exist or is not a file; give the mmdet checkpoint (.pth)")
    state, meta = read_freqfusion_checkpoint(source)
    kind = checkpoint_kind(state, str(source))
    if kind != "detection":
        raise CheckpointError(
            f"{source} is a SegNeXt checkpoint: it converts to a complete run directory (freqdense convert freqfusion "
            "SOURCE --out DIR), not to a partial backbone + neck file"
        )
    conv = convert_detection_partial(state, meta, str(source))
    report = {"source": str(source.resolve()), **conv.report()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-convert-{out.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in conv.state_dict.items()}
        (tmp / PARTIAL_FILE).write_bytes(safetensors.torch.save(tensors, metadata={"format": "pt", "partial": "true"}))
        (tmp / PARTIAL_REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
        for file in tmp.iterdir():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return conv


# ------------------------------------------------------------------------------------------------- the format


def convert_freqfusion(source: Path, options: dict[str, Any]) -> Conversion:
    """The ``freqfusion`` entry of ``FORMATS``: SegNeXt checkpoints become a ``segnext`` :class:`Conversion`;
    detection checkpoints are refused here (no run directory can be made; see :func:`write_partial_conversion`)."""
    state, meta = read_freqfusion_checkpoint(source)
    kind = checkpoint_kind(state, str(source))
    if kind == "detection":
        raise CheckpointError(
            f"{source} is an mmdet detector with a FreqFusionCARAFEFPN neck: freqdense has no R-CNN, so it cannot "
            "become a run directory; only its backbone + neck convert (partially), with "
            "freqdense.models.convert.freqfusion.write_partial_conversion(SOURCE, OUT_DIR)"
        )
    return convert_segnext(state, meta, options)

"""Monodepth2 networks: ResNet depth encoder + multi-scale disparity decoder, and a two-frame pose network.

Godard et al., "Digging Into Self-Supervised Monocular Depth Estimation", ICCV 2019; used by Freq-aware depth
(Chen et al., "Frequency-Aware Self-Supervised Monocular Depth Estimation", WACV 2023) unchanged. Layouts and
constants follow docs/reference_code.md#monodepth2-layers and #monodepth2-networks:

- input RGB in [0, 1], normalised inside as ``(x - 0.45) / 0.225`` (both encoders);
- :class:`DepthDecoder`: channels (16, 32, 64, 128, 256), ELU conv blocks with reflection padding, nearest x2
  upsampling, skip connections, a sigmoid disparity at every scale in ``scales`` (scale s = 1/2^s resolution);
- depth = 1 / (1/max_depth + (1/min_depth - 1/max_depth) * disp), so depth lies in [min_depth, max_depth];
- :class:`PoseDecoder`: 1x1 squeeze, two 3x3 convs, 1x1 to 6 values per frame, spatial mean, times 0.01;
  axis-angle + translation -> a rigid 4x4 via Rodrigues (``transformation_from_parameters``);
- pose encoder: the same ResNet with 6 input channels (two stacked frames; ImageNet weights tiled and halved).

Module names equal Monodepth2's (``decoder.{0..13}``, ``net.{0..3}``) so released checkpoints load with
:func:`load_monodepth2_weights`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_shape
from ..errors import CheckpointError, ConfigError, ShapeError
from ..nn.upsamplers import build_upsampler, check_upsampler, upsampler_class
from ._dense import register_normalization
from ._registry import register_model
from ._state_dict import check_state_dict, complete_state_dict, read_checkpoint_file
from .backbones import create_backbone

log = logging.getLogger(__name__)

__all__ = [
    "DepthDecoder",
    "PoseDecoder",
    "MonodepthModel",
    "monodepth",
    "disp_to_depth",
    "transformation_from_parameters",
    "load_monodepth2_weights",
    "monodepth2_state_dicts",
]

#: Monodepth2's input normalisation (a scalar mean/std for every channel), applied inside the encoders.
MONODEPTH_MEAN = 0.45
MONODEPTH_STD = 0.225
#: Decoder widths at scales 0..4 (Monodepth2 ``num_ch_dec``).
DECODER_CHANNELS = (16, 32, 64, 128, 256)
#: Monodepth2 scales the pose decoder's raw output by this factor.
POSE_SCALE = 0.01
#: Initialisations of the pose decoder's last conv: PyTorch's default (Monodepth2) or zero (identity pose).
POSE_INITS = ("default", "zero")


def disp_to_depth(disp: Tensor, min_depth: float, max_depth: float) -> tuple[Tensor, Tensor]:
    """Sigmoid disparity in [0, 1] -> (scaled disparity in [1/max, 1/min], depth in [min_depth, max_depth])."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


def _skew(v: Tensor) -> Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def transformation_from_parameters(axisangle: Tensor, translation: Tensor, *, invert: bool = False) -> Tensor:
    """Rigid 4x4 transforms from axis-angle (B, 3) and translation (B, 3) (Monodepth2 convention).

    ``M = [R | t]`` maps p -> R p + t (translation applied after rotation). ``invert=True`` returns the exact
    inverse ``[R^T | -R^T t]``. R is Rodrigues' formula with angle ``|v|`` and axis ``v / (|v| + 1e-7)``.
    """
    angle = axisangle.norm(dim=-1, keepdim=True)
    axis = axisangle / (angle + 1e-7)
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    eye = torch.eye(3, dtype=axisangle.dtype, device=axisangle.device).expand(*axis.shape[:-1], 3, 3)
    rot = cos * eye + sin * _skew(axis) + (1 - cos) * axis[..., :, None] * axis[..., None, :]
    t = translation[..., :, None]
    if invert:
        rot = rot.transpose(-1, -2)
        t = -(rot @ t)
    top = torch.cat([rot, t], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


class _Conv3x3(nn.Module):
    """Reflection pad 1 + 3x3 conv with bias (Monodepth2 ``Conv3x3``; keys ``conv.*``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(cin, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class _ConvBlock(nn.Module):
    """``_Conv3x3`` + ELU (Monodepth2 ``ConvBlock``; keys ``conv.conv.*``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _Conv3x3(cin, cout)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """Monodepth2 U-Net decoder with a sigmoid disparity at each scale in ``scales``.

    Args:
        encoder_channels: channels of the 5 encoder features (stride 2, 4, 8, 16, 32).
        scales: output scales (0 = full input resolution, s = 1/2^s).
        decoder_channels: widths at scales 0..4.
        num_output_channels: channels of each disparity map.
        use_skips: concatenate encoder features.
        upsampler: the 2x step of every stage, a member of the up-sampler family
            (:data:`freqdense.nn.upsamplers.UPSAMPLERS`); ``"nearest"`` is Monodepth2's. A guided member gets the
            stage's skip feature as its guide; the last stage has no skip, so a guided member falls back to nearest
            there. Other members add ``upsamplers.{0..4}`` (stage 4 first) to the state dict.
        upsampler_kwargs: keywords of the up-sampler.

    ``decoder`` holds the ConvBlocks in the order (4,0), (4,1), (3,0), ... (0,1), then one disparity conv per
    scale in ``scales`` order, as Monodepth2's ``nn.ModuleList(convs.values())``.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        scales: Sequence[int] = (0, 1, 2, 3),
        *,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
        num_output_channels: int = 1,
        use_skips: bool = True,
        upsampler: str = "nearest",
        upsampler_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(encoder_channels) != 5 or len(decoder_channels) != 5:
            raise ConfigError(
                f"DepthDecoder needs 5 encoder and 5 decoder widths, got {list(encoder_channels)} and "
                f"{list(decoder_channels)}; build the encoder with out_indices=(0, 1, 2, 3, 4)"
            )
        self.scales = tuple(int(s) for s in scales)
        if not self.scales or any(not 0 <= s <= 3 for s in self.scales) or len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"DepthDecoder scales must be distinct values in 0..3, got {list(scales)}")
        self.use_skips = use_skips
        enc, dec = [int(c) for c in encoder_channels], [int(c) for c in decoder_channels]
        layers: list[nn.Module] = []
        for i in range(4, -1, -1):
            cin = enc[-1] if i == 4 else dec[i + 1]
            layers.append(_ConvBlock(cin, dec[i]))
            cin = dec[i] + (enc[i - 1] if use_skips and i > 0 else 0)
            layers.append(_ConvBlock(cin, dec[i]))
        layers += [_Conv3x3(dec[s], num_output_channels) for s in self.scales]
        self.decoder = nn.ModuleList(layers)
        self.upsampler = check_upsampler(upsampler)
        self.upsamplers = None
        if upsampler != "nearest":
            guided = upsampler_class(upsampler).guided
            self.upsamplers = nn.ModuleList(
                build_upsampler(
                    upsampler if not (guided and (i == 0 or not use_skips)) else "nearest",
                    enc[i - 1] if i > 0 and use_skips else dec[i],
                    dec[i],
                    **(dict(upsampler_kwargs or {}) if not (guided and (i == 0 or not use_skips)) else {}),
                )
                for i in range(4, -1, -1)
            )

    def forward(self, features: Sequence[Tensor]) -> dict[int, Tensor]:
        """Encoder features (finest first) -> {scale: (B, C_out, H/2^s, W/2^s) sigmoid disparity}."""
        out: dict[int, Tensor] = {}
        x = features[-1]
        for k, i in enumerate(range(4, -1, -1)):
            x = self.decoder[2 * k](x)
            if i > 0 and self.use_skips:
                skip = features[i - 1]
                if self.upsamplers is None:
                    x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
                else:
                    fused = self.upsamplers[k](skip, x)
                    x, skip = fused.lr_feat, fused.hr_feat
                x = torch.cat([x, skip], dim=1)
            elif self.upsamplers is None:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            else:
                x = self.upsamplers[k].upsample(x)
            x = self.decoder[2 * k + 1](x)
            if i in self.scales:
                out[i] = torch.sigmoid(self.decoder[10 + self.scales.index(i)](x))
        return out


class PoseDecoder(nn.Module):
    """Monodepth2 pose decoder: (axis-angle, translation) per predicted frame from the last encoder feature.

    Args:
        encoder_channels: channels of the encoder features (only the last is used).
        num_input_features: number of feature lists concatenated (1 for the pairwise pose encoder).
        num_frames: frames predicted per input (Monodepth2 builds 2 and uses the first).
        hidden: width of the hidden convs (256 in Monodepth2).
        zero_init: start at the identity pose (the last conv's weights and bias zero; PyTorch's default init in
            Monodepth2). A randomly initialised pose network trained from scratch starts with translations of a
            random direction; see ``create_monodepth(pose_init=...)``.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        *,
        num_input_features: int = 1,
        num_frames: int = 2,
        hidden: int = 256,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.num_input_features = num_input_features
        self.num_frames = num_frames
        self.net = nn.ModuleList(
            [
                nn.Conv2d(int(encoder_channels[-1]), hidden, 1),
                nn.Conv2d(num_input_features * hidden, hidden, 3, 1, 1),
                nn.Conv2d(hidden, hidden, 3, 1, 1),
                nn.Conv2d(hidden, 6 * num_frames, 1),
            ]
        )
        self.relu = nn.ReLU()
        if zero_init:
            nn.init.zeros_(self.net[3].weight)
            nn.init.zeros_(self.net[3].bias)

    def forward(self, features: Sequence[Sequence[Tensor]]) -> tuple[Tensor, Tensor]:
        """Feature lists -> (axisangle, translation), each (B, num_frames, 1, 3), already scaled by 0.01."""
        x = torch.cat([self.relu(self.net[0](f[-1])) for f in features], dim=1)
        for i in (1, 2):
            x = self.relu(self.net[i](x))
        x = self.net[3](x).mean(dim=(2, 3))
        x = POSE_SCALE * x.view(-1, self.num_frames, 1, 6)
        return x[..., :3], x[..., 3:]


class MonodepthModel(nn.Module):
    """Depth network (+ optional pose network) of Monodepth2.

    ``forward(image)`` returns ``{"depth": (B, 1, H, W) metres from scale 0, "disp:<s>": (B, 1, H/2^s, W/2^s)
    sigmoid disparity for every s in scales}``. The ``disp:*`` keys are not ``depth:*`` on purpose: the generic
    depth task would treat those as auxiliary depth predictions. With ``pose_pairs={name: (frame_a, frame_b,
    invert)}`` it also returns ``"pose_<name>"`` = :meth:`pose` of each pair (one forward call, so DDP sees every
    parameter in use).
    """

    tasks = ("depth",)

    def __init__(
        self,
        backbone: nn.Module,
        *,
        pose_encoder: nn.Module | None,
        scales: Sequence[int] = (0, 1, 2, 3),
        min_depth: float = 0.1,
        max_depth: float = 100.0,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
        upsampler: str = "nearest",
        upsampler_kwargs: dict[str, Any] | None = None,
        pose_init: str = "default",
    ) -> None:
        super().__init__()
        if pose_init not in POSE_INITS:
            raise ConfigError(f"monodepth pose_init must be one of {', '.join(POSE_INITS)}, got {pose_init!r}")
        if not 0 < min_depth < max_depth:
            raise ConfigError(f"monodepth needs 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
        if 0 not in scales:
            raise ConfigError(f"monodepth scales must include 0 (the full-resolution depth), got {list(scales)}")
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.backbone = backbone
        self.depth_decoder = DepthDecoder(
            backbone.out_channels,
            scales,
            decoder_channels=decoder_channels,
            upsampler=upsampler,
            upsampler_kwargs=upsampler_kwargs,
        )
        self.scales = self.depth_decoder.scales
        self.pose_encoder = pose_encoder
        self.pose_decoder = (
            PoseDecoder(pose_encoder.out_channels, zero_init=pose_init == "zero") if pose_encoder is not None else None
        )
        register_normalization(self, MONODEPTH_MEAN, MONODEPTH_STD)

    def _normalise(self, image: Tensor) -> Tensor:
        return (image - MONODEPTH_MEAN) / MONODEPTH_STD

    def forward(
        self, image: Tensor, pose_pairs: Mapping[str, tuple[Tensor, Tensor, bool]] | None = None
    ) -> dict[str, Tensor]:
        check_shape(image, "B C H W", name="image", C=3)
        if min(image.shape[-2:]) < 64:
            raise ShapeError(
                f"monodepth needs images of at least 64x64 (the stride-32 features are reflection-padded), got "
                f"{tuple(image.shape[-2:])}; use a larger data.args.size (multiples of 32 as Monodepth2)"
            )
        disps = self.depth_decoder(self.backbone(self._normalise(image)))
        out = {"depth": disp_to_depth(disps[0], self.min_depth, self.max_depth)[1]}
        out.update({f"disp:{s}": d for s, d in disps.items()})
        for name, (a, b, invert) in (pose_pairs or {}).items():
            out[f"pose_{name}"] = self.pose(a, b, invert=invert)
        return out

    def pose(self, frame_a: Tensor, frame_b: Tensor, *, invert: bool = False) -> Tensor:
        """(B, 4, 4) rigid transform T_{a->b} predicted from two frames in temporal order (a earlier).

        ``T_{a->b}`` maps 3-D points of camera a into camera b; ``invert=True`` gives T_{b->a}. Monodepth2 uses
        ``pose(prev, target, invert=True)`` = T_{t->t-1} and ``pose(target, next)`` = T_{t->t+1}.
        """
        if self.pose_encoder is None or self.pose_decoder is None:
            raise ConfigError("this monodepth model has no pose network; build it with pose=True")
        check_shape(frame_a, "B C H W", name="frame_a", C=3)
        check_shape(frame_b, "B C H W", name="frame_b", C=3)
        feats = self.pose_encoder(self._normalise(torch.cat([frame_a, frame_b], dim=1)))
        axisangle, translation = self.pose_decoder([feats])
        return transformation_from_parameters(axisangle[:, 0, 0], translation[:, 0, 0], invert=invert)


@register_model
def monodepth(
    *,
    backbone: str = "resnet18",
    num_layers: int | None = None,
    pretrained: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    pose: bool = True,
    min_depth: float = 0.1,
    max_depth: float = 100.0,
    scales: Sequence[int] = (0, 1, 2, 3),
    decoder_channels: Sequence[int] = DECODER_CHANNELS,
    upsampler: str = "nearest",
    upsampler_kwargs: dict[str, Any] | None = None,
    pose_init: str = "default",
) -> MonodepthModel:
    """Monodepth2 depth + pose networks (Freq-aware depth's baseline; separate ResNet pose encoder on frame pairs).

    Args:
        backbone: ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``.
        num_layers: Monodepth2's ``--num_layers`` (18, 34, 50, 101); overrides ``backbone`` when given.
        pretrained: local torchvision ImageNet file for both encoders (the pose encoder's first conv is tiled
            over the two frames and halved).
        backbone_kwargs: extra backbone arguments (e.g. ``{"base_width": 32}`` for a slim CPU model).
        pose: build the pose network (needed for video training, mode M / MS).
        min_depth: depth of disparity 1.
        max_depth: depth of disparity 0.
        scales: disparity scales of the decoder (must include 0).
        decoder_channels: decoder widths at scales 0..4.
        upsampler: the decoder's 2x step (Monodepth2: ``"nearest"``; any member of the up-sampler family, see
            :class:`DepthDecoder`).
        upsampler_kwargs: keywords of the up-sampler.
        pose_init: ``"default"`` (Monodepth2: PyTorch's initialisation everywhere) or ``"zero"`` (the pose decoder's
            last conv starts at zero, so every predicted pose starts at the identity). Use ``"zero"`` for a pose
            network trained from scratch: a random last layer starts it with translations of a random direction,
            and on the synthetic video it then often never finds the forward motion (docs/methods/selfsup_pipeline.md).
    """
    if num_layers is not None:
        if int(num_layers) not in (18, 34, 50, 101):
            raise ConfigError(f"monodepth num_layers must be 18, 34, 50 or 101, got {num_layers!r}")
        backbone = f"resnet{int(num_layers)}"
    kwargs = dict(backbone_kwargs or {})
    for key in ("out_indices", "in_channels", "output_stride"):
        if key in kwargs:
            raise ConfigError(f"monodepth sets backbone {key} itself; remove model.backbone_kwargs.{key}")
    encoder = create_backbone(backbone, pretrained=pretrained, out_indices=(0, 1, 2, 3, 4), **kwargs)
    pose_encoder = None
    if pose:
        pose_encoder = create_backbone(
            backbone, pretrained=pretrained, out_indices=(0, 1, 2, 3, 4), in_channels=6, **kwargs
        )
    return MonodepthModel(
        encoder,
        pose_encoder=pose_encoder,
        scales=scales,
        min_depth=min_depth,
        max_depth=max_depth,
        decoder_channels=decoder_channels,
        upsampler=upsampler,
        upsampler_kwargs=upsampler_kwargs,
        pose_init=pose_init,
    )


# ----------------------------------------------------------------------------------------------------------------
# Released Monodepth2 / freq-aware-depth checkpoints: encoder.pth, depth.pth, pose_encoder.pth, pose.pth.

#: file stem -> (attribute of MonodepthModel, key prefix in the file)
_FILES = {
    "encoder": ("backbone", "encoder."),
    "depth": ("depth_decoder", ""),
    "pose_encoder": ("pose_encoder", "encoder."),
    "pose": ("pose_decoder", ""),
}
#: Non-tensor entries Monodepth2 stores in encoder.pth.
_EXTRA_KEYS = ("height", "width", "use_stereo")


def monodepth2_state_dicts(model: MonodepthModel, *, height: int = 192, width: int = 640) -> dict[str, dict]:
    """The model's weights as Monodepth2's four state dicts ``{"encoder", "depth", "pose_encoder", "pose"}``.

    ``encoder`` also holds ``height``/``width``/``use_stereo`` as Monodepth2 writes them; the classifier
    (``encoder.fc.*``) is not written (Monodepth2's loader ignores missing keys there).
    """
    out: dict[str, dict] = {}
    for stem, (attr, prefix) in _FILES.items():
        module = getattr(model, attr)
        if module is None:
            continue
        out[stem] = {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}
    out["encoder"].update(height=height, width=width, use_stereo=False)
    return out


def _read(path: Path) -> dict[str, Any]:
    state = read_checkpoint_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__})")
    return state


def load_monodepth2_weights(
    model: MonodepthModel, source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str] | Mapping]
) -> list[str]:
    """Load released Monodepth2 / freq-aware-depth weights into ``model``.

    Args:
        model: a :func:`monodepth` model of the same depth/width as the checkpoint.
        source: a folder with ``encoder.pth``, ``depth.pth`` and optionally ``pose_encoder.pth``, ``pose.pth``
            (Monodepth2's ``models/weights_<epoch>``), or a mapping from those stems to files or state dicts.

    Returns:
        The stems that were loaded.

    Raises:
        CheckpointError: a required file is missing, or keys / shapes do not fit (named in the message).
    """
    if isinstance(source, Mapping):
        items = dict(source)
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise CheckpointError(f"{str(folder)!r} is not a folder with encoder.pth / depth.pth")
        items = {stem: folder / f"{stem}.pth" for stem in _FILES if (folder / f"{stem}.pth").is_file()}
    for required in ("encoder", "depth"):
        if required not in items:
            raise CheckpointError(f"Monodepth2 weights {source!r} lack {required}.pth (needed for the depth network)")
    unknown = set(items) - set(_FILES)
    if unknown:
        raise CheckpointError(f"unknown Monodepth2 weight files {sorted(unknown)}; expected {sorted(_FILES)}")
    loaded = []
    for stem, (attr, prefix) in _FILES.items():
        if stem not in items:
            continue
        module = getattr(model, attr)
        if module is None:
            log.info("skipping %s.pth: the model has no pose network", stem)
            continue
        item = items[stem]
        state = dict(item) if isinstance(item, Mapping) else _read(Path(item))
        where = f"{stem}.pth"
        tensors = {}
        for key, value in state.items():
            if key in _EXTRA_KEYS or key.startswith(prefix + "fc."):
                continue
            if not key.startswith(prefix) or not isinstance(value, Tensor):
                raise CheckpointError(f"{where}: unexpected entry {key!r}; is this a Monodepth2 {stem}.pth?")
            tensors[key[len(prefix) :]] = value
        hint = "Build monodepth with the checkpoint's backbone (num_layers) and base width"
        check_state_dict(module, tensors, where, hint=hint)
        module.load_state_dict(complete_state_dict(module, tensors), strict=True)
        loaded.append(stem)
    log.info("loaded Monodepth2 weights: %s", ", ".join(loaded))
    return loaded

"""FAFNet and its two-stream baselines for RGB-D semantic segmentation.

Chen et al., "FAFNet: Fully-Aligned Fusion Network for RGBD Semantic Segmentation based on Hierarchical Semantic
Flows", IET Image Processing 2023; official code github.com/CaliforniaChen/FAFNet @ b9ec9fc
(docs/reference_code.md#fafnet-official-code). Registered models:

- ``fafnet``: two ResNet streams (RGB, HHA or raw depth); after each of the 4 stages a fusion block
  (:class:`~freqdense.nn.rgbd_fuse.RGBDFuse` by default: ACFM + FAMs, Eq. 1-13) whose next-stage features go back
  into the streams and whose fused feature goes to an UPerNet head with FAM top-down alignment
  (:class:`~freqdense.models.decoders.uper_align.UPerAlignHead`, SFNet). Switches select the ablation rows
  (:data:`FAFNET_VARIANTS`).
- ``fafnet_official``: the network of the official code (``models/fafnet_alignD.py``): ResNet v1c deep stems,
  ``downsample`` shortcuts shared by the two streams, the official fusion block and head layout, HHA not
  normalised. Official state dicts load into it through :func:`freqdense.models.convert.fafnet.
  fafnet_official_to_freqdense` and give the official outputs (float64 parity measured at 1e-15).
- ``two_stream_deeplabv3plus``: the paper's baseline (§4.3): two ResNet streams fused by element-wise summation,
  DeepLab v3+ head (ASPP on the summed stage-4 features, the summed stage-1 features as the low-level input);
  ``fusion="sagate"`` makes it SA-Gate's network (Chen et al. ECCV 2020, without its auxiliary head).

Contract: ``forward(image (B, 3, H, W) RGB in [0, 1], depth (B, C_d, H, W))`` returns
``{"semantic": (B, num_classes, H, W) logits}``; ``forward(image, depth, return_flows=True)`` returns
``(outputs, flows)`` with the raw FAM flows ``{"fuse1".."fuse4", "fuse<k>:rgb_to_depth", "decoder1"..}``
(see :meth:`FAFNet.forward`); :func:`flow_to_pixels` converts them. Inputs are normalised inside (buffers
``mean``/``std`` for RGB, ``depth_mean``/``depth_std`` and ``depth_scale`` for depth). See docs/models/fafnet.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from ..nn.rgbd_fuse import FamDirections, RGBDFuse, RGBDFuseOutput, StreamUpdate, flow_to_pixels, pixels_to_flow
from ..nn.sa_gate import SAGate
from ._dense import IMAGENET_MEAN, IMAGENET_STD, check_image, register_normalization
from ._registry import register_model
from .backbones import ResNet, create_backbone
from .decoders.uper_align import HeadLayout, UPerAlignHead
from .deeplabv3plus import _ASPP_RATES, ASPP, DeepLabV3PlusDecoder, _apply_multi_grid

__all__ = [
    "FAFNET_VARIANTS",
    "FAFNet",
    "HHA_MEAN",
    "HHA_STD",
    "OFFICIAL_FAFNET_KWARGS",
    "OFFICIAL_HHA_MEAN",
    "OFFICIAL_HHA_STD",
    "TwoStreamDeepLabV3Plus",
    "TwoStreamResNet",
    "fafnet",
    "fafnet_official",
    "flow_to_pixels",
    "pixels_to_flow",
    "two_stream_deeplabv3plus",
]

Backbone = Literal["resnet18", "resnet34", "resnet50", "resnet101"]
_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
#: Official FAFNet / SA-Gate layer4 dilations 2, 4, 8 at output stride 16.
_DEFAULT_MULTI_GRID = (1, 2, 4)

#: HHA normalisation of the paper-text models (HHA images scaled to [0, 1]): the ImageNet statistics, as the RGB
#: stream, since the HHA stream starts from the same ImageNet weights (SA-Gate's loader does this). The official
#: FAFNet code does *not*: its ``ExtNormalize`` normalises only the RGB tensor, so :func:`fafnet_official` uses
#: mean 0 / std 1 for HHA (:data:`OFFICIAL_HHA_MEAN`, :data:`OFFICIAL_HHA_STD`).
HHA_MEAN, HHA_STD = IMAGENET_MEAN, IMAGENET_STD
OFFICIAL_HHA_MEAN, OFFICIAL_HHA_STD = (0.0,), (1.0,)

#: FAFNet Table 1 rows, the baseline and the SA-Gate comparison as ``name: (registered model, kwargs)``. Every
#: row also takes the common keywords (``num_classes``, ``backbone``, ``depth_channels``, ``pretrained``, ...).
FAFNET_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("two_stream_deeplabv3plus", {}),
    "no_fam": ("fafnet", {"fuse_fam": False, "decoder_fam": False}),
    "decoder_fam": ("fafnet", {"fuse_fam": False, "decoder_fam": True}),
    "fuse_fam": ("fafnet", {"fuse_fam": True, "decoder_fam": False}),
    "all_fams": ("fafnet", {"fuse_fam": True, "decoder_fam": True}),
    "all_fams_no_acfm": ("fafnet", {"fuse_fam": True, "decoder_fam": True, "acfm": False}),
    "sagate_fusion": ("fafnet", {"fusion": "sagate", "decoder_fam": True}),
    "sagate_deeplabv3plus": ("two_stream_deeplabv3plus", {"fusion": "sagate"}),
    "official": (
        "fafnet",
        {
            "acfm_mode": "fafnet",
            "fam_directions": "depth_to_rgb",
            "fuse_fam_reduction": None,
            "align_corners": False,
            "stream_update": "average",
        },
    ),
}


class _SumFusion(nn.Module):
    """Element-wise sum fusion: ``fused = rgb + depth``; ``feedback`` replaces the RGB stream by the sum (FuseNet)."""

    def __init__(self, feedback: bool = False) -> None:
        super().__init__()
        self.feedback = bool(feedback)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> RGBDFuseOutput:
        fused = rgb + depth
        return RGBDFuseOutput(fused if self.feedback else rgb, depth, fused, {})

    def extra_repr(self) -> str:
        return f"feedback={self.feedback}"


class TwoStreamResNet(nn.Module):
    """Two ResNets run stage by stage (``rgb``, ``depth``); the caller fuses between stages.

    ``run_stage(i, rgb, depth)`` runs stage ``i`` (1 = stem + max-pool + layer1, 2..4 = layer2..4) of both streams.
    ``share_downsample=True`` makes the depth stream use the RGB stream's ``downsample`` shortcut module (1x1 conv
    and its BatchNorm, running statistics included) in every stage, as the official FAFNet / SA-Gate dual ResNet
    does; the state dict then holds the same tensors under both streams' names.
    """

    def __init__(self, rgb: ResNet, depth: ResNet, *, share_downsample: bool = False) -> None:
        super().__init__()
        if rgb.out_channels != depth.out_channels or rgb.out_indices != (1, 2, 3, 4):
            raise ConfigError("TwoStreamResNet needs two ResNets of the same width built with out_indices=(1, 2, 3, 4)")
        self.rgb = rgb
        self.depth = depth
        self.out_channels = rgb.out_channels
        self.strides = rgb.strides
        self.share_downsample = bool(share_downsample)
        if self.share_downsample:
            for i in range(1, 5):
                for b_rgb, b_depth in zip(getattr(rgb, f"layer{i}"), getattr(depth, f"layer{i}")):
                    if (b_rgb.downsample is None) != (b_depth.downsample is None):
                        raise ConfigError(f"share_downsample: layer{i} shortcuts differ between the streams")
                    if b_rgb.downsample is not None:
                        b_depth.downsample = b_rgb.downsample

    @staticmethod
    def _stage(net: ResNet, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 1:
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return getattr(net, f"layer{i}")(x)

    def run_stage(self, i: int, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._stage(self.rgb, i, rgb), self._stage(self.depth, i, depth)


class _TwoStreamSegmenter(nn.Module):
    """Shared input handling and the fused encoder of the RGB-D models (not registered)."""

    tasks = ("semantic",)

    def __init__(
        self,
        backbone: TwoStreamResNet,
        fusions: Sequence[nn.Module],
        *,
        num_classes: int,
        depth_channels: int,
        depth_scale: float,
        depth_mean: Sequence[float],
        depth_std: Sequence[float],
    ) -> None:
        super().__init__()
        if len(fusions) != 4:
            raise ConfigError(f"need one fusion block per ResNet stage (4), got {len(fusions)}")
        self.num_classes = int(num_classes)
        self.depth_channels = int(depth_channels)
        self.depth_scale = float(depth_scale)
        self.backbone = backbone
        self.fusions = nn.ModuleList(fusions)
        register_normalization(self)
        c = self.depth_channels
        for name, values in (("depth_mean", depth_mean), ("depth_std", depth_std)):
            values = [float(v) for v in values]
            if len(values) not in (1, c):
                raise ConfigError(f"{name} needs 1 or depth_channels={c} values, got {values!r}")
            if name == "depth_std" and min(values) <= 0:
                raise ConfigError(f"depth_std must be positive, got {values!r}")
            t = torch.tensor(values, dtype=torch.float32).expand(c).reshape(1, c, 1, 1).clone()
            self.register_buffer(name, t, persistent=False)
        if self.depth_scale <= 0:
            raise ConfigError(f"depth_scale must be positive (metres per unit input), got {depth_scale!r}")

    def _normalise(self, image: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_image(image)
        check_shape(depth, "B C H W", name="depth")
        if depth.shape[1] != self.depth_channels:
            kind = "HHA (B, 3, H, W) in [0, 1]" if self.depth_channels == 3 else "depth (B, 1, H, W) in metres"
            raise ShapeError(
                f"depth has {depth.shape[1]} channel(s) {tuple(depth.shape)} but this model was built with "
                f"depth_channels={self.depth_channels}; pass {kind}, or build the model with "
                f"depth_channels={depth.shape[1]} (3 = HHA, 1 = raw depth)"
            )
        if depth.shape[0] != image.shape[0] or depth.shape[-2:] != image.shape[-2:]:
            raise ShapeError(
                f"depth {tuple(depth.shape)} must match image {tuple(image.shape)} in batch and size; resize the "
                "depth/HHA map to the image (nearest for depth)"
            )
        if not depth.is_floating_point():
            raise ShapeError(f"depth must be a float tensor, got {depth.dtype}; use depth.float() (HHA: / 255)")
        scale = self.depth_scale if self.depth_channels == 1 else 1.0
        return (image - self.mean) / self.std, (depth / scale - self.depth_mean) / self.depth_std

    def _encode(self, image: torch.Tensor, depth: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        rgb, dep = self._normalise(image, depth)
        fused, flows = [], {}
        for i, block in enumerate(self.fusions, start=1):
            rgb, dep = self.backbone.run_stage(i, rgb, dep)
            out = block(rgb, dep)
            rgb, dep = out[0], out[1]
            fused.append(out[2])
            for key, flow in getattr(out, "flows", {}).items():
                flows[f"fuse{i}" if key == "depth_to_rgb" else f"fuse{i}:{key}"] = flow
        return fused, flows

    @property
    def encoder_modules(self) -> tuple[str, ...]:
        """The two backbone streams and the fusion blocks."""
        return ("backbone", "fusions")


class FAFNet(_TwoStreamSegmenter):
    """Two-stream ResNet + a fusion block per stage + :class:`UPerAlignHead` (FAFNet Fig. 2).

    Built by :func:`fafnet`; the fused stage features (Eq. 1) are the decoder's levels 1..4.
    """

    def __init__(self, backbone: TwoStreamResNet, fusions: Sequence[nn.Module], decoder: UPerAlignHead, **kw: Any):
        super().__init__(backbone, fusions, **kw)
        self.decoder = decoder

    def forward(
        self, image: torch.Tensor, depth: torch.Tensor, return_flows: bool = False
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Segment an RGB-D pair.

        Args:
            image: (B, 3, H, W) RGB in [0, 1].
            depth: (B, 3, H, W) HHA in [0, 1] (``depth_channels=3``) or (B, 1, H, W) metres, 0 = invalid.
            return_flows: also return the raw FAM flows.

        Returns:
            ``{"semantic": (B, num_classes, H, W)}``, and with ``return_flows`` a second dict: ``"fuse<k>"``
            (B, 2, h_k, w_k), stage k's flow warping the depth features onto the RGB grid; ``"fuse<k>:rgb_to_depth"``
            the reverse FAM's flow (``fam_directions="both"``); ``"decoder<k>"`` (k = 1..3) the head's flow aligning
            level k+1 onto level k (at level k's size). Only existing FAMs appear. Convert with
            :func:`flow_to_pixels` (``align_corners`` of the model).
        """
        size = image.shape[-2:]
        fused, flows = self._encode(image, depth)
        head = self.decoder(fused)
        out = {"semantic": F.interpolate(head.logits, size=size, mode="bilinear", align_corners=True)}
        if not return_flows:
            return out
        flows.update({f"decoder{k}": flow for k, flow in enumerate(head.flows, start=1)})
        return out, flows


class TwoStreamDeepLabV3Plus(_TwoStreamSegmenter):
    """Two-stream ResNet fused per stage + ASPP on the stage-4 fusion + DeepLab v3+ decoder on the stage-1 fusion."""

    def __init__(
        self,
        backbone: TwoStreamResNet,
        fusions: Sequence[nn.Module],
        *,
        aspp_rates: Sequence[int],
        **kw: Any,
    ) -> None:
        super().__init__(backbone, fusions, **kw)
        low_ch, high_ch = backbone.out_channels[0], backbone.out_channels[-1]
        self.aspp = ASPP(high_ch, aspp_rates)
        self.decoder = DeepLabV3PlusDecoder(low_ch, self.num_classes)
        for m in (*self.aspp.modules(), *self.decoder.modules()):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    @property
    def encoder_modules(self) -> tuple[str, ...]:
        """The two backbone streams, the fusion blocks and the ASPP (DeepLab's encoder)."""
        return ("backbone", "fusions", "aspp")

    def forward(
        self, image: torch.Tensor, depth: torch.Tensor, return_flows: bool = False
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """As :meth:`FAFNet.forward`; the flows dict is empty (no FAM)."""
        size = image.shape[-2:]
        fused, flows = self._encode(image, depth)
        logits = self.decoder(self.aspp(fused[-1]), fused[0])
        out = {"semantic": F.interpolate(logits, size=size, mode="bilinear", align_corners=True)}
        return (out, flows) if return_flows else out


def _two_stream(
    backbone: str,
    depth_channels: int,
    pretrained: str | None,
    output_stride: int,
    multi_grid: Sequence[int] | None,
    backbone_kwargs: dict[str, Any] | None,
    share_downsample: bool = False,
) -> TwoStreamResNet:
    if backbone not in _BACKBONES:
        raise ConfigError(f"backbone must be one of {_BACKBONES}, got {backbone!r}")
    if depth_channels not in (1, 3):
        raise ConfigError(f"depth_channels must be 3 (HHA) or 1 (raw depth in metres), got {depth_channels!r}")
    if output_stride not in (8, 16, 32):
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    kwargs = dict(backbone_kwargs or {})
    for key in ("pretrained", "output_stride", "out_indices", "in_channels"):
        if key in kwargs:
            raise ConfigError(f"backbone_kwargs must not set {key!r}; the model sets it (pass it to the model)")
    streams = []
    for in_channels in (3, depth_channels):  # load_pretrained adapts the first conv for 1-channel depth
        net = create_backbone(
            backbone,
            pretrained=pretrained,
            output_stride=output_stride,
            out_indices=(1, 2, 3, 4),
            in_channels=in_channels,
            **kwargs,
        )
        grid = multi_grid
        if grid is None and len(net.layer4) == len(_DEFAULT_MULTI_GRID):
            grid = _DEFAULT_MULTI_GRID
        if grid and output_stride < 32:
            _apply_multi_grid(net.layer4, 32 // output_stride, grid)
        streams.append(net)
    return TwoStreamResNet(*streams, share_downsample=share_downsample)


def _depth_norm(
    depth_channels: int, depth_mean: Sequence[float] | None, depth_std: Sequence[float] | None
) -> tuple[Sequence[float], Sequence[float]]:
    default_mean, default_std = (HHA_MEAN, HHA_STD) if depth_channels == 3 else ((0.0,), (1.0,))
    return (default_mean if depth_mean is None else depth_mean), (default_std if depth_std is None else depth_std)


@register_model
def fafnet(
    *,
    num_classes: int = 40,
    backbone: Backbone = "resnet101",
    depth_channels: Literal[1, 3] = 3,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 16,
    multi_grid: Sequence[int] | None = None,
    fusion: Literal["acfm", "sagate", "sum"] = "acfm",
    acfm: bool = True,
    fuse_fam: bool | None = None,
    decoder_fam: bool = True,
    align_corners: bool = True,
    acfm_mode: Literal["paper", "fafnet"] = "paper",
    fam_directions: FamDirections = "both",
    fuse_fam_reduction: int | None = 2,
    stream_update: StreamUpdate = "add",
    decoder_channels: int | None = None,
    pool_scales: Sequence[int] = (1, 2, 3, 6),
    depth_scale: float = 10.0,
    depth_mean: Sequence[float] | None = None,
    depth_std: Sequence[float] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    deep_stem: bool = False,
    share_downsample: bool = False,
    head_layout: HeadLayout = "freqdense",
) -> FAFNet:
    """FAFNet and its ablations; defaults follow the paper (rows: :data:`FAFNET_VARIANTS`).

    Args:
        num_classes: 40 (NYU-Depth V2), 37 (SUN RGB-D).
        backbone: ResNet of both streams (paper: ResNet-101).
        depth_channels: 3 = HHA in [0, 1]; 1 = raw depth in metres (divided by ``depth_scale``).
        pretrained: local torchvision ImageNet file loaded into *both* streams (1-channel depth: the first conv
            gets the mean RGB filter x 3, :func:`~freqdense.models.backbones.load_pretrained`'s grey rule).
        output_stride: 16 (official: layer4 dilated), 8 or 32.
        multi_grid: layer4 dilation multipliers below output stride 32, one per layer4 block; ``None``: (1, 2, 4)
            when layer4 has 3 blocks (ResNet-34/50/101; official: dilations 2/4/8 at 16), else none (ResNet-18);
            ``()``: torchvision's uniform layer4 dilation.
        fusion: block after each stage: ``"acfm"`` (RGBDFuse), ``"sagate"`` (:class:`~freqdense.nn.SAGate`) or
            ``"sum"`` (element-wise sum to the decoder, independent streams).
        acfm: with ``fusion="acfm"``, ``False`` drops the ACFM (plain features into the FAMs).
        fuse_fam: FAMs inside RGBDFuse (default: ``True`` for ``fusion="acfm"``; only valid with it).
        decoder_fam: FAMs in the UPerNet head (``False``: bilinear upsampling).
        align_corners: FAM warp convention everywhere (``False``: official FAFNet code; see docs).
        acfm_mode, fam_directions, stream_update: see :class:`~freqdense.nn.rgbd_fuse.RGBDFuse`.
        fuse_fam_reduction: RGBDFuse FAM 1x1 reduction (``None``: official unreduced flow conv).
        decoder_channels: head width (default 256 for ResNet-50/101, 128 for ResNet-18/34, as SFNet).
        pool_scales: pyramid pooling sizes.
        depth_scale: raw depth divisor (metres -> about [0, 1]); unused for HHA.
        depth_mean, depth_std: depth normalisation after scaling (default HHA: ImageNet statistics; raw: 0, 1).
        backbone_kwargs: extra backbone keywords (e.g. ``{"base_width": 16}``).
        deep_stem: ResNet v1c stems (three 3x3 convs, 128 channels into layer1; official code).
        share_downsample: the streams share each stage's ``downsample`` shortcut (official code).
        head_layout: ``"freqdense"`` or ``"fafnet"`` (the official head, see
            :class:`~freqdense.models.decoders.uper_align.UPerAlignHead`).
    """
    if fusion not in ("acfm", "sagate", "sum"):
        raise ConfigError(f"fafnet fusion must be 'acfm', 'sagate' or 'sum', got {fusion!r}")
    if fuse_fam is None:
        fuse_fam = fusion == "acfm"
    if fusion != "acfm" and (fuse_fam or not acfm):
        raise ConfigError(
            f"fuse_fam and acfm=False apply to fusion='acfm' only, got fusion={fusion!r}; for FAMs without ACFM use "
            "fusion='acfm', acfm=False"
        )
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
    kwargs = dict(backbone_kwargs or {})
    if deep_stem:
        if kwargs.get("deep_stem") is False:
            raise ConfigError("deep_stem=True contradicts backbone_kwargs={'deep_stem': False}; set one of them")
        kwargs["deep_stem"] = True
    net = _two_stream(
        backbone, depth_channels, pretrained, output_stride, multi_grid, kwargs, share_downsample=share_downsample
    )
    fusions: list[nn.Module] = []
    for c in net.out_channels:
        if fusion == "acfm":
            fusions.append(
                RGBDFuse(
                    c,
                    acfm=acfm,
                    fam=fuse_fam,
                    acfm_mode=acfm_mode,
                    align_corners=align_corners,
                    fam_directions=fam_directions,
                    fam_reduction=fuse_fam_reduction,
                    stream_update=stream_update,
                )
            )
        else:
            fusions.append(SAGate(c) if fusion == "sagate" else _SumFusion())
    if decoder_channels is None:
        decoder_channels = 256 if backbone in ("resnet50", "resnet101") else 128
    head = UPerAlignHead(
        net.out_channels,
        num_classes,
        decoder_channels,
        pool_scales=pool_scales,
        fam=decoder_fam,
        align_corners=align_corners,
        layout=head_layout,
    )
    mean, std = _depth_norm(depth_channels, depth_mean, depth_std)
    return FAFNet(
        net,
        fusions,
        head,
        num_classes=num_classes,
        depth_channels=depth_channels,
        depth_scale=depth_scale,
        depth_mean=mean,
        depth_std=std,
    )


#: The keywords that make :func:`fafnet` the official code's network (see :func:`fafnet_official`).
OFFICIAL_FAFNET_KWARGS: dict[str, Any] = {
    "fusion": "acfm",
    "acfm": True,
    "fuse_fam": True,
    "decoder_fam": True,
    "acfm_mode": "fafnet",
    "fam_directions": "depth_to_rgb",
    "fuse_fam_reduction": None,
    "align_corners": False,
    "stream_update": "average",
    "pool_scales": (1, 2, 3, 6),
    "deep_stem": True,
    "share_downsample": True,
    "head_layout": "fafnet",
}


@register_model
def fafnet_official(
    *,
    num_classes: int = 40,
    backbone: Literal["resnet50", "resnet101"] = "resnet101",
    depth_channels: Literal[1, 3] = 3,
    output_stride: Literal[8, 16, 32] = 16,
    multi_grid: Sequence[int] | None = None,
    decoder_channels: int | None = None,
    depth_scale: float = 10.0,
    depth_mean: Sequence[float] | None = None,
    depth_std: Sequence[float] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> FAFNet:
    """FAFNet as the official code builds it (``GetFAFNet_D`` in ``models/fafnet_alignD.py`` @ b9ec9fc).

    :func:`fafnet` with :data:`OFFICIAL_FAFNET_KWARGS`: ResNet v1c deep stems (``resnet101_v1c``), the streams
    sharing each stage's ``downsample`` module, the official fusion block (``RGBDAlignModule``: ACFM as the code
    computes it, one depth-to-RGB warp with an unreduced flow conv, ``align_corners=False``, averaged stream
    updates), the official head layout (:class:`~freqdense.models.decoders.uper_align.UPerAlignHead`
    ``layout="fafnet"``) and HHA *not* normalised (mean 0, std 1: the official ``ExtNormalize`` touches only RGB).
    Layer4 dilations 2/4/8 at output stride 16, as the official ``_nostride_dilate``. Differences from the paper
    text: docs/models/fafnet.md. No ``pretrained``: torchvision files do not fit the deep stem; load an official
    checkpoint with :func:`freqdense.models.convert.fafnet.fafnet_official_to_freqdense`.

    Args: as :func:`fafnet` (``depth_mean``/``depth_std`` default to 0/1 for HHA too).
    """
    mean = depth_mean if depth_mean is not None else OFFICIAL_HHA_MEAN
    std = depth_std if depth_std is not None else OFFICIAL_HHA_STD
    return fafnet(
        num_classes=num_classes,
        backbone=backbone,
        depth_channels=depth_channels,
        pretrained=None,
        output_stride=output_stride,
        multi_grid=multi_grid,
        decoder_channels=decoder_channels,
        depth_scale=depth_scale,
        depth_mean=mean,
        depth_std=std,
        backbone_kwargs=backbone_kwargs,
        **OFFICIAL_FAFNET_KWARGS,
    )


@register_model
def two_stream_deeplabv3plus(
    *,
    num_classes: int = 40,
    backbone: Backbone = "resnet101",
    depth_channels: Literal[1, 3] = 3,
    pretrained: str | None = None,
    output_stride: Literal[8, 16, 32] = 16,
    multi_grid: Sequence[int] | None = None,
    fusion: Literal["sum", "sagate"] = "sum",
    feedback: bool = False,
    aspp_rates: Sequence[int] | None = None,
    depth_scale: float = 10.0,
    depth_mean: Sequence[float] | None = None,
    depth_std: Sequence[float] | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> TwoStreamDeepLabV3Plus:
    """Two-stream DeepLab v3+ (FAFNet's baseline, §4.3) or, with ``fusion="sagate"``, SA-Gate's network.

    Args:
        fusion: ``"sum"``: ``rgb + depth`` at each stage, the stage-1 sum is the decoder's low-level input and the
            stage-4 sum feeds the ASPP; ``"sagate"``: an :class:`~freqdense.nn.SAGate` per stage (its streams go
            back into the backbone, its ``merge`` to the head).
        feedback: with ``"sum"``, also replace the RGB stream by the sum after each stage (FuseNet-style); default
            ``False`` = independent streams, the classical two-stream network of FAFNet Fig. 1.
        aspp_rates: ASPP dilations (default by output stride: 8 -> 12/24/36, 16 -> 6/12/18, 32 -> 3/6/9).
        others: as :func:`fafnet`.
    """
    if fusion not in ("sum", "sagate"):
        raise ConfigError(f"two_stream_deeplabv3plus fusion must be 'sum' or 'sagate', got {fusion!r}")
    if feedback and fusion != "sum":
        raise ConfigError("feedback applies to fusion='sum' only (SA-Gate always feeds back); remove it")
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
    net = _two_stream(backbone, depth_channels, pretrained, output_stride, multi_grid, backbone_kwargs)
    fusions = [SAGate(c) if fusion == "sagate" else _SumFusion(feedback) for c in net.out_channels]
    mean, std = _depth_norm(depth_channels, depth_mean, depth_std)
    return TwoStreamDeepLabV3Plus(
        net,
        fusions,
        aspp_rates=_ASPP_RATES[output_stride] if aspp_rates is None else aspp_rates,
        num_classes=num_classes,
        depth_channels=depth_channels,
        depth_scale=depth_scale,
        depth_mean=mean,
        depth_std=std,
    )

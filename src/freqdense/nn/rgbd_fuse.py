"""RGBDFuse: attention cross fusion then semantic-flow alignment of RGB and depth features (FAFNet §3.2).

Chen et al., "FAFNet: Fully-Aligned Fusion Network for RGBD Semantic Segmentation based on Hierarchical Semantic
Flows", IET Image Processing 2023. Official code: github.com/CaliforniaChen/FAFNet @ b9ec9fc (``RGBDAlignModule``
in ``models/fafnet_alignD.py``; docs/reference_code.md#fafnet-official-code). Paper defaults:

1. ACFM (Eq. 4-9, :class:`~freqdense.nn.AttentionCrossFusion`): ``RGB_fused``, ``Depth_fused``;
2. two FAMs (Eq. 10-13) with same-size warps: ``Depth_warped = warp(Depth_fused)`` onto the grid of ``RGB_fused``
   (FAM with ``X_i = RGB_fused``, ``X_j = Depth_fused``) and ``RGB_warped = warp(RGB_fused)`` onto the grid of
   ``Depth_fused`` (the roles swapped);
3. ``Feat_fused = RGB_warped + Depth_warped`` (Eq. 1) goes to the decoder;
4. ``RGB <- RGB + RGB_warped``, ``Depth <- Depth + Depth_warped`` (Eq. 2-3) go to the next backbone stage.

The official block differs (see the same section); ``RGBDFuse(C, acfm_mode="fafnet", fam_directions="depth_to_rgb",
fam_reduction=None, align_corners=False, stream_update="average")`` reproduces it and loads its weights through
:meth:`RGBDFuse.convert_fafnet_state_dict`. Choices are discussed in docs/models/fafnet.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import torch
from torch import nn

from .._checks import check_shape
from ..errors import CheckpointError, ConfigError, ShapeError
from .acfm import AttentionCrossFusion
from .flow_align import FlowAlignment, flow_warp

__all__ = ["RGBDFuse", "RGBDFuseOutput", "flow_to_pixels", "pixels_to_flow"]

FamDirections = Literal["both", "depth_to_rgb"]
StreamUpdate = Literal["add", "average"]


class RGBDFuseOutput(NamedTuple):
    """What :class:`RGBDFuse` returns (all maps (B, C, H, W) except the flows)."""

    rgb: torch.Tensor  #: next-stage RGB stream (Eq. 2)
    depth: torch.Tensor  #: next-stage depth stream (Eq. 3)
    fused: torch.Tensor  #: ``Feat_fused`` for the decoder (Eq. 1)
    #: raw FAM flows (B, 2, H, W), keys ``"depth_to_rgb"`` (warps depth onto the RGB grid) and ``"rgb_to_depth"``;
    #: only the FAMs that exist (none with ``fam=False``). Unit: see :func:`flow_to_pixels`.
    flows: dict[str, torch.Tensor]


def flow_to_pixels(flow: torch.Tensor, *, align_corners: bool = True) -> torch.Tensor:
    """Convert a raw FAM flow (B, 2, h, w) into the displacement ``d`` (B, 2, h, w) in pixels of its own grid.

    Sign: the warped map samples the source at ``p + d(p)``, i.e. ``warped(p) = src(p + d(p))`` with ``p = (x, y)``
    in pixels of the flow's (output) grid; channel 0 is x, channel 1 is y. The FAM grid is ``linspace(-1, 1)``
    plus ``flow / (w, h)`` (FAFNet Eq. 11-12), so:

    * ``align_corners=True`` (SFNet, default): ``d = flow * (w - 1) / (2 w)`` (x; y with h). Zero flow is the
      identity (or bilinear ``align_corners=True`` upsampling when the source is coarser; ``d`` is then in pixels
      of the output grid, the coarse source being stretched onto it).
    * ``align_corners=False`` (FAFNet's official code): ``d = flow / 2 + x / (w - 1) - 1/2``: even a zero flow
      samples off-pixel (stretch by ``w / (w - 1)`` about the centre); exact for same-size warps.

    At a feature map of stride ``s`` (e.g. 4 for ResNet stage 1) a displacement of ``d`` feature pixels is about
    ``s * d`` input pixels.

    Args:
        flow: (B, 2, h, w) raw flow as predicted by a FAM.
        align_corners: the FAM's ``align_corners``.

    Returns:
        (B, 2, h, w) displacement in pixels.

    Examples:
        >>> flow_to_pixels(torch.full((1, 2, 5, 5), 2.5))[0, :, 0, 0]
        tensor([1., 1.])
    """
    check_shape(flow, "B C H W", name="flow", C=2)
    h, w = flow.shape[-2:]
    if align_corners:
        scale = flow.new_tensor([(w - 1) / (2 * w), (h - 1) / (2 * h)]).view(1, 2, 1, 1)
        return flow * scale
    return flow / 2 + _stretch_offset(flow)


def pixels_to_flow(displacement: torch.Tensor, *, align_corners: bool = True) -> torch.Tensor:
    """Inverse of :func:`flow_to_pixels`: the raw FAM flow that samples the source at ``p + displacement(p)``."""
    check_shape(displacement, "B C H W", name="displacement", C=2)
    h, w = displacement.shape[-2:]
    if align_corners:
        if h < 2 or w < 2:
            raise ShapeError(f"pixels_to_flow needs h, w >= 2 with align_corners=True, got {tuple(displacement.shape)}")
        scale = displacement.new_tensor([2 * w / (w - 1), 2 * h / (h - 1)]).view(1, 2, 1, 1)
        return displacement * scale
    return 2 * (displacement - _stretch_offset(displacement))


def _stretch_offset(t: torch.Tensor) -> torch.Tensor:
    """``k / (n - 1) - 1/2`` per axis: where a zero flow samples (minus the pixel) with ``align_corners=False``."""
    h, w = t.shape[-2:]
    xs = torch.arange(w, dtype=t.dtype, device=t.device) / max(w - 1, 1) - 0.5
    ys = torch.arange(h, dtype=t.dtype, device=t.device) / max(h - 1, 1) - 0.5
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)]).unsqueeze(0)


class _DirectFlowAlignment(nn.Module):
    """Same-size FAM without the 1x1 reductions: ``flow = flow_make(cat([src, ref]))`` (official ``flow_make2``).

    Same call convention as :class:`FlowAlignment` (``(ref, src)`` = ``(low, high)``), input order *source first*
    as SFNet; the official code concatenates ``[rgb, depth]`` (reference first), which the state-dict conversion
    handles by swapping the input halves of the weight.
    """

    def __init__(self, channels: int, kernel_size: int = 3, *, align_corners: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.align_corners = align_corners
        self.flow_make = nn.Conv2d(2 * channels, 2, kernel_size, padding=kernel_size // 2, bias=False)

    def compute_flow(self, ref: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return self.flow_make(torch.cat([src, ref], dim=1))

    def forward(self, ref: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return flow_warp(src, self.compute_flow(ref, src), align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, align_corners={self.align_corners}"


class RGBDFuse(nn.Module):
    """FAFNet's RGB-D fusion block: ACFM (Eq. 4-9), FAM alignment of the modalities (Eq. 10-13), Eq. 1-3.

    Args:
        channels: C, channels of each modality (both maps (B, C, H, W), same size).
        acfm: run the ACFM first; ``False`` feeds the plain ``(rgb, depth)`` to the FAMs ("w/o ACFM" ablation).
        fam: align with FAMs; ``False`` uses the ACFM outputs unwarped (``fused = RGB_fused + Depth_fused``).
        acfm_mode: ``"paper"`` (Eq. 8-9) or ``"fafnet"`` (official, see :class:`AttentionCrossFusion`).
        align_corners: FAM warp convention; ``True`` (SFNet, paper Eq. 11, zero flow = identity) or ``False``
            (official FAFNet code).
        fam_directions: ``"both"`` (paper: depth warped onto RGB *and* RGB onto depth) or ``"depth_to_rgb"``
            (official: only depth is warped, RGB is used as is).
        fam_reduction: the FAMs' 1x1 reductions to ``C // fam_reduction`` channels before the flow conv (paper
            Fig. 5, SFNet ``outplane = inplane // 2``: :class:`FlowAlignment`); ``None``: the 3x3 flow conv sees the
            unreduced ``2C`` channels (official ``flow_make2``).
        stream_update: ``"add"`` (Eq. 2-3: ``x + x_warped``) or ``"average"`` (official: ``(x + x_warped) / 2``).
        reduction: ACFM MLP squeeze ratio (16).
        kernel_size: flow conv kernel (3).

    ``forward(rgb, depth)`` returns :class:`RGBDFuseOutput`.

    Examples:
        >>> block = RGBDFuse(32)
        >>> out = block(torch.rand(1, 32, 8, 8), torch.rand(1, 32, 8, 8))
        >>> out.fused.shape, sorted(out.flows)
        (torch.Size([1, 32, 8, 8]), ['depth_to_rgb', 'rgb_to_depth'])
    """

    def __init__(
        self,
        channels: int,
        *,
        acfm: bool = True,
        fam: bool = True,
        acfm_mode: Literal["paper", "fafnet"] = "paper",
        align_corners: bool = True,
        fam_directions: FamDirections = "both",
        fam_reduction: int | None = 2,
        stream_update: StreamUpdate = "add",
        reduction: int = 16,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if int(channels) < 1:
            raise ConfigError(f"RGBDFuse channels must be >= 1, got {channels!r}")
        if fam_directions not in ("both", "depth_to_rgb"):
            raise ConfigError(f"RGBDFuse fam_directions must be 'both' or 'depth_to_rgb', got {fam_directions!r}")
        if stream_update not in ("add", "average"):
            raise ConfigError(f"RGBDFuse stream_update must be 'add' or 'average', got {stream_update!r}")
        if fam_reduction is not None and not 1 <= int(fam_reduction) <= int(channels):
            raise ConfigError(
                f"RGBDFuse fam_reduction must be None or in [1, channels={channels}], got {fam_reduction!r}; "
                "use 2 (paper/SFNet) or None (official FAFNet)"
            )
        self.channels = int(channels)
        self.align_corners = bool(align_corners)
        self.fam_directions = fam_directions
        self.stream_update = stream_update
        self.acfm = AttentionCrossFusion(self.channels, reduction, mode=acfm_mode) if acfm else None
        self.align_depth: nn.Module | None = None
        self.align_rgb: nn.Module | None = None
        if fam:
            self.align_depth = self._make_fam(fam_reduction, kernel_size)
            if fam_directions == "both":
                self.align_rgb = self._make_fam(fam_reduction, kernel_size)

    def _make_fam(self, fam_reduction: int | None, kernel_size: int) -> nn.Module:
        if fam_reduction is None:
            return _DirectFlowAlignment(self.channels, kernel_size, align_corners=self.align_corners)
        reduced = max(1, self.channels // int(fam_reduction))
        return FlowAlignment(self.channels, reduced, kernel_size, align_corners=self.align_corners)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> RGBDFuseOutput:
        """Fuse same-size (B, C, H, W) ``rgb`` and ``depth`` features (Eq. 1-13)."""
        check_shape(rgb, "B C H W", name="rgb", C=self.channels)
        check_shape(depth, "B C H W", name="depth", C=self.channels)
        if rgb.shape != depth.shape:
            raise ShapeError(
                f"RGBDFuse needs rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} features of the same shape; "
                "build both streams with the same backbone and output stride"
            )
        rgb_fused, depth_fused = self.acfm(rgb, depth) if self.acfm is not None else (rgb, depth)
        flows: dict[str, torch.Tensor] = {}
        rgb_warped, depth_warped = rgb_fused, depth_fused
        if self.align_depth is not None:  # Eq. 10-13 with X_i = RGB_fused (reference), X_j = Depth_fused
            flows["depth_to_rgb"] = self.align_depth.compute_flow(rgb_fused, depth_fused)
            depth_warped = flow_warp(depth_fused, flows["depth_to_rgb"], align_corners=self.align_corners)
        if self.align_rgb is not None:  # the roles swapped
            flows["rgb_to_depth"] = self.align_rgb.compute_flow(depth_fused, rgb_fused)
            rgb_warped = flow_warp(rgb_fused, flows["rgb_to_depth"], align_corners=self.align_corners)
        fused = rgb_warped + depth_warped  # Eq. 1
        rgb_next, depth_next = rgb + rgb_warped, depth + depth_warped  # Eq. 2-3
        if self.stream_update == "average":
            rgb_next, depth_next = rgb_next / 2, depth_next / 2
        return RGBDFuseOutput(rgb_next, depth_next, fused, flows)

    @staticmethod
    def convert_fafnet_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map an official ``RGBDAlignModule(C)`` state dict onto ``RGBDFuse(C, **official)`` keys.

        ``official = dict(acfm_mode="fafnet", fam_directions="depth_to_rgb", fam_reduction=None,
        align_corners=False, stream_update="average")``. ``fsp1``/``fsp2`` become ``acfm.mlp_rgb``/
        ``acfm.mlp_depth``; ``flow_make2.weight`` (conv on ``cat([rgb, depth])``) becomes
        ``align_depth.flow_make.weight`` with its input halves swapped (ours is ``cat([depth, rgb])``); the unused
        ``flow_make.weight`` is dropped. Load the result with ``strict=True``.

        Raises:
            CheckpointError: ``flow_make2.weight`` is missing or not (2, 2C, k, k).
        """
        weight = state_dict.get("flow_make2.weight")
        if weight is None or weight.dim() != 4 or weight.shape[0] != 2 or weight.shape[1] % 2:
            got = None if weight is None else tuple(weight.shape)
            raise CheckpointError(
                f"official RGBDAlignModule state dict needs 'flow_make2.weight' of shape (2, 2C, k, k), got {got}; "
                "pass the block's own state dict (strip the 'fuse.N.' style prefix first)"
            )
        c = weight.shape[1] // 2
        out = {f"acfm.{k}": v for k, v in AttentionCrossFusion.convert_fafnet_state_dict(state_dict).items()}
        out["align_depth.flow_make.weight"] = torch.cat([weight[:, c:], weight[:, :c]], dim=1)
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, fam_directions={self.fam_directions!r}, "
            f"stream_update={self.stream_update!r}, align_corners={self.align_corners}"
        )

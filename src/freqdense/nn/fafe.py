"""The FAFE block (Frequency Aware Feature Enhancement) for two tasks, and its "+conv" control.

Fu et al., "Lifting the Veil of Frequency in Joint Segmentation and Depth Estimation", ACM MM 2021, §3.1-3.2,
Fig. 2-5, Tables 1 and 4. No official code exists; the parts are :class:`~freqdense.nn.DualPreInteraction` (PI,
Eq. 1), :class:`~freqdense.nn.FrequencyDisentanglement` (FD, Eq. 2-3, followed by dual-input PI on (low, high))
and :class:`~freqdense.nn.FeatureRecalibration` (FR, Fig. 5). For per-task features ``F_s, F_d`` of shape
``(B, C, h, w)``:

1. PI between the tasks: ``(F_s, F_d) <- PI(F_s, F_d)``. When both tasks receive the same shared feature (the
   backbone output in front of PAD-Net's initial predictions, MTI-Net's coarsest scale) this is exactly the
   single-input PI, i.e. CSTrack's CCN splitting one feature into two task streams (Fig. 2, ``PI_1``).
2. FD per task: ``(F_T^low, F_T^high) = PI_2(IDCT(DCT(conv_1 F_T) W_T^low), IDCT(DCT(conv_2 F_T) W_T^high))``,
   with ``W`` sized for this block's training feature size and resampled at other sizes.
3. FR across the tasks, per band: ``F_d^b += SE(F_s^b)``, ``F_s^b += SE(F_d^b)``.
4. Merge (the paper does not say how ``F_T^low, F_T^high`` become the single ``F_T^fr`` of Fig. 5):
   ``"sum"`` (default) ``F_T = F_T^low + F_T^high`` -- parameter-free; at initialisation the two spectral masks
   partition the spectrum, so the sum is a full-band reconstruction (it would be exactly ``conv(F_T)`` with equal
   branch convolutions and without the PIs and FR); ``"concat"``: ``F_T = conv1x1([F_T^low, F_T^high])``
   (``2C -> C`` with bias, ``2 C^2 + C`` parameters per task) lets the next layer weight the bands separately.

The switches ``pi``, ``fd``, ``fr`` give the rows of Table 1: +PI (``pi``), +PI+FD (``pi, fd``), +FAFE (all).
FR needs FD (it re-calibrates FD's bands).

The "+conv" control (Table 4: "we removed ... 2D DCT ... matrix multiplication for attention ... we keep the
convolution operations in order to keep the same parameters") is :class:`FAFEConvBlock`; see its docstring for
how the parameter count is kept equal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shape
from ..errors import ConfigError, ShapeError
from .dct_disentangle import FrequencyDisentanglement, frequency_masks
from .pre_interaction import DualPreInteraction
from .recalibration import FeatureRecalibration

__all__ = ["FAFEBlock", "FAFEConvBlock", "FAFEOptions", "FAFE_TASKS", "check_fafe_tasks", "fafe_block"]

logger = logging.getLogger(__name__)

#: The two tasks a FAFE block serves, in the order (first, second) of its PI streams.
FAFE_TASKS = ("semantic", "depth")


def check_fafe_tasks(options: FAFEOptions | None, tasks: Sequence[str]) -> None:
    """Raise a ConfigError unless ``options`` is None or the model predicts exactly :data:`FAFE_TASKS`."""
    if options is not None and set(tasks) != set(FAFE_TASKS):
        raise ConfigError(
            f"model.fafe: FAFE blocks serve exactly the tasks {FAFE_TASKS}, the model has {tuple(tasks)}; "
            "set tasks to both or fafe to null"
        )


Variant = Literal["fafe", "conv"]
Merge = Literal["sum", "concat"]
_VARIANTS = ("fafe", "conv")
_MERGES = ("sum", "concat")
_ORDERS = ("pool_conv", "conv_pool")


@dataclass(frozen=True)
class FAFEOptions:
    """Validated ``model.fafe`` options shared by PAD-Net and MTI-Net (build with :meth:`from_config`).

    Attributes:
        variant: ``"fafe"`` (the paper's block) or ``"conv"`` (Table 4's "+conv" control, same parameter count).
        pi: Pre-Interaction between the tasks.
        fd: Frequency Disentanglement per task (includes the dual-input PI on (low, high)).
        fr: Feature Re-calibration across the tasks (needs ``fd``).
        input_size: training input ``(H, W)``; sizes the FD weight matrices of every placement
            (``ceil(H / stride), ceil(W / stride)``). Required when ``fd``.
        cutoff: radius of the low-pass initialisation of ``W^low`` (normalised frequency, 1 = Nyquist).
        pi_grid: PI pooling grid ``(h, w)`` (CSTrack CCN: ``(6, 10)``).
        pi_order: ``"pool_conv"`` (CCN) or ``"conv_pool"`` (FAFE's text).
        merge: ``"sum"`` or ``"concat"`` (see the module docstring).
        fd_kernel_size: kernel of FD's two branch convolutions (the paper: "convolution layers"; default 3).
        fr_reduction: SE reduction ratio of FR (SENet's 16).
    """

    variant: Variant = "fafe"
    pi: bool = True
    fd: bool = True
    fr: bool = True
    input_size: tuple[int, int] | None = None
    cutoff: float = 0.5
    pi_grid: tuple[int, int] = (6, 10)
    pi_order: Literal["pool_conv", "conv_pool"] = "pool_conv"
    merge: Merge = "sum"
    fd_kernel_size: int = 3
    fr_reduction: int = 16

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The option names a ``fafe`` mapping may hold."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_config(
        cls, options: Mapping[str, Any] | FAFEOptions | None, *, where: str = "model.fafe"
    ) -> FAFEOptions | None:
        """Validate a ``fafe`` mapping (``None`` -> ``None``: the unchanged baseline).

        Args:
            options: mapping of option names to values (YAML lists are accepted for sizes), an instance, or None.
            where: config path used in error messages.

        Returns:
            :class:`FAFEOptions` or ``None``.

        Raises:
            ConfigError: unknown key (the message lists the allowed ones), bad value, ``fr`` without ``fd``, no
                component enabled, or ``fd`` without ``input_size``.
        """
        if options is None:
            return None
        if isinstance(options, FAFEOptions):
            return options
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"{where} must be a mapping of FAFE options (e.g. {{variant: fafe, input_size: [480, 640]}}) or null, "
                f"got {type(options).__name__}"
            )
        allowed = cls.keys()
        for key in options:
            if key not in allowed:
                raise ConfigError(f"{where}: unknown FAFE option {key!r}; allowed options: {', '.join(allowed)}")
        o = dict(options)
        kw: dict[str, Any] = {}
        if "variant" in o:
            kw["variant"] = _choice(o["variant"], _VARIANTS, f"{where}.variant")
        for key in ("pi", "fd", "fr"):
            if key in o:
                if not isinstance(o[key], bool):
                    raise ConfigError(f"{where}.{key} must be true or false, got {o[key]!r}")
                kw[key] = o[key]
        if o.get("input_size") is not None:
            kw["input_size"] = _size_pair(o["input_size"], f"{where}.input_size")
        if "cutoff" in o:
            c = o["cutoff"]
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
                raise ConfigError(f"{where}.cutoff must be a number > 0 (normalised frequency, 1 = Nyquist), got {c!r}")
            kw["cutoff"] = float(c)
        if "pi_grid" in o:
            kw["pi_grid"] = _size_pair(o["pi_grid"], f"{where}.pi_grid")
        if "pi_order" in o:
            kw["pi_order"] = _choice(o["pi_order"], _ORDERS, f"{where}.pi_order")
        if "merge" in o:
            kw["merge"] = _choice(o["merge"], _MERGES, f"{where}.merge")
        if "fd_kernel_size" in o:
            k = o["fd_kernel_size"]
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ConfigError(f"{where}.fd_kernel_size must be an odd integer >= 1, got {k!r}")
            kw["fd_kernel_size"] = k
        if "fr_reduction" in o:
            r = o["fr_reduction"]
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise ConfigError(f"{where}.fr_reduction must be an integer >= 1, got {r!r}")
            kw["fr_reduction"] = r
        opts = cls(**kw)
        if opts.fr and not opts.fd:
            raise ConfigError(
                f"{where}: fr=true needs fd=true (FR re-calibrates the low/high bands that FD produces); "
                "set fd: true or fr: false"
            )
        if not (opts.pi or opts.fd):
            raise ConfigError(f"{where}: pi, fd and fr are all false; use fafe: null for the baseline")
        if opts.fd and opts.input_size is None:
            raise ConfigError(
                f"{where}.input_size is required when fd is true: the FAFE FD weight matrices are sized per placement "
                "from the training input size; add e.g. input_size: [480, 640] (NYUD-v2)"
            )
        return opts

    def feature_size(self, stride: int) -> tuple[int, int] | None:
        """Training feature size at ``stride`` (``ceil(H / stride), ceil(W / stride)``), or None without FD."""
        if not self.fd or self.input_size is None:
            return None
        h, w = self.input_size
        return (-(-h // stride), -(-w // stride))


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _size_pair(value: Any, where: str) -> tuple[int, int]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise ConfigError(f"{where} must be two integers >= 1 [H, W], got {value!r}")
    return (int(value[0]), int(value[1]))


class _TwoTaskBlock(nn.Module):
    """Skeleton shared by the FAFE block and its control: PI -> FD per task -> FR -> merge."""

    def __init__(
        self,
        channels: int,
        *,
        size: tuple[int, int] | None = None,
        pi: bool = True,
        fd: bool = True,
        fr: bool = True,
        cutoff: float = 0.5,
        pi_grid: tuple[int, int] = (6, 10),
        pi_order: str = "pool_conv",
        merge: Merge = "sum",
        fd_kernel_size: int = 3,
        fr_reduction: int = 16,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"{type(self).__name__}: channels must be >= 1, got {channels}")
        if fr and not fd:
            raise ConfigError(f"{type(self).__name__}: fr=True needs fd=True (FR works on FD's low/high bands)")
        if not (pi or fd):
            raise ConfigError(f"{type(self).__name__}: enable pi and/or fd (an empty block is the baseline)")
        if fd and size is None:
            raise ConfigError(f"{type(self).__name__}: fd=True needs size=(h, w), the training feature size")
        if merge not in _MERGES:
            raise ConfigError(f"{type(self).__name__}: merge must be one of {_MERGES}, got {merge!r}")
        self.channels = int(channels)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.merge_mode = merge
        c = self.channels
        self.pre_interaction = self._make_pi(c, pi_grid, pi_order) if pi else None
        self.disentangle = (
            nn.ModuleDict(
                {t: self._make_fd(c, self.size, fd_kernel_size, cutoff, pi_grid, pi_order) for t in FAFE_TASKS}
            )
            if fd
            else None
        )
        self.recalibration = self._make_fr(c, fr_reduction) if fr else None
        self.merge = (
            nn.ModuleDict({t: nn.Conv2d(2 * c, c, 1) for t in FAFE_TASKS}) if fd and merge == "concat" else None
        )

    def _make_pi(self, channels: int, grid: tuple[int, int], order: str) -> nn.Module:
        raise NotImplementedError

    def _make_fd(
        self,
        channels: int,
        size: tuple[int, int] | None,
        kernel_size: int,
        cutoff: float,
        grid: tuple[int, int],
        order: str,
    ) -> nn.Module:
        raise NotImplementedError

    def _make_fr(self, channels: int, reduction: int) -> nn.Module:
        raise NotImplementedError

    def _merge(self, task: str, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        if self.merge is None:
            return low + high
        return self.merge[task](torch.cat([low, high], dim=1))

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"semantic": (B, C, h, w), "depth": (B, C, h, w)}`` -> enhanced features of the same shapes.

        Pass the same tensor for both tasks to split a shared feature (single-input PI).
        """
        for t in FAFE_TASKS:
            if t not in features:
                raise ShapeError(
                    f"{type(self).__name__}: features must hold {FAFE_TASKS}, got keys {tuple(features)}; "
                    "pass {'semantic': x, 'depth': x} to split a shared feature"
                )
            check_shape(features[t], "B C H W", name=f"{type(self).__name__} input {t!r}", C=self.channels)
        seg, depth = features["semantic"], features["depth"]
        if seg.shape != depth.shape:
            raise ShapeError(
                f"{type(self).__name__}: the two tasks' features must have the same shape, got "
                f"{tuple(seg.shape)} (semantic) and {tuple(depth.shape)} (depth)"
            )
        if self.pre_interaction is not None:
            seg, depth = self.pre_interaction(seg, depth)
        if self.disentangle is None:
            return {"semantic": seg, "depth": depth}
        seg_low, seg_high = self.disentangle["semantic"](seg)
        depth_low, depth_high = self.disentangle["depth"](depth)
        if self.recalibration is not None:
            seg_low, seg_high, depth_low, depth_high = self.recalibration(seg_low, seg_high, depth_low, depth_high)
        return {
            "semantic": self._merge("semantic", seg_low, seg_high),
            "depth": self._merge("depth", depth_low, depth_high),
        }

    def extra_repr(self) -> str:
        parts = [
            f"channels={self.channels}",
            f"size={self.size}",
            f"pi={self.pre_interaction is not None}",
            f"fd={self.disentangle is not None}",
            f"fr={self.recalibration is not None}",
        ]
        if self.disentangle is not None:
            parts.append(f"merge={self.merge_mode!r}")
        return ", ".join(parts)


class FAFEBlock(_TwoTaskBlock):
    """FAFE for the (semantic, depth) pair: PI between tasks, FD per task, FR across tasks, merge (paper §3.2).

    Args:
        channels: ``C`` of both tasks' features (in = out).
        size: ``(h, w)`` of the features at the training resolution; the FD weight matrices have this shape and
            are resampled (same cycles per pixel) at other sizes. Needed when ``fd``.
        pi, fd, fr: enable the components (Table 1 ladder); ``fr`` needs ``fd``.
        cutoff: low-pass radius initialising ``W^low`` (``W^high = 1 - W^low``).
        pi_grid, pi_order: options of every PI in the block (the inter-task one and FD's dual ones).
        merge: ``"sum"`` or ``"concat"`` (module docstring).
        fd_kernel_size: kernel of FD's ``conv_1, conv_2``.
        fr_reduction: SE reduction of FR.

    Parameters (``pi, fd, fr`` all on, ``k = fd_kernel_size``, ``r = fr_reduction``, ``m = max(1, C // r)``):
    PI ``18 C^2 + 2 C + 2``; per task FD ``2 (k^2 C^2 + C) + 2 h w`` plus its PI; FR ``4 (2 C m + m + C)``;
    ``"concat"`` adds ``2 (2 C^2 + C)``.

    Submodules: ``pre_interaction`` (:class:`DualPreInteraction`), ``disentangle.<task>``
    (:class:`FrequencyDisentanglement` with ``interaction``), ``recalibration`` (:class:`FeatureRecalibration`),
    ``merge.<task>`` (concat merge only); disabled parts are ``None``.

    Examples:
        >>> block = FAFEBlock(8, size=(12, 16))
        >>> x = torch.rand(2, 8, 12, 16)
        >>> out = block({"semantic": x, "depth": x})  # shared input: single-input PI splits it
        >>> out["semantic"].shape, out["depth"].shape
        (torch.Size([2, 8, 12, 16]), torch.Size([2, 8, 12, 16]))
    """

    def _make_pi(self, channels: int, grid: tuple[int, int], order: str) -> nn.Module:
        return DualPreInteraction(channels, grid=grid, order=order)

    def _make_fd(
        self,
        channels: int,
        size: tuple[int, int] | None,
        kernel_size: int,
        cutoff: float,
        grid: tuple[int, int],
        order: str,
    ) -> nn.Module:
        return FrequencyDisentanglement(
            channels, channels, size=size, kernel_size=kernel_size, cutoff=cutoff, pi_grid=grid, pi_order=order
        )

    def _make_fr(self, channels: int, reduction: int) -> nn.Module:
        return FeatureRecalibration(channels, reduction=reduction)


class _ConvInteraction(nn.Module):
    """PI without attention: ``O_1 = I_1 + w1 g_1(I_1) + (1 - w1) g_2(I_2)``, ``O_2`` symmetrically.

    ``g_k`` = PI's ``c_attention{k}`` (conv3x3 + bias -> InstanceNorm -> LeakyReLU(0.3)) at full resolution, no
    pooling; the PI's self/cross mixing by ``w1, w2`` is kept, the softmax channel attention is removed. Same
    parameter names and shapes as :class:`DualPreInteraction`.
    """

    def __init__(self, channels: int, negative_slope: float = 0.3) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.full((1,), 0.5))
        self.w2 = nn.Parameter(torch.full((1,), 0.5))
        self.c_attention1 = _conv_in_act(channels, negative_slope)
        self.c_attention2 = _conv_in_act(channels, negative_slope)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g1 = self.c_attention1(x1)
        g2 = self.c_attention2(x2)
        return x1 + self.w1 * g1 + (1 - self.w1) * g2, x2 + self.w2 * g2 + (1 - self.w2) * g1


def _conv_in_act(channels: int, negative_slope: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=True),
        nn.InstanceNorm2d(channels),
        nn.LeakyReLU(negative_slope),
    )


class _ConvDisentanglement(nn.Module):
    """FD without DCT: ``(low, high) = PI_conv(conv_1 x, conv_2 x)``.

    ``weight_low``/``weight_high`` keep FD's names and ``(h, w)`` shapes (initialised like FD's masks) but are
    frozen (``requires_grad=False``) and never used: they are the parameter-count padding of the control.
    """

    def __init__(self, channels: int, size: tuple[int, int], kernel_size: int, cutoff: float) -> None:
        super().__init__()
        self.conv_low = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv_high = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        low, high = frequency_masks(size, cutoff=cutoff)
        self.weight_low = nn.Parameter(low, requires_grad=False)
        self.weight_high = nn.Parameter(high, requires_grad=False)
        self.interaction = _ConvInteraction(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.interaction(self.conv_low(x), self.conv_high(x))


class _ConvTransfer(nn.Module):
    """SE's two fully connected layers used as a per-pixel 1x1 bottleneck (no pooling, no sigmoid gate)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.conv2d(x, self.fc1.weight[:, :, None, None], self.fc1.bias))
        return F.conv2d(y, self.fc2.weight[:, :, None, None], self.fc2.bias)


class _ConvRecalibration(nn.Module):
    """FR without SE attention: ``F_d^b += T(F_s^b)``, ``F_s^b += T(F_d^b)`` with :class:`_ConvTransfer` ``T``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.seg_to_depth_low = _ConvTransfer(channels, reduction)
        self.seg_to_depth_high = _ConvTransfer(channels, reduction)
        self.depth_to_seg_low = _ConvTransfer(channels, reduction)
        self.depth_to_seg_high = _ConvTransfer(channels, reduction)

    def forward(
        self, seg_low: torch.Tensor, seg_high: torch.Tensor, depth_low: torch.Tensor, depth_high: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            seg_low + self.depth_to_seg_low(depth_low),
            seg_high + self.depth_to_seg_high(depth_high),
            depth_low + self.seg_to_depth_low(seg_low),
            depth_high + self.seg_to_depth_high(seg_high),
        )


class FAFEConvBlock(_TwoTaskBlock):
    """Table 4's "+conv" control: FAFE's convolutions without DCT and without attention, same parameter count.

    Same arguments, switches and merge as :class:`FAFEBlock`. What changes:

    - PI: ``O_1 = I_1 + w1 g_1(I_1) + (1 - w1) g_2(I_2)`` (``O_2`` symmetric), ``g_k`` = the PI's
      conv3x3 + InstanceNorm + LeakyReLU run at full resolution (no pooling, no softmax ``C x C`` attention);
      ``w1, w2`` still mix the self and the cross term.
    - FD: ``(low, high) = PI_conv(conv_1 F_T, conv_2 F_T)`` -- no DCT, no spectral weighting, no IDCT.
    - FR: each SE block's two fully connected layers become a per-pixel 1x1 bottleneck
      ``fc_2(relu(fc_1 x))`` added to the other task's band (no global pooling, no sigmoid gate).

    Parity: every submodule keeps the state-dict name and shape of its FAFE counterpart (``pre_interaction.w1``,
    ``disentangle.<t>.conv_low.weight``, ``recalibration.seg_to_depth_low.fc1.weight``, ...), so the parameter
    count is equal by construction. The only FAFE parameters without a role here are FD's spectral weight
    matrices ``disentangle.<t>.weight_low/high`` (``4 h w`` per block, e.g. 76 800 at 120 x 160): they are kept
    as frozen, unused parameters (``requires_grad=False``) -- the padding. They count in ``parameters()`` (as the
    paper's "Params" column) but not among trainable parameters, and a FAFE checkpoint's keys all exist here.
    Note the FLOPs differ: PI's convolutions run on the 6 x 10 pooled grid in FAFE (``pool_conv``) but at full
    resolution here, as they do in FAFE with ``pi_order="conv_pool"`` (the paper's order).

    Examples:
        >>> ctrl, fafe = FAFEConvBlock(8, size=(12, 16)), FAFEBlock(8, size=(12, 16))
        >>> sum(p.numel() for p in ctrl.parameters()) == sum(p.numel() for p in fafe.parameters())
        True
    """

    def _make_pi(self, channels: int, grid: tuple[int, int], order: str) -> nn.Module:
        return _ConvInteraction(channels)

    def _make_fd(
        self,
        channels: int,
        size: tuple[int, int] | None,
        kernel_size: int,
        cutoff: float,
        grid: tuple[int, int],
        order: str,
    ) -> nn.Module:
        return _ConvDisentanglement(channels, size, kernel_size, cutoff)

    def _make_fr(self, channels: int, reduction: int) -> nn.Module:
        return _ConvRecalibration(channels, reduction)


def fafe_block(options: FAFEOptions, channels: int, *, stride: int) -> FAFEBlock | FAFEConvBlock:
    """Build the block ``options`` describe for ``channels``-channel features at ``stride`` of the input.

    Args:
        options: validated options (:meth:`FAFEOptions.from_config`).
        channels: ``C`` of the per-task features at this placement.
        stride: input-to-feature downsampling of this placement; with ``options.input_size`` it gives the FD
            weight size ``(ceil(H / stride), ceil(W / stride))``.

    Returns:
        :class:`FAFEBlock` (``variant="fafe"``) or :class:`FAFEConvBlock` (``variant="conv"``).
    """
    cls = FAFEBlock if options.variant == "fafe" else FAFEConvBlock
    return cls(
        channels,
        size=options.feature_size(stride),
        pi=options.pi,
        fd=options.fd,
        fr=options.fr,
        cutoff=options.cutoff,
        pi_grid=options.pi_grid,
        pi_order=options.pi_order,
        merge=options.merge,
        fd_kernel_size=options.fd_kernel_size,
        fr_reduction=options.fr_reduction,
    )

"""Fairness degree of a photometric loss under a disparity sweep (Chen et al., WACV 2023, Sec. 3.3 and 5.4).

Definition 2: ``D_fair(L, x_min, x_max) = (1 / (x_max - x_min)) * integral of eps(L'(x) (x - gt)) dx`` with
``eps(t) = [t > 0]``: the share of the range on which the loss grows away from the ground truth. The loss is sampled
at discrete disparities and taken as piecewise linear between the samples, which makes the integral exact (an
interval counts by the part of it where ``slope * (x - gt) > 0``; flat intervals count 0).

For a rectified pair (left = target) the loss of a left pixel ``(y, x)`` at disparity ``d`` compares it with the
right image at ``(y, x - d)`` (Middlebury convention, checked on ``skimage.data.stereo_motorcycle``). Sweeps are
relative to the ground truth, ``d = gt + k`` for integer ``k`` in ``[-radius, radius]``, through the same
:func:`~freqdense.losses.photometric_error` and :func:`~freqdense.ops.auto_blur` as training.

Fig. 5's constructed example (:func:`fig5_example`) is our own reading of the figure: one RGB scan line, a red target
between green neighbours, the ground-truth match a slightly darker red between green neighbours, a pure-red false
positive among blue pixels, and a 1-D Gaussian with weights ``1/6, 2/3, 1/6`` and zero borders (the caption's
``f(0) = 2/3, f(l) = 1/6, f(2l) ~ 0``), L1 loss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_shape
from .._progress import progress
from ..errors import DataError, ShapeError
from ..losses.photometric import photometric_error
from ..ops.ambiguity import ambiguity_map
from ..ops.blur import auto_blur, auto_blur_weight
from ..ops.frequency import gaussian_blur2d

__all__ = [
    "Fig5Example",
    "MIDDLEBURY_MOTORCYCLE_CALIB",
    "StereoPair",
    "SweepResult",
    "analyze_stereo_pair",
    "disparity_sweep",
    "fairness_degree",
    "fig5_blur",
    "fig5_example",
    "fig5_losses",
    "load_middlebury_motorcycle",
    "plot_fairness",
    "shift_by_disparity",
]

log = logging.getLogger(__name__)

#: Calibration of the x4-downsampled pair in skimage (its docstring; Scharstein et al., GCPR 2014).
MIDDLEBURY_MOTORCYCLE_CALIB = {"f": 994.978, "cx": 311.193, "cy": 254.877, "doffs": 31.086, "baseline_mm": 193.001}


def fairness_degree(
    losses: torch.Tensor, disparities: torch.Tensor | Sequence[float], gt: torch.Tensor | float
) -> torch.Tensor:
    """Definition 2 (Eq. 2) for a loss sampled along a sweep, exact for the piecewise-linear interpolant.

    Args:
        losses: ``(..., D)`` loss at each sampled disparity.
        disparities: ``(D,)`` strictly increasing sample positions (``x_min = disparities[0]``, ``x_max = [-1]``).
        gt: ground truth, scalar or ``(...)`` broadcastable to ``losses[..., 0]``.

    Returns:
        ``(...)`` fairness degrees in [0, 1] (float64).

    Examples:
        >>> fairness_degree(torch.tensor([3.0, 2, 1, 0, 1, 2]), torch.arange(6.0), 3.0).item()  # a 'V': fair
        1.0
        >>> fairness_degree(torch.tensor([1.0, 1, 0, 1, 1]), torch.arange(5.0), 2.0).item()
        0.5
    """
    x = torch.as_tensor(disparities, dtype=torch.float64)
    loss = losses.to(torch.float64)
    if x.dim() != 1 or x.numel() < 2 or loss.shape[-1] != x.numel():
        raise ShapeError(
            f"losses (..., D) and disparities (D,) with D >= 2 needed, got {tuple(losses.shape)}, {tuple(x.shape)}"
        )
    if not bool((x[1:] > x[:-1]).all()):
        raise ShapeError("disparities must be strictly increasing")
    g = torch.as_tensor(gt, dtype=torch.float64)[..., None]
    a, b = x[:-1], x[1:]
    slope = loss[..., 1:] - loss[..., :-1]
    above = (b - torch.maximum(a, g)).clamp(min=0).minimum(b - a)
    below = (torch.minimum(b, g) - a).clamp(min=0).minimum(b - a)
    fair = torch.where(slope > 0, above, torch.where(slope < 0, below, torch.zeros_like(above)))
    return fair.sum(-1) / (x[-1] - x[0])


# ---------------------------------------------------------------------------------------------------------------
# rectified-pair sweep


def shift_by_disparity(right: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right image seen from the left view: ``out(y, x) = right(y, x - d(y, x))`` (bilinear, border).

    Args:
        right: ``(B, C, H, W)``.
        disparity: ``(B, 1, H, W)`` left-view disparity in pixels (non-finite = invalid).

    Returns:
        ``(warped (B, C, H, W), inside (B, 1, H, W) bool)``; ``inside`` is False where ``x - d`` leaves
        ``[0, W - 1]`` or ``d`` is not finite.
    """
    check_shape(right, "B C H W", name="right")
    check_shape(disparity, "B C H W", name="disparity", C=1)
    batch, _, height, width = right.shape
    finite = torch.isfinite(disparity)
    d = torch.where(finite, disparity, torch.zeros_like(disparity))
    xs = torch.arange(width, dtype=right.dtype, device=right.device).view(1, 1, 1, width) - d
    ys = torch.arange(height, dtype=right.dtype, device=right.device).view(1, 1, height, 1).expand_as(xs)
    grid = torch.stack([2 * xs / max(width - 1, 1) - 1, 2 * ys / max(height - 1, 1) - 1], dim=-1)[:, 0]
    warped = F.grid_sample(right, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, finite & (xs >= 0) & (xs <= width - 1)


class SweepResult(NamedTuple):
    """Output of :func:`disparity_sweep`.

    Attributes:
        losses: ``(B, D, H, W)`` photometric error at ``gt + offsets[k]``.
        offsets: ``(D,)`` the offsets ``k``.
        valid: ``(B, 1, H, W)`` bool, GT finite and every swept match inside the right image.
    """

    losses: torch.Tensor
    offsets: torch.Tensor
    valid: torch.Tensor


def disparity_sweep(
    left: torch.Tensor,
    right: torch.Tensor,
    disparity: torch.Tensor,
    *,
    radius: int = 8,
    ssim_weight: float = 0.85,
) -> SweepResult:
    """Photometric error of every left pixel at ``gt + k``, ``k = -radius .. radius`` (integers).

    Args:
        left: ``(B, 3, H, W)`` target view in [0, 1] (already auto-blurred for the "+ Auto-Blur" variant).
        right: ``(B, 3, H, W)`` source view.
        disparity: ``(B, 1, H, W)`` ground-truth left disparity in pixels, non-finite = invalid.
        radius: sweep half-width in pixels.
        ssim_weight: see :func:`~freqdense.losses.photometric_error`.
    """
    offsets = torch.arange(-radius, radius + 1, dtype=left.dtype)
    losses, valid = [], torch.isfinite(disparity)
    for k in progress(offsets.tolist(), "disparity sweep", unit="offset"):
        warped, inside = shift_by_disparity(right, disparity + k)
        losses.append(photometric_error(warped, left, ssim_weight))
        valid = valid & inside
    return SweepResult(torch.cat(losses, dim=1), offsets, valid)


class StereoPair(NamedTuple):
    """A rectified pair: ``left``/``right`` ``(1, 3, H, W)`` in [0, 1], ``disparity`` ``(1, 1, H, W)`` (inf = none)."""

    left: torch.Tensor
    right: torch.Tensor
    disparity: torch.Tensor


def load_middlebury_motorcycle() -> StereoPair:
    """Middlebury 2014 "Motorcycle" (x4 downsampled, 500x741) shipped in scikit-image (Scharstein et al., GCPR 2014).

    Invalid GT disparities (7.3 %) are +inf in the file and stay +inf here. Depth = f B / (d + doffs), see
    :data:`MIDDLEBURY_MOTORCYCLE_CALIB`; the disparity itself is the pixel offset used for warping.
    """
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - optional dependency
        raise DataError("the Middlebury pair needs scikit-image: pip install scikit-image") from err
    left, right, disp = data.stereo_motorcycle()
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0  # noqa: E731
    d = torch.from_numpy(np.asarray(disp, dtype=np.float32))
    d = torch.where(torch.isfinite(d), d, torch.full_like(d, math.inf))
    return StereoPair(to_t(left), to_t(right), d[None, None])


def _table4(loss_at_gt: torch.Tensor, ambiguous: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    amb, other = ambiguous & valid, ~ambiguous & valid
    n = int(valid.sum())
    total = float(loss_at_gt[valid].sum())
    row: dict[str, float] = {"ambiguous_share": int(amb.sum()) / max(n, 1)}
    for name, sel in (("ambiguous", amb), ("other", other)):
        row[f"{name}_mean_loss"] = float(loss_at_gt[sel].mean()) if bool(sel.any()) else float("nan")
        row[f"{name}_loss_share"] = float(loss_at_gt[sel].sum()) / total if total > 0 else float("nan")
    return row


@torch.no_grad()
def analyze_stereo_pair(
    pair: StereoPair,
    *,
    radius: int = 8,
    ssim_weight: float = 0.85,
    delta: float = 0.3,
    auto_blur_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """D_fair with and without Auto-Blur, and the Table 4 analogue, on a rectified pair with GT disparity.

    For each variant (``baseline``: raw images; ``auto_blur``: :func:`~freqdense.ops.auto_blur` on both views, as
    the loss sees them in training) it reports the mean per-pixel ``D_fair`` over ``[gt - radius, gt + radius]``
    on all valid pixels and on the high-frequency ones (non-zero Auto-Blur weight in the left view), the share of
    pixels whose swept minimum is at the GT, and Table 4: pixels with synthetic ambiguity
    ``max(A_left, A_right warped by the GT) >= delta`` against the others, with their mean photometric loss at the
    GT disparity and their share of the summed loss.

    Returns:
        JSON-able dict (also holds ``"_sweeps"``: the per-variant :class:`SweepResult` and ``D_fair`` maps, for plots).
    """
    kw = dict(auto_blur_kwargs or {})
    hf = (
        auto_blur_weight(
            pair.left, **{k: v for k, v in kw.items() if k in ("hf_pixel_thresh", "hf_area_percent", "area_kernel")}
        )
        > 0
    )
    out: dict[str, Any] = {"radius": radius, "ssim_weight": ssim_weight, "delta": delta, "_sweeps": {}}
    for variant in ("baseline", "auto_blur"):
        left, right = pair.left, pair.right
        if variant == "auto_blur":
            left, right = auto_blur(left, **kw), auto_blur(right, **kw)
        sweep = disparity_sweep(left, right, pair.disparity, radius=radius, ssim_weight=ssim_weight)
        valid = sweep.valid
        dfair = fairness_degree(sweep.losses.permute(0, 2, 3, 1), sweep.offsets, 0.0)[:, None]
        at_gt = sweep.losses[:, radius : radius + 1]
        gt_is_min = sweep.losses.argmin(dim=1, keepdim=True) == radius
        warped_amb, _ = shift_by_disparity(ambiguity_map(right), pair.disparity)
        synthetic = torch.maximum(ambiguity_map(left), warped_amb)
        out[variant] = {
            "num_valid": int(valid.sum()),
            "d_fair_mean": float(dfair[valid].mean()),
            "d_fair_high_freq": float(dfair[valid & hf].mean()) if bool((valid & hf).any()) else float("nan"),
            "d_fair_low_freq": float(dfair[valid & ~hf].mean()) if bool((valid & ~hf).any()) else float("nan"),
            "gt_is_sweep_minimum": float(gt_is_min[valid].double().mean()),
            "mean_loss_at_gt": float(at_gt[valid].mean()),
            "table4": _table4(at_gt, synthetic >= delta, valid),
        }
        out["_sweeps"][variant] = (sweep, dfair)
    out["high_freq_share"] = float((hf & out["_sweeps"]["baseline"][0].valid).sum()) / max(
        out["baseline"]["num_valid"], 1
    )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Fig. 5


class Fig5Example(NamedTuple):
    """Fig. 5's constructed scan line (our reading of the figure; see the module docstring).

    Attributes:
        left: ``(1, 3, 1, W)`` left row; ``right``: ``(1, 3, 1, W)`` right row.
        target_x: column of the target pixel in the left row.
        gt_disparity: true disparity (right column ``target_x - gt_disparity``).
        fp_disparity: disparity of the false positive.
        disparities: ``(D,)`` swept disparities ``0 .. 15``.
    """

    left: torch.Tensor
    right: torch.Tensor
    target_x: int
    gt_disparity: int
    fp_disparity: int
    disparities: torch.Tensor


def fig5_example(
    *, width: int = 40, target_x: int = 30, gt_disparity: int = 10, fp_disparity: int = 4, gt_red: float = 0.8
) -> Fig5Example:
    """Build the scan line: blue everywhere; left ``G R G`` around ``target_x``; right ``G R' G`` around the GT match
    with ``R' = (gt_red, 0, 0)`` (photometric consistency broken) and a pure red false positive at ``fp_disparity``.
    """
    red, green, blue = (torch.tensor(c, dtype=torch.float32) for c in ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)))
    left = blue.view(3, 1).repeat(1, width)
    right = left.clone()
    left[:, target_x - 1], left[:, target_x], left[:, target_x + 1] = green, red, green
    g = target_x - gt_disparity
    right[:, g - 1], right[:, g], right[:, g + 1] = green, red * gt_red, green
    right[:, target_x - fp_disparity] = red
    return Fig5Example(
        left[None, :, None],
        right[None, :, None],
        target_x,
        gt_disparity,
        fp_disparity,
        torch.arange(16, dtype=torch.float32),
    )


def fig5_blur(row: torch.Tensor) -> torch.Tensor:
    """The caption's Gaussian along x: weights ``(1/6, 2/3, 1/6)`` (sigma with ``exp(-1 / 2 sigma^2) = 1/4``), zero
    borders."""
    sigma = 1.0 / math.sqrt(2.0 * math.log(4.0))
    return gaussian_blur2d(row, (1, 3), (1.0, sigma), padding_mode="zeros")


def fig5_losses(example: Fig5Example, *, blur: bool) -> torch.Tensor:
    """``(D,)`` L1 loss (channel mean) of the target pixel at each swept disparity, with or without the blur."""
    left, right = (fig5_blur(example.left), fig5_blur(example.right)) if blur else (example.left, example.right)
    cols = example.target_x - example.disparities.long()
    errors = photometric_error(right[..., cols], left[..., [example.target_x]].expand(-1, -1, -1, cols.numel()), 0.0)
    return errors.flatten()


# ---------------------------------------------------------------------------------------------------------------
# plots (matplotlib, optional)


def plot_fairness(result: dict[str, Any], out_dir: Path, *, pixel: tuple[int, int] | None = None) -> list[Path]:
    """Write ``fairness_sweep.png`` (Fig. 2-like: loss vs. disparity of one pixel, with/without Auto-Blur, and the
    supervised ``|x - gt|``), ``fairness_hist.png`` (per-pixel D_fair) and ``fig5.png``. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    base_sweep, base_df = result["_sweeps"]["baseline"]
    ab_sweep, ab_df = result["_sweeps"]["auto_blur"]
    valid = base_sweep.valid[0, 0]
    if pixel is None:  # the valid pixel where Auto-Blur raises D_fair most
        gain = torch.where(valid, ab_df[0, 0] - base_df[0, 0], torch.full_like(ab_df[0, 0], -9.0))
        flat = int(gain.flatten().argmax())
        pixel = (flat // gain.shape[1], flat % gain.shape[1])
    y, x = pixel
    k = base_sweep.offsets.numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    lb, la = base_sweep.losses[0, :, y, x].numpy(), ab_sweep.losses[0, :, y, x].numpy()
    axes[0].plot(k, lb, "o-", label=f"L1+SSIM (D_fair {float(base_df[0, 0, y, x]):.2f})")
    axes[0].plot(k, la, "s-", label=f"+ Auto-Blur (D_fair {float(ab_df[0, 0, y, x]):.2f})")
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set(xlabel="disparity - gt [px]", ylabel="photometric loss", title=f"pixel (y={y}, x={x})")
    axes[0].legend(fontsize=8)
    axes[1].plot(k, np.abs(k), "k--", label="supervised |x - gt| (D_fair 1)")
    for name, losses in (("L1+SSIM", lb), ("+ Auto-Blur", la)):
        axes[1].plot(k, (losses - losses.min()) / max(np.ptp(losses), 1e-12) * np.abs(k).max(), label=name)
    axes[1].set(xlabel="disparity - gt [px]", ylabel="penalty (rescaled)", title="penalty vs. error")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "fairness_sweep.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    bins = np.linspace(0, 1, 17)
    ax.hist(
        base_df[0, 0][valid].numpy(),
        bins=bins,
        alpha=0.6,
        label=f"L1+SSIM (mean {result['baseline']['d_fair_mean']:.3f})",
    )
    ax.hist(
        ab_df[0, 0][valid].numpy(),
        bins=bins,
        alpha=0.6,
        label=f"+ Auto-Blur (mean {result['auto_blur']['d_fair_mean']:.3f})",
    )
    ax.set(xlabel="D_fair per pixel", ylabel="pixels", title="fairness degree of the valid pixels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "fairness_hist.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    ex = fig5_example()
    d = ex.disparities.numpy()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for blur, name in ((False, "L1"), (True, "L1 + Gaussian")):
        losses = fig5_losses(ex, blur=blur)
        ax.plot(
            d,
            losses.numpy(),
            "o-",
            label=f"{name} (D_fair {float(fairness_degree(losses, ex.disparities, ex.gt_disparity)):.3f})",
        )
    ax.axvline(ex.gt_disparity, color="g", lw=0.8, label="gt")
    ax.axvline(ex.fp_disparity, color="r", lw=0.8, label="fp")
    ax.set(xlabel="disparity [px]", ylabel="loss of the target pixel", title="Fig. 5 constructed example")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "fig5.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths

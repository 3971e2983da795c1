"""Monocular-depth error metrics (Eigen et al., NeurIPS 2014, Sec. 4; monodepth2 and MTL-PyTorch protocols).

Metrics, over the valid pixels ``i`` of a set (``d`` = ground truth, ``p`` = prediction, both in metres):

* ``abs_rel  = mean |d - p| / d``            * ``sq_rel = mean (d - p)^2 / d``
* ``rmse     = sqrt(mean (d - p)^2)``         * ``rmse_log = sqrt(mean (ln d - ln p)^2)``
* ``log10    = mean |log10 d - log10 p|``     * ``mae = mean |d - p|``
* ``delta<k> = mean [max(d/p, p/d) < 1.25^k]`` for k = 1, 2, 3

``aggregation="pixel"`` pools every valid pixel of the whole set into each mean (so rmse is the square root of
the pooled mean square; MTL-PyTorch's NYUD protocol). ``aggregation="image"`` computes each metric per image and
averages the per-image values (monodepth2 / KITTI Eigen protocol). Both are accumulated; ``compute`` reports one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..data.sample import depth_valid_mask
from ..errors import ConfigError, ShapeError
from ._base import Metric, refuse_non_finite

__all__ = [
    "DepthMetrics",
    "DEPTH_CROPS",
    "DEPTH_PROTOCOLS",
    "MONODEPTH2_STEREO_SCALE",
    "crop_mask",
    "depth_from_disparity",
    "evaluate_disparities",
    "DEPTH_METRIC_NAMES",
]

log = logging.getLogger(__name__)

#: Evaluation crops as (top, bottom, left, right) fractions of (H, H, W, W). Rows ``int(top*H):int(bottom*H)``.
DEPTH_CROPS: dict[str, tuple[float, float, float, float]] = {
    # Garg et al. ECCV 2016 crop, as used by monodepth2 for the KITTI `eigen` split.
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    # Eigen et al. NeurIPS 2014 crop.
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
    # ManyDepth Cityscapes test: [256:, 192:1856] of the 768x2048 GT left after dropping the bottom 25 % (ego car).
    "cityscapes": (1.0 / 3.0, 1.0, 0.09375, 0.90625),
    # Eigen NYUv2 crop [45:471, 41:601] at 480x640.
    "nyu_eigen": (0.09375, 0.98125, 0.0640625, 0.9390625),
}

#: monodepth2's ``STEREO_SCALE_FACTOR``: its stereo training uses a 0.1 "baseline" instead of KITTI's 0.54 m, so its
#: stereo evaluation multiplies the predicted depth by 0.54 / 0.1 (``--eval_stereo``).
MONODEPTH2_STEREO_SCALE = 5.4

#: Keyword presets for the protocols of docs/data/depth_datasets.md#evaluation-protocols (pass as
#: ``DepthMetrics(**DEPTH_PROTOCOLS[name])``). The KITTI and Cityscapes presets are monodepth2's / Freq-aware depth's
#: ``evaluate()`` rule for rule: ``min_depth`` / ``max_depth`` are the ground-truth mask, ``pred_clamp`` the clamp
#: applied to the prediction after ``pred_scale`` and median scaling. The prediction must be at the ground-truth
#: size: resize the *disparity* (:func:`depth_from_disparity`), as monodepth2 does with ``cv2.resize``.
DEPTH_PROTOCOLS: dict[str, dict[str, Any]] = {
    # `evaluate_depth.py --eval_split eigen --eval_mono`: mask 1e-3 < gt < 80 inside the Garg crop, per-image median
    # scaling, pred clamped to [1e-3, 80], mean of per-image metrics.
    "kitti_eigen_mono": {
        "min_depth": 1e-3,
        "max_depth": 80.0,
        "crop": "garg",
        "median_scaling": True,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # `--eval_split eigen --eval_stereo`: the same mask; no median scaling, depth multiplied by 5.4 (for models
    # trained with monodepth2's 0.1 "baseline", e.g. kitti stereo_baseline=0.1 or monodepth2's released weights).
    "kitti_eigen_stereo": {
        "min_depth": 1e-3,
        "max_depth": 80.0,
        "crop": "garg",
        "median_scaling": False,
        "pred_scale": MONODEPTH2_STEREO_SCALE,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # Stereo-trained with the calibrated (metric, ~0.54 m) baseline, freqdense's KITTI default: as kitti_eigen_stereo
    # without the 5.4 factor (not a monodepth2 preset).
    "kitti_eigen_stereo_metric": {
        "min_depth": 1e-3,
        "max_depth": 80.0,
        "crop": "garg",
        "median_scaling": False,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # `--eval_split eigen_benchmark --eval_mono` (improved ground truth): every gt > 0 counts (no upper cap, no crop),
    # per-image median scaling, pred clamped to [1e-3, 80].
    "kitti_eigen_benchmark_mono": {
        "min_depth": 0.0,
        "max_depth": None,
        "crop": None,
        "median_scaling": True,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # `--eval_split eigen_benchmark --eval_stereo`: as above, no median scaling, depth x 5.4.
    "kitti_eigen_benchmark_stereo": {
        "min_depth": 0.0,
        "max_depth": None,
        "crop": None,
        "median_scaling": False,
        "pred_scale": MONODEPTH2_STEREO_SCALE,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # Freq-aware depth / ManyDepth `--eval_split cityscapes`: GT already cut to its top 75 % (the loader does it), crop
    # [256:, 192:1856] of that 768x2048 map, mask 1e-3 < gt < 80, per-image median scaling, pred clamped to [1e-3, 80].
    "cityscapes_mono": {
        "min_depth": 1e-3,
        "max_depth": 80.0,
        "crop": "cityscapes",
        "median_scaling": True,
        "aggregation": "image",
        "pred_clamp": (1e-3, 80.0),
    },
    # Self-supervised NYUv2 (P2Net / StructDepth style; unverified, docs/conventions.md): Eigen crop, 1e-3 < gt < 10,
    # per-image median scaling, pred clamped to [1e-3, 10].
    "nyuv2_eigen_mono": {
        "min_depth": 1e-3,
        "max_depth": 10.0,
        "crop": "nyu_eigen",
        "median_scaling": True,
        "aggregation": "image",
        "pred_clamp": (1e-3, 10.0),
    },
    # Multi-Task-Learning-PyTorch NYUD `DepthMeter`: gt > 0 valid, pred >= 1e-9, pooled over all pixels.
    "nyud_mt": {
        "min_depth": 0.0,
        "max_depth": None,
        "crop": None,
        "median_scaling": False,
        "aggregation": "pixel",
        "pred_clamp": (1e-9, None),
    },
}


def depth_from_disparity(disparity: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """monodepth2's evaluation resize: bilinear resize of the *disparity* to ``size``, then depth = 1 / disparity.

    ``cv2.resize(disp, (W, H))`` (``INTER_LINEAR``) samples at half-pixel centres without antialiasing, which is
    ``F.interpolate(..., mode="bilinear", align_corners=False)``. Resizing the depth instead changes the metrics
    (KITTI 192x640 -> 375x1242: AbsRel +6 %, SqRel +29 %).

    Args:
        disparity: ``(B, 1, h, w)`` positive disparity (e.g. monodepth2's scaled disparity = 1 / network depth).
        size: ``(H, W)`` of the ground truth.

    Returns:
        ``(B, 1, H, W)`` depth, in the disparity's dtype.

    Example:
        >>> depth_from_disparity(torch.tensor([[[[1.0, 0.5]]]]), (1, 4)).flatten().tolist()
        [1.0, 1.1428571939468384, 1.600000023841858, 2.0]
    """
    if tuple(disparity.shape[-2:]) != tuple(size):
        disparity = F.interpolate(disparity, size=tuple(size), mode="bilinear", align_corners=False)
    return 1.0 / disparity


#: Keys of ``DepthMetrics.compute`` (plus ``median_ratio_mean``/``median_ratio_std`` with median scaling).
DEPTH_METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "mae", "delta1", "delta2", "delta3")

# Per-pixel quantities summed in the state. rmse/rmse_log are square roots of the means of sq_err/sq_log_err.
_PIXEL_TERMS = ("abs_rel", "sq_rel", "sq_err", "sq_log_err", "abs_log10", "abs_err", "delta1", "delta2", "delta3")
_TERM_TO_METRIC = {
    "abs_rel": "abs_rel",
    "sq_rel": "sq_rel",
    "sq_err": "rmse",
    "sq_log_err": "rmse_log",
    "abs_log10": "log10",
    "abs_err": "mae",
    "delta1": "delta1",
    "delta2": "delta2",
    "delta3": "delta3",
}
_SQRT_TERMS = ("sq_err", "sq_log_err")
# Layout of the single float64 state vector.
_PIXEL_SLOT = {t: i for i, t in enumerate(_PIXEL_TERMS)}
_N_PIXELS = len(_PIXEL_TERMS)
_IMAGE_SLOT = {t: _N_PIXELS + 1 + i for i, t in enumerate(_PIXEL_TERMS)}
_N_IMAGES = 2 * _N_PIXELS + 1
_RATIO_SUM, _RATIO_SQ_SUM = _N_IMAGES + 1, _N_IMAGES + 2
_STATE_SIZE = _N_IMAGES + 3

_MIN_POSITIVE_PRED = 1e-9  # keeps logs finite when clamping


def _resolve_crop(crop: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if crop is None:
        return None
    if isinstance(crop, str):
        if crop not in DEPTH_CROPS:
            raise ConfigError(f"unknown depth crop {crop!r}; choose one of {sorted(DEPTH_CROPS)} or give fractions")
        return DEPTH_CROPS[crop]
    values = tuple(float(v) for v in crop)
    if len(values) != 4:
        raise ConfigError(f"depth crop must be (top, bottom, left, right) fractions, got {crop!r}")
    top, bottom, left, right = values
    if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
        raise ConfigError(f"depth crop {values} must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1")
    return values  # type: ignore[return-value]


def crop_mask(
    height: int, width: int, crop: str | Sequence[float], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean ``(H, W)`` mask of an evaluation crop: rows ``int(top*H):int(bottom*H)``, cols likewise.

    The truncation to int follows monodepth2's ``astype(np.int32)`` of the fractional box.

    Example:
        >>> m = crop_mask(375, 1242, "garg")
        >>> int(m.any(1).nonzero()[0]), int(m.any(1).nonzero()[-1])
        (153, 370)
    """
    top, bottom, left, right = _resolve_crop(crop)  # type: ignore[misc]
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


def _median(values: torch.Tensor) -> torch.Tensor:
    """numpy-style median (mean of the two middle values for an even count)."""
    n = values.numel()
    upper = values.kthvalue(n // 2 + 1).values
    if n % 2:
        return upper
    return 0.5 * (upper + values.kthvalue(n // 2).values)


class DepthMetrics(Metric):
    """Accumulate depth errors over an evaluation set (see the module docstring for the formulas).

    Args:
        min_depth: ground truth must be ``> min_depth`` to count (None: only ``> 0``).
        max_depth: ground truth must be ``< max_depth`` to count (None: no cap).
        crop: ``None``, ``"garg"``, ``"eigen"`` or ``(top, bottom, left, right)`` fractions of the GT size.
        median_scaling: multiply each prediction by ``median(gt) / median(pred)`` over its valid pixels
            (monocular self-supervised protocol); the ratios' mean/std are reported.
        aggregation: ``"pixel"`` pools all valid pixels of the set; ``"image"`` averages per-image metrics.
        pred_clamp: clamp predictions (after median scaling) to ``[min_depth, max_depth]`` (True), leave them
            (False), or clamp to an explicit ``(low, high)`` (either may be None). The lower bound is raised to
            1e-9 so logarithms stay finite.
        pred_scale: multiply every prediction by this before median scaling (monodepth2's
            ``--pred_depth_scale_factor``; 5.4 for its stereo models, :data:`MONODEPTH2_STEREO_SCALE`).

    With median scaling, ``last_ratios`` holds the ratios of the images of the latest ``update`` (those with a
    valid pixel); monodepth2 prints their median and ``std(ratios / median)``.

    Images with no valid pixel are skipped (they count in neither aggregation).

    Example:
        >>> m = DepthMetrics(aggregation="pixel")
        >>> gt = torch.full((1, 1, 2, 2), 2.0)
        >>> m.update(gt * 1.1, gt)
        >>> round(m.compute()["abs_rel"], 6)
        0.1
    """

    _state_names = ("sums",)

    def __init__(
        self,
        *,
        min_depth: float | None = 1e-3,
        max_depth: float | None = 80.0,
        crop: str | Sequence[float] | None = None,
        median_scaling: bool = False,
        aggregation: Literal["pixel", "image"] = "pixel",
        pred_clamp: bool | tuple[float | None, float | None] = True,
        pred_scale: float = 1.0,
    ) -> None:
        if not (isinstance(pred_scale, (int, float)) and math.isfinite(pred_scale) and pred_scale > 0):
            raise ConfigError(f"DepthMetrics pred_scale must be a positive number, got {pred_scale!r}")
        self.pred_scale = float(pred_scale)
        self.last_ratios = torch.zeros(0, dtype=torch.float64)
        if aggregation not in ("pixel", "image"):
            raise ConfigError(f"DepthMetrics aggregation must be 'pixel' or 'image', got {aggregation!r}")
        if min_depth is not None and max_depth is not None and not min_depth < max_depth:
            raise ConfigError(f"DepthMetrics needs min_depth < max_depth, got {min_depth} and {max_depth}")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.crop = _resolve_crop(crop)
        self.median_scaling = bool(median_scaling)
        self.aggregation = aggregation
        if pred_clamp is True:
            low, high = min_depth, max_depth
        elif pred_clamp is False:
            low, high = None, None
        else:
            if len(pred_clamp) != 2:
                raise ConfigError(f"DepthMetrics pred_clamp must be a bool or (low, high), got {pred_clamp!r}")
            low, high = pred_clamp
        self.pred_clamp: tuple[float | None, float | None] | None = (
            None if pred_clamp is False else (max(low or 0.0, _MIN_POSITIVE_PRED), high)
        )
        self.sums: torch.Tensor
        self.reset()

    @classmethod
    def from_protocol(cls, name: str, **overrides: Any) -> DepthMetrics:
        """Build with a preset from ``DEPTH_PROTOCOLS`` (e.g. ``"kitti_eigen_mono"``, ``"nyud_mt"``)."""
        if name not in DEPTH_PROTOCOLS:
            raise ConfigError(f"unknown depth protocol {name!r}; choose one of {sorted(DEPTH_PROTOCOLS)}")
        return cls(**{**DEPTH_PROTOCOLS[name], **overrides})

    def _config(self) -> dict[str, Any]:
        config = {
            "min_depth": self.min_depth,
            "max_depth": self.max_depth,
            "crop": self.crop,
            "median_scaling": self.median_scaling,
            "pred_clamp": self.pred_clamp,
        }
        if self.pred_scale != 1.0:  # only then, so states saved before pred_scale existed still load
            config["pred_scale"] = self.pred_scale
        return config

    def _empty_state(self) -> dict[str, torch.Tensor]:
        device = self.sums.device if hasattr(self, "sums") else torch.device("cpu")
        return {"sums": torch.zeros(_STATE_SIZE, dtype=torch.float64, device=device)}

    @property
    def num_pixels(self) -> int:
        """Valid pixels accumulated so far."""
        return int(self.sums[_N_PIXELS])

    @property
    def num_images(self) -> int:
        """Images with at least one valid pixel accumulated so far."""
        return int(self.sums[_N_IMAGES])

    def _valid_mask(self, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        mask = depth_valid_mask(target)
        if self.min_depth is not None:
            mask &= target > self.min_depth
        if self.max_depth is not None:
            mask &= target < self.max_depth
        if valid is not None:
            mask &= valid.to(device=target.device, dtype=torch.bool)
        if self.crop is not None:
            mask &= crop_mask(target.shape[-2], target.shape[-1], self.crop, device=target.device)
        return mask

    @staticmethod
    def _as_b1hw(x: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"{name} must be a torch.Tensor (B, 1, H, W), got {type(x).__name__}")
        if x.dim() == 3:
            return x[:, None]
        if x.dim() != 4 or x.shape[1] != 1:
            raise ShapeError(f"{name} must have shape (B, 1, H, W) or (B, H, W), got {tuple(x.shape)}")
        return x

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Accumulate one batch.

        Args:
            pred: predicted depth in metres ``(B, 1, H, W)`` at the ground-truth resolution.
            target: ground-truth depth in metres ``(B, 1, H, W)``; 0/NaN/inf are invalid.
            valid: optional extra mask ``(B, 1, H, W)`` AND-ed with the depth caps and the crop.

        Raises:
            ShapeError: shapes differ (resize the prediction to the GT size first).
            NonFiniteError: the prediction is NaN/inf at a valid pixel (names the batch items); NaN is never
                averaged into the metrics. Non-finite predictions at invalid pixels are ignored like the pixels.
        """
        pred = self._as_b1hw(pred, "pred depth")
        target = self._as_b1hw(target, "target depth")
        if pred.shape != target.shape:
            raise ShapeError(
                f"pred depth {tuple(pred.shape)} and target depth {tuple(target.shape)} differ; resize the "
                "prediction to the ground-truth size (F.interpolate(pred, size=gt.shape[-2:], mode='bilinear'))"
            )
        if valid is not None:
            valid = self._as_b1hw(valid, "valid mask")
            if valid.shape != target.shape:
                raise ShapeError(f"valid mask {tuple(valid.shape)} must match target depth {tuple(target.shape)}")
        gt = target.detach().double()
        pr = pred.detach().to(device=gt.device, dtype=torch.float64)
        mask = self._valid_mask(gt, valid)
        refuse_non_finite(~torch.isfinite(pr) & mask, "pred depth")
        count = mask.sum(dim=(1, 2, 3)).double()  # (B,)
        ratio_sum = gt.new_zeros(())
        ratio_sq_sum = gt.new_zeros(())
        if self.pred_scale != 1.0:
            pr = pr * self.pred_scale
        if self.median_scaling:
            ratios = torch.ones(gt.shape[0], dtype=torch.float64, device=gt.device)
            for b in range(gt.shape[0]):
                if count[b] > 0:
                    ratios[b] = _median(gt[b][mask[b]]) / _median(pr[b][mask[b]])
            pr = pr * ratios.view(-1, 1, 1, 1)
            has = count > 0
            ratio_sum = ratios[has].sum()
            ratio_sq_sum = (ratios[has] ** 2).sum()
            self.last_ratios = ratios[has].cpu()
        if self.pred_clamp is not None:
            pr = pr.clamp(min=self.pred_clamp[0], max=self.pred_clamp[1])
        # Invalid pixels get gt = pred = 1 so every term there is exactly 0 (no NaN leaks through the sums).
        gt = torch.where(mask, gt, torch.ones_like(gt))
        pr = torch.where(mask, pr, torch.ones_like(pr))
        diff = gt - pr
        thresh = torch.maximum(gt / pr, pr / gt)
        terms = {
            "abs_rel": diff.abs() / gt,
            "sq_rel": diff.square() / gt,
            "sq_err": diff.square(),
            "sq_log_err": (gt.log() - pr.log()).square(),
            "abs_log10": (gt.log10() - pr.log10()).abs(),
            "abs_err": diff.abs(),
            "delta1": (thresh < 1.25).double(),
            "delta2": (thresh < 1.25**2).double(),
            "delta3": (thresh < 1.25**3).double(),
        }
        has_pixels = count > 0
        update = torch.zeros(_STATE_SIZE, dtype=torch.float64, device=gt.device)
        for name, value in terms.items():
            per_image = torch.where(mask, value, torch.zeros_like(value)).sum(dim=(1, 2, 3))  # (B,)
            update[_PIXEL_SLOT[name]] = per_image.sum()
            per_image_mean = per_image[has_pixels] / count[has_pixels]
            if name in _SQRT_TERMS:
                per_image_mean = per_image_mean.sqrt()
            update[_IMAGE_SLOT[name]] = per_image_mean.sum()
        update[_N_PIXELS] = count.sum()
        update[_N_IMAGES] = has_pixels.sum()
        update[_RATIO_SUM] = ratio_sum
        update[_RATIO_SQ_SUM] = ratio_sq_sum
        self.sums = self.sums.to(update.device)
        self.sums += update

    def compute(self, aggregation: Literal["pixel", "image"] | None = None) -> dict[str, float]:
        """Return the metrics in ``DEPTH_METRIC_NAMES`` (NaN when nothing valid was seen).

        Args:
            aggregation: override the constructor's aggregation for this call.
        """
        aggregation = aggregation or self.aggregation
        if aggregation not in ("pixel", "image"):
            raise ConfigError(f"aggregation must be 'pixel' or 'image', got {aggregation!r}")
        s = self.sums.detach().cpu().tolist()
        out: dict[str, float] = {}
        if aggregation == "pixel":
            n = s[_N_PIXELS]
            for term in _PIXEL_TERMS:
                mean = s[_PIXEL_SLOT[term]] / n if n > 0 else math.nan
                out[_TERM_TO_METRIC[term]] = math.sqrt(mean) if term in _SQRT_TERMS and n > 0 else mean
        else:
            n = s[_N_IMAGES]
            for term in _PIXEL_TERMS:
                out[_TERM_TO_METRIC[term]] = s[_IMAGE_SLOT[term]] / n if n > 0 else math.nan
        if self.median_scaling:
            n_img = s[_N_IMAGES]
            mean = s[_RATIO_SUM] / n_img if n_img > 0 else math.nan
            var = s[_RATIO_SQ_SUM] / n_img - mean**2 if n_img > 0 else math.nan
            out["median_ratio_mean"] = mean
            out["median_ratio_std"] = math.sqrt(max(var, 0.0)) if n_img > 0 else math.nan
        return {name: out[name] for name in (*DEPTH_METRIC_NAMES, *[k for k in out if k.startswith("median")])}


def evaluate_disparities(
    disparities: Sequence[torch.Tensor],
    gt_depths: Sequence[torch.Tensor],
    protocol: str,
    **overrides: Any,
) -> tuple[dict[str, float], torch.Tensor]:
    """monodepth2's ``evaluate()`` on saved predictions: per image, resize the disparity to the ground truth's size,
    invert it (:func:`depth_from_disparity`) and apply the protocol's mask, crop, scaling and clamp.

    Args:
        disparities: ``N`` disparity maps ``(h, w)`` (e.g. the rows of monodepth2's ``--save_pred_disps`` array).
        gt_depths: ``N`` ground-truth depth maps ``(H_i, W_i)`` in metres, 0 = no measurement.
        protocol: a key of :data:`DEPTH_PROTOCOLS`.
        overrides: ``DepthMetrics`` arguments replacing the preset's (e.g. ``median_scaling=False``).

    Returns:
        ``(metrics, ratios)``: :meth:`DepthMetrics.compute` of the set, and the ``(N,)`` float64 median-scaling
        ratios (empty without median scaling).
    """
    if len(disparities) != len(gt_depths):
        raise ShapeError(f"{len(disparities)} disparity maps but {len(gt_depths)} ground-truth maps; they must pair up")
    metric = DepthMetrics.from_protocol(protocol, **overrides)
    ratios = []
    for disp, gt in zip(disparities, gt_depths, strict=True):
        target = torch.as_tensor(gt, dtype=torch.float64)[None, None]
        depth = depth_from_disparity(torch.as_tensor(disp, dtype=torch.float64)[None, None], target.shape[-2:])
        metric.update(depth, target)
        if metric.median_scaling:
            ratios.append(metric.last_ratios)
    return metric.compute(), torch.cat(ratios) if ratios else torch.zeros(0, dtype=torch.float64)

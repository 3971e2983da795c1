"""Dataset verification: validate every sample and summarise labels and depth (``freqdense data verify``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from .._progress import progress
from ..errors import DataError
from .sample import IGNORE_INDEX, depth_valid_mask
from .validate import validate_sample

log = logging.getLogger(__name__)

__all__ = ["DatasetReport", "verify_dataset", "depth_parallax"]

#: Relative-pose keys whose depth-dependent image motion ``verify_dataset`` measures, by view name.
PARALLAX_VIEWS: dict[str, str] = {"temporal": "pose_prev", "stereo": "pose_right"}


def depth_parallax(depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Depth-dependent pixel motion (px) of every valid pixel of a (1, H, W) or (H, W) depth map.

    With ``X = d K^-1 p`` the back-projected pixel and ``T = [R t]`` the target->source pose, the pixel moves to
    ``pi(K (R X + t))``; at infinite depth it would move to ``pi(K R K^-1 p)`` (the rotation-only homography).
    The difference of the two is the part of the motion that carries depth information, for a sideways
    translation ``t_x`` at constant depth ``z`` exactly ``f_x t_x / z``. Returns a 1-D tensor over the pixels
    with valid depth whose reprojection lies in front of the source camera (float64).
    """
    d = depth.reshape(depth.shape[-2:]).to(torch.float64)
    K = intrinsics.to(torch.float64)
    T = pose.to(torch.float64)
    h, w = d.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=0).reshape(3, -1)
    rays = torch.linalg.solve(K, pix)
    rot, trans = T[:3, :3], T[:3, 3:]
    rotated = K @ rot @ rays
    moved = K @ (rot @ (rays * d.reshape(1, -1)) + trans)
    valid = depth_valid_mask(d).reshape(-1) & (moved[2] > 1e-6) & (rotated[2] > 1e-6)
    finite = rotated[:2, valid] / rotated[2:, valid]
    actual = moved[:2, valid] / moved[2:, valid]
    return torch.linalg.vector_norm(actual - finite, dim=0)


@dataclass
class DatasetReport:
    """What :func:`verify_dataset` found: counts, label histogram, depth range and every problem."""

    num_samples: int = 0
    num_pixels: int = 0
    label_counts: list[int] = field(default_factory=list)
    ignored_pixels: int = 0
    valid_depth_pixels: int = 0
    depth_pixels: int = 0
    depth_min: float = float("inf")
    depth_max: float = 0.0
    parallax: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self, class_names: list[str] | None = None) -> dict[str, Any]:
        names = class_names or [str(i) for i in range(len(self.label_counts))]
        labelled = max(sum(self.label_counts), 1)
        return {
            "num_samples": self.num_samples,
            "label_fraction": {n: c / labelled for n, c in zip(names, self.label_counts)},
            "absent_classes": [n for n, c in zip(names, self.label_counts) if c == 0],
            "ignored_fraction": self.ignored_pixels / max(self.num_pixels, 1),
            "valid_depth_fraction": self.valid_depth_pixels / max(self.depth_pixels, 1) if self.depth_pixels else None,
            "depth_range_m": [self.depth_min, self.depth_max] if self.valid_depth_pixels else None,
            "parallax": {view: _parallax_summary(values) for view, values in self.parallax.items()} or None,
            "problems": self.problems,
        }


def _parallax_summary(values: list[float]) -> dict[str, float]:
    """Median over samples of the per-sample median parallax, and the mean per-sample share of pixels below 1 px."""
    medians, below = values[0::2], values[1::2]
    return {
        "median_px": float(torch.tensor(medians).median()),
        "below_1px_fraction": float(sum(below) / len(below)),
        "samples": len(medians),
    }


def verify_dataset(
    dataset, *, num_classes: int | None = None, limit: int | None = None, max_problems: int = 20
) -> DatasetReport:
    """Run :func:`~freqdense.data.validate.validate_sample` on every sample (up to ``limit``) and summarise.

    Problems (unreadable files, label ids out of range, NaN depth, shape mismatches) are collected with the sample
    they come from instead of stopping at the first one.
    """
    num_classes = num_classes if num_classes is not None else getattr(dataset, "num_classes", None)
    ignore = getattr(dataset, "ignore_index", IGNORE_INDEX)
    report = DatasetReport(label_counts=[0] * (num_classes or 0))
    total = len(dataset) if limit is None else min(limit, len(dataset))
    for index in progress(range(total), "verifying samples", unit="sample"):
        source = f"{type(dataset).__name__}[{index}]"
        try:
            sample = dataset[index]
            validate_sample(sample, num_classes=num_classes, ignore_index=ignore, source=source)
        except DataError as err:
            report.problems.append(str(err))
            if len(report.problems) >= max_problems:
                report.problems.append(f"stopped after {max_problems} problems")
                break
            continue
        report.num_samples += 1
        if "semantic" in sample and num_classes:
            labels = sample["semantic"]
            report.num_pixels += labels.numel()
            keep = labels != ignore
            report.ignored_pixels += int((~keep).sum())
            counts = torch.bincount(labels[keep].flatten(), minlength=num_classes)
            report.label_counts = [a + int(b) for a, b in zip(report.label_counts, counts)]
        if "depth" in sample:
            depth = sample["depth"]
            valid = depth_valid_mask(depth)
            report.depth_pixels += depth.numel()
            report.valid_depth_pixels += int(valid.sum())
            if valid.any():
                report.depth_min = min(report.depth_min, float(depth[valid].min()))
                report.depth_max = max(report.depth_max, float(depth[valid].max()))
            if "intrinsics" in sample:
                for view, key in PARALLAX_VIEWS.items():
                    if key in sample:
                        motion = depth_parallax(depth, sample["intrinsics"], sample[key])
                        if motion.numel():
                            # stored flat as (median, share below 1 px) pairs per sample
                            report.parallax.setdefault(view, []).extend(
                                [float(motion.median()), float((motion < 1.0).double().mean())]
                            )
    return report

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

__all__ = ["DatasetReport", "verify_dataset"]


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
            "problems": self.problems,
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
    return report

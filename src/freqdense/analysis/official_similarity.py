"""Feature similarity as the FreqFusion authors' released analysis tool (``feat_tool``) computes it.

"Frequency-aware Feature Fusion for Dense Image Prediction" (TPAMI 2024) reports intra-category similarity,
inter-category similarity and boundary behaviour (Figs. 1, 2); the authors' tool fixes the protocol, which differs
from our per-image reading in :mod:`freqdense.analysis.feature_similarity`:

1. features are **upsampled to the label size** (``F.interpolate``, bilinear by default, ``align_corners=False``);
2. with ``edge_k > 0`` a **boundary band** is measured: ``E1 = (4-neighbour Laplacian of the label map != 0)``
   (reflect-101 border, ignore pixels counted with label 255), ``band = dilate_{k x k}(E1)`` minus
   ``dilate_{k x k}(ignore)``. Class centres ``mu_c`` are the mean feature of class ``c``'s pixels **outside** the
   band; similarities are measured on the band pixels. With ``edge_k = 0`` every valid pixel serves both roles.
   Classes with no pixel outside the band in an image have no centre there and are skipped in that image;
3. per image and class ``c`` with a centre: ``cos(f_p, mu_c)`` for the band pixels ``p`` of class ``c``; these are
   **pooled across all images** per class; ``intra`` is the mean over classes of the pooled mean;
4. per image, every pair ``a < b`` of classes with centres gives ``cos(mu_a, mu_b)``, filed under the **lower
   class index** ``a``; ``inter`` is the mean over ``a`` of the pooled mean;
5. **nearest-centre accuracy**: a band pixel of class ``c`` is correct when no other centre of the same image is
   strictly more similar than ``mu_c``; ``accuracy`` is pixel-weighted over all classes (the tool prints it as
   "category average"), ``class_accuracy`` the mean of per-class rates (printed as "pixel average");
6. a class enters a mean only when it has **more than one** entry (the tool's ``len(v) > 1``: for ``intra``, images
   where it had band pixels; for ``inter``, pair entries; for the accuracy, images where it had a centre).

Cosines use ``F.cosine_similarity`` (eps ``1e-8``) as the tool does. Standard deviations are the unbiased std of the
pooled values, averaged over classes (the tool's "all avg").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

__all__ = ["OfficialSimilarityAccumulator", "boundary_band", "dilate"]


def dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Binary dilation of ``(H, W)`` by a ``k x k`` square anchored at ``k // 2`` (OpenCV's default anchor).

    Pixels outside the image do not contribute (OpenCV's default border for dilation).
    """
    lo, hi = k // 2, k - 1 - k // 2
    x = F.pad(mask[None, None].float(), (lo, hi, lo, hi), value=0.0)
    return F.max_pool2d(x, k, stride=1)[0, 0] > 0


def boundary_band(labels: torch.Tensor, edge_k: int, ignore_index: int = 255) -> torch.Tensor:
    """The tool's boundary band of a ``(H, W)`` label map: ``dilate_k(laplacian != 0)`` minus ``dilate_k(ignore)``.

    The Laplacian is ``up + down + left + right - 4 * centre`` on the labels as uint8 values (ignore -> 255) with a
    reflect-101 border, so it can vanish at a junction whose neighbours sum to four times the centre, as the tool's.
    """
    if labels.dim() != 2:
        raise ShapeError(f"labels must be (H, W), got {tuple(labels.shape)}")
    ignore = labels == ignore_index
    values = torch.where(ignore, torch.full_like(labels, 255), labels).to(torch.float64) % 256
    h, w = values.shape
    if h < 2 or w < 2:
        raise ShapeError(f"the boundary band needs a label map of at least 2x2, got {h}x{w}; use edge_k=0")
    p = F.pad(values[None, None], (1, 1, 1, 1), mode="reflect")[0, 0]
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * values
    return dilate(lap != 0, edge_k) & ~dilate(ignore, edge_k)


class _Pool:
    """Running count / sum / sum of squares of pooled values per class, and the number of entries."""

    def __init__(self, num_classes: int) -> None:
        self.n = torch.zeros(num_classes, dtype=torch.float64)
        self.s = torch.zeros(num_classes, dtype=torch.float64)
        self.ss = torch.zeros(num_classes, dtype=torch.float64)
        self.entries = torch.zeros(num_classes, dtype=torch.long)

    def add(self, c: int, values: torch.Tensor) -> None:
        v = values.detach().double().flatten().cpu()
        self.n[c] += v.numel()
        self.s[c] += v.sum()
        self.ss[c] += (v * v).sum()
        self.entries[c] += 1

    def per_class(self) -> tuple[dict[int, float], dict[int, float]]:
        means, stds = {}, {}
        for c in range(self.n.numel()):
            n = float(self.n[c])
            if int(self.entries[c]) > 1 and n > 0:
                mean = float(self.s[c]) / n
                means[c] = mean
                var = (float(self.ss[c]) - n * mean * mean) / (n - 1) if n > 1 else math.nan
                stds[c] = math.sqrt(max(var, 0.0)) if n > 1 else math.nan
        return means, stds


def _mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values) if values else math.nan


class OfficialSimilarityAccumulator:
    """Accumulates the ``feat_tool`` statistics over a dataset, one image at a time (see the module docstring).

    Args:
        num_classes: number of classes; labels must be in ``[0, num_classes)`` or ``ignore_index``.
        edge_k: side of the square that dilates the 1-pixel boundary (5 in the tool; 0 measures all pixels).
        upsample: ``"bilinear"`` (the tool's default) or ``"nearest"`` resizing of features to the label size.
        ignore_index: void label.
    """

    def __init__(
        self, num_classes: int, *, edge_k: int = 5, upsample: str = "bilinear", ignore_index: int = 255
    ) -> None:
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes!r}")
        if int(edge_k) < 0:
            raise ConfigError(f"edge_k must be >= 0 (0 = no boundary band), got {edge_k!r}")
        if upsample not in ("bilinear", "nearest"):
            raise ConfigError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
        self.num_classes = int(num_classes)
        self.edge_k = int(edge_k)
        self.upsample = upsample
        self.ignore_index = ignore_index
        self.num_images = 0
        self._intra = _Pool(self.num_classes)
        self._inter = _Pool(self.num_classes)
        self._errors = torch.zeros(self.num_classes, dtype=torch.long)
        self._measured = torch.zeros(self.num_classes, dtype=torch.long)
        self._acc_entries = torch.zeros(self.num_classes, dtype=torch.long)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``features`` (B, C, h, w), ``labels`` (B, H, W) at the resolution to measure at."""
        if features.dim() != 4 or labels.dim() != 3 or features.shape[0] != labels.shape[0]:
            raise ShapeError(
                f"features must be (B, C, h, w) and labels (B, H, W) with the same B, got {tuple(features.shape)} "
                f"and {tuple(labels.shape)}"
            )
        labels = labels.long()
        valid = labels != self.ignore_index
        if bool(((labels < 0) | (labels >= self.num_classes))[valid].any()):
            raise ShapeError(
                f"labels must be in [0, {self.num_classes}) or ignore_index={self.ignore_index}; got values "
                f"{sorted(set(labels[valid].unique().tolist()) - set(range(self.num_classes)))[:5]}"
            )
        up = F.interpolate(features.detach().float(), size=labels.shape[-2:], mode=self.upsample)
        for feat, lab in zip(up, labels):
            self._update_one(feat.flatten(1), lab)
            self.num_images += 1

    def _update_one(self, feat: torch.Tensor, lab: torch.Tensor) -> None:
        valid = lab != self.ignore_index
        if self.edge_k > 0:
            band = boundary_band(lab, self.edge_k, self.ignore_index)
            centre_px, measured_px = valid & ~band, band
        else:
            centre_px, measured_px = valid, valid
        lab = lab.flatten().to(feat.device)
        centre_px, measured_px = centre_px.flatten().to(feat.device), measured_px.flatten().to(feat.device)
        classes = [int(c) for c in lab[centre_px].unique()]
        if not classes:
            return
        centres = torch.stack([feat[:, centre_px & (lab == c)].mean(dim=1) for c in classes])  # (K, C)
        for i, a in enumerate(classes):
            if i + 1 < len(classes):
                self._inter.add(a, F.cosine_similarity(centres[i : i + 1], centres[i + 1 :], dim=1))
            pixels = feat[:, measured_px & (lab == a)].T  # (N, C)
            sims = F.cosine_similarity(pixels[:, None, :], centres[None, :, :], dim=2)  # (N, K)
            if pixels.shape[0] > 0:
                self._intra.add(a, sims[:, i])
            wrong = (sims > sims[:, i : i + 1]).any(dim=1)
            self._errors[a] += int(wrong.sum())
            self._measured[a] += pixels.shape[0]
            self._acc_entries[a] += 1

    def compute(self) -> dict[str, object]:
        """``intra``, ``inter``, ``margin``, ``accuracy`` (pixel-weighted), ``class_accuracy``, their per-class
        values, ``intra_std``/``inter_std`` (class means of the std) and the settings."""
        intra, intra_std = self._intra.per_class()
        inter, inter_std = self._inter.per_class()
        rates, right, total = {}, 0, 0
        for c in range(self.num_classes):
            if int(self._acc_entries[c]) > 1 and int(self._measured[c]) > 0:
                n, e = int(self._measured[c]), int(self._errors[c])
                rates[c] = 1.0 - e / n
                right, total = right + n - e, total + n
        i, j = _mean(intra), _mean(inter)
        return {
            "definition": "official",
            "intra": i,
            "inter": j,
            "margin": i - j,
            "accuracy": right / total if total else math.nan,
            "class_accuracy": _mean(rates),
            "intra_std": _mean({c: s for c, s in intra_std.items() if not math.isnan(s)}),
            "inter_std": _mean({c: s for c, s in inter_std.items() if not math.isnan(s)}),
            "intra_per_class": {str(c): v for c, v in intra.items()},
            "inter_per_class": {str(c): v for c, v in inter.items()},
            "accuracy_per_class": {str(c): v for c, v in rates.items()},
            "edge_k": self.edge_k,
            "upsample": self.upsample,
            "num_images": self.num_images,
        }

"""Feature-similarity analysis and low-pass kernel frequency responses of FreqFusion (Chen et al., TPAMI 2024).

Definitions used here (the paper's Fig. 2 names the three quantities; it does not pin down the averaging, so this
is our reading, also in docs/methods/freqfusion_decoders.md). For one image with features ``f_p`` (at the feature
resolution) and labels ``y_p`` resized to it (ignored pixels dropped):

- class centre ``mu_c = mean_{p: y_p = c} f_p``;
- per-pixel IntraSim ``s_p = cos(f_p, mu_{y_p})`` (the maps of the paper's Fig. 1);
- intra-category similarity ``intra = mean_c mean_{p: y_p = c} s_p`` (classes weighted equally);
- inter-category similarity ``inter = mean_{a != b} cos(mu_a, mu_b)`` over the pairs of classes present;
- similarity margin ``margin = intra - inter``.

Dataset values average the per-image values (images with one class contribute to ``intra`` only).

:func:`lowpass_frequency_response` gives the Fig. 5-style analysis for the *output* kernels: the normalised,
spatially varying low-pass kernels FreqFusion predicts (its ``mask`` output, ``(B, k*k, H, W)``) are
zero-padded to ``n_fft``, Fourier transformed, and their amplitude averaged over pixels.
:func:`encoder_kernel_response` does the same for the learned *generator* weights (the conv that predicts the
kernels, ``content_encoder``), which is what the paper's Fig. 5 shows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

__all__ = [
    "FeatureSimilarity",
    "KernelResponse",
    "SimilarityAccumulator",
    "downsample_labels",
    "encoder_kernel_response",
    "feature_similarity",
    "intra_similarity_map",
    "kernel_response",
    "lowpass_frequency_response",
    "plot_kernel_responses",
    "plot_similarity_maps",
]


class FeatureSimilarity(NamedTuple):
    """Per-image similarity statistics (``(B,)`` tensors, NaN where undefined) and the IntraSim maps."""

    intra: torch.Tensor
    inter: torch.Tensor
    margin: torch.Tensor
    intra_map: torch.Tensor  # (B, h, w), NaN at ignored pixels


def downsample_labels(
    labels: torch.Tensor,
    size: tuple[int, int],
    *,
    method: str = "mode",
    num_classes: int | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Resize ``(B, H, W)`` labels to ``size``.

    ``"nearest"``: nearest-neighbour sampling. ``"mode"``: the most frequent valid label in each cell's area (cells
    cover ``H / h`` x ``W / w`` input pixels, fractional overlaps weighted); ``ignore_index`` when the cell has no
    valid label. ``num_classes`` defaults to the largest valid label + 1.
    """
    if labels.dim() != 3:
        raise ShapeError(f"labels must be (B, H, W), got {tuple(labels.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(labels.shape[-2:]) == size:
        return labels.long()
    if method == "nearest":
        return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    if method != "mode":
        raise ConfigError(f"downsample_labels method must be 'mode' or 'nearest', got {method!r}")
    labels = labels.long()
    valid = labels != ignore_index
    k = int(num_classes) if num_classes is not None else int(labels[valid].max()) + 1 if valid.any() else 1
    onehot = F.one_hot(torch.where(valid, labels, 0), k).permute(0, 3, 1, 2).float() * valid[:, None]
    votes = F.interpolate(onehot, size=size, mode="area")
    best, arg = votes.max(1)
    return torch.where(best > 0, arg, torch.full_like(arg, ignore_index))


def _class_means(features: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image class means ``(B, k, C)`` and pixel counts ``(B, k)``; labels already ``ignore -> k``."""
    b, c = features.shape[:2]
    flat = features.reshape(b, c, -1).transpose(1, 2)  # (B, N, C)
    onehot = F.one_hot(labels.reshape(b, -1), k + 1)[..., :k].to(flat.dtype)  # (B, N, k)
    counts = onehot.sum(1)
    sums = onehot.transpose(1, 2) @ flat
    return sums / counts.clamp_min(1)[..., None], counts


def _prepare(features, labels, num_classes, ignore_index, label_method):
    if features.dim() != 4:
        raise ShapeError(f"features must be (B, C, h, w), got {tuple(features.shape)}")
    if labels.dim() != 3 or labels.shape[0] != features.shape[0]:
        raise ShapeError(f"labels must be (B, H, W) with B={features.shape[0]}, got {tuple(labels.shape)}")
    lab = downsample_labels(
        labels, features.shape[-2:], method=label_method, num_classes=num_classes, ignore_index=ignore_index
    )
    valid = (lab != ignore_index) & (lab >= 0) & (lab < num_classes)
    return features.double(), torch.where(valid, lab, torch.full_like(lab, num_classes)), valid


def intra_similarity_map(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int = 255,
    label_method: str = "mode",
) -> torch.Tensor:
    """Per-pixel IntraSim ``cos(f_p, mu_{y_p})``: ``(B, C, h, w)`` features + ``(B, H, W)`` labels -> ``(B, h, w)``.

    NaN where the (resized) label is ignored.
    """
    return feature_similarity(
        features, labels, num_classes=num_classes, ignore_index=ignore_index, label_method=label_method
    ).intra_map


def feature_similarity(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int = 255,
    label_method: str = "mode",
) -> FeatureSimilarity:
    """Intra-/inter-category similarity, margin and IntraSim maps of each image (definitions in the module doc).

    Args:
        features: ``(B, C, h, w)``.
        labels: ``(B, H, W)`` int class ids, ``ignore_index`` = void; resized to ``(h, w)`` by ``label_method``
            (``"mode"`` or ``"nearest"``).
        num_classes: number of classes.
    """
    feats, lab, valid = _prepare(features, labels, num_classes, ignore_index, label_method)
    b, c, h, w = feats.shape
    means, counts = _class_means(feats, lab, num_classes)  # (B, K, C), (B, K)
    flat = feats.reshape(b, c, -1).transpose(1, 2)  # (B, N, C)
    idx = lab.reshape(b, -1).clamp_max(num_classes - 1)
    centre = torch.gather(means, 1, idx[..., None].expand(-1, -1, c))
    sim = F.cosine_similarity(flat, centre, dim=-1, eps=1e-12)  # (B, N)
    sim = torch.where(valid.reshape(b, -1), sim, torch.full_like(sim, math.nan))
    onehot = F.one_hot(lab.reshape(b, -1), num_classes + 1)[..., :num_classes].to(sim.dtype)
    class_sim = (onehot * torch.nan_to_num(sim)[..., None]).sum(1) / counts.clamp_min(1)  # (B, K)
    present = counts > 0
    n_present = present.sum(1)
    intra = torch.where(n_present > 0, (class_sim * present).sum(1) / n_present.clamp_min(1), math.nan)
    unit = F.normalize(means, dim=-1, eps=1e-12)
    gram = unit @ unit.transpose(1, 2)  # (B, K, K)
    pair = present[:, :, None] & present[:, None, :] & ~torch.eye(num_classes, dtype=torch.bool, device=gram.device)
    n_pairs = pair.sum((1, 2))
    inter = torch.where(n_pairs > 0, (gram * pair).sum((1, 2)) / n_pairs.clamp_min(1), math.nan)
    return FeatureSimilarity(intra.float(), inter.float(), (intra - inter).float(), sim.reshape(b, h, w).float())


class SimilarityAccumulator:
    """Averages :func:`feature_similarity` over a dataset (per-image values, NaNs skipped)."""

    def __init__(self, num_classes: int, *, ignore_index: int = 255, label_method: str = "mode") -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.label_method = label_method
        self._sums = {"intra": 0.0, "inter": 0.0, "margin": 0.0}
        self._counts = {"intra": 0, "inter": 0, "margin": 0}

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> FeatureSimilarity:
        """Add a batch; returns its :class:`FeatureSimilarity`."""
        out = feature_similarity(
            features,
            labels,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            label_method=self.label_method,
        )
        for key in self._sums:
            v = getattr(out, key)
            v = v[~torch.isnan(v)]
            self._sums[key] += float(v.double().sum())
            self._counts[key] += int(v.numel())
        return out

    def compute(self) -> dict[str, float]:
        """``intra``, ``inter``, ``margin`` (means over images) and the image counts ``num_images_<key>``."""
        out = {k: self._sums[k] / self._counts[k] if self._counts[k] else math.nan for k in self._sums}
        out.update({f"num_images_{k}": float(v) for k, v in self._counts.items()})
        return out


class KernelResponse(NamedTuple):
    """Mean Fourier amplitude of a set of 2-D kernels.

    Attributes:
        amplitude: ``(n, n)`` mean ``|FFT|``, zero frequency at ``[n // 2, n // 2]`` (fftshift layout).
        frequencies: ``(n,)`` cycles per pixel along each axis of ``amplitude`` (-0.5 .. < 0.5).
        radial: ``(n // 2 + 1,)`` mean amplitude in rings of radius ``j / n`` cycles/pixel, ``j = 0 .. n // 2``.
        horizontal: ``(n // 2 + 1,)`` amplitude along the horizontal frequency axis, 0 .. 0.5 cycles/pixel.
        vertical: the same along the vertical axis.
        mean_kernel: ``(k, k)`` average kernel.
        num_kernels: how many kernels were averaged.
    """

    amplitude: torch.Tensor
    frequencies: torch.Tensor
    radial: torch.Tensor
    horizontal: torch.Tensor
    vertical: torch.Tensor
    mean_kernel: torch.Tensor
    num_kernels: int

    def to_dict(self) -> dict[str, object]:
        return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in self._asdict().items()}


def kernel_response(kernels: torch.Tensor, *, n_fft: int = 32, chunk: int = 8192) -> KernelResponse:
    """Mean amplitude spectrum of ``(N, k, k)`` kernels, each zero-padded to ``n_fft x n_fft``.

    The kernel tap ``(0, 0)`` sits at the origin, so the amplitude does not depend on the kernel's centring.
    """
    if kernels.dim() != 3 or kernels.shape[-1] != kernels.shape[-2]:
        raise ShapeError(f"kernels must be (N, k, k), got {tuple(kernels.shape)}")
    n, k = kernels.shape[0], kernels.shape[-1]
    if n == 0:
        raise ShapeError("kernel_response got no kernels")
    if n_fft < k:
        raise ConfigError(f"n_fft={n_fft} must be >= the kernel size {k}")
    kernels = kernels.detach().double()
    total = torch.zeros(n_fft, n_fft, dtype=torch.float64, device=kernels.device)
    for start in range(0, n, chunk):
        total += torch.fft.fft2(kernels[start : start + chunk], s=(n_fft, n_fft)).abs().sum(0)
    amp = total / n
    freqs = torch.fft.fftfreq(n_fft, dtype=torch.float64)
    half = n_fft // 2 + 1
    horizontal = amp[0, :half].clone()
    vertical = amp[:half, 0].clone()
    radius = torch.sqrt(freqs[:, None] ** 2 + freqs[None, :] ** 2) * n_fft
    ring = torch.round(radius).long()
    radial = torch.zeros(half, dtype=torch.float64)
    for j in range(half):
        sel = ring == j
        radial[j] = amp[sel].mean() if sel.any() else math.nan
    return KernelResponse(
        amplitude=torch.fft.fftshift(amp).float().cpu(),
        frequencies=torch.fft.fftshift(freqs).float(),
        radial=radial.float(),
        horizontal=horizontal.float().cpu(),
        vertical=vertical.float().cpu(),
        mean_kernel=kernels.mean(0).float().cpu(),
        num_kernels=n,
    )


def lowpass_frequency_response(
    mask: torch.Tensor,
    kernel_size: int | None = None,
    *,
    n_fft: int = 32,
    valid: torch.Tensor | None = None,
) -> KernelResponse:
    """Frequency response of FreqFusion's predicted low-pass kernels, averaged over pixels (Fig. 5 style).

    Args:
        mask: ``(B, G * k * k, H, W)``: the ``mask`` output of ``FreqFusion`` (normalised kernels, channel index
            ``g * k * k + ky * k + kx``). Each group's kernel counts as a separate kernel.
        kernel_size: ``k`` (default: inferred, assuming one group).
        n_fft: FFT size.
        valid: optional ``(B, H, W)`` bool selecting the pixels to average.
    """
    if mask.dim() != 4:
        raise ShapeError(f"mask must be (B, k*k, H, W), got {tuple(mask.shape)}")
    b, ch, h, w = mask.shape
    k = int(kernel_size) if kernel_size is not None else math.isqrt(ch)
    if k < 1 or ch % (k * k):
        raise ShapeError(f"mask has {ch} channels, not a multiple of kernel_size**2 = {k * k}; pass kernel_size")
    g = ch // (k * k)
    kernels = mask.reshape(b, g, k, k, h, w).permute(0, 4, 5, 1, 2, 3)  # (B, H, W, G, k, k)
    if valid is not None:
        if valid.shape != (b, h, w):
            raise ShapeError(f"valid must be (B, H, W) = {(b, h, w)}, got {tuple(valid.shape)}")
        kernels = kernels[valid.bool()]
    return kernel_response(kernels.reshape(-1, k, k), n_fft=n_fft)


def encoder_kernel_response(weight: torch.Tensor, *, n_fft: int = 32) -> KernelResponse:
    """Frequency response of a kernel-generator conv weight ``(out, in, kh, kw)``, averaged over ``out x in``.

    This is the paper's Fig. 5 (the learned weights of the conv that predicts the low-pass kernels, e.g.
    ``FreqFusion.content_encoder.weight``).
    """
    if weight.dim() != 4 or weight.shape[-1] != weight.shape[-2]:
        raise ShapeError(f"weight must be (out, in, k, k), got {tuple(weight.shape)}")
    return kernel_response(weight.reshape(-1, *weight.shape[-2:]), n_fft=n_fft)


def plot_kernel_responses(responses: dict[str, KernelResponse], path: str | Path) -> Path:
    """Radial and axial amplitude profiles of each response, plus the first one's 2-D amplitude; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    first = next(iter(responses.values()))
    f = first.frequencies.tolist()
    im = axes[0].imshow(first.amplitude.numpy(), extent=(f[0], f[-1], f[-1], f[0]), cmap="viridis")
    axes[0].set(title=f"mean |FFT| ({next(iter(responses))})", xlabel="cycles/px (x)", ylabel="cycles/px (y)")
    fig.colorbar(im, ax=axes[0], label="mean amplitude |H|")
    for name, r in responses.items():
        nu = (torch.arange(len(r.radial)) / (2 * (len(r.radial) - 1))).tolist()
        axes[1].plot(nu, r.radial.tolist(), label=name)
        axes[2].plot(nu, r.horizontal.tolist(), label=f"{name} (x)")
        axes[2].plot(nu, r.vertical.tolist(), "--", label=f"{name} (y)")
    axes[1].set(title="radial mean amplitude", xlabel="cycles/px", ylabel="mean amplitude |H|")
    axes[2].set(title="axial amplitude", xlabel="cycles/px", ylabel="amplitude |H|")
    fig.suptitle("frequency response of the kernels: mean Fourier amplitude |H| (0 = DC, 0.5 = Nyquist)", fontsize=10)
    for ax in axes[1:]:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_similarity_maps(images: torch.Tensor, maps: torch.Tensor, path: str | Path, *, titles=None) -> Path:
    """Image | IntraSim map rows (maps in [-1, 1], NaN shown grey) for ``(N, 3, H, W)`` images, ``(N, h, w)`` maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    fig, axes = plt.subplots(n, 2, figsize=(7, 2.6 * n), squeeze=False)
    cmap = plt.get_cmap("magma").with_extremes(bad="0.6")
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        im = axes[i, 1].imshow(maps[i].cpu().numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
        axes[i, 0].set_title("image", fontsize=8)
        axes[i, 1].set_title(titles[i] if titles else "IntraSim (feature resolution)", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    bar = fig.colorbar(im, ax=axes[:, 1].tolist(), shrink=0.8, extend="min")
    bar.set_label("IntraSim: cos(feature, its class mean); grey = ignored", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Spectral decomposition of cross-entropy (CE) into frequency components, with label/logit spectra profiles.

Chen, Chiu, Wu, "Spectral Analysis for Semantic Segmentation with Applications on Feature Truncation and Weak
Annotation", AAAI 2020, Sec. 2.1 (Eq. 1-5) and Sec. 3.1 (Fig. 1-2). No official code; the reading follows
docs/reference_code.md#spectral-implementation-choices and is documented in docs/methods/spectral_analysis.md.

With ``B(t, c)`` the one-hot labels (all-zero rows at void pixels) and ``N(t, c) = -log_softmax(Y)(t, c)`` the
negative log-probabilities (``y_hat = y_p - y`` in the paper), Parseval gives

    L_ce = sum_t sum_c B N = sum_nu L_ce(nu),   L_ce(nu) = (1 / HW) sum_c conj(b(nu, c)) n(nu, c)   (Eq. 4-5)

with ``b = fft2(B)``, ``n = fft2(N)`` unnormalised. ``L_ce(nu)`` for a *shell* ``nu`` is the sum over the 2-D
frequencies of the shell (:func:`freqdense.ops.fft.frequency_shells`); shells are symmetric under
``nu -> -nu``, so the imaginary parts cancel and the shell values are real. Their sum over all shells is the
summed (not averaged) CE over non-void pixels, exactly (up to rounding).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, ShapeError
from ..ops.fft import Shells, Units, frequency_shells, onesided_multiplicity, shell_reduce, spectrum2d
from .truncation import relative_discrepancy

__all__ = [
    "CESpectrum",
    "DatasetSpectrum",
    "SpectrumAccumulator",
    "ce_spectrum",
    "label_energy_spectrum",
    "oracle_logits",
]

log = logging.getLogger(__name__)


class CESpectrum(NamedTuple):
    """Per-image spectral decomposition of CE. ``S`` = number of shells, shell ``nu`` at index ``nu``."""

    loss: torch.Tensor  # (B, S) L_ce(nu); loss.sum(-1) == summed CE of each image
    label_magnitude: torch.Tensor  # (B, S) |b(nu)|: class-mean of |b(nu, c)|, mean over the shell
    logit_magnitude: torch.Tensor  # (B, S) |y_hat(nu)|: class-mean of |n(nu, c)|, mean over the shell
    shell_size: torch.Tensor  # (S,) number of 2-D frequencies in each shell
    ce: torch.Tensor  # (B,) summed CE computed in the spatial domain (the reference for loss.sum(-1))
    num_valid: torch.Tensor  # (B,) int64 non-void pixels


def _validate(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeError(f"logits must be (B, C, H, W), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 3:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ShapeError(f"labels must be (B, H, W) int64 class ids, got {got}")
    if labels.is_floating_point():
        raise ShapeError(f"labels must hold integer class ids, got dtype {labels.dtype}; use labels.long()")
    if logits.shape[0] != labels.shape[0] or logits.shape[2:] != labels.shape[1:]:
        raise ShapeError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree; upsample the logits to the "
            "label size (bilinear) before the spectral analysis"
        )
    if torch.compiler.is_compiling():
        return
    num_classes = logits.shape[1]
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        values = torch.unique(labels[bad])[:10].tolist()
        raise DataError(
            f"labels hold ids {values} outside [0, {num_classes}) that are not ignore_index={ignore_index}; "
            "remap them or pass the dataset's ignore_index"
        )


def _one_hot(labels: torch.Tensor, num_classes: int, ignore_index: int, dtype: torch.dtype) -> torch.Tensor:
    # (B, C, H, W) contiguous one-hot in one scatter; void pixels get an all-zero row.
    valid = labels != ignore_index
    index = torch.where(valid, labels, 0)[:, None]
    out = torch.zeros(labels.shape[0], num_classes, *labels.shape[1:], dtype=dtype, device=labels.device)
    return out.scatter_(1, index, valid[:, None].to(dtype))


@functools.lru_cache(maxsize=16)
def _cached_shells(
    h: int, w: int, shells: str, units: str, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    idx = frequency_shells((h, w), shells=shells, units=units, onesided=True, device=device)  # type: ignore[arg-type]
    mult = onesided_multiplicity(w, dtype=dtype, device=device)
    # The one-sided half-plane holds every |k_y| and |k_x|, so its largest shell is the full plane's.
    return idx, mult, int(idx.max()) + 1


def ce_spectrum(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    shells: Shells = "square",
    units: Units = "index",
    dtype: torch.dtype = torch.float64,
) -> CESpectrum:
    """Frequency components ``L_ce(nu)`` of the summed cross-entropy (Eq. 4-5) and the |b|, |y_hat| profiles.

    Void pixels drop out exactly: their one-hot rows are zero and their negative log-probabilities are set to 0
    before the transform, so neither the total nor any single ``L_ce(nu)`` depends on the logits there.
    ``loss`` and ``ce`` are differentiable w.r.t. ``logits`` (used by
    :func:`freqdense.spectral.gradient.spectral_gradient`); the magnitude profiles are computed without autograd.

    Frequencies are integers in cycles per image. Non-square maps: ``units="index"`` (default) keeps cycles per
    image on each axis, so a square shell ``nu`` holds ``|k_y| <= nu`` and ``|k_x| <= nu``; ``"shorter_side"``
    measures both axes in cycles per shorter side (a band limit then matches a grid with the map's aspect
    ratio). Square maps give the same result either way.

    Args:
        logits: ``(B, C, H, W)`` raw scores at label resolution (after the model's final upsampling).
        labels: ``(B, H, W)`` int64 class ids, ``ignore_index`` = void.
        ignore_index: void label.
        shells: ``"square"`` (``max(|k_y|, |k_x|)``, default: the band an ``n x n`` grid carries) or ``"radial"``.
        units: non-square convention, see above.
        dtype: compute dtype (float64 default: the shell sums reproduce the CE to ~1e-15 relative).

    Returns:
        :class:`CESpectrum` with ``S = max shell + 1`` entries (``S = 257`` for 513 x 513 square shells).

    Example:
        >>> logits, labels = torch.randn(1, 3, 9, 9), torch.randint(0, 3, (1, 9, 9))
        >>> spec = ce_spectrum(logits, labels)
        >>> ref = F.cross_entropy(logits.double(), labels, reduction="sum")
        >>> bool(torch.isclose(spec.loss.sum(), ref))
        True
    """
    _validate(logits, labels, ignore_index)
    labels = labels.to(logits.device)
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"ce_spectrum dtype must be torch.float32 or torch.float64, got {dtype}")
    num_classes, (h, w) = logits.shape[1], logits.shape[-2:]
    with torch.autocast(device_type=logits.device.type, enabled=False):
        valid = labels != ignore_index
        track = torch.is_grad_enabled() and logits.requires_grad
        log_p = F.log_softmax(logits.to(dtype), dim=1)
        neg_log_p = -log_p if track else log_p.neg_()  # in place only when autograd does not need log_p
        if not bool(valid.all()):
            neg_log_p = neg_log_p.masked_fill(~valid[:, None], 0.0)
        one_hot = _one_hot(labels, num_classes, ignore_index, dtype)
        ce = neg_log_p.gather(1, torch.where(valid, labels, 0)[:, None]).sum(dim=(1, 2, 3))
        b = spectrum2d(one_hot, onesided=True, dtype=dtype)
        n = spectrum2d(neg_log_p, onesided=True, dtype=dtype)
        if torch.compiler.is_compiling():
            idx, mult, num_shells = _cached_shells.__wrapped__(h, w, shells, units, dtype, logits.device)
        else:
            idx, mult, num_shells = _cached_shells(h, w, shells, units, dtype, logits.device)
        # Re(conj(b) n) summed over classes; the imaginary part cancels over each (Hermitian-symmetric) shell.
        cross = (b.real * n.real + b.imag * n.imag).sum(dim=1) / (h * w)
        loss = shell_reduce(cross, idx, num_shells=num_shells, weights=mult)
        with torch.no_grad():  # diagnostics only
            b_mag = torch.linalg.vector_norm(torch.view_as_real(b), dim=-1).mean(dim=1)
            n_mag = torch.linalg.vector_norm(torch.view_as_real(n), dim=-1).mean(dim=1)
            label_mag = shell_reduce(b_mag, idx, num_shells=num_shells, weights=mult, reduce="mean")
            logit_mag = shell_reduce(n_mag, idx, num_shells=num_shells, weights=mult, reduce="mean")
            shell_size = shell_reduce(torch.ones_like(mult).expand(h, -1), idx, num_shells=num_shells, weights=mult)
    return CESpectrum(
        loss=loss,
        label_magnitude=label_mag,
        logit_magnitude=logit_mag,
        shell_size=shell_size.round().to(torch.int64),
        ce=ce,
        num_valid=valid.sum(dim=(1, 2)),
    )


def label_energy_spectrum(
    labels: torch.Tensor,
    num_classes: int,
    *,
    ignore_index: int = 255,
    shells: Shells = "square",
    units: Units = "index",
) -> torch.Tensor:
    """Energy of the one-hot labels per shell, ``E(nu) = (1 / HW) sum_c |b(nu, c)|^2``.

    By Parseval ``E.sum(-1)`` is the number of non-void pixels, and
    ``relative_discrepancy(E)`` is the fraction of label energy beyond a band limit, i.e.
    ``||B - lowpass_nu(B)||^2 / ||B||^2``: the label-only counterpart of R (Eq. 14). For an oracle predictor
    ``Y = s B`` it is proportional to R, with a factor that diverges as ``s -> infinity`` (docs/methods/
    spectral_analysis.md).

    Args:
        labels: ``(B, H, W)`` class ids.
        num_classes: number of classes.
        ignore_index: void label (zero one-hot row).
        shells, units: as in :func:`ce_spectrum`.

    Returns:
        ``(B, S)`` float64.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 3:
        raise ShapeError(f"labels must be (B, H, W), got {getattr(labels, 'shape', type(labels).__name__)}")
    if labels.is_floating_point():
        raise ShapeError(f"labels must hold integer class ids, got dtype {labels.dtype}; use labels.long()")
    if not torch.compiler.is_compiling():
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
        if bool(bad.any()):
            raise DataError(
                f"labels hold ids {torch.unique(labels[bad])[:10].tolist()} outside [0, {num_classes}) that are not "
                f"ignore_index={ignore_index}; pass the right num_classes or remap the labels"
            )
    h, w = labels.shape[-2:]
    one_hot = _one_hot(labels, num_classes, ignore_index, torch.float64)
    b = spectrum2d(one_hot, onesided=True, dtype=torch.float64)
    energy = (b.real.square() + b.imag.square()).sum(dim=1) / (h * w)
    idx, mult, num_shells = _cached_shells(h, w, shells, units, torch.float64, labels.device)
    return shell_reduce(energy, idx, num_shells=num_shells, weights=mult)


def oracle_logits(labels: torch.Tensor, num_classes: int, *, smoothing: float = 0.1, ignore_index: int = 255):
    """Logits of a label-smoothed perfect predictor: ``log((1 - eps) onehot + eps / C)``; zeros at void pixels.

    A perfect one-hot predictor has zero CE, so R (Eq. 14) is undefined; with ``eps > 0`` the CE is finite and
    ``ce_spectrum(oracle_logits(labels, C), labels)`` gives the R of the labels themselves (its non-DC components
    are ``-log((1 - eps + eps / C) / (eps / C)) E(nu)`` for maps without void, see :func:`label_energy_spectrum`).

    Returns:
        ``(B, C, H, W)`` float32 logits.
    """
    if not 0.0 < smoothing < 1.0:
        raise ConfigError(f"oracle smoothing must lie in (0, 1), got {smoothing}")
    valid = labels != ignore_index
    one_hot = _one_hot(labels, num_classes, ignore_index, torch.float32)
    probs = (1.0 - smoothing) * one_hot + smoothing / num_classes
    return torch.log(probs) * valid[:, None]


class DatasetSpectrum(NamedTuple):
    """CE spectrum accumulated over a dataset (all ``(S,)`` tensors, float64)."""

    loss: torch.Tensor  # L_ce(nu) summed over images
    relative_discrepancy: torch.Tensor  # R(nu_max) of the summed spectrum (default aggregation)
    mean_image_discrepancy: torch.Tensor  # mean over images of each image's R(nu_max) (alternative)
    label_magnitude: torch.Tensor  # mean over images of |b(nu)|
    logit_magnitude: torch.Tensor  # mean over images of |y_hat(nu)|
    ce: float  # summed CE over the dataset (spatial domain)
    num_valid: int  # non-void pixels
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain lists and numbers."""
        return {
            "frequencies": list(range(len(self.loss))),
            "loss": self.loss.tolist(),
            "relative_discrepancy": self.relative_discrepancy.tolist(),
            "mean_image_discrepancy": self.mean_image_discrepancy.tolist(),
            "label_magnitude": self.label_magnitude.tolist(),
            "logit_magnitude": self.logit_magnitude.tolist(),
            "ce_sum": self.ce,
            "ce_mean": self.ce / max(self.num_valid, 1),
            "num_valid": self.num_valid,
            "num_images": self.num_images,
        }


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(x, (0, length - x.shape[-1])) if x.shape[-1] < length else x


class SpectrumAccumulator:
    """Accumulates :func:`ce_spectrum` over a dataset (images may differ in size).

    Default aggregation (docs/reference_code.md#spectral-implementation-choices, item 4): sum ``L_ce(nu)`` over images,
    then R on the totals; the mean of per-image R curves is kept as well. Profiles are means over the images that have
    the shell.

    Example:
        >>> acc = SpectrumAccumulator()
        >>> _ = acc.update(torch.randn(2, 3, 9, 9), torch.randint(0, 3, (2, 9, 9)))
        >>> acc.compute().num_images
        2
    """

    def __init__(
        self,
        *,
        ignore_index: int = 255,
        shells: Shells = "square",
        units: Units = "index",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.ignore_index, self.shells, self.units, self.dtype = ignore_index, shells, units, dtype
        self._loss = torch.zeros(0, dtype=torch.float64)
        self._r_sum = torch.zeros(0, dtype=torch.float64)
        self._label = torch.zeros(0, dtype=torch.float64)
        self._logit = torch.zeros(0, dtype=torch.float64)
        self._count = torch.zeros(0, dtype=torch.float64)
        self._ce = 0.0
        self._num_valid = 0
        self._num_images = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> CESpectrum:
        """Compute :func:`ce_spectrum` of a batch, add it, and return it."""
        spec = ce_spectrum(
            logits, labels, ignore_index=self.ignore_index, shells=self.shells, units=self.units, dtype=self.dtype
        )
        self.add(spec)
        return spec

    def add(self, spec: CESpectrum) -> None:
        """Add an already computed :class:`CESpectrum` (all its images)."""
        loss = spec.loss.detach().to("cpu", torch.float64)
        s = max(loss.shape[-1], self._loss.shape[-1])
        self._loss, self._r_sum, self._label, self._logit, self._count = (
            _pad_to(t, s) for t in (self._loss, self._r_sum, self._label, self._logit, self._count)
        )
        self._loss += _pad_to(loss.sum(0), s)
        # Beyond an image's top shell its R is 0 (the full band), so zero padding is exact.
        self._r_sum += _pad_to(relative_discrepancy(loss).sum(0), s)
        self._label += _pad_to(spec.label_magnitude.detach().to("cpu", torch.float64).sum(0), s)
        self._logit += _pad_to(spec.logit_magnitude.detach().to("cpu", torch.float64).sum(0), s)
        self._count[: loss.shape[-1]] += loss.shape[0]
        self._ce += float(spec.ce.detach().sum())
        self._num_valid += int(spec.num_valid.sum())
        self._num_images += loss.shape[0]

    def compute(self) -> DatasetSpectrum:
        """The accumulated :class:`DatasetSpectrum`."""
        if self._num_images == 0:
            raise DataError("SpectrumAccumulator.compute() before any update(); feed at least one batch")
        count = self._count.clamp_min(1)
        return DatasetSpectrum(
            loss=self._loss.clone(),
            relative_discrepancy=relative_discrepancy(self._loss),
            mean_image_discrepancy=self._r_sum / self._num_images,
            label_magnitude=self._label / count,
            logit_magnitude=self._logit / count,
            ce=self._ce,
            num_valid=self._num_valid,
            num_images=self._num_images,
        )

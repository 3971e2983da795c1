"""Block-wise weak annotation: labels on a coarse grid of ``n = 2 nu_max + 1`` points per axis.

Chen, Chiu, Wu, AAAI 2020, Sec. 3.3 (Table 3, Fig. 6-7): "apply the low-resolution grid to the groundtruth
annotation"; ``nu_max = 256`` on a 513 crop is the pixel-wise ground truth. Reading
(docs/reference_code.md#block-wise-annotation): grid points sit on the ``align_corners`` lattice
``p_i = i (N - 1) / (n - 1)`` (pitch ``(N - 1) / (n - 1)``, i.e. 8/16/32 px for ``nu_max`` 32/16/8 at 513); every pixel
belongs to its nearest grid point (ties go to the higher index), so edge blocks are half as wide. A block's label is
the majority of its non-void pixels (ties -> the smallest class id; all void -> ``ignore_index``), or, with
``method="nearest"``, the label at the pixel nearest to the grid point. Upsampling back gives every pixel its block's
label.

Void pixels (``ignore_index``): the paper does not say what happens to them. ``void="fill"`` (the default) gives them
their block's label like every other pixel, so void survives only in all-void blocks (or, with ``"nearest"``, in
blocks whose grid point is void) and block-wise training supervises pixels the pixel-wise labels leave out: on the
synthetic 96x128 validation scenes only 80 / 54 / 36 % of the void pixels stay void at ``nu_max`` = 16 / 8 / 4.
``void="keep"`` keeps every void pixel void and relabels only the others, so both annotations supervise the same
pixels and differ only in their labels.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..errors import ConfigError, DataError, ShapeError

__all__ = [
    "grid_size_for",
    "block_index",
    "block_labels",
    "blockwise_annotation",
    "BlockwiseAnnotation",
    "VOID_MODES",
    "check_void_mode",
]

Method = Literal["majority", "nearest"]
Void = Literal["fill", "keep"]

#: What happens to void pixels: ``"fill"`` gives them their block's label, ``"keep"`` keeps them void.
VOID_MODES: tuple[str, ...] = ("fill", "keep")


def check_void_mode(void: str) -> str:
    """Return ``void`` if it is ``"fill"`` or ``"keep"``, else raise :class:`ConfigError` naming the choices."""
    if void not in VOID_MODES:
        raise ConfigError(
            f"block-wise void must be 'fill' (void pixels take their block's label) or 'keep' (void pixels stay "
            f"void), got {void!r}"
        )
    return void


def grid_size_for(nu_max: int) -> int:
    """Number of grid points ``n = 2 nu_max + 1`` that carry frequencies ``|nu| <= nu_max``."""
    if not isinstance(nu_max, int) or nu_max < 0:
        raise ConfigError(f"nu_max must be a non-negative int, got {nu_max!r}")
    return 2 * nu_max + 1


def block_index(num_pixels: int, num_points: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Index of the nearest grid point for each pixel ``0 .. num_pixels - 1`` (half-up rounding).

    Example:
        >>> block_index(9, 3).tolist()
        [0, 0, 1, 1, 1, 1, 2, 2, 2]
    """
    x = torch.arange(num_pixels, device=device)
    if num_pixels == 1 or num_points == 1:
        return torch.zeros_like(x)
    # floor(x (n - 1) / (N - 1) + 1/2) in exact integer arithmetic.
    return (2 * x * (num_points - 1) + (num_pixels - 1)) // (2 * (num_pixels - 1))


def _grid_pixels(num_pixels: int, num_points: int, device: torch.device) -> torch.Tensor:
    # Pixel nearest to each grid point (half-up); a single grid point sits at the centre.
    if num_points == 1:
        return torch.tensor([(num_pixels - 1) // 2], device=device)
    i = torch.arange(num_points, device=device)
    return ((2 * i * (num_pixels - 1) + (num_points - 1)) // (2 * (num_points - 1))).clamp_max(num_pixels - 1)


def _as_batch(labels: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(labels, torch.Tensor) or labels.dim() not in (2, 3):
        raise ShapeError(f"labels must be (H, W) or (B, H, W) class ids, got {getattr(labels, 'shape', labels)}")
    if labels.is_floating_point():
        raise ShapeError(f"labels must hold integer class ids, got dtype {labels.dtype}; use labels.long()")
    return (labels[None], True) if labels.dim() == 2 else (labels, False)


def _grid_shape(nu_max: int | tuple[int, int]) -> tuple[int, int]:
    ny, nx = (nu_max, nu_max) if isinstance(nu_max, int) else nu_max
    return grid_size_for(int(ny)), grid_size_for(int(nx))


def block_labels(
    labels: torch.Tensor,
    nu_max: int | tuple[int, int],
    *,
    method: Method = "majority",
    ignore_index: int = 255,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Labels on the ``n_h x n_w`` grid, ``n = 2 nu_max + 1`` per axis.

    Args:
        labels: ``(B, H, W)`` or ``(H, W)`` int64 class ids, ``ignore_index`` = void.
        nu_max: band limit in cycles per image, or ``(nu_y, nu_x)`` for non-square maps.
        method: ``"majority"`` (vote of the block's non-void pixels) or ``"nearest"`` (subsample the grid points).
        ignore_index: void label; all-void blocks get it.
        num_classes: number of classes (default: the largest non-void label + 1).

    Returns:
        ``(B, n_h, n_w)`` (or ``(n_h, n_w)``) int64 grid labels.
    """
    lab, squeeze = _as_batch(labels)
    bsz, h, w = lab.shape
    n_h, n_w = _grid_shape(nu_max)
    if method == "nearest":
        ys = _grid_pixels(h, n_h, lab.device)
        xs = _grid_pixels(w, n_w, lab.device)
        grid = lab[:, ys][:, :, xs]
    elif method == "majority":
        valid = lab != ignore_index
        if num_classes is None:
            num_classes = int(lab[valid].max()) + 1 if bool(valid.any()) else 1
        if bool(((lab < 0) | (lab >= num_classes))[valid].any()):
            raise DataError(
                f"labels hold ids outside [0, {num_classes}) that are not ignore_index={ignore_index}; "
                "pass the dataset's num_classes and ignore_index"
            )
        by = block_index(h, n_h, device=lab.device)
        bx = block_index(w, n_w, device=lab.device)
        block = (by[:, None] * n_w + bx[None, :]).expand(bsz, h, w)
        batch = torch.arange(bsz, device=lab.device)[:, None, None].expand(bsz, h, w)
        key = ((batch * (n_h * n_w) + block) * num_classes + lab)[valid]
        counts = torch.bincount(key, minlength=bsz * n_h * n_w * num_classes).view(bsz, n_h * n_w, num_classes)
        grid = counts.argmax(dim=-1)  # first maximum: ties go to the smallest class id
        grid = torch.where(counts.sum(dim=-1) > 0, grid, torch.full_like(grid, ignore_index)).view(bsz, n_h, n_w)
    else:
        raise ConfigError(f"block-wise method must be 'majority' or 'nearest', got {method!r}")
    return grid[0] if squeeze else grid


def blockwise_annotation(
    labels: torch.Tensor,
    nu_max: int | tuple[int, int],
    *,
    method: Method = "majority",
    ignore_index: int = 255,
    num_classes: int | None = None,
    void: Void = "fill",
) -> torch.Tensor:
    """Block-wise annotation at full resolution: :func:`block_labels` nearest-upsampled onto the pixel grid.

    At the full band (``n >= H`` and ``n >= W``, e.g. ``nu_max = 256`` on 513 x 513) every pixel is its own block
    and the result equals ``labels``.

    Args:
        labels, nu_max, method, ignore_index, num_classes: as in :func:`block_labels`.
        void: ``"fill"`` (every pixel, void ones included, takes its block's label) or ``"keep"`` (pixels that are
            ``ignore_index`` in ``labels`` stay ``ignore_index``; the others take their block's label).

    Example:
        >>> lab = torch.tensor([[0, 0, 1, 1, 1]])  # 3 grid points along x: blocks {0}, {1, 2}, {3, 4}
        >>> blockwise_annotation(lab, (0, 1)).tolist()  # the 1-1 tie in block {1, 2} goes to class 0
        [[0, 0, 0, 1, 1]]
        >>> void = torch.tensor([[0, 255, 1, 1, 1]])  # the void pixel 1 sits in block {1, 2}, labelled 1
        >>> blockwise_annotation(void, (0, 1)).tolist(), blockwise_annotation(void, (0, 1), void="keep").tolist()
        ([[0, 1, 1, 1, 1]], [[0, 255, 1, 1, 1]])
    """
    check_void_mode(void)
    lab, squeeze = _as_batch(labels)
    grid = block_labels(lab, nu_max, method=method, ignore_index=ignore_index, num_classes=num_classes)
    n_h, n_w = grid.shape[-2:]
    by = block_index(lab.shape[-2], n_h, device=lab.device)
    bx = block_index(lab.shape[-1], n_w, device=lab.device)
    out = grid[:, by][:, :, bx]
    if void == "keep":
        out = torch.where(lab == ignore_index, lab, out)
    return out[0] if squeeze else out


class BlockwiseAnnotation:
    """Sample transform: replace ``sample["semantic"]`` by its block-wise annotation (training on weak labels).

    Evaluate on the original pixel-wise labels (paper Sec. 3.3): apply this to the training split only.

    Args:
        nu_max: band limit (``n = 2 nu_max + 1`` grid points per axis), or ``(nu_y, nu_x)``.
        method, ignore_index, num_classes: as in :func:`block_labels`.
        void: as in :func:`blockwise_annotation` (``"fill"`` or ``"keep"``).
    """

    def __init__(
        self,
        nu_max: int | tuple[int, int],
        *,
        method: Method = "majority",
        ignore_index: int = 255,
        num_classes: int | None = None,
        void: Void = "fill",
    ) -> None:
        _grid_shape(nu_max)
        if method not in ("majority", "nearest"):
            raise ConfigError(f"block-wise method must be 'majority' or 'nearest', got {method!r}")
        self.nu_max, self.method, self.ignore_index, self.num_classes = nu_max, method, ignore_index, num_classes
        self.void = check_void_mode(void)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if "semantic" not in sample:
            raise DataError("BlockwiseAnnotation needs a 'semantic' label map in the sample; the dataset has none")
        out = dict(sample)
        out["semantic"] = blockwise_annotation(
            sample["semantic"],
            self.nu_max,
            method=self.method,
            ignore_index=self.ignore_index,
            num_classes=self.num_classes,
            void=self.void,
        )
        return out

    def __repr__(self) -> str:
        return f"BlockwiseAnnotation(nu_max={self.nu_max}, method={self.method!r}, void={self.void!r})"

"""Orthonormal 2-D DCT-II and its inverse by cached basis matrices.

The transform over the last two dimensions is ``D_H @ X @ D_W^T`` (two matmuls per map), with ``D_n`` the
orthonormal DCT-II matrix ``D[k, i] = a_k cos(pi k (2i + 1) / (2n))``, ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``.
It equals ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))`` and is FcaNet's ``build_filter`` basis
(docs/reference_code.md#fcanet-dct-basis); FAFE's frequency disentanglement
(docs/reference_code.md#fafe-fd-and-the-consistency-loss) uses it. Being plain matmuls, it is differentiable, works for
any size and batch shape, and exports to ONNX (the bases become initializers).
"""

from __future__ import annotations

import functools
import math

import torch

from ..errors import ShapeError

__all__ = ["dct_matrix", "dct2d", "idct2d"]


def _build_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Built in float64 and rounded once, so float32 bases are correctly rounded orthonormal matrices.
    k = torch.arange(n, dtype=torch.float64, device=device)
    # (2 / n) ** 0.5 rather than math.sqrt: keeps n symbolic under torch.export, so dynamic-H/W ONNX stays exact.
    basis = torch.cos(torch.outer(k, 2 * k + 1) * (math.pi / (2 * n))) * (2.0 / n) ** 0.5
    scale = torch.ones(n, 1, dtype=torch.float64, device=device)
    scale[0] = math.sqrt(0.5)
    return (basis * scale).to(dtype)


@functools.lru_cache(maxsize=32)
def _cached_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return _build_dct_matrix(n, dtype, device)


def dct_matrix(n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The ``(n, n)`` orthonormal DCT-II matrix ``D`` (rows = frequencies), so ``dct(x) = D @ x``.

    Matrices are cached per ``(n, dtype, device)`` (LRU, 32 entries); treat the result as read-only. While
    ``torch.compile``/``torch.export`` trace, the matrix is rebuilt from torch ops instead of read from the
    cache (a cached tensor created under tracing would be a fake tensor).

    Args:
        n: transform length, ``n >= 1``.
        dtype: floating dtype of the matrix.
        device: device of the matrix (default CPU).

    Returns:
        ``(n, n)`` tensor with ``D @ D.T == I``.

    Example:
        >>> d = dct_matrix(4, dtype=torch.float64)
        >>> torch.allclose(d @ d.T, torch.eye(4, dtype=torch.float64))
        True
    """
    if n < 1:
        raise ShapeError(f"dct_matrix: n must be >= 1, got {n}")
    if not dtype.is_floating_point:
        raise ShapeError(f"dct_matrix: dtype must be floating point, got {dtype}; cast the input with .float()")
    device = torch.device("cpu") if device is None else torch.device(device)
    if torch.compiler.is_compiling():
        return _build_dct_matrix(n, dtype, device)
    return _cached_dct_matrix(n, dtype, device)


def _check_input(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (..., H, W), got {type(x).__name__}")
    if x.dim() < 2:
        raise ShapeError(f"{name} must have shape (..., H, W) (at least 2 dims), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; use x.float()")


def dct2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dimensions.

    Args:
        x: ``(..., H, W)`` floating tensor (any batch shape, any ``H, W >= 1``).

    Returns:
        ``(..., H, W)`` coefficients ``D_H @ x @ D_W^T``; index ``[..., u, v]`` is vertical frequency ``u``,
        horizontal ``v`` (half cycles per image). Equals ``scipy.fft.dctn(x, norm="ortho", axes=(-2, -1))``.

    Example:
        >>> x = torch.ones(1, 2, 2)  # a constant map has only the DC coefficient sqrt(H W) * mean
        >>> torch.allclose(dct2d(x), torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]), atol=1e-6)
        True
    """
    _check_input(x, "dct2d input")
    d_h = dct_matrix(x.shape[-2], dtype=x.dtype, device=x.device)
    d_w = dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device)
    # (x @ D_W^T) is one large GEMM over all rows; the left product broadcasts D_H over the batch.
    return d_h @ (x @ d_w.mT)


def idct2d(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2d` (orthonormal DCT-III): ``D_H^T @ y @ D_W``.

    Args:
        y: ``(..., H, W)`` DCT coefficients.

    Returns:
        ``(..., H, W)`` signal; ``idct2d(dct2d(x)) == x`` up to rounding.
    """
    _check_input(y, "idct2d input")
    d_h = dct_matrix(y.shape[-2], dtype=y.dtype, device=y.device)
    d_w = dct_matrix(y.shape[-1], dtype=y.dtype, device=y.device)
    return d_h.mT @ (y @ d_w)

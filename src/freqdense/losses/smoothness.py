"""Edge-aware disparity smoothness (Godard et al., CVPR 2017, Eq. 3; Monodepth2 ``get_smooth_loss``;
docs/reference_code.md#monodepth2-layers).

The disparity is divided by its per-image spatial mean (+1e-7) first (Monodepth2), so the term does not push the
scale of the depth; the caller weights scale ``s`` by ``1e-3 / 2^s`` with ``disp_s`` at its native resolution and
the target image at that resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["EdgeAwareSmoothness", "smoothness_loss"]


def smoothness_loss(disp: torch.Tensor, image: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """``mean |dx d*| exp(-mean_c |dx I|) + mean |dy d*| exp(-mean_c |dy I|)``, ``d* = d / mean_hw(d)``.

    Args:
        disp: ``(B, 1, H, W)`` disparity (sigmoid output or scaled disparity).
        image: ``(B, C, H, W)`` image at the same resolution (the unblurred target in the paper's full method).
        normalize: divide ``disp`` by its per-image mean first (Monodepth2; default True).

    Returns:
        Scalar.

    Examples:
        >>> smoothness_loss(torch.ones(1, 1, 4, 4), torch.rand(1, 3, 4, 4)).item()
        0.0
    """
    check_shape(disp, "B C H W", name="disp", C=1)
    check_shape(image, "B C H W", name="image")
    if disp.shape[0] != image.shape[0] or disp.shape[2:] != image.shape[2:]:
        raise ShapeError(
            f"disp {tuple(disp.shape)} and image {tuple(image.shape)} must share batch and size; "
            "resize the image to the disparity's scale"
        )
    if normalize:
        disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_disp_x = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    grad_disp_y = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    grad_img_x = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(dim=1, keepdim=True)
    grad_img_y = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(dim=1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


class EdgeAwareSmoothness(nn.Module):
    """Module form of :func:`smoothness_loss`."""

    def __init__(self, *, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Scalar smoothness of ``disp`` ``(B, 1, H, W)`` given ``image`` ``(B, C, H, W)``."""
        return smoothness_loss(disp, image, normalize=self.normalize)

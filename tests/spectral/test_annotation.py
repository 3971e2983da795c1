from __future__ import annotations

import pytest
import torch

from freqdense.errors import ConfigError, DataError
from freqdense.spectral import BlockwiseAnnotation, block_labels, blockwise_annotation
from freqdense.spectral.annotation import block_index, grid_size_for


def _random_labels(shape, classes=5, void_rate=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, shape, generator=g)
    labels[torch.rand(shape, generator=g) < void_rate] = 255
    return labels


@pytest.mark.parametrize("method", ["majority", "nearest"])
@pytest.mark.parametrize(("shape", "nu"), [((33, 33), 16), ((32, 32), 16), ((9, 14), (4, 7)), ((513, 513), 256)])
def test_full_band_equals_pixel_wise_labels(method, shape, nu):
    labels = _random_labels((2, *shape))
    assert torch.equal(blockwise_annotation(labels, nu, method=method, num_classes=5), labels)


def test_block_geometry_on_a_513_crop():
    # nu_max = 8 -> 17 grid points, pitch 32 px; edge blocks are half as wide (16 and 17 px with half-up ties).
    idx = block_index(513, grid_size_for(8))
    sizes = torch.bincount(idx).tolist()
    assert len(sizes) == 17 and sizes[1:-1] == [32] * 15 and sizes[0] == 16 and sizes[-1] == 17
    assert idx[32].item() == 1 and idx[47].item() == 1 and idx[48].item() == 2  # centred on pixel 32


def test_majority_vote_hand_case():
    labels = torch.tensor(
        [
            [1, 1, 2, 2, 2],
            [1, 3, 2, 255, 2],
            [255, 255, 0, 0, 4],
        ]
    )
    # nu_max (0, 1): one row block, 3 column blocks {0}, {1, 2}, {3, 4}.
    grid = block_labels(labels, (0, 1))
    assert grid.tolist() == [[1, 2, 2]]  # block {1,2}: 1,2,3,2,255,0 -> 2; block {3,4}: 2,2,255,2,0,4 -> 2
    # Ties go to the smallest class id; all-void blocks become 255.
    tie = torch.tensor([[3, 1, 255, 255]])
    assert block_labels(tie, (0, 1), num_classes=4).tolist() == [[3, 1, 255]]  # blocks {0}, {1, 2}, {3}
    assert block_labels(torch.tensor([[2, 0, 0, 2]]), 0).tolist() == [[0]]


def test_nearest_subsampling_picks_grid_points():
    labels = torch.arange(25).reshape(5, 5)
    # 3 grid points on 5 pixels sit at pixels 0, 2, 4.
    assert block_labels(labels, 1, method="nearest").tolist() == [[0, 2, 4], [10, 12, 14], [20, 22, 24]]
    up = blockwise_annotation(labels, 1, method="nearest")
    assert up[0].tolist() == [0, 2, 2, 4, 4]  # pixel 1 -> block 1 (half-up tie), pixel 3 -> block 2


def test_coarser_bands_lose_more_pixels():
    h = w = 65
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = ((yy - 30) ** 2 + (xx - 35) ** 2 < 18**2).long()
    # Grids 9, 17, 33, 65 on 65 px halve the pitch each time (not a theorem for arbitrary grids).
    errors = [(blockwise_annotation(disc, nu) != disc).float().mean().item() for nu in (4, 8, 16, 32)]
    assert errors[-1] == 0.0
    assert all(a > b for a, b in zip(errors, errors[1:])) and errors[0] > 0.02


def test_transform_and_errors():
    sample = {"image": torch.rand(3, 9, 9), "semantic": _random_labels((9, 9))}
    out = BlockwiseAnnotation(1)(sample)
    assert out["semantic"].shape == (9, 9) and out["image"] is sample["image"] and out is not sample
    assert len(torch.unique(out["semantic"])) <= 9
    with pytest.raises(ConfigError):
        BlockwiseAnnotation(-1)
    with pytest.raises(DataError, match="semantic"):
        BlockwiseAnnotation(1)({"image": torch.rand(3, 4, 4)})
    with pytest.raises(DataError, match="num_classes"):
        block_labels(torch.tensor([[7, 0]]), 0, num_classes=3)

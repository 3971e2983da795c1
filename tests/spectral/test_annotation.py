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


# Void pixels: "fill" (the default) gives them their block's label, "keep" leaves them void.
# nu_max (0, 1) on 5 columns: one row block and the column blocks {0}, {1, 2}, {3, 4}.
@pytest.mark.parametrize(
    ("labels", "method", "fill", "keep"),
    [
        # Block {1, 2} votes 1 (the non-void pixels 1, 1 against nothing): fill relabels its three void pixels.
        (
            [[1, 1, 255, 2, 2], [1, 255, 255, 2, 2]],
            "majority",
            [[1, 1, 1, 2, 2], [1, 1, 1, 2, 2]],
            [[1, 1, 255, 2, 2], [1, 255, 255, 2, 2]],
        ),
        # An all-void block stays void under both.
        ([[0, 255, 255, 3, 3]], "majority", [[0, 255, 255, 3, 3]], [[0, 255, 255, 3, 3]]),
        # Nearest: grid points at pixels 0, 2, 4; the void pixel 1 takes pixel 2's label only under fill.
        ([[0, 255, 1, 2, 2]], "nearest", [[0, 1, 1, 2, 2]], [[0, 255, 1, 2, 2]]),
        # Nearest with a void grid point: its block is void under both (keep only protects void pixels).
        ([[0, 1, 255, 2, 2]], "nearest", [[0, 255, 255, 2, 2]], [[0, 255, 255, 2, 2]]),
    ],
)
def test_void_fill_and_keep_hand_cases(labels, method, fill, keep):
    lab = torch.tensor(labels)
    assert blockwise_annotation(lab, (0, 1), method=method, num_classes=4).tolist() == fill
    assert blockwise_annotation(lab, (0, 1), method=method, num_classes=4, void="fill").tolist() == fill
    assert blockwise_annotation(lab, (0, 1), method=method, num_classes=4, void="keep").tolist() == keep


def test_void_keep_preserves_the_void_mask_and_the_other_labels():
    labels = _random_labels((2, 24, 31), void_rate=0.2, seed=3)
    for nu in (1, 3, 7):
        fill = blockwise_annotation(labels, nu, num_classes=5, void="fill")
        keep = blockwise_annotation(labels, nu, num_classes=5, void="keep")
        void = labels == 255
        assert torch.equal(keep == 255, void)  # majority: a non-void pixel's block always has a non-void vote
        assert torch.equal(keep[~void], fill[~void])
        assert (fill[void] != 255).float().mean() > 0.5  # fill relabels most void pixels
    assert torch.equal(blockwise_annotation(labels, (12, 15), num_classes=5, void="keep"), labels)  # full band


def test_void_option_in_the_transforms_and_its_error():
    from freqdense.data.transforms import BlockwiseLabels, build_transforms

    lab = torch.tensor([[1, 1, 255, 2, 2], [1, 255, 255, 2, 2]])
    sample = {"semantic": lab}
    assert BlockwiseAnnotation((0, 1), void="keep")(sample)["semantic"].tolist() == lab.tolist()
    assert BlockwiseAnnotation((0, 1))(sample)["semantic"].tolist() == [[1, 1, 1, 2, 2], [1, 1, 1, 2, 2]]
    # The training transform at nu_max 1: 3 grid points per axis, so the 2 rows are blocks of their own and the
    # 5 columns blocks {0}, {1, 2}, {3, 4}; row 1's block {1, 2} is all void and stays void under fill too.
    pipeline = build_transforms({"blockwise_labels": {"nu_max": 1, "void": "keep"}}, train=True)
    assert pipeline({"semantic": lab})["semantic"].tolist() == lab.tolist()
    assert BlockwiseLabels(1)({"semantic": lab})["semantic"].tolist() == [[1, 1, 1, 2, 2], [1, 255, 255, 2, 2]]
    for make in (lambda: BlockwiseAnnotation(1, void="drop"), lambda: BlockwiseLabels(1, void="drop")):
        with pytest.raises(ConfigError, match="'fill'.*'keep'"):
            make()
    with pytest.raises(ConfigError, match="void"):
        blockwise_annotation(lab, 1, void="ignore")

"""ConfusionMatrix: hand-computed matrices, ignore index, absent classes, merge/all_reduce, errors."""

from __future__ import annotations

import math

import pytest
import torch

from freqdense.errors import ConfigError, DataError, ShapeError
from freqdense.metrics import ConfusionMatrix

# Hand example, 3 classes, one 2x3 image (rows = GT class, cols = predicted class):
#   target = [[0, 0, 1],      pred = [[0, 1, 1],
#             [1, 2, 2]]               [1, 2, 0]]
#   GT 0 -> pred {0, 1}; GT 1 -> pred {1, 1}; GT 2 -> pred {2, 0}
#   matrix = [[1, 1, 0],
#             [0, 2, 0],
#             [1, 0, 1]]
#   tp = (1, 2, 1); GT counts (rows) = (2, 2, 2); pred counts (cols) = (2, 3, 1)
#   IoU = tp / (row + col - tp) = 1/3, 2/(2+3-2) = 2/3, 1/(2+1-1) = 1/2  -> mIoU = 1.5 / 3 = 0.5
#   per-class acc = tp / row = 1/2, 1, 1/2 -> mean_acc = 2/3;  pixel_acc = 4/6 = 2/3
TARGET = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
PRED = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
HAND_MATRIX = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_hand_example():
    cm = ConfusionMatrix(3, class_names=["wall", "floor", "sky"])
    cm.update(PRED, TARGET)
    assert torch.equal(cm.matrix, HAND_MATRIX)
    out = cm.compute()
    assert out["miou"] == pytest.approx(0.5)
    assert out["pixel_acc"] == pytest.approx(2 / 3)
    assert out["mean_acc"] == pytest.approx(2 / 3)
    assert out["iou/wall"] == pytest.approx(1 / 3)
    assert out["iou/floor"] == pytest.approx(2 / 3)
    assert out["iou/sky"] == pytest.approx(1 / 2)
    assert all(isinstance(v, float) for v in out.values())


def test_logits_equal_ids():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, 9, generator=g)
    target = torch.randint(0, 5, (2, 7, 9), generator=g)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert torch.equal(a.matrix, b.matrix)
    assert a.matrix.sum() == 2 * 7 * 9


def test_ignore_index_excluded():
    target = TARGET.clone()
    pred = PRED.clone()
    target_ign = torch.cat([target, torch.full((1, 2, 3), 255)], dim=0)
    pred_ign = torch.cat([pred, torch.randint(0, 3, (1, 2, 3))], dim=0)
    cm = ConfusionMatrix(3)
    cm.update(pred_ign, target_ign)
    assert torch.equal(cm.matrix, HAND_MATRIX)
    # A custom ignore index works too.
    cm = ConfusionMatrix(3, ignore_index=-1)
    cm.update(torch.tensor([[0, 2]]), torch.tensor([[0, -1]]))
    assert cm.matrix.sum() == 1 and cm.matrix[0, 0] == 1


def test_absent_class_conventions():
    # Class 3 appears in neither prediction nor GT.
    excl = ConfusionMatrix(4)
    excl.update(PRED, TARGET)
    out = excl.compute()
    assert math.isnan(out["iou/3"])
    assert out["miou"] == pytest.approx(0.5)  # mean over the 3 present classes
    assert out["mean_acc"] == pytest.approx(2 / 3)

    zero = ConfusionMatrix(4, absent_classes="zero")  # MTL-PyTorch SemsegMeter
    zero.update(PRED, TARGET)
    out = zero.compute()
    assert out["iou/3"] == 0.0
    assert out["miou"] == pytest.approx(1.5 / 4)
    assert out["mean_acc"] == pytest.approx(2.0 / 4)
    assert out["pixel_acc"] == pytest.approx(2 / 3)


def test_mean_accuracy_of_a_class_absent_from_the_ground_truth():
    # docs/metrics.md's example: GT [0,0,0,0,1,1,1,1], prediction [0,0,0,2,1,1,2,2]; class 2 has no GT pixel but
    # 3 false positives. Recall: class 0 3/4, class 1 2/4, class 2 0/0. IoU: 3/4, 2/4, 0/3 (both modes).
    pred, gt = torch.tensor([[0, 0, 0, 2, 1, 1, 2, 2]]), torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    results = {}
    for mode in ("exclude", "zero"):
        cm = ConfusionMatrix(3, absent_classes=mode)
        cm.update(pred, gt)
        results[mode] = cm.compute()
        assert results[mode]["miou"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert results["exclude"]["mean_acc"] == pytest.approx((0.75 + 0.5) / 2)  # mmseg: nanmean over GT classes
    assert results["zero"]["mean_acc"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)  # 0/0 -> 0, over all classes


def test_false_positive_only_class_counts_as_zero_in_both_modes():
    # GT has only class 0; the prediction also says class 1 once -> IoU_1 = 0 (union 1), counted in the mean.
    for mode in ("exclude", "zero"):
        cm = ConfusionMatrix(2, absent_classes=mode)
        cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
        out = cm.compute()
        assert out["iou/1"] == 0.0
        assert out["iou/0"] == pytest.approx(0.5)
        assert out["miou"] == pytest.approx(0.25)


def test_empty_matrix_is_nan():
    out = ConfusionMatrix(3).compute()
    assert math.isnan(out["miou"]) and math.isnan(out["pixel_acc"])


def test_two_halves_merged_equal_whole_and_reset():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 5, 5, generator=g)
    target = torch.randint(0, 6, (4, 5, 5), generator=g)
    target[0, 0, :] = 255
    whole = ConfusionMatrix(6)
    whole.update(logits, target)
    first, second = ConfusionMatrix(6), ConfusionMatrix(6)
    first.update(logits[:2], target[:2])
    second.update(logits[2:], target[2:])
    assert first.merge(second) is first
    assert torch.equal(first.matrix, whole.matrix)
    assert first.compute() == pytest.approx(whole.compute(), nan_ok=True)
    first.reset()
    assert first.matrix.sum() == 0


def test_merge_rejects_different_settings():
    with pytest.raises(ConfigError, match="different settings"):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))


def test_all_reduce_is_noop_without_process_group():
    import torch.distributed as dist

    assert not (dist.is_available() and dist.is_initialized())
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.all_reduce() is cm
    assert torch.equal(cm.matrix, HAND_MATRIX)


def test_state_dict_roundtrip():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    other = ConfusionMatrix(3)
    other.load_state_dict(cm.state_dict())
    assert torch.equal(other.matrix, HAND_MATRIX)
    with pytest.raises(ConfigError, match="settings"):
        ConfusionMatrix(3, absent_classes="zero").load_state_dict(cm.state_dict())


def test_labels_out_of_range_are_named():
    cm = ConfusionMatrix(3)
    with pytest.raises(DataError, match=r"7.*outside \[0, 3\)"):
        cm.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 7, 255]]))
    with pytest.raises(DataError, match="-1"):
        cm.update(torch.tensor([[0, 1]]), torch.tensor([[-1, 1]]))
    with pytest.raises(DataError, match="pred holds class ids 5"):
        cm.update(torch.tensor([[0, 5]]), torch.tensor([[0, 1]]))
    assert cm.matrix.sum() == 0  # nothing half-accumulated


def test_shape_and_config_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        cm.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ShapeError, match="dtype"):
        cm.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ShapeError, match="integer"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2))
    with pytest.raises(ConfigError, match="ignore_index"):
        ConfusionMatrix(3, ignore_index=2)
    with pytest.raises(ConfigError, match="class_names"):
        ConfusionMatrix(3, class_names=["a"])


def _gloo_worker(rank: int, world_size: int, init_file: str, result_file: str) -> None:
    import torch.distributed as dist

    from freqdense.metrics import DepthMetrics

    torch.set_num_threads(1)  # forked child: stay out of the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        cm = ConfusionMatrix(3)
        depth = DepthMetrics()
        # Rank r sees half r of the hand example / of a small depth batch.
        cm.update(PRED[:, rank : rank + 1], TARGET[:, rank : rank + 1])
        gt = torch.tensor([[[[1.0, 2.0], [4.0, 5.0]]]])
        pred = gt * torch.tensor([1.0, 1.25, 0.5, 1.0]).view(1, 1, 2, 2)
        depth.update(pred[..., rank : rank + 1], gt[..., rank : rank + 1])
        cm.all_reduce()
        depth.all_reduce()
        if rank == 0:
            torch.save({"matrix": cm.matrix, "depth": depth.compute()}, result_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="needs gloo"
)
def test_all_reduce_two_gloo_processes_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    from freqdense.metrics import DepthMetrics

    result = tmp_path / "result.pt"
    # fork: the children reuse the imported torch (spawn would re-import it, ~5 s on 2 cores).
    mp.start_processes(_gloo_worker, args=(2, str(tmp_path / "init"), str(result)), nprocs=2, start_method="fork")
    got = torch.load(result)
    assert torch.equal(got["matrix"], HAND_MATRIX)
    single = DepthMetrics()
    gt = torch.tensor([[[[1.0, 2.0], [4.0, 5.0]]]])
    single.update(gt * torch.tensor([1.0, 1.25, 0.5, 1.0]).view(1, 1, 2, 2), gt)
    assert got["depth"] == pytest.approx(single.compute())

"""DepthMetrics against independent numpy formulas and hand cases: caps, crops, median scaling, aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqdense.errors import ConfigError, ShapeError
from freqdense.metrics import DEPTH_METRIC_NAMES, DepthMetrics, crop_mask


def numpy_reference(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Eigen metrics over 1-D arrays of valid pixels, written from the formulas (not from the library)."""
    thresh = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": np.mean(np.abs(gt - pred) / gt),
        "sq_rel": np.mean((gt - pred) ** 2 / gt),
        "rmse": np.sqrt(np.mean((gt - pred) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2)),
        "log10": np.mean(np.abs(np.log10(gt) - np.log10(pred))),
        "mae": np.mean(np.abs(gt - pred)),
        "delta1": np.mean(thresh < 1.25),
        "delta2": np.mean(thresh < 1.25**2),
        "delta3": np.mean(thresh < 1.25**3),
    }


def as_b1hw(*images: list[list[float]]) -> torch.Tensor:
    return torch.tensor(images, dtype=torch.float32)[:, None]


def test_hand_case():
    # gt = (1, 2, 4, 5), pred = (1, 2.5, 2, 5):
    #   |d-p|/d = 0, .25, .5, 0 -> abs_rel .1875;  (d-p)^2 = 0, .25, 4, 0 -> rmse sqrt(4.25/4)
    #   max(d/p, p/d) = 1, 1.25, 2, 1 -> delta1 (strict < 1.25) = .5, delta2 (< 1.5625) = .75, delta3 (< 1.953) = .75
    m = DepthMetrics()
    m.update(as_b1hw([[2.5, 1.0], [2.0, 5.0]]), as_b1hw([[2.0, 1.0], [4.0, 5.0]]))
    out = m.compute()
    assert out["abs_rel"] == pytest.approx(0.1875)
    assert out["rmse"] == pytest.approx(math.sqrt(4.25 / 4))
    assert out["mae"] == pytest.approx(2.5 / 4)
    assert out["log10"] == pytest.approx((math.log10(1.25) + math.log10(2.0)) / 4)
    assert (out["delta1"], out["delta2"], out["delta3"]) == pytest.approx((0.5, 0.75, 0.75))
    assert list(out) == list(DEPTH_METRIC_NAMES)


@pytest.mark.parametrize("aggregation", ["pixel", "image"])
def test_matches_numpy_reference_on_random_images(aggregation):
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10.0, size=(3, 1, 6, 7))
    gt[rng.random(gt.shape) < 0.3] = 0.0  # holes
    pred = gt * rng.uniform(0.7, 1.4, size=gt.shape) + 0.05
    m = DepthMetrics(aggregation=aggregation)
    m.update(torch.from_numpy(pred).float(), torch.from_numpy(gt).float())
    gt32, pred32 = gt.astype(np.float32).astype(np.float64), pred.astype(np.float32).astype(np.float64)
    valid = gt32 > 1e-3
    if aggregation == "pixel":
        expected = numpy_reference(gt32[valid], pred32[valid])
    else:
        per_image = [numpy_reference(gt32[b][valid[b]], pred32[b][valid[b]]) for b in range(3)]
        expected = {k: np.mean([p[k] for p in per_image]) for k in per_image[0]}
    got = m.compute()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    assert m.num_pixels == int(valid.sum()) and m.num_images == 3


def test_per_image_and_per_pixel_differ_where_they_must():
    # Image A: one valid pixel, error 3 m (gt 10, pred 13). Image B: four valid pixels, all exact.
    gt = as_b1hw([[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    pred = as_b1hw([[13.0, 7.0], [7.0, 7.0], [7.0, 7.0]], [[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]])
    m = DepthMetrics(aggregation="pixel")
    m.update(pred, gt)
    pixel = m.compute()
    image = m.compute(aggregation="image")
    assert pixel["rmse"] == pytest.approx(math.sqrt(9 / 5))  # pooled: sqrt(sum sq / n)
    assert image["rmse"] == pytest.approx((3.0 + 0.0) / 2)  # mean of per-image rmse
    assert pixel["abs_rel"] == pytest.approx(0.3 / 5)
    assert image["abs_rel"] == pytest.approx(0.3 / 2)
    assert DepthMetrics(aggregation="image").compute().keys() == pixel.keys()


def test_caps_valid_mask_and_invalid_values():
    gt = as_b1hw([[0.0, float("nan"), 90.0, 0.0005], [2.0, 2.0, 2.0, 2.0]])
    pred = as_b1hw([[5.0, 5.0, 5.0, 5.0], [2.0, 2.0, 4.0, 2.0]])
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[0, 0, 1, 2] = False  # drop the one wrong pixel among the in-range ones
    m = DepthMetrics(min_depth=1e-3, max_depth=80.0)
    m.update(pred, gt, valid)
    out = m.compute()
    assert m.num_pixels == 3
    assert out["abs_rel"] == 0.0 and out["delta1"] == 1.0
    m.reset()
    m.update(pred, gt)
    assert m.num_pixels == 4 and m.compute()["abs_rel"] == pytest.approx(1.0 / 4)


def test_pred_clamp():
    gt, pred = as_b1hw([[40.0]]), as_b1hw([[200.0]])
    clamped = DepthMetrics(max_depth=80.0)
    clamped.update(pred, gt)
    assert clamped.compute()["abs_rel"] == pytest.approx(1.0)  # pred clamped to 80
    raw = DepthMetrics(max_depth=80.0, pred_clamp=False)
    raw.update(pred, gt)
    assert raw.compute()["abs_rel"] == pytest.approx(4.0)
    low = DepthMetrics(pred_clamp=(0.5, None))
    low.update(as_b1hw([[0.0]]), as_b1hw([[1.0]]))
    assert low.compute()["abs_rel"] == pytest.approx(0.5)


def test_median_scaling_makes_scaled_predictions_perfect():
    rng = np.random.default_rng(3)
    gt = torch.from_numpy(rng.uniform(1.0, 50.0, size=(2, 1, 5, 6))).float()
    gt[0, 0, 0, :3] = 0.0  # 27 valid pixels in image 0 (odd), 30 in image 1 (even)
    factors = torch.tensor([0.37, 2.0]).view(2, 1, 1, 1)
    m = DepthMetrics(median_scaling=True, aggregation="image")
    m.update(gt * factors, gt)
    out = m.compute()
    assert out["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert out["rmse"] == pytest.approx(0.0, abs=1e-5)
    assert out["delta1"] == 1.0
    ratios = np.array([1 / 0.37, 0.5])
    assert out["median_ratio_mean"] == pytest.approx(ratios.mean(), rel=1e-6)
    assert out["median_ratio_std"] == pytest.approx(ratios.std(), rel=1e-5)


def test_median_is_numpy_median_for_even_counts():
    gt = as_b1hw([[1.0, 2.0], [3.0, 10.0]])  # np.median = 2.5
    m = DepthMetrics(median_scaling=True)
    m.update(torch.full_like(gt, 4.0), gt)
    assert m.compute()["median_ratio_mean"] == pytest.approx(2.5 / 4.0)


@pytest.mark.parametrize(
    ("crop", "rows", "cols"),
    [
        # H=100, W=50. garg: rows int(40.81)=40 .. int(99.19)=99 (excl.), cols int(1.797)=1 .. int(48.20)=48 (excl.)
        ("garg", (40, 99), (1, 48)),
        # eigen: rows int(33.24)=33 .. int(91.35)=91, cols 1 .. 48
        ("eigen", (33, 91), (1, 48)),
        ((0.5, 0.75, 0.2, 0.4), (50, 75), (10, 20)),
    ],
)
def test_crops_pick_the_right_rows(crop, rows, cols):
    mask = crop_mask(100, 50, crop)
    assert mask.any(1).nonzero().flatten().tolist() == list(range(*rows))
    assert mask.any(0).nonzero().flatten().tolist() == list(range(*cols))
    gt = torch.ones(1, 1, 100, 50)
    pred = torch.full_like(gt, 3.0)
    pred[..., rows[0] : rows[1], cols[0] : cols[1]] = 1.0  # exact inside the crop, wrong just outside
    m = DepthMetrics(crop=crop)
    m.update(pred, gt)
    assert m.num_pixels == (rows[1] - rows[0]) * (cols[1] - cols[0])
    assert m.compute()["abs_rel"] == 0.0


def test_kitti_garg_crop_on_full_resolution():
    mask = crop_mask(375, 1242, "garg")
    r = mask.any(1).nonzero().flatten()
    c = mask.any(0).nonzero().flatten()
    # 0.40810811*375 = 153.04, 0.99189189*375 = 371.96, 0.03594771*1242 = 44.65, 0.96405229*1242 = 1197.35
    assert (int(r[0]), int(r[-1]), int(c[0]), int(c[-1])) == (153, 370, 44, 1196)


@pytest.mark.parametrize("aggregation", ["pixel", "image"])
def test_two_halves_merged_equal_whole(aggregation):
    rng = np.random.default_rng(5)
    gt = torch.from_numpy(rng.uniform(0.5, 9.0, size=(4, 1, 5, 5))).float()
    pred = gt * torch.from_numpy(rng.uniform(0.8, 1.3, size=gt.shape)).float()
    kwargs = {"aggregation": aggregation, "median_scaling": True}
    whole = DepthMetrics(**kwargs)
    whole.update(pred, gt)
    a, b = DepthMetrics(**kwargs), DepthMetrics(**kwargs)
    a.update(pred[:1], gt[:1])
    b.update(pred[1:], gt[1:])
    assert a.merge(b).compute() == pytest.approx(whole.compute(), rel=1e-12)
    restored = DepthMetrics(**kwargs)
    restored.load_state_dict(whole.state_dict())
    assert restored.compute() == pytest.approx(whole.compute(), rel=1e-12)
    with pytest.raises(ConfigError):
        a.merge(DepthMetrics(median_scaling=False))


def test_all_reduce_noop_and_empty_is_nan():
    m = DepthMetrics()
    assert m.all_reduce() is m
    assert all(math.isnan(v) for v in m.compute().values())
    m.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))  # nothing valid: skipped, still NaN
    assert m.num_images == 0 and math.isnan(m.compute(aggregation="image")["rmse"])


def test_protocol_presets():
    nyud = DepthMetrics.from_protocol("nyud_mt")
    assert nyud.aggregation == "pixel" and nyud.crop is None and not nyud.median_scaling
    kitti = DepthMetrics.from_protocol("kitti_eigen_mono")
    assert (
        kitti.aggregation == "image"
        and kitti.median_scaling
        and kitti.crop == pytest.approx((0.40810811, 0.99189189, 0.03594771, 0.96405229))
    )
    with pytest.raises(ConfigError, match="kitti_eigen_mono"):
        DepthMetrics.from_protocol("kitti")


def test_errors():
    m = DepthMetrics()
    with pytest.raises(ShapeError, match="resize"):
        m.update(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 8, 8))
    with pytest.raises(ShapeError, match=r"\(B, 1, H, W\)"):
        m.update(torch.ones(1, 2, 4, 4), torch.ones(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="crop"):
        DepthMetrics(crop="center")
    with pytest.raises(ConfigError, match="top < bottom"):
        DepthMetrics(crop=(0.5, 0.4, 0.0, 1.0))
    with pytest.raises(ConfigError, match="aggregation"):
        DepthMetrics(aggregation="mean")


def test_benchmark_preset_keeps_far_ground_truth_and_clamps_only_the_prediction():
    # monodepth2 eigen_benchmark: mask gt > 0 (no cap), pred clamped to [1e-3, 80] after median scaling.
    gt = as_b1hw([[100.0, 10.0, 0.0]])
    pred = as_b1hw([[50.0, 5.0, 7.0]])  # median scaling: median(gt) / median(pred) = 55 / 27.5 = 2
    m = DepthMetrics.from_protocol("kitti_eigen_benchmark_mono")
    m.update(pred, gt)
    out = m.compute()
    assert m.num_pixels == 2
    # scaled pred = [100, 10] -> clamped [80, 10]; abs_rel = mean(20 / 100, 0) = 0.1; rmse = sqrt(400 / 2)
    assert out["abs_rel"] == pytest.approx(0.1) and out["rmse"] == pytest.approx(math.sqrt(200.0))
    assert out["median_ratio_mean"] == pytest.approx(2.0)
    eigen = DepthMetrics.from_protocol("kitti_eigen_mono", crop=None)
    eigen.update(pred, gt)
    assert eigen.num_pixels == 1  # the Eigen preset drops gt >= 80


def test_stereo_presets_scale_by_5_4_without_median_scaling():
    gt = as_b1hw([[5.4, 10.8]])
    pred = as_b1hw([[1.0, 2.0]])
    for name in ("kitti_eigen_benchmark_stereo", "kitti_eigen_stereo"):
        m = DepthMetrics.from_protocol(name, crop=None)
        m.update(pred, gt)
        assert m.compute()["abs_rel"] == pytest.approx(0.0, abs=1e-7) and "median_ratio_mean" not in m.compute()
    metric = DepthMetrics.from_protocol("kitti_eigen_stereo_metric", crop=None)
    metric.update(pred, gt)
    assert metric.compute()["abs_rel"] == pytest.approx((4.4 / 5.4 + 8.8 / 10.8) / 2)
    with pytest.raises(ConfigError, match="pred_scale"):
        DepthMetrics(pred_scale=0.0)


def test_cityscapes_crop_is_manydepth_box():
    m = crop_mask(768, 2048, "cityscapes")
    rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (256, 767, 192, 1855)


def test_evaluate_disparities_per_image():
    from freqdense.metrics.depth import evaluate_disparities

    # disparity 0.25 everywhere -> depth 4; gt 8 on one image, 2 on the other: ratios 2 and 0.5, exact after scaling
    disps = [torch.full((2, 4), 0.25), torch.full((3, 5), 0.25)]
    gts = [torch.full((4, 8), 8.0), torch.full((6, 10), 2.0)]
    metrics, ratios = evaluate_disparities(disps, gts, "kitti_eigen_benchmark_mono")
    assert ratios.tolist() == [2.0, 0.5] and metrics["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ShapeError, match="pair up"):
        evaluate_disparities(disps, gts[:1], "kitti_eigen_mono")

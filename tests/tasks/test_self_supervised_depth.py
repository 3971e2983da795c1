"""Self-supervised depth task: ground-truth geometry explains the views, auto-masking, flags, training, evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqdense.config.schema import TaskConfig
from freqdense.data.synthetic import synthetic
from freqdense.errors import ConfigError, ShapeError
from freqdense.models import create_model
from freqdense.tasks import SelfSupervisedDepth, build_task

SIZE = (64, 64)


@pytest.fixture(scope="module")
def batch():
    ds = synthetic(
        split="train", size=SIZE, num_samples=2, modalities=["image", "depth", "stereo", "temporal"], cache=False
    )
    return torch.utils.data.default_collate([ds[i] for i in range(2)])


@pytest.mark.parametrize("mode", ["M", "S", "MS"])
def test_ground_truth_depth_and_pose_explain_the_sources(batch, mode):
    task = SelfSupervisedDepth(mode=mode, pose="gt", automask=False, smoothness_weight=0.0)
    depth = batch["depth"].clamp_min(0.1)  # 0 = window (invalid): any positive value

    def photometric(d):
        return task.compute_losses(batch, depths={s: d for s in task.scales})["photometric"]

    true = photometric(depth)
    # identity (no warp) errors as an independent yardstick
    from freqdense.losses import photometric_error

    keys = {"M": ["image_prev", "image_next"], "S": ["image_right"], "MS": ["image_prev", "image_next", "image_right"]}
    identity = torch.stack([photometric_error(batch[k], batch["image"]).mean() for k in keys[mode]]).min()
    # What remains at the true geometry: occlusions, out-of-view pixels and bilinear resampling of sharp textures
    # (the per-pixel median is ~1e-3); every wrong geometry is clearly worse.
    assert true < 0.5 * identity
    assert true < 0.7 * min(photometric(depth * 0.5), photometric(depth * 2.0))


def test_static_scene_is_fully_auto_masked(batch):
    static = dict(batch)
    static["image_prev"] = static["image_next"] = batch["image"]
    static["pose_prev"] = static["pose_next"] = torch.eye(4).expand(2, 4, 4)
    task = SelfSupervisedDepth(mode="M", pose="gt", smoothness_weight=0.0)
    out = task.compute_losses(static, disps={s: torch.rand(2, 1, SIZE[0] >> s, SIZE[1] >> s) for s in task.scales})
    assert out["automask_fraction"] == 0.0  # identity error 0 wins everywhere (ties go to the identity)
    assert out["total"] == 0.0


def test_each_flag_toggles_independently(batch):
    disps = {
        s: torch.rand(2, 1, SIZE[0] >> s, SIZE[1] >> s, generator=torch.Generator().manual_seed(s)) for s in range(4)
    }
    poses = {"prev": batch["pose_prev"] @ _small_motion(), "next": batch["pose_next"]}
    results = {}
    for blur in (False, True):
        for mask in (None, "hard", "soft"):
            task = SelfSupervisedDepth(mode="M", auto_blur=blur, ambiguity_mask=mask)
            out = task.compute_losses(batch, disps, poses)
            results[(blur, mask)] = out
            assert ("ambiguity_mask_mean" in out) == (mask is not None)
            if mask is not None:
                assert 0.0 < out["ambiguity_mask_mean"] < 1.0
    totals = [round(r["total"].item(), 7) for r in results.values()]
    assert len(set(totals)) == len(totals), totals
    # masking only removes (or down-weights) non-negative per-pixel terms
    assert results[(False, "hard")]["photometric"] < results[(False, None)]["photometric"]
    off = SelfSupervisedDepth(mode="M", automask=False).compute_losses(batch, disps, poses)
    assert "automask_fraction" not in off and off["photometric"] >= results[(False, None)]["photometric"]


def _small_motion():
    T = torch.eye(4)
    T[0, 3] = 0.02
    return T


@pytest.mark.parametrize(("mode", "modalities_missing"), [("S", "image_right"), ("M", "image_prev")])
def test_missing_views_name_the_key(batch, mode, modalities_missing):
    partial = {k: v for k, v in batch.items() if k != modalities_missing}
    model = create_model("monodepth", backbone_kwargs={"base_width": 8})
    with pytest.raises(ShapeError, match=modalities_missing):
        SelfSupervisedDepth(mode=mode).training_step(model, partial)


@pytest.mark.parametrize("mode", ["M", "S"])
def test_training_step_reaches_every_network_parameter(batch, mode):
    torch.manual_seed(0)
    model = create_model("monodepth", backbone_kwargs={"base_width": 8}, pose=mode != "S", max_depth=20.0)
    task = SelfSupervisedDepth(mode=mode, max_depth=20.0, auto_blur=True, ambiguity_mask="hard")
    losses = task.training_step(model, batch)
    assert torch.isfinite(losses["total"]) and losses["total"].requires_grad
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert (mode == "S") == (model.pose_encoder is None)


def test_model_and_task_depth_range_must_agree(batch):
    model = create_model("monodepth", backbone_kwargs={"base_width": 8}, max_depth=20.0)
    with pytest.raises(ConfigError, match="max_depth"):
        SelfSupervisedDepth(mode="M").training_step(model, batch)


class _Scaled(nn.Module):
    """Predicts ``factor * ground truth`` (the batch is set before the call)."""

    def __init__(self, factor):
        super().__init__()
        self.factor, self.depth = factor, None

    def forward(self, image):
        return {"depth": self.depth * self.factor}


@pytest.mark.parametrize(("mode", "abs_rel"), [("M", 0.0), ("S", 2.0), ("MS", 2.0)])
def test_evaluation_median_scales_only_monocular_training(batch, mode, abs_rel):
    task = SelfSupervisedDepth(mode=mode, eval_max_depth=100.0)
    model = _Scaled(3.0)
    model.depth = batch["depth"]
    metrics = task.make_metrics()
    task.evaluation_step(model, batch, metrics)
    assert metrics.compute()["depth/abs_rel"] == pytest.approx(abs_rel, abs=1e-5)


def test_build_task_from_config_checks_arguments():
    task = build_task(
        TaskConfig(
            name="self_supervised_depth", max_depth=20.0, self_supervised={"mode": "S", "ambiguity_mask": "soft"}
        ),
        num_classes=None,
    )
    assert task.keys == ("depth",) and task.mode == "S" and task.metric_kwargs["max_depth"] == 20.0
    with pytest.raises(ConfigError, match="Did you mean 'ambiguity_mask'"):
        build_task(
            TaskConfig(name="self_supervised_depth", self_supervised={"ambiguity_masc": "hard"}), num_classes=None
        )


@pytest.mark.parametrize("mode", ["M", "MS"])
def test_float64_batch_with_float32_intrinsics(batch, mode):
    task = SelfSupervisedDepth(mode=mode, pose="gt", auto_blur=True, ambiguity_mask="hard")
    disps = {
        s: torch.rand(2, 1, SIZE[0] >> s, SIZE[1] >> s, generator=torch.Generator().manual_seed(s)) for s in range(4)
    }
    torch.manual_seed(0)
    single = task.compute_losses(batch, disps)["total"]
    double = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() and k != "intrinsics" else v
              for k, v in batch.items()}  # fmt: skip
    assert double["intrinsics"].dtype == torch.float32 and double["image"].dtype == torch.float64
    torch.manual_seed(0)
    out = task.compute_losses(double, disps)["total"]
    assert out.dtype == torch.float64
    assert float(out) == pytest.approx(float(single), rel=1e-3)


class _FixedDisparity(nn.Module):
    """Returns a fixed sigmoid disparity ``disp:0`` (and the matching depth) whatever the input."""

    def __init__(self, disp, min_depth=0.1, max_depth=100.0):
        super().__init__()
        self.disp, self.min_depth, self.max_depth = disp, min_depth, max_depth
        self.seen = None

    def forward(self, image):
        self.seen = tuple(image.shape[-2:])
        scaled = 1 / self.max_depth + (1 / self.min_depth - 1 / self.max_depth) * self.disp
        return {"depth": 1.0 / scaled, "disp:0": self.disp}


def test_evaluation_resizes_disparity_not_depth():
    # A 1x2 disparity row [a, b] upsampled to 1x4 at half-pixel centres: source x = (i + 0.5) / 2 - 0.5 =
    # -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) -> [a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b].
    disp = torch.tensor([[[[0.9, 0.1]]]], dtype=torch.float64)
    scaled = 0.01 + (10.0 - 0.01) * disp[0, 0, 0]
    a, b = float(scaled[0]), float(scaled[1])
    expected_depth = torch.tensor([1 / a, 1 / (0.75 * a + 0.25 * b), 1 / (0.25 * a + 0.75 * b), 1 / b])
    gt = torch.full((1, 1, 1, 4), 2.0)
    task = SelfSupervisedDepth(mode="S", eval_max_depth=100.0)  # no median scaling, no crop
    metrics = task.make_metrics()
    task.evaluation_step(_FixedDisparity(disp), {"image": torch.rand(1, 3, 1, 2), "depth": gt}, metrics)
    got = metrics.compute()["depth/abs_rel"]
    assert got == pytest.approx(float(((expected_depth - 2.0).abs() / 2.0).mean()), rel=1e-6)
    # resizing the depth instead gives another number
    depth_first = torch.nn.functional.interpolate(1 / scaled.view(1, 1, 1, 2), size=(1, 4), mode="bilinear")
    assert float(((depth_first - 2.0).abs() / 2.0).mean()) != pytest.approx(got, rel=1e-3)


def test_eval_protocol_and_input_size():
    task = SelfSupervisedDepth(mode="S", eval_protocol="kitti_eigen_stereo", eval_input_size=[64, 96])
    assert task.metric_kwargs["pred_scale"] == 5.4 and task.metric_kwargs["crop"] == "garg"
    assert not task.median_scaling
    model = _FixedDisparity(torch.full((1, 1, 64, 96), 0.5))
    metrics = task.make_metrics()
    gt = torch.full((1, 1, 120, 400), 10.0)
    task.evaluation_step(model, {"image": torch.rand(1, 3, 120, 400), "depth": gt}, metrics)
    assert model.seen == (64, 96)
    depth = 1 / (0.01 + (10 - 0.01) * 0.5)  # constant disparity resizes to itself
    assert metrics.compute()["depth/abs_rel"] == pytest.approx(abs(5.4 * depth - 10.0) / 10.0, rel=1e-6)
    with pytest.raises(ConfigError, match="eval_protocol"):
        SelfSupervisedDepth(eval_protocol="kitti")
    with pytest.raises(ConfigError, match="eval_input_size"):
        SelfSupervisedDepth(eval_input_size=[192])

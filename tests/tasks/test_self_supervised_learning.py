"""Self-supervised training actually learns depth on synthetic scenes (mode S with both Freq-aware depth methods on;
mode M with the pose network on the forward-motion video).

A slim Monodepth2 is fitted to a few stereo pairs for 150 Adam steps from the photometric loss alone (no depth
labels). The photometric loss must fall and the metric depth (mode S: the known stereo baseline fixes the scale, no
median scaling) must get clearly closer to the ground truth than at initialisation. ``min_depth=0.5`` suits the
indoor synthetic scenes (median depth ~4 m): with Monodepth2's KITTI value 0.1 the untrained network predicts
~0.2 m, a stereo disparity of tens of pixels at this resolution, and 150 steps are not enough to escape it.
"""

from __future__ import annotations

import pytest
import torch

from freqdense.config.schema import OptimConfig
from freqdense.data.synthetic import synthetic
from freqdense.engine.optim import build_optimizer
from freqdense.metrics import DepthMetrics
from freqdense.models import create_model
from freqdense.tasks import SelfSupervisedDepth

pytestmark = pytest.mark.slow

SIZE = (64, 96)
STEPS = 150


@pytest.fixture(scope="module")
def batch():
    ds = synthetic(split="train", size=SIZE, num_samples=8, modalities=["image", "depth", "stereo"], cache=False)
    return torch.utils.data.default_collate([ds[i] for i in range(8)])


def _abs_rel(model, batch) -> float:
    metric = DepthMetrics(min_depth=1e-3, max_depth=20.0, aggregation="image")
    model.eval()
    with torch.no_grad():
        metric.update(model(batch["image"])["depth"], batch["depth"])
    model.train()
    return metric.compute()["abs_rel"]


def test_stereo_photometric_training_lowers_loss_and_depth_error(batch):
    torch.manual_seed(0)
    model = create_model("monodepth", backbone_kwargs={"base_width": 16}, pose=False, min_depth=0.5, max_depth=20.0)
    task = SelfSupervisedDepth(mode="S", min_depth=0.5, max_depth=20.0, auto_blur=True, ambiguity_mask="hard")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    before = _abs_rel(model, batch)
    losses = []
    for _ in range(STEPS):
        out = task.training_step(model, batch)
        optimizer.zero_grad()
        out["total"].backward()
        optimizer.step()
        losses.append(float(out["photometric"]))
    after = _abs_rel(model, batch)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    assert after < 0.6 * before, (before, after)


@pytest.fixture(scope="module")
def video_batch():
    ds = synthetic(
        split="train",
        size=SIZE,
        num_samples=8,
        modalities=["image", "depth", "temporal"],
        camera_motion="forward",
        cache=False,
    )
    return torch.utils.data.default_collate([ds[i] for i in range(8)])


def _median_scaled_abs_rel(depth, batch) -> float:
    metric = DepthMetrics(min_depth=1e-3, max_depth=20.0, aggregation="image", median_scaling=True)
    metric.update(depth, batch["depth"])
    return metric.compute()["abs_rel"]


def test_monocular_training_with_the_pose_network_beats_a_constant_depth(video_batch):
    # Mode M, the paper's main setting: depth and pose networks learn from frames t-1, t, t+1 of the forward camera
    # path alone. After median scaling a constant depth scores sum |median(gt) - gt| / gt per image; the network
    # must do clearly better (it starts no better than a constant: its untrained output is nearly flat).
    # From scratch the pose network starts at the identity (pose_init="zero") and learns at 10x Monodepth2's 1e-4,
    # as the shipped mode-M configs; seeds 0-3 of this fit reached 0.53-0.61 of the constant's AbsRel.
    torch.manual_seed(0)
    model = create_model(
        "monodepth", backbone_kwargs={"base_width": 16}, pose=True, min_depth=0.1, max_depth=20.0, pose_init="zero"
    )
    task = SelfSupervisedDepth(mode="M", min_depth=0.1, max_depth=20.0)
    optimizer = build_optimizer(
        OptimConfig(name="adam", lr=1e-4, weight_decay=0.0, lr_mult={"pose_encoder": 10.0, "pose_decoder": 10.0}),
        model,
    )
    constant = _median_scaled_abs_rel(torch.ones_like(video_batch["depth"]), video_batch)
    for _ in range(STEPS):
        out = task.training_step(model, video_batch)
        optimizer.zero_grad()
        out["total"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        learned = _median_scaled_abs_rel(model(video_batch["image"])["depth"], video_batch)
    assert learned < 0.85 * constant, (constant, learned)

"""Monodepth2's colour augmentation: the networks see jittered frames, the photometric loss the raw ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqdense.data.transforms import jitter_color
from freqdense.errors import ConfigError
from freqdense.tasks import SelfSupervisedDepth
from freqdense.tasks.self_supervised_depth import MONODEPTH2_COLOR_AUG


class _Recorder(nn.Module):
    """A stand-in Monodepth2: constant disparity, identity-ish poses; records what it was given."""

    min_depth, max_depth = 0.1, 20.0

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.seen = {}

    def forward(self, image, pose_pairs=None):
        self.seen["image"] = image.clone()
        out = {f"disp:{s}": torch.sigmoid(self.bias).expand(image.shape[0], 1, 8 >> s, 12 >> s) for s in range(4)}
        for name, (a, b, _) in (pose_pairs or {}).items():
            self.seen[name] = (a.clone(), b.clone())
            pose = torch.eye(4).repeat(image.shape[0], 1, 1)
            pose[:, 0, 3] = 0.05 + self.bias
            out[f"pose_{name}"] = pose
        return out


def _batch():
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[10.0, 0.0, 5.5], [0.0, 10.0, 3.5], [0.0, 0.0, 1.0]]).repeat(2, 1, 1)
    frames = {k: torch.rand(2, 3, 8, 12, generator=g) * 0.6 + 0.2 for k in ("image", "image_prev", "image_next")}
    poses = {k: torch.eye(4).repeat(2, 1, 1) for k in ("pose_prev", "pose_next")}
    return {**frames, **poses, "intrinsics": K}


def test_network_sees_jittered_frames_and_loss_sees_raw_ones(monkeypatch):
    batch = _batch()
    task = SelfSupervisedDepth(mode="M", scales=(0,), min_depth=0.1, max_depth=20.0, color_aug={"p": 1.0})
    seen_by_loss = {}
    original = task.compute_losses

    def spy(b, *args, **kwargs):
        seen_by_loss.update({k: b[k].clone() for k in ("image", "image_prev", "image_next")})
        return original(b, *args, **kwargs)

    monkeypatch.setattr(task, "compute_losses", spy)
    model = _Recorder()
    torch.manual_seed(3)
    out = task.training_step(model, batch)
    # the loss got the raw frames
    for k in ("image", "image_prev", "image_next"):
        assert torch.equal(seen_by_loss[k], batch[k])
    # the networks got jittered ones, and the same jitter for every frame of one sample
    net_image, (net_prev, _), (_, net_next) = model.seen["image"], model.seen["prev"], model.seen["next"]
    assert not torch.allclose(net_image, batch["image"])
    torch.manual_seed(3)
    for i in range(2):
        draw = torch.rand(8, dtype=torch.float64).tolist()
        order = torch.randperm(4).tolist()
        f = {n: 1.0 + 0.2 * (2 * u - 1) for n, u in zip(("brightness", "contrast", "saturation"), draw[1:4])}
        ref = jitter_color(
            {k: batch[k][i] for k in ("image", "image_prev", "image_next")},
            hue=0.1 * (2 * draw[4] - 1),
            order=order,
            **f,
        )
        torch.testing.assert_close(net_image[i], ref["image"])
        torch.testing.assert_close(net_prev[i], ref["image_prev"])
        torch.testing.assert_close(net_next[i], ref["image_next"])
    # the loss of the jittered step equals the loss of the raw batch with the same predictions
    disp = {0: torch.full((2, 1, 8, 12), 0.5)}
    poses = {n: torch.eye(4).repeat(2, 1, 1) for n in ("prev", "next")}
    for p in poses.values():
        p[:, 0, 3] = 0.05
    reference = original(batch, disp, poses)
    torch.testing.assert_close(out["total"], reference["total"])


def test_color_aug_off_passes_the_batch_frames_through():
    batch = _batch()
    task = SelfSupervisedDepth(mode="M", scales=(0,), min_depth=0.1, max_depth=20.0)
    model = _Recorder()
    task.training_step(model, batch)
    assert torch.equal(model.seen["image"], batch["image"])
    assert torch.equal(model.seen["prev"][0], batch["image_prev"])


def test_color_aug_defaults_are_monodepth2s_and_bad_options_are_named():
    assert MONODEPTH2_COLOR_AUG == {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1, "p": 0.5}
    assert SelfSupervisedDepth(color_aug=True).color_aug == MONODEPTH2_COLOR_AUG
    with pytest.raises(ConfigError, match="color_aug has unknown key"):
        SelfSupervisedDepth(color_aug={"gamma": 0.1})
    with pytest.raises(ConfigError, match="color_aug.hue"):
        SelfSupervisedDepth(color_aug={"hue": 0.7})

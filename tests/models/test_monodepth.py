"""Monodepth2 networks: shapes, depth range, rigid poses, gradients, released-checkpoint key layouts."""

from __future__ import annotations

import math

import pytest
import torch

from freqdense.errors import CheckpointError
from freqdense.models import create_model
from freqdense.models.monodepth import (
    DepthDecoder,
    PoseDecoder,
    load_monodepth2_weights,
    monodepth2_state_dicts,
    transformation_from_parameters,
)


def small(**kw):
    torch.manual_seed(0)
    return create_model("monodepth", backbone_kwargs={"base_width": 8}, **kw).eval()


def test_output_shapes_and_keys():
    model = small()
    out = model(torch.rand(2, 3, 64, 96))
    assert out["depth"].shape == (2, 1, 64, 96)
    for s in range(4):
        assert out[f"disp:{s}"].shape == (2, 1, 64 >> s, 96 >> s)
    assert not any(k.startswith("depth:") for k in out)  # no "auxiliary depth" for the generic depth task


def test_depth_decoder_parameter_count_matches_monodepth2():
    # 3,152,724 parameters for ResNet-18 encoder channels (docs/reference_code.md#monodepth2-networks, counted on the
    # reference DepthDecoder).
    assert sum(p.numel() for p in DepthDecoder([64, 64, 128, 256, 512]).parameters()) == 3_152_724


@pytest.mark.parametrize("bias", [-50.0, 50.0])
def test_depth_stays_in_min_max_even_for_saturated_disparity(bias):
    model = small(min_depth=0.1, max_depth=100.0)
    with torch.no_grad():
        model.depth_decoder.decoder[10].conv.bias.fill_(bias)
    depth = model(torch.rand(1, 3, 64, 64))["depth"]
    expected = 0.1 if bias > 0 else 100.0  # sigmoid -> 1: depth = min_depth; -> 0: max_depth
    assert torch.allclose(depth, torch.full_like(depth, expected), rtol=1e-4)


def test_transformation_matches_rotation_about_z_closed_form():
    theta = 0.3
    T = transformation_from_parameters(torch.tensor([[0.0, 0.0, theta]]), torch.tensor([[1.0, 2.0, 3.0]]))
    c, s = math.cos(theta), math.sin(theta)
    expected = torch.tensor([[c, -s, 0, 1.0], [s, c, 0, 2.0], [0, 0, 1, 3.0], [0, 0, 0, 1]])
    assert torch.allclose(T[0], expected, atol=1e-6)


def test_predicted_pose_is_rigid_and_invert_is_the_inverse():
    model = small()
    with torch.no_grad():  # make the rotation non-trivial
        model.pose_decoder.net[3].bias.normal_(0, 20.0)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    T = model.pose(a, b)
    R = T[:, :3, :3]
    assert T.shape == (2, 4, 4)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2), atol=1e-5)
    assert torch.equal(T[:, 3], torch.tensor([[0.0, 0, 0, 1]]).expand(2, 4))
    assert torch.allclose(model.pose(a, b, invert=True) @ T, torch.eye(4).expand(2, 4, 4), atol=1e-5)
    assert R.sub(torch.eye(3)).abs().max() > 1e-3


def test_every_parameter_gets_a_gradient():
    model = small().train()
    x = torch.rand(2, 3, 64, 64)
    out = model(x, pose_pairs={"next": (x, x.flip(0), False)})
    loss = sum(out[f"disp:{s}"].mean() for s in range(4)) + out["pose_next"][:, :3].sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


# ------------------------------------------------------------------------------------------ released checkpoints
def reference_layout_keys(model):
    """Key sets of Monodepth2's files, written from docs/reference_code.md#monodepth2-networks, independent of
    monodepth2_state_dicts."""
    depth = {f"decoder.{i}.conv.conv.{p}" for i in range(10) for p in ("weight", "bias")}
    depth |= {f"decoder.{i}.conv.{p}" for i in range(10, 14) for p in ("weight", "bias")}
    pose = {f"net.{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    encoder = {"encoder." + k for k in model.backbone.state_dict()}
    assert "encoder.conv1.weight" in encoder and "encoder.layer4.1.bn2.running_var" in encoder
    return encoder, depth, pose


def test_state_dict_layout_matches_monodepth2(tmp_path):
    model = small()
    encoder, depth, pose = reference_layout_keys(model)
    dicts = monodepth2_state_dicts(model)
    assert set(dicts["depth"]) == depth
    assert set(dicts["pose"]) == pose
    assert set(dicts["encoder"]) == encoder | {"height", "width", "use_stereo"}
    assert dicts["pose_encoder"]["encoder.conv1.weight"].shape[1] == 6
    assert dicts["pose"]["net.3.weight"].shape[0] == 12  # 6 values x 2 frames, as Monodepth2 builds it


def test_weights_written_in_reference_layout_load_and_reproduce_outputs(tmp_path):
    source, target = small(), small()
    torch.manual_seed(1)
    for p in source.parameters():  # differ from target's init
        p.data.normal_(0, 0.05)
    for stem, state in monodepth2_state_dicts(source, height=64, width=64).items():
        if stem == "encoder":  # Monodepth2 also stores the unused classifier
            state["encoder.fc.weight"] = torch.zeros(1000, 512)
            state["encoder.fc.bias"] = torch.zeros(1000)
        torch.save(state, tmp_path / f"{stem}.pth")
    assert load_monodepth2_weights(target, tmp_path) == ["encoder", "depth", "pose_encoder", "pose"]
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x)["depth"], target(x)["depth"])
        assert torch.equal(source.pose(x, y), target.pose(x, y))


def test_mismatched_checkpoint_is_named(tmp_path):
    wide = create_model("monodepth", backbone_kwargs={"base_width": 16})
    for stem, state in monodepth2_state_dicts(wide).items():
        torch.save(state, tmp_path / f"{stem}.pth")
    with pytest.raises(CheckpointError, match="encoder.pth does not fit"):
        load_monodepth2_weights(small(), tmp_path)
    with pytest.raises(CheckpointError, match="lack depth.pth"):
        load_monodepth2_weights(small(), {"encoder": tmp_path / "encoder.pth"})


def test_pose_decoder_scales_output_by_0_01():
    dec = PoseDecoder([8, 8, 16, 32, 64])
    with torch.no_grad():
        for conv in dec.net:
            conv.weight.zero_()
            conv.bias.zero_()
        dec.net[3].bias.copy_(torch.arange(12.0))
    axisangle, translation = dec([[torch.zeros(1, 64, 2, 2)]])
    assert torch.allclose(axisangle[0, 0, 0], torch.tensor([0.0, 0.01, 0.02]))
    assert torch.allclose(translation[0, 1, 0], torch.tensor([0.09, 0.10, 0.11]))


def test_zero_pose_init_starts_at_the_identity_and_then_trains_everything():
    # pose_init="zero": the last conv is zero, so every predicted pose is exactly the identity; its gradient is not
    # zero, and after one step the layers before it get gradients too.
    model = small(pose_init="zero").train()
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert torch.equal(model.pose(a, b), torch.eye(4).expand(2, 4, 4))
    assert torch.equal(model.pose(a, b, invert=True), torch.eye(4).expand(2, 4, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model.pose(a, b)[:, :3, 3].sum().backward()
        optimizer.step()
    pose_params = [(n, p) for n, p in model.named_parameters() if n.startswith(("pose_encoder.", "pose_decoder."))]
    missing = [n for n, p in pose_params if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert not torch.equal(model.pose(a, b), torch.eye(4).expand(2, 4, 4))
    # the default keeps Monodepth2's (PyTorch's) initialisation of that conv
    assert small().pose_decoder.net[3].weight.abs().sum() > 0

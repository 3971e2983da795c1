"""FAFNet flow vs. the true misalignment: the sign/unit derivation on constructed shifts, EPEs by hand, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from freqdense.analysis.flow_alignment import (
    alignment_markdown,
    compute_flow_alignment,
    displacement_at_stride,
    end_point_error,
    stage_features,
    true_displacement,
    write_alignment_panels,
)
from freqdense.errors import ConfigError, DataError
from freqdense.nn import flow_warp
from freqdense.nn.rgbd_fuse import pixels_to_flow

H, W = 24, 32


def _const_flow(fx: float, fy: float, h: int = H, w: int = W) -> torch.Tensor:
    f = torch.zeros(1, 2, h, w)
    f[:, 0], f[:, 1] = fx, fy
    return f


def _misaligned(aligned: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """sensor[y, x] = aligned[y + ty, x + tx] (sample.py: sensor pixel (x, y) images RGB's (x + f_x, y + f_y))."""
    out = torch.zeros_like(aligned)
    h, w = aligned.shape[-2:]
    ys, xs = slice(max(0, -ty), min(h, h - ty)), slice(max(0, -tx), min(w, w - tx))
    ys_src, xs_src = slice(ys.start + ty, ys.stop + ty), slice(xs.start + tx, xs.stop + tx)
    out[..., ys, xs] = aligned[..., ys_src, xs_src]
    return out


@pytest.mark.parametrize("align_corners", [True, False])
def test_depth_to_rgb_displacement_undoes_an_integer_shift(align_corners):
    aligned = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0)) + 1.0  # what RGB sees
    tx, ty = 2, -1
    sensor = _misaligned(aligned, tx, ty)
    d = true_displacement(_const_flow(tx, ty))
    torch.testing.assert_close(d[0, :, 5, 5], torch.tensor([-2.0, 1.0]))  # sample the depth 2 left, 1 down
    warped = flow_warp(sensor, pixels_to_flow(d, align_corners=align_corners), align_corners=align_corners)
    # valid where the source pixel (x - 2, y + 1) of the misaligned map holds data: x >= 2, y <= H - 2
    torch.testing.assert_close(warped[..., : H - 1, 2:], aligned[..., : H - 1, 2:], atol=1e-5, rtol=0)
    # The opposite sign would double the misalignment instead:
    wrong = flow_warp(sensor, pixels_to_flow(-d, align_corners=True), align_corners=True)
    assert (wrong[..., 2 : H - 2, 4:-4] - aligned[..., 2 : H - 2, 4:-4]).abs().mean() > 0.1


def test_rgb_to_depth_displacement_is_plus_f():
    aligned = torch.rand(1, 2, H, W, generator=torch.Generator().manual_seed(1))
    tx, ty = -3, 2
    sensor = _misaligned(aligned, tx, ty)
    warped_rgb = flow_warp(aligned, pixels_to_flow(_const_flow(tx, ty)), align_corners=True)
    torch.testing.assert_close(warped_rgb[..., : H - 2, 3:], sensor[..., : H - 2, 3:], atol=1e-5, rtol=0)


def test_feature_grid_shift_at_stride_four():
    """A shift of (8, 4) image px is (2, 1) feature px at stride 4; the feature pixel k sits at image pixel 4 k."""
    s, tx, ty = 4, 8, 4
    aligned = torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(2))
    sensor = _misaligned(aligned, tx, ty)
    feat_aligned, feat_sensor = aligned[..., ::s, ::s], sensor[..., ::s, ::s]  # ResNet centres: (s i, s j)
    d = displacement_at_stride(true_displacement(_const_flow(tx, ty, 64, 96)), feat_sensor.shape[-2:], s)
    torch.testing.assert_close(d[0, :, 3, 3], torch.tensor([-2.0, -1.0]))
    warped = flow_warp(feat_sensor, pixels_to_flow(d), align_corners=True)
    torch.testing.assert_close(warped[..., 1:, 2:], feat_aligned[..., 1:, 2:], atol=1e-5, rtol=0)


def test_displacement_at_stride_samples_feature_centres():
    f = torch.zeros(1, 2, 32, 48)
    f[:, 0] = 0.1 * torch.arange(48.0)  # f_x = 0.1 x image px
    f[:, 1] = 0.05 * torch.arange(32.0).view(32, 1)
    d = displacement_at_stride(f, (8, 12), 4.0)
    # sampled at x = 4 j, divided by 4: 0.1 j; y: 0.05 i
    torch.testing.assert_close(d[0, 0, 0], 0.1 * torch.arange(12.0))
    torch.testing.assert_close(d[0, 1, :, 0], 0.05 * torch.arange(8.0))


def test_true_displacement_inverts_an_affine_misalignment():
    # f(p) = A p + t; the aligning displacement solves p + d + f(p + d) = p: d = (I + A)^-1 (p - t) - p
    a = torch.tensor([[0.02, -0.015], [0.01, 0.03]], dtype=torch.float64)
    t = torch.tensor([1.5, -2.0], dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    p = torch.stack([xs, ys])  # (2, H, W)
    f = (torch.einsum("ij,jhw->ihw", a, p) + t.view(2, 1, 1))[None].float()
    expected = torch.einsum("ij,jhw->ihw", torch.linalg.inv(torch.eye(2, dtype=torch.float64) + a), p - t.view(2, 1, 1))
    expected = (expected - p).float()
    got = true_displacement(f)[0]
    inner = (slice(None), slice(3, H - 3), slice(3, W - 3))  # p + d stays inside the map
    torch.testing.assert_close(got[inner], expected[inner], atol=1e-4, rtol=0)
    # first order alone (-f) is off by about |A f|
    assert (-f[0][inner] - expected[inner]).abs().max() > 0.03


def test_end_point_error():
    pred, target = torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)
    target[:, 0], target[:, 1] = 3.0, 4.0
    torch.testing.assert_close(end_point_error(pred, target), torch.full((1, 2, 2), 5.0))


class _PassThrough(nn.Module):
    align_corners = True

    def forward(self, rgb, depth):
        return rgb, depth


class ConstantFlowNet(nn.Module):
    """FAFNet-like stand-in: one fusion stage of stride 4 whose depth->RGB flow is a constant displacement."""

    def __init__(self, displacement: tuple[float, float]) -> None:
        super().__init__()
        self.fusions = nn.ModuleList([_PassThrough()])
        self.displacement = displacement

    def forward(self, image, depth, return_flows=False):
        b, _, h, w = image.shape
        d = torch.zeros(b, 2, h // 4, w // 4)
        d[:, 0], d[:, 1] = self.displacement
        self.fusions[0](image, depth)
        out = {"semantic": torch.zeros(b, 2, h, w)}
        return (out, {"fuse1": pixels_to_flow(d), "decoder1": torch.ones(b, 2, h, w)}) if return_flows else out


def _samples(flows: list[tuple[float, float]], h: int = 32, w: int = 48) -> list[dict]:
    out = []
    for i, (fx, fy) in enumerate(flows):
        out.append(
            {
                "image": torch.rand(3, h, w),
                "hha": torch.rand(3, h, w),
                "sensor_depth": torch.rand(1, h, w) + 1,
                "sensor_flow": _const_flow(fx, fy, h, w)[0],
                "meta": {"id": f"s{i}"},
            }
        )
    return out


def test_epe_against_hand_values():
    # stride 4: f = (4, -2) -> true (-1, 0.5) feature px; f = (8, 0) -> (-2, 0). Learned: (-1, 0.5) everywhere.
    data = _samples([(4.0, -2.0), (8.0, 0.0)])
    result = compute_flow_alignment(ConstantFlowNet((-1.0, 0.5)), data, batch_size=2)
    (row,) = result["rows"]  # decoder flows are not compared
    assert row["key"] == "fuse1" and row["stride"] == 4 and row["grid"] == [8, 12]
    epe = [0.0, (1.0**2 + 0.5**2) ** 0.5]
    zero = [(1.0**2 + 0.5**2) ** 0.5, 2.0]
    assert row["epe"] == pytest.approx(sum(epe) / 2, abs=1e-5)
    assert row["epe_zero"] == pytest.approx(sum(zero) / 2, abs=1e-5)
    assert row["epe_image_px"] == pytest.approx(4 * sum(epe) / 2, abs=1e-4)
    assert row["improved_fraction"] == 1.0
    assert row["mean_true"] == pytest.approx([-1.5, 0.25], abs=1e-5)
    assert row["mean_learned"] == pytest.approx([-1.0, 0.5], abs=1e-5)
    # cosine of the fields: 1 for the first image, cos((-1, .5), (-2, 0)) = 2 / (1.118 * 2) for the second
    assert row["cosine"] == pytest.approx((1.0 + 2.0 / (5**0.5 / 2 * 2.0)) / 2, abs=1e-5)
    # Pearson r of the per-image means, x and y pooled (numpy as the reference)
    r = np.corrcoef([-1.0, 0.5, -1.0, 0.5], [-1.0, 0.5, -2.0, 0.0])[0, 1]
    assert row["shift_correlation"] == pytest.approx(r, abs=1e-5)
    assert "| fuse1 | depth_to_rgb | 4 |" in alignment_markdown(result)


def test_missing_truth_or_flows_are_clear_errors():
    data = _samples([(1.0, 0.0)])
    del data[0]["sensor_flow"]
    with pytest.raises(DataError, match="sensor_flow"):
        compute_flow_alignment(ConstantFlowNet((0.0, 0.0)), data)

    class NoFlows(ConstantFlowNet):
        def forward(self, image, depth, return_flows=False):
            out = super().forward(image, depth, return_flows)
            return (out[0], {}) if return_flows else out

    with pytest.raises(ConfigError, match="no RGBDFuse flows"):
        compute_flow_alignment(NoFlows((0.0, 0.0)), _samples([(1.0, 0.0)]))


def _tiny_fafnet():
    from freqdense.models import create_model
    from freqdense.models import fafnet as _fafnet  # noqa: F401  (registers fafnet)

    torch.manual_seed(0)
    return create_model(
        "fafnet", num_classes=3, backbone="resnet18", depth_channels=3, backbone_kwargs={"base_width": 4}
    ).eval()


def test_real_fafnet_rows_features_and_panels(tmp_path):
    model = _tiny_fafnet()
    data = _samples([(4.0, -2.0)], h=64, w=64)
    result = compute_flow_alignment(model, data)
    keys = [r["key"] for r in result["rows"]]
    assert keys[:2] == ["fuse1", "fuse1:rgb_to_depth"] and len(keys) == 8
    assert [r["stride"] for r in result["rows"][::2]] == [4, 8, 16, 16]  # output stride 16: layer4 dilated
    rgb_to_depth = result["rows"][1]
    assert rgb_to_depth["mean_true"] == pytest.approx([1.0, -0.5], abs=1e-5)  # +f / 4
    feats = stage_features(model, [data[0]["image"][None], data[0]["hha"][None]], stage=1)
    assert feats["depth_before"].shape == feats["depth_after"].shape == feats["rgb"].shape
    assert not torch.equal(feats["depth_before"], feats["depth_after"])  # the random-init flow moves it
    expected = flow_warp(feats["depth_before"], feats["flow"], align_corners=True)
    torch.testing.assert_close(feats["depth_after"], expected)
    paths = write_alignment_panels(model, data, tmp_path, indices=[0])
    assert paths[0].name == "alignment_s0_fuse1.png" and paths[0].stat().st_size > 1000


def test_cli_alignment_writes_json_markdown_and_panels(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from freqdense.cli import analyze_cmd
    from freqdense.cli.main import main

    model = ConstantFlowNet((-1.0, 0.5))
    cfg = SimpleNamespace(
        task=SimpleNamespace(inputs=["image", "hha"]),
        data=SimpleNamespace(val_split="val", args={"misalignment": 4.0}),
        model=SimpleNamespace(name="stand_in", kwargs={}),
    )
    data = _samples([(4.0, -2.0), (8.0, 0.0)])
    monkeypatch.setattr(analyze_cmd, "_load_run", lambda args: (model, data, cfg, torch.device("cpu")))
    monkeypatch.setattr(
        "freqdense.analysis.flow_alignment.write_alignment_panels",
        lambda *a, **k: [],
    )
    out = tmp_path / "align"
    assert main(["analyze", "alignment", "runs/x", "--out", str(out), "--batch-size", "2"]) == 0
    saved = json.loads((out / "alignment.json").read_text())
    assert saved["rows"][0]["epe"] == pytest.approx(0.5590, abs=1e-3)
    assert saved["dataset_args"] == {"misalignment": 4.0}
    assert (out / "alignment.md").read_text().startswith("## RGBDFuse flow")
    assert "| fuse1 |" in capsys.readouterr().out

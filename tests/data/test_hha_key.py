"""The ``hha`` sample key: geometric transforms move it like an image, colour jitter never touches it; ComputeHHA."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from freqdense.data import create_dataset
from freqdense.data import transforms as T
from freqdense.data.transforms import (
    ColorJitter,
    ComputeHHA,
    build_transforms,
    center_zoom,
    compute_hha,
    crop,
    hflip,
    jitter_color,
    resize,
)
from freqdense.errors import ConfigError, DataError

H, W = 7, 11  # odd on purpose


def rgbd_sample(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 3.0 * torch.rand(1, H, W, generator=g)
    depth[0, 2, 3] = 0.0
    return {
        "image": torch.rand(3, H, W, generator=g),
        "hha": torch.rand(3, H, W, generator=g),
        "depth": depth,
        "depth_valid": depth > 0,
        "semantic": torch.randint(0, 5, (H, W), generator=g),
        "intrinsics": torch.tensor([[20.0, 0.0, 5.0], [0.0, 20.0, 3.0], [0.0, 0.0, 1.0]]),
    }


def test_hflip_flips_every_hha_channel_spatially_and_is_an_involution() -> None:
    s = rgbd_sample()
    out = hflip(s)
    for c in range(3):
        assert torch.equal(out["hha"][c], s["hha"][c][:, [W - 1 - x for x in range(W)]])
    assert torch.equal(hflip(out)["hha"], s["hha"])
    assert torch.equal(out["image"], s["image"].flip(-1))  # still aligned with the image


def test_crop_moves_hha_with_the_image_and_pads_with_zero() -> None:
    s = rgbd_sample()
    out = crop(s, 2, 3, 4, 5)
    assert torch.equal(out["hha"], s["hha"][:, 2:6, 3:8])
    padded = crop(s, -1, W - 2, 3, 4)  # one row above, two columns past the right edge
    assert padded["hha"].shape == (3, 3, 4)
    assert torch.equal(padded["hha"][:, 1:, :2], s["hha"][:, :2, W - 2 :])
    assert float(padded["hha"][:, 0].abs().sum()) == 0.0 and float(padded["hha"][:, :, 2:].abs().sum()) == 0.0


def test_resize_treats_hha_as_an_image() -> None:
    # Bilinear, align_corners=False, 2 -> 4 columns: centres map to x = -0.25, 0.25, 0.75, 1.25 -> clamp:
    # values [0, 1] become [0, 0.25, 0.75, 1] (hand computed).
    s = {"hha": torch.tensor([0.0, 1.0]).view(1, 1, 2).expand(3, 1, 2).clone()}
    out = resize(s, (1, 4))
    assert torch.allclose(out["hha"], torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(3, 1, 4), atol=1e-6)
    # Same interpolation as the image, including the antialiased shrink.
    s = rgbd_sample()
    s["hha"] = s["image"].clone()
    for size in ((13, 20), (4, 5)):
        out = resize(s, size)
        assert torch.equal(out["hha"], out["image"])
        assert out["depth"].shape[-2:] == size


def test_photometric_jitter_leaves_hha_unchanged() -> None:
    s = rgbd_sample()
    out = jitter_color(s, brightness=1.5, contrast=0.5, saturation=0.3, hue=0.2)
    assert not torch.equal(out["image"], s["image"])
    assert torch.equal(out["hha"], s["hha"])
    out = ColorJitter(0.8, 0.8, 0.8, 0.4)(s, np.random.default_rng(0))
    assert torch.equal(out["hha"], s["hha"])


def test_center_zoom_with_divided_depth_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    T._WARNED_ONCE.discard("center_zoom_hha")
    with caplog.at_level(logging.WARNING, logger="freqdense.data.transforms"):
        center_zoom(rgbd_sample(), 1.5)
        center_zoom(rgbd_sample(), 1.5)
        out = center_zoom(rgbd_sample(), 1.5, divide_depth=False)
    assert sum("ComputeHHA" in r.message for r in caplog.records) == 1
    assert out["hha"].shape == (3, H, W)


def test_compute_hha_disparity_channel_matches_the_closed_form() -> None:
    s = rgbd_sample()
    out = compute_hha(s, depth_key="depth")
    hha = out["hha"]
    assert hha.shape == (3, H, W) and hha.dtype == torch.float32
    assert float(hha.min()) >= 0.0 and float(hha.max()) <= 1.0
    assert torch.equal(hha * 255, (hha * 255).round())  # 8-bit levels like cached PNGs
    z = s["depth"][0].double().numpy()
    # Gupta et al.: 31000 / Z_cm with Z >= 1 m, rounded, clipped to 8 bits (saturates below 1.216 m)
    expected = np.minimum(np.rint(31000.0 / np.maximum(z * 100.0, 100.0)), 255.0) / 255.0
    valid = z > 0
    assert np.allclose(hha[0].double().numpy()[valid], expected[valid], atol=1e-6)
    assert float(hha[:, ~torch.from_numpy(valid)].abs().sum()) == 0.0  # invalid depth -> all channels 0
    assert s.get("hha") is not out["hha"]  # the input is not modified
    unrounded = compute_hha(s, depth_key="depth", quantize=False)["hha"]
    assert float((unrounded - hha).abs().max()) <= 0.5 / 255 + 1e-6


def test_compute_hha_errors() -> None:
    s = rgbd_sample()
    with pytest.raises(DataError, match="sensor_depth"):
        compute_hha(s, depth_key="sensor_depth")
    with pytest.raises(DataError, match="intrinsics"):
        compute_hha({k: v for k, v in s.items() if k != "intrinsics"})
    with pytest.raises(ConfigError, match="depth_key"):
        ComputeHHA(depth_key="disparity")


def test_compute_hha_on_a_synthetic_sample_uses_sensor_depth_and_commutes_with_flip() -> None:
    ds = create_dataset(
        "synthetic", split="train", size=(64, 96), modalities=["image", "semantic", "sensor"], num_samples=2
    )
    s = ds[0]
    assert "hha" not in s and "sensor_depth" in s
    out = ComputeHHA()(s)  # "auto" -> sensor_depth
    assert torch.equal(out["hha"], compute_hha(s, depth_key="sensor_depth")["hha"])
    z = s["sensor_depth"][0].double()
    holes = z <= 0
    assert torch.equal(out["hha"][:, holes], torch.zeros(3, int(holes.sum())))
    expected = torch.round(31000.0 / torch.clamp(z * 100.0, min=100.0)).clamp(max=255.0) / 255.0
    assert torch.allclose(out["hha"][0][~holes].double(), expected[~holes], atol=1e-6)
    # The encoding of a mirrored scene is the mirrored encoding (disparity, height and angle are mirror-invariant);
    # rounding to 8 bits may flip a level where a value sits at .5.
    diff = (compute_hha(hflip(s))["hha"] - hflip(out)["hha"]).abs() * 255
    assert float(diff.max()) <= 1.0 + 1e-4 and float((diff > 0.5).float().mean()) < 0.01


def test_build_transforms_hha_key_runs_first_in_train_and_eval() -> None:
    pipe = build_transforms({"hha": True, "hflip": 1.0, "color_jitter": 0.5, "crop": [5, 6]}, train=True)
    names = [type(t).__name__ for t in pipe.transforms]
    assert names[0] == "ComputeHHA" and pipe.transforms[0].depth_key == "auto"
    (only,) = build_transforms({"hha": {"depth_key": "depth", "quantize": False}}, train=False).transforms
    assert isinstance(only, ComputeHHA) and only.depth_key == "depth" and only.quantize is False
    assert build_transforms({"hha": "sensor_depth"}, train=True).transforms[0].depth_key == "sensor_depth"
    assert build_transforms({"hha": False}, train=True).transforms == []
    with pytest.raises(ConfigError, match="hha"):
        build_transforms({"hha": "raw"}, train=True)
    with pytest.raises(ConfigError, match="depth_kye"):
        build_transforms({"hha": {"depth_kye": "depth"}}, train=True)
    # End to end: the computed hha is flipped and cropped with the image, but not jittered.
    s = rgbd_sample()
    s.pop("hha")
    out = pipe(s, rng=np.random.default_rng(1))
    ref = compute_hha(s, depth_key="depth")["hha"].flip(-1)
    assert out["hha"].shape == (3, 5, 6)
    assert any(torch.equal(out["hha"], ref[:, t : t + 5, x : x + 6]) for t in range(H - 4) for x in range(W - 5))

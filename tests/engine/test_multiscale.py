"""Multi-scale + flip inference: identities, hand-computed averages, per-key input resampling, evaluate/config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from freqdense.config import build_config
from freqdense.engine.evaluate import evaluate
from freqdense.engine.multiscale import MultiScaleFlip, check_tta, is_single_pass
from freqdense.errors import ConfigError, ShapeError
from freqdense.tasks import SemanticSegmentation, Task


class PixelwiseSeg(nn.Module):
    """1x1 convs on image and depth: equivariant to flips (and to nearest resizing of both inputs)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.rgb = nn.Conv2d(3, 4, 1)
        self.depth = nn.Conv2d(1, 4, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, image, depth):
        return {"semantic": self.rgb(image) + self.depth(depth), "depth": depth * 2.0, "aux": torch.zeros(3)}


def _inputs(h=6, w=8):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, h, w, generator=gen), torch.rand(2, 1, h, w, generator=gen) * 5


def test_single_scale_without_flip_returns_the_model_output_itself():
    model = PixelwiseSeg()
    image, depth = _inputs()
    plain = model(image, depth)
    got = MultiScaleFlip(model, ["image", "sensor_depth"], scales=[1.0], flip=False)(image, depth)
    assert set(got) == set(plain)
    torch.testing.assert_close(got["semantic"], plain["semantic"], rtol=0, atol=0)


def test_flip_of_a_flip_equivariant_model_gives_the_plain_distribution():
    model = PixelwiseSeg()
    image, depth = _inputs()
    plain = model(image, depth)
    got = MultiScaleFlip(model, ["image", "sensor_depth"], scales=[1.0], flip=True)(image, depth)
    torch.testing.assert_close(got["semantic"].softmax(1), plain["semantic"].softmax(1), atol=1e-6, rtol=1e-5)
    # The returned semantic map is log(mean probability): its exp sums to 1 over classes.
    torch.testing.assert_close(got["semantic"].exp().sum(1), torch.ones(2, 6, 8), atol=1e-6, rtol=0)
    torch.testing.assert_close(got["depth"], plain["depth"])
    assert "aux" not in got  # not a (B, C, h, w) map


def test_scale_average_by_hand():
    """logits [w/8, 0] and depth w/8 at input width w: scales 0.5, 1 give widths 4, 8."""

    def model(image):
        b, _, h, w = image.shape
        logits = torch.zeros(b, 2, h, w)
        logits[:, 0] = w / 8
        return {"semantic": logits, "depth": torch.full((b, 1, h, w), w / 8)}

    got = MultiScaleFlip(model, ["image"], scales=[0.5, 1.0])(torch.rand(1, 3, 4, 8))
    p = (1 / (1 + math.exp(-0.5)) + 1 / (1 + math.exp(-1.0))) / 2  # mean of the two softmax(class 0)
    torch.testing.assert_close(got["semantic"][0, :, 0, 0], torch.tensor([math.log(p), math.log(1 - p)]))
    assert got["semantic"].shape == (1, 2, 4, 8)
    torch.testing.assert_close(got["depth"], torch.full((1, 1, 4, 8), 0.75))


def test_flip_un_mirrors_outputs():
    """A model whose depth is the column index: the flipped pass, mirrored back, is W - 1 - j; the mean (W-1)/2."""

    def model(image):
        b, _, h, w = image.shape
        return {"depth": torch.arange(w, dtype=torch.float32).expand(b, 1, h, w)}

    got = MultiScaleFlip(model, ["image"], flip=True)(torch.rand(1, 3, 3, 5))
    torch.testing.assert_close(got["depth"], torch.full((1, 1, 3, 5), 2.0))


def test_inputs_are_resized_together_depth_by_nearest():
    seen = {}

    def model(image, depth):
        seen[tuple(image.shape[-2:])] = (image, depth)
        return {"semantic": torch.zeros(image.shape[0], 2, *image.shape[-2:])}

    image, depth = _inputs(8, 12)
    depth[:, :, ::3] = 0.0  # holes must stay exact zeros
    MultiScaleFlip(model, ["image", "sensor_depth"], scales=[0.5, 1.5])(image, depth)
    assert sorted(seen) == [(4, 6), (12, 18)]
    small_image, small_depth = seen[(4, 6)]
    assert small_image.shape == (2, 3, 4, 6)
    # nearest-exact at factor 1/2 picks source index floor((i + 0.5) * 2) = 2 i + 1
    torch.testing.assert_close(small_depth, depth[..., 1::2, 1::2], rtol=0, atol=0)
    big_depth = seen[(12, 18)][1]
    assert set(big_depth.unique().tolist()) <= set(depth.unique().tolist())


def test_mismatched_inputs_and_bad_settings_raise():
    model = PixelwiseSeg()
    image, depth = _inputs()
    tta = MultiScaleFlip(model, ["image", "sensor_depth"], scales=[1.0, 0.5])
    with pytest.raises(ShapeError, match="got 1 inputs"):
        tta(image)
    with pytest.raises(ShapeError, match="disagree"):
        tta(image, depth[..., :4])
    for scales in ([], [0.0], ["a"], [float("nan")]):
        with pytest.raises(ConfigError, match="eval.scales"):
            check_tta(scales, False)
    assert is_single_pass([1.0], False) and not is_single_pass([1.0], True) and not is_single_pass([1, 2], False)


def test_evaluate_and_config_switch_on_multiscale():
    cfg = build_config(
        {"model": {"name": "deeplabv3plus"}, "eval": {"scales": [0.75, 1.0], "flip": True}}, check_model=False
    )
    assert cfg.eval.scales == [0.75, 1.0] and cfg.eval.flip is True
    assert build_config({"model": {"name": "deeplabv3plus"}}, check_model=False).eval.scales == [1.0]

    model = PixelwiseSeg()
    task = Task({"semantic": SemanticSegmentation(4)}, inputs=("image", "sensor_depth"))
    image, depth = _inputs()
    labels = torch.randint(0, 4, (2, 6, 8), generator=torch.Generator().manual_seed(3))
    data = [{"image": image[i], "sensor_depth": depth[i], "semantic": labels[i]} for i in range(2)]
    cpu = torch.device("cpu")
    plain = evaluate(model, task, DataLoader(data, batch_size=2), device=cpu)
    flipped = evaluate(model, task, DataLoader(data, batch_size=2), device=cpu, scales=[1.0], flip=True)
    assert flipped["semantic/miou"] == pytest.approx(plain["semantic/miou"])
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape[-2:])))
    evaluate(model, task, DataLoader(data, batch_size=2), device=cpu, scales=[0.5, 1.0], flip=True)
    assert calls == [(3, 4), (3, 4), (6, 8), (6, 8)]


def test_logit_averaging_with_align_corners_as_the_official_fafnet_validate():
    """average="logits": the mean of the raw logits (w/8 at widths 4 and 8 -> 0.75); align_corners=True resizes a
    horizontal ramp 0..3 at width 4 to exactly 0, 3/7 * 3, ..., 3 at width 8 (end points kept)."""

    def model(image):
        b, _, h, w = image.shape
        logits = torch.zeros(b, 2, h, w)
        logits[:, 0] = w / 8
        ramp = torch.arange(w, dtype=torch.float32).expand(b, 1, h, w)
        return {"semantic": logits, "depth": ramp}

    tta = MultiScaleFlip(model, ["image"], scales=[0.5, 1.0], average="logits", align_corners=True)
    got = tta(torch.rand(1, 3, 4, 8))
    torch.testing.assert_close(got["semantic"][0, :, 0, 0], torch.tensor([0.75, 0.0]))
    small = torch.arange(8, dtype=torch.float32) * 3 / 7  # the width-4 ramp 0..3 resized with corners aligned
    torch.testing.assert_close(got["depth"][0, 0, 0], (small + torch.arange(8.0)) / 2)
    assert "average='logits'" in repr(tta)
    with pytest.raises(ConfigError, match="eval.average"):
        MultiScaleFlip(model, ["image"], scales=[0.5, 1.0], average="median")

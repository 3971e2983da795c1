"""CARAFE in the up-sampler family (nn/upsamplers/carafe.py): closed forms, a per-pixel reference, mmcv
CARAFEPack keys / parameter count / initialisation, odd sizes, gradients, ONNX."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.carafe import CARAFEUpsampler

#: mmcv CARAFEPack(256, 2) state dict with the defaults (k_up 5, G 1, k_enc 3, C_m 64).
MMCV_KEYS_256 = {
    "channel_compressor.weight": (64, 256, 1, 1),
    "channel_compressor.bias": (64,),
    "content_encoder.weight": (100, 64, 3, 3),
    "content_encoder.bias": (100,),
}


def _rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _build(channels: int = 4, std: float | None = None, seed: int = 0, **kwargs) -> CARAFEUpsampler:
    torch.manual_seed(seed)
    module = build_upsampler("carafe", 3, channels, **kwargs).double()
    if std is not None:
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(std=std)
    return module


def _naive_carafe(module: CARAFEUpsampler, x: torch.Tensor) -> torch.Tensor:
    """The paper's kernel prediction and reassembly pixel by pixel: logits from the two convolutions, encoder channel
    ``(g k^2 + t) s^2 + i s + j`` for sub-pixel (i, j), softmax over t, taps outside the map skipped."""
    k, groups = module.up_kernel, module.up_group
    enc = module.content_encoder
    logits = F.conv2d(
        F.conv2d(x, module.channel_compressor.weight, module.channel_compressor.bias),
        enc.weight,
        enc.bias,
        padding=enc.padding,
        dilation=enc.dilation,
    )
    b, c, h, w = x.shape
    cg = c // groups
    out = torch.zeros(b, c, 2 * h, 2 * w, dtype=x.dtype)
    for py in range(2 * h):
        for px in range(2 * w):
            a, i = divmod(py, 2)
            bb, j = divmod(px, 2)
            for g in range(groups):
                raw = logits[:, [(g * k * k + t) * 4 + i * 2 + j for t in range(k * k)], a, bb]  # (B, k^2)
                weights = raw.exp() / raw.exp().sum(dim=1, keepdim=True)
                for t in range(k * k):
                    y, xx = a + t // k - k // 2, bb + t % k - k // 2
                    if 0 <= y < h and 0 <= xx < w:
                        chans = slice(g * cg, (g + 1) * cg)
                        out[:, chans, py, px] += weights[:, t, None] * x[:, chans, y, xx]
    return out


def test_mmcv_keys_param_count_and_strict_load():
    module = build_upsampler("carafe", 256, 256)
    assert isinstance(module, CARAFEUpsampler) and module.guided is False and module.exact_double is True
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == MMCV_KEYS_256
    # (C + 1) C_m + (C_m k_enc^2 + 1) G k_up^2 s^2 = 257 * 64 + 577 * 100 = 16,448 + 57,700
    assert sum(p.numel() for p in module.parameters()) == 74148
    gen = torch.Generator().manual_seed(0)
    official = {k: torch.randn(*shape, generator=gen) for k, shape in MMCV_KEYS_256.items()}
    module.load_state_dict(official, strict=True)
    for key, value in official.items():
        torch.testing.assert_close(module.state_dict()[key], value, atol=0, rtol=0)


def test_param_count_formula_for_other_options():
    module = build_upsampler(
        "carafe", 8, 48, up_kernel=3, up_group=4, encoder_kernel=5, encoder_dilation=2, compressed_channels=16
    )
    assert module.content_encoder.weight.shape == (4 * 9 * 4, 16, 5, 5)
    assert module.content_encoder.padding == (4, 4) and module.content_encoder.dilation == (2, 2)
    assert sum(p.numel() for p in module.parameters()) == 49 * 16 + (16 * 25 + 1) * 144


def test_mmcv_initialisation():
    torch.manual_seed(0)
    module = build_upsampler("carafe", 256, 256)
    w = module.channel_compressor.weight.detach()
    bound = math.sqrt(6 / (256 + 64))  # xavier uniform, gain 1: fan_in 256, fan_out 64
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.03 * bound
    enc = module.content_encoder.weight.detach()
    assert 0.00095 < float(enc.std()) < 0.00105
    assert torch.count_nonzero(module.channel_compressor.bias) == 0
    assert torch.count_nonzero(module.content_encoder.bias) == 0


@pytest.mark.parametrize("size", [(4, 6), (3, 5), (1, 2)])
def test_uniform_kernels_are_a_zero_padded_box_filter(size):
    """Zero encoder weights and bias: every kernel is 1/25, so each output pixel is the 5x5 mean around its
    source pixel with zeros outside (avg_pool with count_include_pad), copied to the 2x2 sub-pixels."""
    module = _build(channels=4, std=0.5)
    with torch.no_grad():
        module.content_encoder.weight.zero_()
        module.content_encoder.bias.zero_()
    lr = _rand(2, 4, *size)
    box = F.avg_pool2d(lr, 5, stride=1, padding=2, count_include_pad=True)
    expected = box.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(module.upsample(lr), expected, atol=1e-12, rtol=0)


def test_one_hot_kernels_pin_the_channel_layout():
    """k_up = 3, two groups. Encoder channel (g * 9 + t) * 4 + 2 i + j is the logit of tap t (offset
    (t // 3 - 1, t % 3 - 1)) for sub-pixel (i, j): a 0 there and -1e4 elsewhere makes the kernel one-hot
    (exp(-1e4) is 0 in float64). Group 0 picks a different tap per sub-pixel, group 1 always (+1, +1)."""
    module = _build(channels=4, up_kernel=3, up_group=2, compressed_channels=4, std=0.5)
    picks = {0: {(0, 0): (0, 0), (0, 1): (0, 1), (1, 0): (1, -1), (1, 1): (-1, 0)}}
    picks[1] = {sub: (1, 1) for sub in picks[0]}
    bias = torch.full((72,), -1e4, dtype=torch.float64)
    for g, table in picks.items():
        for (i, j), (dy, dx) in table.items():
            bias[(g * 9 + (dy + 1) * 3 + (dx + 1)) * 4 + 2 * i + j] = 0.0
    with torch.no_grad():
        module.content_encoder.weight.zero_()
        module.content_encoder.bias.copy_(bias)
    lr = _rand(1, 4, 3, 5)
    padded = F.pad(lr, (1, 1, 1, 1))  # zeros outside, as mmcv's kernel
    expected = torch.empty(1, 4, 6, 10, dtype=torch.float64)
    for g, table in picks.items():
        for (i, j), (dy, dx) in table.items():
            expected[:, 2 * g : 2 * g + 2, i::2, j::2] = padded[:, 2 * g : 2 * g + 2, 1 + dy : 4 + dy, 1 + dx : 6 + dx]
    torch.testing.assert_close(module.upsample(lr), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"up_kernel": 3, "up_group": 2, "encoder_kernel": 3, "encoder_dilation": 2, "compressed_channels": 4}],
)
def test_matches_naive_reference(kwargs):
    module = _build(channels=4, std=0.4, seed=2, **kwargs)
    lr = _rand(2, 4, 3, 4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(module.upsample(lr), _naive_carafe(module, lr), atol=1e-12, rtol=0)


def test_kernels_are_normalised_per_group():
    module = _build(channels=4, up_group=2, std=0.4)
    kernels = module.kernels(_rand(2, 4, 3, 5))
    assert kernels.shape == (2, 2 * 25, 6, 10) and bool((kernels >= 0).all())
    torch.testing.assert_close(kernels.view(2, 2, 25, 6, 10).sum(dim=2), torch.ones(2, 2, 6, 10, dtype=torch.float64))


def test_odd_sizes_pad_and_crop():
    module = _build(channels=4, std=0.3)
    lr = _rand(2, 4, 5, 7)
    full = module.upsample(lr)
    for hr_size in [(9, 13), (10, 14)]:
        hr = _rand(2, 3, *hr_size, seed=2)
        hr_out, lr_up = module(hr, lr)
        assert torch.equal(hr_out, hr) and lr_up.shape == (2, 4, *hr_size) and lr_up.dtype == torch.float64
        torch.testing.assert_close(lr_up, full[..., : hr_size[0], : hr_size[1]], atol=1e-12, rtol=0)
    small = lr[..., :4, :6]  # lr = floor(H / 2): replicate-padded to ceil(H / 2) first
    _, lr_up = module(_rand(2, 3, 9, 13), small)
    expected = module.upsample(F.pad(small, (0, 1, 0, 1), mode="replicate"))[..., :9, :13]
    torch.testing.assert_close(lr_up, expected, atol=1e-12, rtol=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    module = build_upsampler("carafe", 3, 8, compressed_channels=8).double()  # mmcv initialisation
    lr = _rand(2, 8, 5, 7).requires_grad_()
    _, lr_up = module(_rand(2, 3, 9, 13), lr)
    (lr_up * _rand(*lr_up.shape, seed=9)).sum().backward()
    for key, p in module.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, key
    assert lr.grad is not None and torch.count_nonzero(lr.grad) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"up_kernel": 4}, "up_kernel must be an odd integer"),
        ({"up_kernel": 0}, "up_kernel must be an odd integer"),
        ({"encoder_kernel": 2}, "encoder_kernel must be an odd integer"),
        ({"up_group": 3}, "divisible by up_group=3"),
        ({"up_group": 0}, "up_group must be an integer >= 1"),
        ({"encoder_dilation": 0}, "encoder_dilation must be an integer >= 1"),
        ({"compressed_channels": 2.5}, "compressed_channels must be an integer >= 1"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CARAFEUpsampler(3, 8, **kwargs)


@pytest.mark.export
def test_onnx_export_matches_onnxruntime():
    # The project's exporter (freqdense.export) uses the dynamo exporter; the TorchScript one (dynamo=False)
    # does not trace through freqdense.ops.reassemble.carafe's autograd.Function (its output becomes constant).
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    module = _build(channels=8, up_kernel=3, compressed_channels=4, std=0.3).float().eval()

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = module

        def forward(self, lr: torch.Tensor) -> torch.Tensor:
            return self.up.upsample(lr)

    lr = torch.rand(1, 8, 5, 7)
    dims = {"lr": {2: torch.export.Dim("h", min=1, max=64), 3: torch.export.Dim("w", min=1, max=64)}}
    program = torch.onnx.export(Plain().eval(), (lr,), dynamo=True, dynamic_shapes=dims, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(1, 8, 5, 7), (1, 8, 4, 9)]:  # the second size was never traced
        x = torch.rand(*shape)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), module.upsample(x), atol=1e-4, rtol=0)

"""DySample in the up-sampler family (nn/upsamplers/dysample.py): closed forms, a naive per-pixel reference,
official keys / parameter counts / initialisation, odd sizes, gradients, ONNX."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError
from freqdense.nn.upsamplers import build_upsampler
from freqdense.nn.upsamplers.dysample import DySampleUpsampler

VARIANTS = ["dysample", "dysample_plus", "dysample_s", "dysample_s_plus"]
#: registry name -> (style, dyscope), the paper's naming: "-S" = pixel shuffle first, "+" = dynamic scope.
STYLE = {
    "dysample": ("lp", False),
    "dysample_plus": ("lp", True),
    "dysample_s": ("pl", False),
    "dysample_s_plus": ("pl", True),
}
#: tiny-smart/dysample DySample(256) state dicts (groups=4, scale=2), measured from the official module.
OFFICIAL_KEYS = {
    "dysample": {"offset.weight": (32, 256, 1, 1), "offset.bias": (32,), "init_pos": (1, 32, 1, 1)},
    "dysample_plus": {
        "offset.weight": (32, 256, 1, 1),
        "offset.bias": (32,),
        "scope.weight": (32, 256, 1, 1),
        "init_pos": (1, 32, 1, 1),
    },
    "dysample_s": {"offset.weight": (8, 64, 1, 1), "offset.bias": (8,), "init_pos": (1, 32, 1, 1)},
    "dysample_s_plus": {
        "offset.weight": (8, 64, 1, 1),
        "offset.bias": (8,),
        "scope.weight": (8, 64, 1, 1),
        "init_pos": (1, 32, 1, 1),
    },
}
#: Parameter counts of the official module for C = 256 (sum of numel over parameters()).
OFFICIAL_PARAMS = {"dysample": 8224, "dysample_plus": 16416, "dysample_s": 520, "dysample_s_plus": 1032}
#: init_pos for groups = 4: x components of (sub-pixel (i, j) = 00, 01, 10, 11) x 4 groups, then y components.
INIT_POS_G4 = torch.tensor([-0.25, 0.25, -0.25, 0.25] * 4 + [-0.25, -0.25, 0.25, 0.25] * 4).view(1, 32, 1, 1)


def _build(name: str, channels: int = 8, groups: int = 4, seed: int = 0, std: float | None = None):
    torch.manual_seed(seed)
    module = build_upsampler(name, 3, channels, groups=groups).double()
    if std is not None:
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(std=std)
    return module


def _rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive_dysample(module: DySampleUpsampler, x: torch.Tensor) -> torch.Tensor:
    """The paper's sampling written pixel by pixel (float64, tiny inputs): offsets from explicit dot products,
    then bilinear sampling with the coordinates clamped to the outer pixel centres."""
    b, c, h, w = x.shape
    g = module.groups
    weight = module.offset.weight[:, :, 0, 0]
    bias = module.offset.bias
    scope = module.scope.weight[:, :, 0, 0] if module.dyscope else None
    out = torch.zeros(b, c, 2 * h, 2 * w, dtype=x.dtype)
    cg = c // g
    for n in range(b):
        for py in range(2 * h):
            for px in range(2 * w):
                a, i = divmod(py, 2)
                bb, j = divmod(px, 2)
                if module.style == "lp":
                    feat = x[n, :, a, bb]  # the low-res pixel; output channel k*4G + g*4 + i*2 + j
                    rows = [[k * 4 * g + gi * 4 + i * 2 + j for gi in range(g)] for k in range(2)]
                else:  # pixel shuffle: channel c' of the high-res map is low-res channel 4c' + 2i + j
                    feat = x[n, [4 * cc + 2 * i + j for cc in range(c // 4)], a, bb]
                    rows = [[k * g + gi for gi in range(g)] for k in range(2)]
                for gi in range(g):
                    offs = []
                    for k in range(2):
                        r = rows[k][gi]
                        o = weight[r] @ feat + bias[r]
                        o = o * (0.5 * torch.sigmoid(scope[r] @ feat)) if scope is not None else o * 0.25
                        offs.append(o)
                    sx = min(max(bb + (j - 0.5) / 2 + float(offs[0]), 0.0), w - 1.0)
                    sy = min(max(a + (i - 0.5) / 2 + float(offs[1]), 0.0), h - 1.0)
                    x0, y0 = int(sx), int(sy)  # floor (non-negative)
                    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                    fx, fy = sx - x0, sy - y0
                    chans = slice(gi * cg, (gi + 1) * cg)
                    v = x[n, chans]
                    out[n, chans, py, px] = (1 - fy) * ((1 - fx) * v[:, y0, x0] + fx * v[:, y0, x1]) + fy * (
                        (1 - fx) * v[:, y1, x0] + fx * v[:, y1, x1]
                    )
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_registry_maps_the_paper_variants(name):
    module = build_upsampler(name, 16, 16)
    assert isinstance(module, DySampleUpsampler)
    assert (module.style, module.dyscope) == STYLE[name]
    assert module.groups == 4 and module.guided is False and module.exact_double is True
    assert hasattr(module, "scope") == STYLE[name][1]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [(4, 6), (3, 5), (1, 1)])
def test_zero_offsets_are_bilinear_everywhere(name, size):
    """Zeroed ``offset`` weights and bias leave ``init_pos``: sub-pixel (i, j) of cell (y, x) samples
    ``(y + (2i - 1) / 4, x + (2j - 1) / 4)``, exactly ``F.interpolate(scale 2, bilinear, align_corners=False)``'s
    source points. Equal at every pixel, the border included: there the points lie 1/4 pixel outside the outer
    pixel centres, and ``padding_mode="border"`` clamps them onto those centres exactly as interpolate clamps its
    source index. (``padding_mode="zeros"`` would blend with 0 there: 3/4 of the edge value on the outer rows and
    columns, 9/16 at the corners; checked below.) ``scope`` is random: a zero offset makes it irrelevant."""
    module = _build(name, channels=8, std=0.7)
    with torch.no_grad():
        module.offset.weight.zero_()
        module.offset.bias.zero_()
    lr = _rand(2, 8, *size)
    bilinear = F.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(module.upsample(lr), bilinear, atol=1e-12, rtol=0)
    hr = _rand(2, 3, 2 * size[0], 2 * size[1], seed=5)
    hr_out, lr_up = module(hr, lr)
    assert torch.equal(hr_out, hr)
    torch.testing.assert_close(lr_up, bilinear, atol=1e-12, rtol=0)

    # The same points with zeros padding (identity grid at the output size) differ exactly on the outer frame.
    grid = F.affine_grid(torch.eye(2, 3, dtype=lr.dtype)[None].expand(2, 2, 3), [2, 8, *bilinear.shape[-2:]], False)
    zeros = F.grid_sample(lr, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    factor = torch.ones_like(bilinear[0, 0])
    factor[0] *= 0.75
    factor[-1] *= 0.75
    factor[:, 0] *= 0.75
    factor[:, -1] *= 0.75
    if size == (1, 1):  # a single pixel: all four output pixels are corners of it
        factor = torch.full_like(factor, 0.5625)
    torch.testing.assert_close(zeros, bilinear * factor, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["dysample", "dysample_plus"])
def test_negated_init_pos_is_nearest_and_offsets_are_x_then_y(name):
    """LP style: a bias of ``-init_pos / 0.25`` (zero weights; a zero ``scope`` gives the same 0.25 factor)
    moves all four sub-pixels to the cell centre, i.e. nearest up-sampling. Adding +1 pixel to the x components of
    group 0 only (channels 0-3 of the 32) shifts those 2 of the 8 channels one pixel right in the source, with the
    last column clamped (border padding); the other groups stay nearest."""
    module = _build(name, channels=8)
    with torch.no_grad():
        module.offset.weight.zero_()
        if module.dyscope:
            module.scope.weight.zero_()
        bias = -INIT_POS_G4.flatten().double() / 0.25
        bias[0:4] += 1 / 0.25  # x component, group 0, all four sub-pixels
        module.offset.bias.copy_(bias)
    lr = _rand(1, 8, 3, 5)
    out = module.upsample(lr)
    nearest = lr.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(out[:, 2:], nearest[:, 2:], atol=1e-12, rtol=0)
    shifted = torch.cat([lr[..., 1:], lr[..., -1:]], dim=-1)  # x + 1, clamped at the right edge
    expected = shifted.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(out[:, :2], expected[:, :2], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("groups", [1, 2])
def test_matches_naive_reference_with_large_offsets(name, groups):
    # std 0.8 weights give offsets of several pixels, so clamping at the border is exercised too.
    module = _build(name, channels=8, groups=groups, std=0.8, seed=3)
    lr = _rand(2, 8, 3, 4, seed=4)
    with torch.no_grad():
        got = module.upsample(lr)
        expected = _naive_dysample(module, lr)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_official_keys_param_counts_and_strict_load(name):
    module = build_upsampler(name, 256, 256)
    state = module.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == OFFICIAL_KEYS[name]  # init_pos is persistent
    assert sum(p.numel() for p in module.parameters()) == OFFICIAL_PARAMS[name]
    torch.testing.assert_close(module.init_pos, INIT_POS_G4, atol=0, rtol=0)

    gen = torch.Generator().manual_seed(0)
    official = {k: torch.randn(*shape, generator=gen) for k, shape in OFFICIAL_KEYS[name].items()}
    official["init_pos"] = INIT_POS_G4.clone()
    module.load_state_dict(official, strict=True)
    for key, value in official.items():
        torch.testing.assert_close(module.state_dict()[key], value, atol=0, rtol=0)


def test_param_count_formulas_for_other_groups():
    # lp: 2 G s^2 (C + 1), + 2 G s^2 C with the scope layer; pl: 2 G (C / s^2 + 1), + 2 G C / s^2.
    for groups in (1, 2, 8):
        counts = {n: sum(p.numel() for p in build_upsampler(n, 64, 64, groups=groups).parameters()) for n in VARIANTS}
        assert counts == {
            "dysample": 8 * groups * 65,
            "dysample_plus": 8 * groups * 65 + 8 * groups * 64,
            "dysample_s": 2 * groups * 17,
            "dysample_s_plus": 2 * groups * 17 + 2 * groups * 16,
        }
        assert build_upsampler("dysample", 64, 64, groups=groups).init_pos.shape == (1, 8 * groups, 1, 1)


@pytest.mark.parametrize("name", ["dysample_plus", "dysample_s_plus"])
def test_official_initialisation(name):
    torch.manual_seed(0)
    module = build_upsampler(name, 256, 256)
    w = module.offset.weight.detach()
    assert 0.0009 < float(w.std()) < 0.0011 and abs(float(w.mean())) < 1e-4
    assert torch.count_nonzero(module.offset.bias) == 0
    assert torch.count_nonzero(module.scope.weight) == 0 and module.scope.bias is None


@pytest.mark.parametrize("name", VARIANTS)
def test_odd_sizes_pad_and_crop(name):
    module = _build(name, channels=8, std=0.3)
    lr = _rand(2, 8, 5, 7)
    full = module.upsample(lr)
    for hr_size in [(9, 13), (10, 14)]:
        hr = _rand(2, 3, *hr_size, seed=2)
        hr_out, lr_up = module(hr, lr)
        assert hr_out.shape == hr.shape and torch.equal(hr_out, hr)
        assert lr_up.shape == (2, 8, *hr_size)
        torch.testing.assert_close(lr_up, full[..., : hr_size[0], : hr_size[1]], atol=1e-12, rtol=0)
    # lr = floor(H / 2): replicate-padded at the bottom / right to ceil(H / 2) before sampling.
    small = lr[..., :4, :6]
    padded = F.pad(small, (0, 1, 0, 1), mode="replicate")
    _, lr_up = module(_rand(2, 3, 9, 13), small)
    torch.testing.assert_close(lr_up, module.upsample(padded)[..., :9, :13], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_guide_is_ignored_and_dtype_kept(name):
    module = _build(name, channels=8, std=0.3)
    lr = _rand(1, 8, 3, 4)
    a = module(_rand(1, 3, 6, 8, seed=7), lr).lr_feat
    b = module(torch.zeros(1, 3, 6, 8, dtype=torch.float64), lr).lr_feat
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert module.float()(torch.zeros(1, 3, 6, 8), lr.float()).lr_feat.dtype == torch.float32


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter(name):
    # Official initialisation (zero scope weights, 0.001-std offsets): the gradient must flow from the start.
    torch.manual_seed(0)
    module = build_upsampler(name, 3, 8).double()
    lr = _rand(2, 8, 5, 7).requires_grad_()
    _, lr_up = module(_rand(2, 3, 9, 13, seed=2), lr)
    (lr_up * _rand(*lr_up.shape, seed=9)).sum().backward()
    for key, p in module.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, key
    assert lr.grad is not None and torch.count_nonzero(lr.grad) > 0


def test_gradient_matches_finite_differences():
    module = _build("dysample_s_plus", channels=4, groups=2, std=0.4)
    lr = _rand(1, 4, 2, 2).requires_grad_()
    torch.autograd.gradcheck(lambda x: module.upsample(x), (lr,), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "channels", "match"),
    [
        ({"style": "lpx"}, 8, "style must be 'lp'"),
        ({"groups": 3}, 8, "divisible by groups=3"),
        ({"groups": 0}, 8, "groups must be an integer >= 1"),
        ({"groups": 2.0}, 8, "groups must be an integer >= 1"),
        ({"style": "pl"}, 6, "divisible by 4"),
    ],
)
def test_bad_options_raise_config_error(kwargs, channels, match):
    kwargs = dict(kwargs)
    groups = kwargs.pop("groups", 2 if channels == 6 else 4)
    with pytest.raises(ConfigError, match=match):
        DySampleUpsampler(3, channels, groups=groups, **kwargs)


def test_variant_keywords_cannot_be_overridden():
    with pytest.raises(ConfigError, match="fixes style='pl'"):
        build_upsampler("dysample_s", 8, 8, style="lp")


@pytest.mark.export
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the family's odd-size checks, constant here
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter announces its removal
@pytest.mark.parametrize("name", VARIANTS)
def test_onnx_export_matches_onnxruntime(name):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    module = _build(name, channels=8, std=0.3).float().eval()

    class Family(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = module

        def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
            return self.up(hr, lr).lr_feat

    class Plain(Family):
        def forward(self, lr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return self.up.upsample(lr)

    def run(model: torch.nn.Module, inputs: dict[str, torch.Tensor], **kwargs) -> ort.InferenceSession:
        buffer = io.BytesIO()
        torch.onnx.export(
            model, tuple(inputs.values()), buffer, dynamo=False, opset_version=16, input_names=list(inputs), **kwargs
        )  # grid_sample needs opset >= 16
        return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])

    # The family path at odd sizes (hr 9x13, lr 5x7); hr is unused, so the exporter drops that input.
    hr, lr = torch.rand(1, 3, 9, 13), torch.rand(1, 8, 5, 7)
    session = run(Family(), {"hr": hr, "lr": lr}, output_names=["out"])
    feeds = {"hr": hr.numpy(), "lr": lr.numpy()}
    got = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), module(hr, lr).lr_feat, atol=1e-4, rtol=0)

    # upsample(lr) with dynamic batch and size, run at sizes the export never saw.
    session = run(Plain(), {"lr": lr}, output_names=["out"], dynamic_axes={"lr": {0: "b", 2: "h", 3: "w"}})
    for shape in [(1, 8, 5, 7), (2, 8, 4, 9), (1, 8, 1, 1)]:
        x = torch.rand(*shape)
        got = session.run(None, {"lr": x.numpy()})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), module.upsample(x), atol=1e-4, rtol=0)


@pytest.mark.export
def test_dynamo_onnx_export_runs_at_untraced_sizes():
    # freqdense.export uses the dynamo exporter; one variant (pl style, dynamic scope) with dynamic batch and size.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    module = _build("dysample_s_plus", channels=8, std=0.3).float().eval()

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = module

        def forward(self, lr: torch.Tensor) -> torch.Tensor:
            return self.up.upsample(lr)

    dim = torch.export.Dim
    dims = {"lr": {0: dim("b", min=1, max=8), 2: dim("h", min=1, max=64), 3: dim("w", min=1, max=64)}}
    program = torch.onnx.export(Plain().eval(), (torch.rand(1, 8, 5, 7),), dynamo=True, dynamic_shapes=dims)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(1, 8, 5, 7), (2, 8, 4, 9), (1, 8, 1, 1)]:
        x = torch.rand(*shape)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), module.upsample(x), atol=1e-4, rtol=0)

"""``freqdense convert freqfusion``: mmseg SegNeXt(+FreqFusion) checkpoints -> ``segnext`` run directories, mmdet
``FreqFusionCARAFEFPN`` detection checkpoints -> a partial (backbone + neck) file.

The state dicts are built here, key by key, from the official layouts (FreqFusion repository @ 3fb0c70:
``SegNeXt/mmseg/models/backbones/mscan.py``, ``.../decode_heads/ham_head.py`` and ``FreqFusion.py``;
``mmdetection/mmdet/models/necks/fpn_carafe.py`` + ``FreqFusion.py``; mmdet ResNet), filled with random tensors,
wrapped as mmseg / mmdet save them (``{"meta", "state_dict", "optimizer"}``) and converted. The SegNeXt logits are
compared in float64 with a functional forward written here from the official key layout (FreqFusion itself is the
freqdense module, compared with the official one elsewhere).
"""

from __future__ import annotations

import json
import math

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from freqdense.cli.main import main
from freqdense.engine.checkpoint import load_model
from freqdense.engine.convert import convert_checkpoint
from freqdense.errors import CheckpointError
from freqdense.models import create_model
from freqdense.models.backbones import create_backbone
from freqdense.models.convert import convert
from freqdense.models.convert.freqfusion import (
    PARTIAL_FILE,
    PARTIAL_REPORT,
    checkpoint_kind,
    convert_segnext,
    write_partial_conversion,
)
from freqdense.models.decoders import FreqFusionFPNNeck
from freqdense.nn import FreqFusion

TINY = {"dims": (8, 16, 32, 48), "depths": (1, 2, 1, 1), "ratios": (2, 2, 2, 2)}
BUFFER_SUFFIXES = (
    "running_mean",
    "running_var",
    "num_batches_tracked",
    "init_pos",
    "hamming_lowpass",
    "hamming_highpass",
)


# ------------------------------------------------------------------------------------------- official layouts


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{t}": (c,) for t in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()
    }


def _conv(prefix: str, cout: int, cin: int, kh: int, kw: int | None = None, bias: bool = True) -> dict:
    shapes = {f"{prefix}.weight": (cout, cin, kh, kh if kw is None else kw)}
    if bias:
        shapes[f"{prefix}.bias"] = (cout,)
    return shapes


def official_mscan_shapes(dims, depths, ratios) -> dict[str, tuple[int, ...]]:
    """``backbone.*`` of an mmseg SegNeXt checkpoint (MSCAN: StemConv, OverlapPatchEmbed, Block, LayerNorm)."""
    s: dict[str, tuple[int, ...]] = {}
    p = "backbone"
    for i, c in enumerate(dims, start=1):
        if i == 1:
            s |= _conv(f"{p}.patch_embed1.proj.0", c // 2, 3, 3) | _bn(f"{p}.patch_embed1.proj.1", c // 2)
            s |= _conv(f"{p}.patch_embed1.proj.3", c, c // 2, 3) | _bn(f"{p}.patch_embed1.proj.4", c)
        else:
            s |= _conv(f"{p}.patch_embed{i}.proj", c, dims[i - 2], 3) | _bn(f"{p}.patch_embed{i}.norm", c)
        hidden = int(c * ratios[i - 1])
        for j in range(depths[i - 1]):
            b = f"{p}.block{i}.{j}"
            s |= {f"{b}.layer_scale_1": (c,), f"{b}.layer_scale_2": (c,)}
            s |= _bn(f"{b}.norm1", c) | _bn(f"{b}.norm2", c)
            a = f"{b}.attn"
            s |= _conv(f"{a}.proj_1", c, c, 1) | _conv(f"{a}.proj_2", c, c, 1)
            g = f"{a}.spatial_gating_unit"
            s |= _conv(f"{g}.conv0", c, 1, 5)
            for k, size in enumerate((7, 11, 21)):
                s |= _conv(f"{g}.conv{k}_1", c, 1, 1, size) | _conv(f"{g}.conv{k}_2", c, 1, size, 1)
            s |= _conv(f"{g}.conv3", c, c, 1)
            s |= _conv(f"{b}.mlp.fc1", hidden, c, 1) | _conv(f"{b}.mlp.dwconv.dwconv", hidden, 1, 3)
            s |= _conv(f"{b}.mlp.fc2", c, hidden, 1)
        s |= {f"{p}.norm{i}.weight": (c,), f"{p}.norm{i}.bias": (c,)}
    return s


def official_freqfusion_shapes(
    prefix: str, hr: int, lr: int, cc: int, *, groups: int, norm: bool, hamming: bool, direction: str
) -> dict[str, tuple[int, ...]]:
    """One official FreqFusion module (``feature_resample=True``, 5x5 / 3x3 kernels, 3x3 encoders)."""
    offset_in = 8 if direction == "sim" else cc + 8
    scale_in = cc if direction == "sim" else cc + 8
    s = _conv(f"{prefix}.hr_channel_compressor", cc, hr, 1) | _conv(f"{prefix}.lr_channel_compressor", cc, lr, 1)
    s |= _conv(f"{prefix}.content_encoder", 25, cc, 3)
    d = f"{prefix}.dysampler"
    s |= {f"{d}.init_pos": (1, 8 * groups, 1, 1)}
    s |= _conv(f"{d}.offset", 8 * groups, offset_in, 3) | _conv(f"{d}.direct_scale", 8 * groups, scale_in, 3)
    s |= _conv(f"{d}.hr_offset", 2 * groups, offset_in, 3) | _conv(f"{d}.hr_direct_scale", 2 * groups, scale_in, 3)
    if norm:
        s |= {f"{d}.norm_{x}.{t}": (cc,) for x in ("hr", "lr") for t in ("weight", "bias")}
    s |= _conv(f"{prefix}.content_encoder2", 9, cc, 3)
    s |= {f"{prefix}.hamming_lowpass": (1, 1, 5, 5) if hamming else (1,)}
    s |= {f"{prefix}.hamming_highpass": (1, 1, 3, 3) if hamming else (1,)}
    return s


def official_head_shapes(in_channels, channels, num_classes, freqfusion, compress_ratio=4) -> dict:
    """``decode_head.*`` of LightHamHead(FreqAware): BaseDecodeHead conv_seg, ConvModules with GN, Hamburger."""
    h = "decode_head"
    s = _conv(f"{h}.conv_seg", num_classes, channels, 1)
    s |= _conv(f"{h}.squeeze.conv", channels, sum(in_channels), 1, bias=False)
    s |= {f"{h}.squeeze.gn.weight": (channels,), f"{h}.squeeze.gn.bias": (channels,)}
    s |= _conv(f"{h}.hamburger.ham_in.conv", channels, channels, 1)
    s |= _conv(f"{h}.hamburger.ham_out.conv", channels, channels, 1, bias=False)
    s |= {f"{h}.hamburger.ham_out.gn.weight": (channels,), f"{h}.hamburger.ham_out.gn.bias": (channels,)}
    s |= _conv(f"{h}.align.conv", channels, channels, 1, bias=False)
    s |= {f"{h}.align.gn.weight": (channels,), f"{h}.align.gn.bias": (channels,)}
    if freqfusion:
        rev = list(in_channels)[::-1]
        lr = rev[0]
        for k, hr in enumerate(rev[1:]):
            s |= official_freqfusion_shapes(
                f"{h}.freqfusions.{k}",
                hr,
                lr,
                (hr + lr) // compress_ratio,
                groups=4,
                norm=True,
                hamming=False,
                direction="sim",
            )
            lr += hr
    return s


def hamming_2d(k: int) -> torch.Tensor:
    w = torch.tensor([0.54 - 0.46 * math.cos(2 * math.pi * n / (k - 1)) for n in range(k)], dtype=torch.float32)
    return torch.outer(w, w)[None, None]


def fill(shapes: dict[str, tuple[int, ...]], seed: int, zeros_for: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Random float32 tensors (BN variances positive, official buffer values for windows / offsets' init_pos)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(("hamming_lowpass", "hamming_highpass")):
            out[key] = torch.ones(1) if shape == (1,) else hamming_2d(shape[-1])
        elif key.endswith("init_pos"):
            groups = shape[1] // 8
            h = torch.tensor([-0.25, 0.25])
            out[key] = torch.stack(torch.meshgrid(h, h, indexing="ij")).transpose(1, 2).repeat(1, groups, 1)
            out[key] = out[key].reshape(1, -1, 1, 1)
        elif key.startswith(zeros_for):
            out[key] = torch.zeros(shape)
        else:
            out[key] = (torch.rand(shape, generator=g) - 0.5) * 0.5
    return out


def n_params(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(v) for k, v in shapes.items() if not k.endswith(BUFFER_SUFFIXES))


def mmseg_checkpoint(state, *, classes=None, config=None) -> dict:
    meta = {"mmseg_version": "0.24.1+abcdef0", "iter": 160000, "epoch": 21}
    if classes is not None:
        meta["CLASSES"] = tuple(classes)
        meta["PALETTE"] = [[i, 2 * i % 256, 3 * i % 256] for i in range(len(classes))]
    if config is not None:
        meta["config"] = config
    return {"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 6e-5}]}}


TINY_CONFIG = """model = dict(
    type='EncoderDecoder',
    decode_head=dict(
        type='LightHamHeadFreqAware',
        compress_ratio=4,
        in_channels=[16, 32, 48],
        channels=32,
        ham_channels=32,
        ham_kwargs=dict(MD_R=4),
        num_classes=5))
"""


# --------------------------------------------------------------------------------------- reference forward


def _bn_apply(x, s, p):
    return F.batch_norm(
        x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"], False, 0.0, 1e-5
    )


def _conv_apply(x, s, p, **kw):
    return F.conv2d(x, s[f"{p}.weight"], s.get(f"{p}.bias"), **kw)


def reference_nmf(x, rank, steps, generator, eps=1e-6):
    b, c, h, w = x.shape
    X = x.reshape(b, c, h * w)
    B = torch.rand((b, c, rank), generator=generator, dtype=torch.float32).to(x.dtype)
    B = B / B.norm(dim=1, keepdim=True)
    C = torch.softmax(X.transpose(1, 2) @ B, dim=-1)
    for _ in range(steps):
        C = C * (X.transpose(1, 2) @ B) / (C @ (B.transpose(1, 2) @ B) + eps)
        B = B * (X @ C) / (B @ (C.transpose(1, 2) @ C) + eps)
    C = C * (X.transpose(1, 2) @ B) / (C @ (B.transpose(1, 2) @ B) + eps)
    return (B @ C.transpose(1, 2)).reshape(b, c, h, w)


def reference_segnext(s, image, *, depths, rank, generator, freqfusion):
    """SegNeXt forward written from the official key layout (eval mode), float64."""
    # ImageNet mean / std as the model stores them (float32 buffers), then in the image's precision.
    mean = torch.tensor([0.485, 0.456, 0.406]).to(image.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).to(image.dtype).view(1, 3, 1, 1)
    x = (image - mean) / std
    feats = []
    for i in range(1, 5):
        if i == 1:
            x = _conv_apply(x, s, "backbone.patch_embed1.proj.0", stride=2, padding=1)
            x = F.gelu(_bn_apply(x, s, "backbone.patch_embed1.proj.1"))
            x = _conv_apply(x, s, "backbone.patch_embed1.proj.3", stride=2, padding=1)
            x = _bn_apply(x, s, "backbone.patch_embed1.proj.4")
        else:
            x = _bn_apply(
                _conv_apply(x, s, f"backbone.patch_embed{i}.proj", stride=2, padding=1),
                s,
                f"backbone.patch_embed{i}.norm",
            )
        c = x.shape[1]
        for j in range(depths[i - 1]):
            b = f"backbone.block{i}.{j}"
            y = _bn_apply(x, s, f"{b}.norm1")
            u = F.gelu(_conv_apply(y, s, f"{b}.attn.proj_1"))
            g = f"{b}.attn.spatial_gating_unit"
            d = _conv_apply(u, s, f"{g}.conv0", padding=2, groups=c)
            attn = d
            for k, size in enumerate((7, 11, 21)):
                t = _conv_apply(d, s, f"{g}.conv{k}_1", padding=(0, size // 2), groups=c)
                attn = attn + _conv_apply(t, s, f"{g}.conv{k}_2", padding=(size // 2, 0), groups=c)
            a = _conv_apply(_conv_apply(attn, s, f"{g}.conv3") * u, s, f"{b}.attn.proj_2") + y
            x = x + s[f"{b}.layer_scale_1"].view(1, -1, 1, 1) * a
            z = _bn_apply(x, s, f"{b}.norm2")
            m = _conv_apply(z, s, f"{b}.mlp.fc1")
            m = F.gelu(_conv_apply(m, s, f"{b}.mlp.dwconv.dwconv", padding=1, groups=m.shape[1]))
            x = x + s[f"{b}.layer_scale_2"].view(1, -1, 1, 1) * _conv_apply(m, s, f"{b}.mlp.fc2")
        x = F.layer_norm(x.permute(0, 2, 3, 1), (c,), s[f"backbone.norm{i}.weight"], s[f"backbone.norm{i}.bias"])
        x = x.permute(0, 3, 1, 2)
        feats.append(x)
    feats = feats[1:]
    h = "decode_head"
    if freqfusion:
        low = feats[-1]
        for k, hr in enumerate(feats[:-1][::-1]):
            p = f"{h}.freqfusions.{k}."
            cc = s[f"{p}hr_channel_compressor.weight"].shape[0]
            ff = FreqFusion(
                hr.shape[1],
                low.shape[1],
                compressed_channels=cc,
                feature_resample=True,
                feature_resample_group=4,
                hamming_window=False,
                direction_feat="sim",
            ).double()
            ff.load_state_dict({k2[len(p) :]: v for k2, v in s.items() if k2.startswith(p)}, strict=True)
            _, hr_out, lr_up = ff(hr, low)
            bsz, _, hh, ww = hr_out.shape
            low = torch.cat([hr_out.reshape(bsz * 4, -1, hh, ww), lr_up.reshape(bsz * 4, -1, hh, ww)], dim=1)
            low = low.reshape(bsz, -1, hh, ww)
        x = low
    else:
        size = feats[0].shape[-2:]
        x = torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats], dim=1)

    def gn(t, p):
        return F.group_norm(t, 32, s[f"{p}.gn.weight"], s[f"{p}.gn.bias"], 1e-5)

    x = F.relu(gn(_conv_apply(x, s, f"{h}.squeeze.conv"), f"{h}.squeeze"))
    enjoy = F.relu(_conv_apply(x, s, f"{h}.hamburger.ham_in.conv"))
    enjoy = reference_nmf(enjoy, rank, 7, generator)
    enjoy = gn(_conv_apply(enjoy, s, f"{h}.hamburger.ham_out.conv"), f"{h}.hamburger.ham_out")
    x = F.relu(x + enjoy)
    x = F.relu(gn(_conv_apply(x, s, f"{h}.align.conv"), f"{h}.align"))
    logits = _conv_apply(x, s, f"{h}.conv_seg")
    return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------------ SegNeXt


def test_the_official_layouts_written_here_have_the_official_parameter_counts() -> None:
    """The key templates reproduce the counts measured from the official modules (SegNeXt-T, 150 classes)."""
    t = {"dims": (32, 64, 160, 256), "depths": (3, 3, 5, 2), "ratios": (8, 8, 4, 4)}
    backbone = official_mscan_shapes(t["dims"], t["depths"], t["ratios"])
    assert n_params(backbone) == 3_903_584 and len(backbone) == 537
    plain = official_head_shapes((64, 160, 256), 256, 150, False)
    freq = official_head_shapes((64, 160, 256), 256, 150, True)
    assert n_params(backbone | plain) == 4_263_414 and n_params(backbone | freq) == 4_520_794
    assert len(backbone | plain) == 550 and len(backbone | freq) == 596


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny SegNeXt + FreqFusion checkpoint (MSCAN 8/16/32/48, head width 32, 150 classes, MD_R=4)."""
    root = tmp_path_factory.mktemp("segnext")
    shapes = official_mscan_shapes(TINY["dims"], TINY["depths"], TINY["ratios"])
    shapes |= official_head_shapes(TINY["dims"][1:], 32, 150, True)
    state = fill(shapes, seed=0)
    path = root / "iter_160000.pth"
    names = [f"thing{i}" for i in range(150)]
    torch.save(
        mmseg_checkpoint(state, classes=names, config=TINY_CONFIG.replace("num_classes=5", "num_classes=150")), path
    )
    return path, state, names


def test_segnext_freqfusion_checkpoint_converts_strictly_and_gives_the_reference_logits(tiny_checkpoint) -> None:
    path, state, names = tiny_checkpoint
    model, conv = convert("freqfusion", path)
    assert conv.model == {
        "name": "segnext",
        "backbone": "mscan_t",
        "backbone_kwargs": {"embed_dims": [8, 16, 32, 48], "depths": [1, 2, 1, 1], "mlp_ratios": [2, 2, 2, 2]},
        "num_classes": 150,
        "fusion": "freqfusion",
        "channels": 32,
        "ham_kwargs": {"MD_R": 4},
    }
    assert conv.extra["classes"] == names and len(conv.extra["palette"]) == 150
    assert len(conv.state_dict) == len(state) and not conv.dropped
    model = model.double().eval()
    s64 = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    for size in ((64, 96),):
        image = torch.rand(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got = model(image, torch.Generator().manual_seed(5))["semantic"]
            ref = reference_segnext(
                s64, image, depths=TINY["depths"], rank=4, generator=torch.Generator().manual_seed(5), freqfusion=True
            )
        assert got.shape == (2, 150, *size)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_full_size_segnext_t_without_freqfusion_and_without_meta() -> None:
    t = {"dims": (32, 64, 160, 256), "depths": (3, 3, 5, 2), "ratios": (8, 8, 4, 4)}
    shapes = official_mscan_shapes(t["dims"], t["depths"], t["ratios"]) | official_head_shapes(
        (64, 160, 256), 256, 150, False
    )
    state = fill(shapes, seed=1)
    conv = convert_segnext(state)
    assert conv.model == {"name": "segnext", "backbone": "mscan_t", "num_classes": 150, "fusion": "none"}
    assert any("MD_R=16" in note for note in conv.notes)  # the NMF rank is not in the weights: assumed, and said
    model = create_model("segnext", **{k: v for k, v in conv.model.items() if k != "name"})
    model.load_state_dict(conv.state_dict, strict=True)
    assert sum(p.numel() for p in model.parameters()) == 4_263_414


def test_tiny_plain_head_gives_the_reference_logits_at_an_odd_size(tmp_path) -> None:
    shapes = official_mscan_shapes(TINY["dims"], TINY["depths"], TINY["ratios"])
    shapes |= official_head_shapes(TINY["dims"][1:], 64, 7, False)
    state = fill(shapes, seed=2)
    config = "decode_head=dict(type='LightHamHead', ham_kwargs=dict(MD_R=2, MD_S=1))"
    torch.save(mmseg_checkpoint(state, config=config), tmp_path / "plain.pth")
    # a config text without ham_kwargs means the class default MD_R=64, not the T/S configs' 16
    assert convert_segnext(state, {"config": "decode_head=dict(type='LightHamHead')"}).model["ham_kwargs"] == {
        "MD_R": 64
    }
    model, conv = convert("freqfusion", tmp_path / "plain.pth", {"nmf_seed": 9})
    assert conv.model["ham_kwargs"] == {"MD_R": 2, "MD_S": 1} and conv.model["nmf_seed"] == 9
    model = model.double()
    image = torch.rand(1, 3, 45, 70, dtype=torch.float64)
    s64 = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    with torch.no_grad():
        got = model(image)["semantic"]
    ref = reference_segnext(
        s64, image, depths=TINY["depths"], rank=2, generator=torch.Generator().manual_seed(9), freqfusion=False
    )
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_cli_writes_a_run_directory_that_loads_with_the_checkpoint_classes(tiny_checkpoint, tmp_path) -> None:
    path, state, _ = tiny_checkpoint
    out = tmp_path / "segnext_run"
    code = main(["convert", "freqfusion", str(path), "--out", str(out)])  # default config: ADE20K SegNeXt-T
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "convert.json", "meta.json", "model.safetensors"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["model"]["name"] == "segnext" and meta["converted_from"]["format"] == "freqfusion"
    # the checkpoint's own meta["CLASSES"] (150 of them) win over the config's dataset tables
    assert len(meta["classes"]) == 150 and meta["classes"][0] == "thing0"
    assert meta["converted_from"]["extra"]["checkpoint_kind"].startswith("SegNeXt + FreqFusion")
    model, _ = load_model(out)
    x = torch.rand(1, 3, 64, 64)
    reference, _ = convert("freqfusion", path)
    with torch.no_grad():
        a = model(x, torch.Generator().manual_seed(3))["semantic"]
        b = reference(x, torch.Generator().manual_seed(3))["semantic"]
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ detection


def official_resnet_shapes(blocks=(3, 4, 6, 3), width=64) -> dict[str, tuple[int, ...]]:
    """mmdet ResNet (style='pytorch', Bottleneck) under ``backbone.``; mmdet checkpoints have no ``fc``."""
    s = _conv("backbone.conv1", width, 3, 7, bias=False) | _bn("backbone.bn1", width)
    inplanes = width
    for layer, n in enumerate(blocks, start=1):
        planes = width * 2 ** (layer - 1)
        for b in range(n):
            p = f"backbone.layer{layer}.{b}"
            s |= _conv(f"{p}.conv1", planes, inplanes, 1, bias=False) | _bn(f"{p}.bn1", planes)
            s |= _conv(f"{p}.conv2", planes, planes, 3, bias=False) | _bn(f"{p}.bn2", planes)
            s |= _conv(f"{p}.conv3", 4 * planes, planes, 1, bias=False) | _bn(f"{p}.bn3", 4 * planes)
            if b == 0:
                s |= _conv(f"{p}.downsample.0", 4 * planes, inplanes, 1, bias=False) | _bn(
                    f"{p}.downsample.1", 4 * planes
                )
            inplanes = 4 * planes
    return s


def official_neck_shapes(in_channels, out=256, num_outs=5, *, groups=4, norm=True) -> dict[str, tuple[int, ...]]:
    """FreqFusionCARAFEFPN (start_level 0): ConvModule laterals / fpn convs (``.conv``), ``alignment`` FreqFusion."""
    s: dict[str, tuple[int, ...]] = {}
    for i, c in enumerate(in_channels):
        s |= _conv(f"neck.lateral_convs.{i}.conv", out, c, 1) | _conv(f"neck.fpn_convs.{i}.conv", out, out, 3)
    for i in range(len(in_channels), num_outs):
        cin = in_channels[-1] if i == len(in_channels) else out
        s |= _conv(f"neck.lateral_convs.{i}.conv", out, cin, 3) | _conv(f"neck.fpn_convs.{i}.conv", out, out, 3)
    for i in range(len(in_channels)):
        s |= official_freqfusion_shapes(
            f"neck.alignment.{i}",
            out,
            out,
            2 * out // 8,
            groups=groups,
            norm=norm,
            hamming=True,
            direction="sim_concat",
        )
    return s


HEAD_KEYS = {
    "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
    "rpn_head.rpn_conv.bias": (256,),
    "rpn_head.rpn_cls.weight": (3, 256, 1, 1),
    "rpn_head.rpn_reg.weight": (12, 256, 1, 1),
    "roi_head.bbox_head.fc_cls.weight": (81, 1024),
    "roi_head.bbox_head.fc_reg.weight": (320, 1024),
    "roi_head.bbox_head.shared_fcs.1.weight": (1024, 1024),
    "roi_head.mask_head.conv_logits.weight": (80, 256, 1, 1),
}


def reference_neck(s, feats, *, out, num_outs, groups, norm):
    """The official FreqFusionCARAFEFPN forward written from its keys (start_level 0, extras from the last input)."""
    lat = [_conv_apply(f, s, f"neck.lateral_convs.{i}.conv") for i, f in enumerate(feats)]
    for i in range(len(feats), num_outs):
        src = feats[-1] if i == len(feats) else lat[-1]
        lat.append(_conv_apply(src, s, f"neck.lateral_convs.{i}.conv", stride=2, padding=1))
    for i in range(len(lat) - 1, 0, -1):
        p = f"neck.alignment.{i - 1}."
        ff = FreqFusion(
            out,
            out,
            compressed_channels=2 * out // 8,
            feature_resample=True,
            feature_resample_group=groups,
            feature_resample_norm=norm,
        ).double()
        ff.load_state_dict({k[len(p) :]: v for k, v in s.items() if k.startswith(p)}, strict=True)
        _, hr, lr = ff(lat[i - 1], lat[i])
        lat[i - 1] = hr + lr
    return [_conv_apply(x, s, f"neck.fpn_convs.{i}.conv", padding=1) for i, x in enumerate(lat)]


@pytest.mark.parametrize(
    ("width", "out", "groups", "norm"),
    [(64, 256, 4, True), (16, 64, 8, False)],  # Faster / Mask R-CNN R50; a slim Panoptic-FPN-like neck (no norm)
)
def test_detection_checkpoint_converts_backbone_and_neck_partially(tmp_path, capsys, width, out, groups, norm) -> None:
    stages = [4 * width * 2**i for i in range(4)]
    neck_shapes = official_neck_shapes(stages, out, groups=groups, norm=norm)
    fusions = {k: v for k, v in neck_shapes.items() if k.startswith("neck.alignment.")}
    if (out, groups, norm) == (256, 4, True):
        assert n_params(fusions) == 418_760  # the official detection neck's FreqFusion modules
    backbone_shapes = official_resnet_shapes(width=width)
    state = fill(backbone_shapes | neck_shapes, seed=3) | {k: torch.zeros(1) for k in HEAD_KEYS}
    source = tmp_path / "faster_rcnn_r50_fpn_1x_coco_freqfusion.pth"
    meta = {"CLASSES": tuple(f"c{i}" for i in range(80)), "config": "neck=dict(type='FreqFusionCARAFEFPN')"}
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, source)
    assert checkpoint_kind(state) == "detection"
    with pytest.raises(CheckpointError, match=r"no R-CNN.*write_partial_conversion"):
        convert("freqfusion", source)

    # `freqdense convert freqfusion` routes a detection checkpoint to the partial conversion and says so
    cli_out = tmp_path / "cli_partial"
    assert main(["convert", "freqfusion", str(source), "--out", str(cli_out)]) == 0
    assert sorted(p.name for p in cli_out.iterdir()) == sorted([PARTIAL_FILE, PARTIAL_REPORT])
    assert "R-CNN" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="--config and overrides do not apply"):
        convert_checkpoint("freqfusion", source, tmp_path / "x", overrides=["model.num_classes=3"])

    target = tmp_path / "partial"
    conv = write_partial_conversion(source, target)
    assert sorted(p.name for p in target.iterdir()) == sorted([PARTIAL_FILE, PARTIAL_REPORT])
    report = json.loads((target / PARTIAL_REPORT).read_text())
    assert report["partial"] is True and "NOT converted" in report["what"] and "no two-stage" in report["what"]
    assert set(report["unmapped"]) == set(HEAD_KEYS) and all("no R-CNN" in v for v in report["unmapped"].values())
    assert len(report["mapped"]) == len(backbone_shapes) + len(neck_shapes) and report["classes"][0] == "c0"
    expected_kw = {"feature_resample_group": groups, "feature_resample_norm": norm}
    assert report["neck"] == {
        "in_channels": stages,
        "out_channels": out,
        "num_outs": 5,
        "start_level": 0,
        "fusion": "freqfusion",
        "compress_ratio": 8,
        "fusion_kwargs": {
            "lowpass_kernel": 5,
            "highpass_kernel": 3,
            "feature_resample": True,
            "semi_conv": True,
            "comp_feat_upsample": True,
            "hamming_window": True,
            "direction_feat": "sim_concat",
            "feature_resample_group": groups,
            "feature_resample_norm": norm,
        },
    }
    assert expected_kw.items() <= report["neck"]["fusion_kwargs"].items()
    loaded = safetensors.torch.load_file(str(target / PARTIAL_FILE))
    assert "neck.fusions.3.dysampler.offset.weight" in loaded and "neck.lateral_convs.4.weight" in loaded
    assert torch.equal(loaded["neck.lateral_convs.2.bias"], state["neck.lateral_convs.2.conv.bias"])
    assert torch.equal(loaded["backbone.layer3.5.bn2.running_var"], state["backbone.layer3.5.bn2.running_var"])

    # The backbone + neck pair freqdense builds from the report loads the file strictly ...
    container = torch.nn.Module()
    container.backbone = create_backbone(report["backbone"], **report["backbone_kwargs"])
    container.neck = FreqFusionFPNNeck(**report["neck"])
    container.load_state_dict(loaded, strict=True)
    # ... and its neck computes what the official neck computes from the official keys.
    neck = container.neck.double().eval()
    g = torch.Generator().manual_seed(4)
    feats = [torch.randn(1, c, 32 // 2**i, 32 // 2**i, generator=g, dtype=torch.float64) for i, c in enumerate(stages)]
    s64 = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    with torch.no_grad():
        got = neck(feats)
        ref = reference_neck(s64, feats, out=out, num_outs=5, groups=groups, norm=norm)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    if width == 64:  # and into freqdense's FCOS with strict=False, only the (untrained) head missing
        fcos = create_model("fcos", num_classes=80, **report["fcos_options"])
        result = fcos.load_state_dict(loaded, strict=False)
        assert not result.unexpected_keys and result.missing_keys
        assert all(k.startswith("head.") for k in result.missing_keys)
    assert conv.backbone == "resnet50"


# ------------------------------------------------------------------------------------------------ refusals


def _save(tmp_path, state, name="ckpt.pth"):
    torch.save({"meta": {}, "state_dict": state}, tmp_path / name)
    return tmp_path / name


def test_a_checkpoint_of_neither_layout_is_refused_naming_the_expected_and_closest_keys(tmp_path) -> None:
    path = _save(tmp_path, {"encoder.conv1.weight": torch.zeros(1), "head.squeeze.conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError) as err:
        convert("freqfusion", path)
    message = str(err.value)
    assert "neither an mmseg SegNeXt checkpoint" in message and "FreqFusionCARAFEFPN" in message
    assert "decode_head.squeeze.conv.weight" in message and "head.squeeze.conv.weight (for" in message
    with pytest.raises(CheckpointError, match="Mask2Former"):
        convert("freqfusion", _save(tmp_path, {"sem_seg_head.pixel_decoder.x.weight": torch.zeros(1)}, "m2f.pth"))
    plain_fpn = {"backbone.conv1.weight": torch.zeros(1), "neck.lateral_convs.0.conv.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"no FreqFusion modules \(no neck.alignment"):
        convert("freqfusion", _save(tmp_path, plain_fpn, "fpn.pth"))


def test_renamed_keys_and_contradicting_options_are_named(tiny_checkpoint, tmp_path) -> None:
    path, state, _ = tiny_checkpoint
    broken = dict(state)
    broken["decode_head.align.bn.weight"] = broken.pop("decode_head.align.gn.weight")
    with pytest.raises(CheckpointError, match=r"decode_head.align.gn.weight \(closest: decode_head.align.bn.weight\)"):
        convert("freqfusion", _save(tmp_path, broken))
    with pytest.raises(CheckpointError, match="model.num_classes=19 but the checkpoint has 150"):
        convert("freqfusion", path, {"num_classes": 19})
    with pytest.raises(CheckpointError, match=r"\['compress_ratio'\] are read from the SegNeXt checkpoint"):
        convert("freqfusion", path, {"compress_ratio": 8})
    no_stage = {k: v for k, v in state.items() if not k.startswith("backbone.patch_embed3.")}
    with pytest.raises(CheckpointError, match="backbone.patch_embed3.proj.weight' is missing"):
        convert("freqfusion", _save(tmp_path, no_stage, "no_stage.pth"))


def test_partial_conversion_refuses_segnext_and_existing_folders(tiny_checkpoint, tmp_path) -> None:
    path, _, _ = tiny_checkpoint
    with pytest.raises(CheckpointError, match="complete run directory"):
        write_partial_conversion(path, tmp_path / "out")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists"):
        write_partial_conversion(path, taken)
    assert (taken / "keep.txt").read_text() == "mine" and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".tmp-convert-*"))


def test_cli_refuses_a_bad_checkpoint_without_leaving_a_folder(tmp_path, caplog) -> None:
    path = _save(tmp_path, {"foo.weight": torch.zeros(1)})
    out = tmp_path / "out"
    assert (
        main(["convert", "freqfusion", str(path), "--out", str(out), "--config", "ade20k/fpn_freqfusion_r50_512x512"])
        == 1
    )
    assert "neither an mmseg SegNeXt checkpoint" in caplog.text and "Traceback" not in caplog.text
    assert not out.exists() and not list(tmp_path.glob(".tmp-convert-*"))

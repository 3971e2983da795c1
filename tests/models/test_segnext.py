"""SegNeXt: the MSCAN backbone, the light Hamburger head (plain / FreqFusion) and the registered model ``segnext``.

Parameter counts were measured from the official modules (Visual-Attention-Network/SegNeXt ``mscan.py`` and the
FreqFusion repository's ``ham_head.py`` @ 3fb0c70, built with their ADE20K configs and 150 classes). Numerical checks
use closed forms and an NMF reference written here, in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.errors import ConfigError, ShapeError
from freqdense.models import create_model
from freqdense.models._dense import IMAGENET_MEAN, IMAGENET_STD
from freqdense.models.backbones import Backbone, create_backbone, list_backbones
from freqdense.models.backbones.mscan import MSCABlock, MultiScaleConvAttention
from freqdense.models.decoders.ham_head import NMF2D, Hamburger, LightHamHead

TINY = {"embed_dims": (8, 16, 32, 48), "depths": (1, 2, 1, 1), "mlp_ratios": (2, 2, 2, 2)}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def tiny_model(fusion: str = "freqfusion", **kw) -> torch.nn.Module:
    return create_model("segnext", backbone_kwargs=dict(TINY), num_classes=5, channels=32, fusion=fusion, **kw)


# ------------------------------------------------------------------------------------------------------- MSCAN


def test_mscan_variants_are_registered_backbones_with_the_contract() -> None:
    assert list_backbones("mscan*") == ["mscan_b", "mscan_l", "mscan_s", "mscan_t"]
    net = create_backbone("mscan_t")
    assert isinstance(net, Backbone)
    assert net.out_channels == (32, 64, 160, 256) and net.strides == (4, 8, 16, 32)
    assert net.first_conv == "patch_embed1.proj.0.weight" and "head." in net.checkpoint_ignore_prefixes
    assert create_backbone("mscan_s", out_indices=(1, 2, 3)).out_channels == (128, 320, 512)


# Measured from the official MSCAN (SegNeXt repository) with the configs' embed_dims / depths / mlp_ratios.
@pytest.mark.parametrize(
    ("name", "count", "keys"),
    [
        ("mscan_t", 3_903_584, 537),
        ("mscan_s", 13_450_176, 423),
        ("mscan_b", 26_277_824, 841),
        ("mscan_l", 44_636_864, 1487),
    ],
)
def test_mscan_parameter_and_key_counts_equal_the_official_module(name: str, count: int, keys: int) -> None:
    with torch.device("meta"):
        net = create_backbone(name)
    assert n_params(net) == count
    assert len(net.state_dict()) == keys


def test_mscan_official_key_names() -> None:
    keys = set(create_backbone("mscan_t").state_dict())
    for key in (
        "patch_embed1.proj.0.weight",
        "patch_embed1.proj.1.running_var",
        "patch_embed1.proj.4.weight",
        "patch_embed2.proj.weight",
        "patch_embed2.norm.running_mean",
        "block1.0.layer_scale_1",
        "block1.0.norm1.weight",
        "block1.0.attn.proj_1.weight",
        "block1.0.attn.spatial_gating_unit.conv0.weight",
        "block1.0.attn.spatial_gating_unit.conv2_2.weight",
        "block1.0.attn.spatial_gating_unit.conv3.bias",
        "block3.4.mlp.dwconv.dwconv.weight",
        "block4.1.mlp.fc2.bias",
        "norm4.weight",
    ):
        assert key in keys, key
    shapes = create_backbone("mscan_t").state_dict()
    assert tuple(shapes["block1.0.attn.spatial_gating_unit.conv2_1.weight"].shape) == (32, 1, 1, 21)
    assert tuple(shapes["block1.0.attn.spatial_gating_unit.conv1_2.weight"].shape) == (32, 1, 11, 1)
    assert tuple(shapes["block1.0.mlp.fc1.weight"].shape) == (256, 32, 1, 1)  # mlp ratio 8
    assert tuple(shapes["block3.0.mlp.fc1.weight"].shape) == (640, 160, 1, 1)  # mlp ratio 4


def _identity_depthwise(conv: torch.nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        kh, kw = conv.kernel_size
        conv.weight[:, :, kh // 2, kw // 2] = 1.0
        conv.bias.zero_()


def test_msca_closed_form_with_identity_filters() -> None:
    """conv0 = identity, strips zero, conv3 = identity: MSCA(x) = x * x; one identity strip pair: 2 x * x."""
    torch.manual_seed(0)
    msca = MultiScaleConvAttention(4).double()
    _identity_depthwise(msca.conv0)
    for name in ("conv0_1", "conv0_2", "conv1_1", "conv1_2", "conv2_1", "conv2_2"):
        with torch.no_grad():
            getattr(msca, name).weight.zero_()
            getattr(msca, name).bias.zero_()
    with torch.no_grad():
        msca.conv3.weight.copy_(torch.eye(4, dtype=torch.float64)[:, :, None, None])
        msca.conv3.bias.zero_()
    x = torch.randn(2, 4, 9, 23, dtype=torch.float64)
    torch.testing.assert_close(msca(x), x * x, rtol=0, atol=1e-14)
    _identity_depthwise(msca.conv2_1)  # the 1x21 / 21x1 branch passes d through: d + d
    _identity_depthwise(msca.conv2_2)
    torch.testing.assert_close(msca(x), 2 * x * x, rtol=0, atol=1e-14)


def test_block_with_zero_layer_scale_is_the_identity_and_stages_end_in_layer_norm() -> None:
    block = MSCABlock(8, 4.0, drop_path=0.5).double().eval()
    with torch.no_grad():
        block.layer_scale_1.zero_()
        block.layer_scale_2.zero_()
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    assert torch.equal(block(x), x)
    net = create_backbone("mscan_t", **TINY).double().eval()
    for f in net(torch.rand(1, 3, 37, 53, dtype=torch.float64)):  # LayerNorm over channels with weight 1, bias 0
        torch.testing.assert_close(f.mean(1), torch.zeros_like(f[:, 0]), rtol=0, atol=1e-12)
        torch.testing.assert_close(f.var(1, unbiased=False), torch.ones_like(f[:, 0]), rtol=0, atol=1e-3)  # eps 1e-5


def test_mscan_odd_sizes_give_ceil_strides_and_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    net = create_backbone("mscan_t", **TINY, drop_path_rate=0.2)
    feats = net(torch.rand(2, 3, 37, 53))
    assert [tuple(f.shape[-2:]) for f in feats] == [(10, 14), (5, 7), (3, 4), (2, 2)]
    weights = [torch.randn_like(f) for f in feats]
    sum((f * w).sum() for f, w in zip(feats, weights)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mscan_checkpointing_changes_nothing() -> None:
    torch.manual_seed(0)
    a = create_backbone("mscan_t", **TINY).double().eval()
    b = create_backbone("mscan_t", **TINY, use_checkpoint=True).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    ya, yb = a(x)[-1], b(x)[-1]
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    ya.sum().backward()
    yb.sum().backward()
    ga = a.patch_embed1.proj[0].weight.grad
    torch.testing.assert_close(ga, b.patch_embed1.proj[0].weight.grad, rtol=1e-12, atol=1e-14)


def test_mscan_loads_an_imagenet_file_without_its_classifier(tmp_path) -> None:
    torch.manual_seed(0)
    source = create_backbone("mscan_t", **TINY)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.state_dict().items()}
    torch.save(
        {"state_dict": {**state, "head.weight": torch.zeros(1000, 48), "head.bias": torch.zeros(1000)}},
        tmp_path / "mscan_t.pth",
    )
    net = create_backbone("mscan_t", **TINY, pretrained=str(tmp_path / "mscan_t.pth"))
    assert torch.equal(net.state_dict()["block2.1.mlp.fc1.weight"], state["block2.1.mlp.fc1.weight"])
    with pytest.raises(ConfigError, match="never downloads"):
        create_backbone("mscan_t", pretrained=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dims": (8, 16, 32)}, "4 stages"),
        ({"embed_dims": (7, 16, 32, 48)}, "first even"),
        ({"depths": (1, 0, 1, 1)}, "depths >= 1"),
        ({"out_indices": (2, 1)}, "out_indices"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_mscan_bad_options_are_named(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        create_backbone("mscan_t", **kwargs)


def test_mscan_refuses_a_wrong_input() -> None:
    with pytest.raises(ShapeError, match="MSCAN input"):
        create_backbone("mscan_t", **TINY)(torch.rand(1, 4, 16, 16))


# ------------------------------------------------------------------------------------------------------- NMF


def reference_nmf(x, rank, steps, generator, eps=1e-6):
    """Multiplicative-update NMF written from Geng et al. (ICLR 2021) Eq. 5 and the official step order."""
    b, c, h, w = x.shape
    X = x.reshape(b, c, h * w)
    B = torch.rand((b, c, rank), generator=generator, dtype=torch.float32).to(x.dtype)
    B = B / B.norm(dim=1, keepdim=True).clamp_min(1e-12)
    C = torch.softmax(X.transpose(1, 2) @ B, dim=-1)
    for _ in range(steps):
        C = C * (X.transpose(1, 2) @ B) / (C @ (B.transpose(1, 2) @ B) + eps)
        B = B * (X @ C) / (B @ (C.transpose(1, 2) @ C) + eps)
    C = C * (X.transpose(1, 2) @ B) / (C @ (B.transpose(1, 2) @ B) + eps)
    return (B @ C.transpose(1, 2)).reshape(b, c, h, w)


@pytest.mark.parametrize("training", [True, False])
def test_nmf_equals_the_reference_under_the_same_generator(training) -> None:
    x = torch.rand(2, 12, 5, 7, dtype=torch.float64)
    nmf = NMF2D(R=4).train(training)
    out = nmf(x, torch.Generator().manual_seed(7))
    ref = reference_nmf(x, 4, 6 if training else 7, torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-14)
    torch.manual_seed(11)  # no generator, no seed: the global CPU generator, as the official torch.rand
    out = nmf(x)
    torch.manual_seed(11)
    ref = reference_nmf(x, 4, 6 if training else 7, None)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-14)


def test_nmf_recovers_a_rank_one_matrix_and_never_increases_the_error() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(1, 6, 1, dtype=torch.float64, generator=g) + 0.1
    v = torch.rand(1, 1, 20, dtype=torch.float64, generator=g) + 0.1
    x = (u @ v).reshape(1, 6, 4, 5)
    rank1 = NMF2D(R=1, seed=3).eval()
    assert ((rank1(x) - x).norm() / x.norm()).item() < 1e-5
    x = torch.rand(2, 8, 5, 7, dtype=torch.float64, generator=g)
    errors = [(NMF2D(R=3, eval_steps=k, seed=3).eval()(x) - x).norm().item() for k in range(8)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:])) and errors[-1] < 0.8 * errors[0]
    assert (NMF2D(R=3, seed=3)(x) >= 0).all()


def test_nmf_seed_fixes_the_evaluation_bases_for_every_sample_and_training_stays_random() -> None:
    x = torch.rand(3, 8, 4, 4)
    seeded = NMF2D(R=2, seed=5, channels=8).eval()
    out = seeded(x)
    assert torch.equal(out, seeded(x))
    for i in range(3):  # one fixed draw for every sample: a prediction does not depend on its batch
        torch.testing.assert_close(seeded(x[i : i + 1]), out[i : i + 1], rtol=1e-6, atol=1e-7)
    fixed = torch.rand((1, 8, 2), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(seeded.fixed_bases(8), F.normalize(fixed, dim=1), rtol=0, atol=0)
    seeded.train()
    assert not torch.equal(seeded(x), seeded(x))  # training draws fresh bases, as upstream
    free = NMF2D(R=2).eval()
    assert not torch.equal(free(x), free(x))
    frozen = NMF2D(R=2, rand_init=False, channels=8)
    assert tuple(frozen.bases.shape) == (1, 8, 2) and "bases" in frozen.state_dict()
    assert torch.equal(frozen(x), frozen(x))
    with pytest.raises(ConfigError, match="channels"):
        NMF2D(rand_init=False)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        NMF2D(seed=1.5)


def test_hamburger_residual_with_a_zero_output_conv_is_relu_of_the_input() -> None:
    ham = Hamburger(32, {"MD_R": 4}).double()
    with torch.no_grad():
        ham.ham_out.conv.weight.zero_()
    x = torch.randn(2, 32, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(ham(x), F.relu(x), rtol=0, atol=1e-14)
    assert set(ham.state_dict()) == {
        "ham_in.conv.weight",
        "ham_in.conv.bias",
        "ham_out.conv.weight",
        "ham_out.gn.weight",
        "ham_out.gn.bias",
    }


@pytest.mark.parametrize(
    ("ham_kwargs", "match"),
    [({"INV_T": 100}, "inv_t = 1"), ({"SPATIAL": False}, "spatial"), ({"MD_X": 3}, "unknown ham_kwargs")],
)
def test_bad_ham_kwargs_are_named(ham_kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        LightHamHead((16, 32, 48), 32, 32, 5, ham_kwargs=ham_kwargs)


# ------------------------------------------------------------------------------------------------------- head


def test_plain_head_concatenates_resized_stages_finest_first() -> None:
    head = LightHamHead((16, 32, 48), 32, 32, 5).double()
    feats = [torch.rand(1, c, s, s + 1, dtype=torch.float64) for c, s in ((16, 8), (32, 4), (48, 2))]
    expected = torch.cat(
        [feats[0]] + [F.interpolate(f, size=(8, 9), mode="bilinear", align_corners=False) for f in feats[1:]], 1
    )
    torch.testing.assert_close(head.fuse(feats), expected, rtol=0, atol=0)


def test_freqfusion_head_concatenation_layout_is_the_official_reshape() -> None:
    """LightHamHeadFreqAware concatenates as cat([hr.reshape(B G, -1), lr.reshape(B G, -1)]).reshape(B, -1)."""
    torch.manual_seed(0)
    head = LightHamHead((16, 32, 48), 32, 32, 5, fusion="freqfusion").double().eval()
    feats = [torch.rand(2, c, s, s, dtype=torch.float64) for c, s in ((16, 8), (32, 4), (48, 2))]
    x = feats[2]
    for k, hr in enumerate((feats[1], feats[0])):
        _, hr_out, lr_up = head.freqfusions[k](hr, x)
        b, _, h, w = hr_out.shape
        x = torch.cat([hr_out.reshape(b * 4, -1, h, w), lr_up.reshape(b * 4, -1, h, w)], dim=1).reshape(b, -1, h, w)
    torch.testing.assert_close(head.fuse(feats), x, rtol=0, atol=0)
    assert [(f.hr_channels, f.lr_channels, f.compressed_channels) for f in head.freqfusions] == [
        (32, 48, 20),
        (16, 80, 24),
    ]


def test_head_refuses_wrong_features_and_options() -> None:
    head = LightHamHead((16, 32, 48), 32, 32, 5)
    with pytest.raises(ShapeError, match=r"channels \(16, 32, 48\)"):
        head([torch.rand(1, 16, 8, 8), torch.rand(1, 32, 4, 4)])
    with pytest.raises(ConfigError, match="'none'.*'freqfusion'"):
        LightHamHead((16, 32, 48), fusion="carafe")
    with pytest.raises(ConfigError, match="divisible by 32"):
        LightHamHead((16, 32, 48), 48, 48)
    with pytest.raises(ConfigError, match="feature_resample_group"):
        LightHamHead((18, 32, 48), 32, 32, fusion="freqfusion")
    with pytest.raises(ConfigError, match="fusion='freqfusion'"):
        LightHamHead((16, 32, 48), 32, 32, fusion_kwargs={"hamming_window": True})


# ------------------------------------------------------------------------------------------------------- model

# Measured from the official MSCAN + LightHamHead / LightHamHeadFreqAware (ADE20K configs, 150 classes).
OFFICIAL = {
    "mscan_t": (4_263_414, 4_520_794, [116_146, 141_234]),
    "mscan_s": (13_932_886, 14_643_386, [315_826, 394_674]),
    "mscan_b": (27_636_310, 28_346_810, [315_826, 394_674]),
    "mscan_l": (48_926_550, 49_637_050, [315_826, 394_674]),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_segnext_parameter_counts_equal_the_official_models(name) -> None:
    plain, freq, fusions = OFFICIAL[name]
    with torch.device("meta"):
        a = create_model("segnext", backbone=name, fusion="none")
        b = create_model("segnext", backbone=name)
    assert n_params(a) == plain and n_params(b) == freq
    assert [n_params(m) for m in b.decode_head.freqfusions] == fusions
    keys = set(b.state_dict())
    assert {
        "decode_head.conv_seg.weight",
        "decode_head.squeeze.gn.bias",
        "decode_head.hamburger.ham_in.conv.bias",
    } <= keys
    assert "decode_head.freqfusions.1.dysampler.hr_direct_scale.weight" in keys
    assert b.decode_head.nmf.R == (16 if name in ("mscan_t", "mscan_s") else 64)


def test_segnext_uses_the_official_segnext_fusion_settings() -> None:
    with torch.device("meta"):
        model = create_model("segnext")
    ff = model.decode_head.freqfusions[0]
    assert (ff.hr_channels, ff.lr_channels, ff.compressed_channels) == (160, 256, 104)
    assert ff.feature_resample and not ff.hamming_window and ff.dysampler.direction_feat == "sim"
    assert ff.dysampler.groups == 4 and tuple(model.decode_head.freqfusions[1].hamming_lowpass.shape) == (1,)


@pytest.mark.parametrize("fusion", ["freqfusion", "none"])
def test_segnext_gradients_reach_every_parameter_at_an_odd_size(fusion) -> None:
    torch.manual_seed(0)
    model = tiny_model(fusion).train()
    # >= 3 px at stride 32: the offset generator's local similarities look 2 px away (zero on a 2 x 2 map).
    out = model(torch.rand(2, 3, 83, 101))["semantic"]
    assert tuple(out.shape) == (2, 5, 83, 101) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_segnext_normalises_inside_and_is_deterministic_with_a_seed() -> None:
    torch.manual_seed(0)
    model = tiny_model().eval()
    assert model.nmf.seed == 0  # the default: fixed evaluation bases
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(IMAGENET_STD))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)["semantic"]
        assert torch.equal(out, model(x)["semantic"])
        torch.testing.assert_close(model(x[1:])["semantic"], out[1:], rtol=1e-5, atol=1e-6)
        model.nmf.seed = None  # official: random bases at every forward, unless a generator is given
        a = model(x, torch.Generator().manual_seed(1))["semantic"]
        assert torch.equal(a, model(x, torch.Generator().manual_seed(1))["semantic"])
        assert not torch.equal(a, model(x, torch.Generator().manual_seed(2))["semantic"])
        assert not torch.equal(model(x)["semantic"], model(x)["semantic"])
        logits = model.decode_head(model.backbone((x - model.mean) / model.std), torch.Generator().manual_seed(1))
        torch.testing.assert_close(a, F.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=False))


def test_segnext_bad_options_and_inputs() -> None:
    with pytest.raises(ConfigError, match="out_indices"):
        create_model("segnext", backbone_kwargs={"out_indices": (0, 1)})
    with pytest.raises(ConfigError, match=r"pretrained=True .*never downloads.*pretrained=PATH"):
        create_model("segnext", pretrained=True)
    with pytest.raises(ShapeError, match="float RGB"):
        tiny_model()(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="unknown argument"):
        create_model("segnext", fusions="none")

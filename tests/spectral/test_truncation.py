from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from freqdense.errors import ConfigError
from freqdense.spectral import (
    TruncatedDecoder,
    ce_spectrum,
    relative_discrepancy,
    resize_to_grid,
    run_at_grid,
    truncate_decoder,
    truncated_ce,
)


def test_truncated_ce_and_relative_discrepancy_hand_case():
    loss = torch.tensor([[6.0, 1.0, -1.0, 2.0]])  # total 8; components may be negative
    assert truncated_ce(loss).tolist() == [[6.0, 7.0, 6.0, 8.0]]
    assert truncated_ce(loss, 1).tolist() == [7.0]
    assert truncated_ce(loss, 99).tolist() == [8.0]
    assert relative_discrepancy(loss).tolist() == [[0.25, 0.125, 0.25, 0.0]]
    assert relative_discrepancy(loss, 0).item() == 0.25
    assert relative_discrepancy(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError):
        relative_discrepancy(loss, -1)


def test_r_is_exactly_zero_at_the_full_band_of_a_real_spectrum():
    logits = torch.randn(1, 21, 33, 33)
    labels = torch.randint(0, 21, (1, 33, 33))
    r = relative_discrepancy(ce_spectrum(logits, labels).loss)
    assert r[0, -1].item() == 0.0 and r[0, 16].item() == 0.0  # shell 16 is the top of a 33 x 33 map
    assert r[0, 0].item() > 0


def test_bilinear_align_corners_129_to_65_is_exact_subsampling():
    x = torch.randn(1, 4, 129, 129, dtype=torch.float64)
    torch.testing.assert_close(resize_to_grid(x, 65), x[..., ::2, ::2])
    torch.testing.assert_close(resize_to_grid(x, 33), x[..., ::4, ::4])
    area = resize_to_grid(torch.randn(1, 2, 8, 8, dtype=torch.float64), 4, mode="area")
    assert area.shape == (1, 2, 4, 4)
    smooth = resize_to_grid(torch.ones(1, 1, 20, 20), (5, 7), mode="bilinear_antialias")
    torch.testing.assert_close(smooth, torch.ones(1, 1, 5, 7))
    with pytest.raises(ConfigError, match="grid mode"):
        resize_to_grid(x, 9, mode="nearest")  # type: ignore[arg-type]


class _Decoder(nn.Module):
    """jfzhang95-style: project the low-level feature, resize the high-level one to it, classify."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Conv2d(8, 2, 1)
        self.classify = nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.classify(torch.cat([high, self.project(low)], dim=1))


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.aspp = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.head = nn.ModuleDict({"decoder": _Decoder()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.encoder(x)
        logits = self.head["decoder"](self.aspp(low), low)
        return {"semantic": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)}


def test_run_at_grid_resizes_every_input_and_optionally_the_output():
    seen = []

    def decoder(a, b, *, extra):
        seen.extend([a.shape, b.shape, extra.shape])
        return {"out": a + b[:, :1], "aux": [a]}

    a, b, extra = torch.randn(1, 1, 17, 17), torch.randn(1, 2, 9, 9), torch.randn(1, 1, 33, 33)
    out = run_at_grid(decoder, a, b, extra=extra, size=5)
    assert seen == [(1, 1, 5, 5), (1, 2, 5, 5), (1, 1, 5, 5)]
    assert out["out"].shape == (1, 1, 5, 5)
    up = run_at_grid(decoder, a, b, extra=extra, size=5, output_size=(17, 17))
    assert up["out"].shape == (1, 1, 17, 17) and up["aux"][0].shape == (1, 1, 17, 17)


def test_truncate_decoder_runs_the_decoder_on_the_grid_and_keeps_gradients():
    model = _Model().eval()
    x = torch.rand(1, 3, 65, 65)
    full = model(x)["semantic"]
    truncate_decoder(model, 9, attribute="head.decoder")
    wrapper = model.head["decoder"]
    assert isinstance(wrapper, TruncatedDecoder) and wrapper.size == (9, 9)
    grids = []
    handle = wrapper.decoder.classify.register_forward_hook(lambda m, i, o: grids.append(o.shape[-2:]))
    out = model(x)["semantic"]
    handle.remove()
    assert grids == [(9, 9)] and out.shape == full.shape
    # Re-truncating replaces the grid instead of nesting wrappers.
    truncate_decoder(model, 5, attribute="head.decoder")
    assert isinstance(model.head["decoder"].decoder, _Decoder) and model.head["decoder"].size == (5, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_truncation_at_the_native_grid_changes_nothing():
    model = _Model().eval()
    x = torch.rand(1, 3, 65, 65)
    ref = model(x)["semantic"]
    low_grid = model.encoder(x).shape[-1]  # 17
    truncate_decoder(model, low_grid, attribute="head.decoder")
    torch.testing.assert_close(model(x)["semantic"], ref)


def test_restore_size_and_errors():
    dec = TruncatedDecoder(_Decoder(), 4, restore_size=True)
    out = dec(torch.randn(1, 4, 5, 5), torch.randn(1, 8, 17, 17))
    assert out.shape == (1, 3, 17, 17)
    with pytest.raises(ConfigError, match="children are: encoder, aspp, head"):
        truncate_decoder(_Model(), 9, attribute="decoder")


def test_a_grid_larger_than_the_decoder_map_warns_once():
    # 48x64 input at stride 4: the low-level map is 12x16, so a 13x13 grid upsamples the height axis.
    high, low = torch.randn(1, 4, 3, 4), torch.randn(1, 8, 12, 16)
    dec = TruncatedDecoder(_Decoder(), 13)
    with pytest.warns(UserWarning, match=r"13x13 grid is larger than the decoder's largest input map \(12x16\)"):
        dec(high, low)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dec(high, low)  # once per module
        TruncatedDecoder(_Decoder(), 7)(high, low)  # 7x7 fits in 12x16: a real truncation, no warning

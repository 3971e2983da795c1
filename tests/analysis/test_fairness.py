from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from freqdense.analysis.fairness import (
    StereoPair,
    analyze_stereo_pair,
    disparity_sweep,
    fairness_degree,
    fig5_example,
    fig5_losses,
)


def test_fairness_degree_definition():
    x = torch.arange(6.0)
    assert fairness_degree(torch.tensor([5.0, 4, 3, 2, 3, 4]), x, 3.0) == 1.0  # 'V' at gt: absolutely fair
    assert fairness_degree(torch.ones(6), x, 3.0) == 0.0  # flat: no interval counts
    assert fairness_degree(-torch.tensor([5.0, 4, 3, 2, 3, 4]), x, 3.0) == 0.0  # inverted 'V'
    # gt inside an interval: a rising line from 0 to 4 with gt = 1.5 is fair on [1.5, 4] only -> 2.5 / 4
    assert fairness_degree(torch.arange(5.0), torch.arange(5.0), 1.5).item() == pytest.approx(2.5 / 4)


def test_fig5_hand_computed():
    ex = fig5_example()
    raw = fig5_losses(ex, blur=False)
    # raw L1 (channel mean): 2/3 everywhere but gt (0.2/3) and fp (0): only intervals 3, 9, 10 are fair -> 3/15
    expected_raw = torch.full((16,), 2 / 3)
    expected_raw[10], expected_raw[4] = 0.2 / 3, 0.0
    assert torch.allclose(raw, expected_raw, atol=1e-6)
    assert fairness_degree(raw, ex.disparities, ex.gt_disparity).item() == pytest.approx(3 / 15)
    # blurred with (1/6, 2/3, 1/6): target (2/3, 1/3, 0); hand values per disparity (docs/methods/freq_aware_depth.md)
    t = torch.tensor([2 / 3, 1 / 3, 0.0])
    cols = {  # blurred right colours by disparity
        10: torch.tensor([0.8 * 2 / 3, 1 / 3, 0]),
        9: torch.tensor([0.8 / 6, 2 / 3, 1 / 6]),
        11: torch.tensor([0.8 / 6, 2 / 3, 1 / 6]),
        8: torch.tensor([0, 1 / 6, 5 / 6]),
        12: torch.tensor([0, 1 / 6, 5 / 6]),
        4: torch.tensor([2 / 3, 0, 1 / 3]),
        3: torch.tensor([1 / 6, 0, 5 / 6]),
        5: torch.tensor([1 / 6, 0, 5 / 6]),
    }
    expected = torch.tensor([float((t - cols.get(d, torch.tensor([0, 0, 1.0]))).abs().mean()) for d in range(16)])
    blurred = fig5_losses(ex, blur=True)
    assert torch.allclose(blurred, expected, atol=1e-6)
    # fair intervals 2, 3, 7..12 -> 8/15; the false positive is no longer below the gt
    assert fairness_degree(blurred, ex.disparities, ex.gt_disparity).item() == pytest.approx(8 / 15)
    assert blurred[ex.fp_disparity] > blurred[ex.gt_disparity] and raw[ex.fp_disparity] < raw[ex.gt_disparity]


def _synthetic_pair(d=3.0):
    torch.manual_seed(0)
    right = torch.rand(1, 3, 12, 40)
    left = torch.zeros_like(right)
    left[..., int(d) :] = right[..., : 40 - int(d)]  # left(x) = right(x - d)
    disp = torch.full((1, 1, 12, 40), d)
    return StereoPair(left, right, disp)


def test_sweep_minimum_at_gt_on_exact_pair():
    pair = _synthetic_pair()
    sweep = disparity_sweep(pair.left, pair.right, pair.disparity, radius=2, ssim_weight=0.0)
    k0 = sweep.losses[:, 2:3]
    assert k0[sweep.valid].abs().max() < 1e-5  # grid normalisation rounding
    assert sweep.valid[..., :5].sum() == 0 and sweep.valid[..., 5:].all()  # x - d - 2 >= 0 needs x >= 5


def test_analyze_stereo_pair_keys_and_ranges():
    res = analyze_stereo_pair(_synthetic_pair(), radius=2)
    for v in ("baseline", "auto_blur"):
        assert 0 <= res[v]["d_fair_mean"] <= 1
        assert res[v]["gt_is_sweep_minimum"] > 0.9
        t = res[v]["table4"]
        assert t["ambiguous_loss_share"] + t["other_loss_share"] == pytest.approx(1.0)


def test_cli_fig5(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "freqdense", "analyze", "fairness", "--fig5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "3/15" in out and "8/15" in out
    assert (tmp_path / "fairness.json").is_file()

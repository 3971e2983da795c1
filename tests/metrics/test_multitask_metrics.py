"""Δm (Vandenhende et al. Eq. 10) on hand examples, the per-task averaged variant and its errors."""

from __future__ import annotations

import pytest

from freqdense.errors import ConfigError
from freqdense.metrics import delta_m, delta_m_terms

BASE = {
    "semantic": {"miou": 0.40, "pixel_acc": 0.60, "mean_acc": 0.50, "iou/wall": 0.7},
    "depth": {"rmse": 0.60, "abs_rel": 0.20},
}


def test_default_uses_miou_and_rmse():
    # semantic: +(0.44 - 0.40) / 0.40 = +10 %;  depth: -(0.54 - 0.60) / 0.60 = +10 %  -> Δm = +10 %
    better = {"semantic": {"miou": 0.44, "pixel_acc": 0.0}, "depth": {"rmse": 0.54, "abs_rel": 9.0}}
    assert delta_m(better, BASE) == pytest.approx(10.0)
    # semantic: (0.38 - 0.40) / 0.40 = -5 %;  depth: -(0.63 - 0.60) / 0.60 = -5 %  -> Δm = -5 %
    worse = {"semantic": {"miou": 0.38}, "depth": {"rmse": 0.63}}
    assert delta_m(worse, BASE) == pytest.approx(-5.0)
    # mixed: +10 % and -5 % -> 2.5 %
    mixed = {"semantic": {"miou": 0.44}, "depth": {"rmse": 0.63}}
    assert delta_m(mixed, BASE) == pytest.approx(2.5)
    assert delta_m_terms(mixed, BASE) == pytest.approx({"semantic": 10.0, "depth": -5.0})


def test_identical_results_give_zero():
    assert delta_m(BASE, BASE) == 0.0
    assert delta_m(BASE, BASE, "all") == 0.0


def test_all_metrics_averaged_per_task_first():
    # semantic: miou +10 %, pixel_acc (0.63 vs 0.60) +5 %, mean_acc (0.50 vs 0.50) 0 -> task 5 %  (iou/* not used)
    # depth: rmse (0.54 vs 0.60) +10 %, abs_rel (0.22 vs 0.20, lower is better) -10 % -> task 0 %
    # Δp = (5 + 0) / 2 = 2.5 %  (a flat mean over the 5 metrics would give 3 %)
    results = {
        "semantic": {"miou": 0.44, "pixel_acc": 0.63, "mean_acc": 0.50, "iou/wall": 0.0},
        "depth": {"rmse": 0.54, "abs_rel": 0.22},
    }
    assert delta_m(results, BASE, "all") == pytest.approx(2.5)
    explicit = {
        "semantic": [("miou", True), ("pixel_acc", True), ("mean_acc", True)],
        "depth": [("rmse", False), ("abs_rel", False)],
    }
    assert delta_m(results, BASE, explicit) == pytest.approx(2.5)


def test_explicit_single_metric_and_subset_of_tasks():
    results = {"semantic": {"miou": 0.44}, "depth": {"rmse": 0.54, "abs_rel": 0.25}}
    # only depth, abs_rel: -(0.25 - 0.20) / 0.20 = -25 %
    assert delta_m(results, BASE, {"depth": ("abs_rel", False)}) == pytest.approx(-25.0)


def test_errors_name_what_is_missing():
    with pytest.raises(ConfigError, match="'rmse'.*'depth'"):
        delta_m({"semantic": {"miou": 0.4}, "depth": {"abs_rel": 0.2}}, BASE)
    with pytest.raises(ConfigError, match="'normals'"):
        delta_m({"normals": {"mean_err": 20.0}}, BASE)
    with pytest.raises(ConfigError, match="baseline"):
        delta_m({"semantic": {"miou": 0.4}}, {"depth": {"rmse": 0.6}})
    with pytest.raises(ConfigError, match="is 0"):
        delta_m({"semantic": {"miou": 0.4}}, {"semantic": {"miou": 0.0}})
    with pytest.raises(ConfigError, match="higher_is_better"):
        delta_m({"semantic": {"miou": 0.4}}, BASE, {"semantic": "miou"})
    with pytest.raises(ConfigError, match="finite"):
        delta_m({"semantic": {"miou": float("nan")}}, BASE)

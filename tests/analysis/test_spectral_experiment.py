"""Fig. 6 relation of the spectral-analysis paper: rank correlation and the aggregation/table code on fake run
results."""

from __future__ import annotations

import json
import math

import pytest

from freqdense.analysis.spectral_relation import (
    plot_relation,
    rank,
    relation_correlations,
    relation_points,
    relation_table,
    spearman,
)
from freqdense.errors import DataError


def test_rank_averages_ties():
    assert rank([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert rank([5.0, 5.0, 1.0, 5.0]) == [3.0, 3.0, 1.0, 3.0]  # ranks 2, 3, 4 -> 3


def test_spearman_hand_examples():
    # No ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); d = (1, 1, 1, 1, 0) -> 1 - 24 / 120.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8, abs=1e-12)
    # Ties: ranks y = (1, 2.5, 2.5, 4); Pearson of ranks = 4.5 / sqrt(5 * 4.5) = sqrt(0.9).
    # scipy.stats.spearmanr([1, 2, 3, 4], [1, 2, 2, 3]).statistic == 0.9486832980505138
    assert spearman([1, 2, 3, 4], [1, 2, 2, 3]) == pytest.approx(0.9486832980505138, abs=1e-12)
    assert spearman([0.1, 0.5, 0.2], [9, 1, 4]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1.0], [2.0]))
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    with pytest.raises(DataError):
        spearman([1, 2], [1, 2, 3])


def test_spearman_matches_scipy_on_random_data():
    import random

    rng = random.Random(0)
    x = [rng.randint(0, 6) for _ in range(30)]  # many ties
    y = [v + rng.random() * 4 for v in x]
    # Reference (scipy 1.x, same x, y): float(scipy.stats.spearmanr(x, y)[0]) == 0.8787298087366923
    assert spearman(x, y) == pytest.approx(0.8787298087366923, abs=1e-12)


def _fake_runs() -> list[dict]:
    r0 = {"3": 0.30, "4": 0.20, "6": 0.10, "8": 0.05}
    r1 = {"3": 0.50, "4": 0.40, "6": 0.20, "8": 0.15}
    return [
        {"family": "pixelwise", "seed": 0, "miou": 0.8, "r_model": r0},
        {"family": "pixelwise", "seed": 1, "miou": 0.6, "r_model": r1},
        {"family": "blockwise", "nu_max": 4, "seed": 0, "miou": 0.4},
        {"family": "blockwise", "nu_max": 4, "seed": 1, "miou": 0.45},
        {"family": "blockwise", "nu_max": 8, "seed": 0, "miou": 0.72},
        {"family": "blockwise", "nu_max": 8, "seed": 1, "miou": 0.57},
        {"family": "truncation_eval", "grid": 7, "nu_max": 3, "seed": 0, "miou": 0.6},
        {"family": "truncation_eval", "grid": 7, "nu_max": 3, "seed": 1, "miou": 0.33},
        {"family": "truncation_eval", "grid": 13, "nu_max": 6, "seed": 0, "miou": 0.76},
        {"family": "truncation_eval", "grid": 13, "nu_max": 6, "seed": 1, "miou": 0.51},
    ]


def test_relation_points_per_seed_ratios():
    pts = relation_points(_fake_runs(), label_r={4: 0.3, 8: 0.1, 3: 0.4, 6: 0.2})
    assert [(p["family"], p["setting"]) for p in pts] == [
        ("pixelwise", "full"),
        ("blockwise", 8),
        ("blockwise", 4),
        ("truncation_eval", 13),
        ("truncation_eval", 7),
    ]
    base, b8, b4, t13, t7 = pts
    assert base["miou"] == pytest.approx(0.7) and base["relative"] == 1.0 and base["r_model"] == 0.0
    # nu 4: per-seed ratios 0.4 / 0.8 = 0.5 and 0.45 / 0.6 = 0.75 (not mean / mean = 0.425 / 0.7).
    assert b4["relative"] == pytest.approx(0.625) and b4["drop"] == pytest.approx(0.375)
    assert b4["relative_std"] == pytest.approx(math.sqrt(2 * 0.125**2))
    assert b4["miou"] == pytest.approx(0.425) and b4["seeds"] == 2
    assert b4["r_model"] == pytest.approx(0.30) and b4["r_model_std"] == pytest.approx(math.sqrt(2 * 0.1**2))
    assert b4["r_label"] == 0.3 and b8["r_label"] == 0.1
    assert b8["relative"] == pytest.approx((0.9 + 0.95) / 2)
    assert t7["nu_max"] == 3 and t7["r_model"] == pytest.approx(0.4) and t7["relative"] == pytest.approx(0.65)
    assert t13["r_model"] == pytest.approx(0.15) and t13["relative"] == pytest.approx(0.9)


def test_relation_points_errors():
    runs = _fake_runs()
    with pytest.raises(DataError, match="pixel-wise"):
        relation_points(runs[2:])
    with pytest.raises(DataError, match="same seed"):
        relation_points([*runs, {"family": "blockwise", "nu_max": 4, "seed": 5, "miou": 0.1}])
    with pytest.raises(DataError, match="nu_max=16"):
        relation_points([*runs, {"family": "blockwise", "nu_max": 16, "seed": 0, "miou": 0.1}])
    with pytest.raises(DataError, match="family"):
        relation_points([*runs, {"family": "blockwize", "nu_max": 4, "seed": 0, "miou": 0.1}])


def test_correlations_exclude_reference_and_pool_families():
    pts = relation_points(_fake_runs(), label_r={4: 0.3, 8: 0.1, 3: 0.4, 6: 0.2})
    rows = {(c["predictor"], c["family"]): c for c in relation_correlations(pts)}
    # Block-wise records without a "void" are the "fill" convention (the only one before the option existed).
    bw = rows[("r_model", "blockwise (void=fill)")]
    assert bw["n"] == 2 and bw["rho"] == pytest.approx(1.0)
    # Pooled (b8, b4, t13, t7): R = (0.10, 0.30, 0.15, 0.40), drops (0.075, 0.375, 0.10, 0.35):
    # ranks (1, 3, 2, 4) vs (1, 4, 2, 3) -> d = (0, 1, 0, 1), rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert rows[("r_model", "all")]["n"] == 4
    assert rows[("r_model", "all")]["rho"] == pytest.approx(0.8)
    assert ("r_model", "truncation_train") not in rows
    assert rows[("r_label", "all")]["n"] == 4


def test_table_and_plot(tmp_path):
    pts = relation_points(_fake_runs())
    text = relation_table(pts, relation_correlations(pts))
    assert "| blockwise (void=fill) | 4 | 4 | 2 | 0.4250 ± 0.0354 | 0.625 ± 0.177 |" in text
    assert "| truncation_eval | 7×7 | 3 |" in text
    assert "| r_model | all | 4 | +0.800 |" in text
    out = plot_relation(pts, tmp_path / "fig6.png")
    assert out.stat().st_size > 1000
    json.dumps(pts)  # the points are JSON-serialisable as they are


def test_analyze_relation_cli(tmp_path, capsys):
    from freqdense.cli.main import main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": _fake_runs(), "label_r": {"4": 0.3, "8": 0.1, "3": 0.4, "6": 0.2}}))
    assert main(["analyze", "relation", str(results), "--out", str(tmp_path / "rel")]) == 0
    text = capsys.readouterr().out
    assert "| r_model | all | 4 | +0.800 |" in text and "| r_label | all | 4 |" in text
    saved = json.loads((tmp_path / "rel" / "relation.json").read_text())
    assert len(saved["points"]) == 5 and (tmp_path / "rel" / "relation.png").exists()


def _runs_with_both_void_conventions() -> list[dict]:
    keep = [
        {"family": "blockwise", "nu_max": 4, "void": "keep", "seed": 0, "miou": 0.6},  # 0.6 / 0.8 = 0.75
        {"family": "blockwise", "nu_max": 4, "void": "keep", "seed": 1, "miou": 0.3},  # 0.3 / 0.6 = 0.5
        {"family": "blockwise", "nu_max": 8, "void": "keep", "seed": 0, "miou": 0.8},  # 1.0
        {"family": "blockwise", "nu_max": 8, "void": "keep", "seed": 1, "miou": 0.48},  # 0.8
    ]
    return [*_fake_runs(), *keep]


def test_void_conventions_are_separate_series():
    pts = relation_points(_runs_with_both_void_conventions())
    by = {(p["family"], p["void"], p["setting"]): p for p in pts}
    assert by[("blockwise", "keep", 4)]["relative"] == pytest.approx(0.625)
    assert by[("blockwise", "keep", 8)]["relative"] == pytest.approx(0.9)
    assert by[("blockwise", "fill", 8)]["relative"] == pytest.approx(0.925)
    assert by[("truncation_eval", None, 7)]["void"] is None and pts[0]["void"] is None
    rows = {(c["predictor"], c["family"]): c for c in relation_correlations(pts)}
    # One pooled row per convention (its block-wise points + the truncation points), never both at once.
    assert ("r_model", "all") not in rows
    assert rows[("r_model", "all (void=fill)")]["rho"] == pytest.approx(0.8)  # as in the single-convention test
    # keep: R (b8, b4, t13, t7) = (0.10, 0.30, 0.15, 0.40), drops (0.10, 0.375, 0.10, 0.35):
    # scipy.stats.spearmanr([.1, .3, .15, .4], [.1, .375, .1, .35]).statistic == 0.7378647873726218 (= 3.5 / sqrt(22.5))
    keep = rows[("r_model", "all (void=keep)")]
    assert keep["n"] == 4 and keep["rho"] == pytest.approx(0.7378647873726218, abs=1e-12)
    text = relation_table(pts, relation_correlations(pts))
    assert "| blockwise (void=keep) | 4 | 4 | 2 | 0.4500 ± 0.2121 | 0.625 ± 0.177 |" in text
    assert "| r_model | all (void=keep) | 4 | +0.738 |" in text


def test_analyze_relation_cli_void_filter(tmp_path, capsys, caplog):
    from freqdense.cli.main import main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": _runs_with_both_void_conventions()}))
    assert main(["analyze", "relation", str(results), "--void", "keep"]) == 0
    text = capsys.readouterr().out
    assert "blockwise (void=keep)" in text and "void=fill" not in text and "| r_model | all | 4 | +0.738 |" in text
    assert main(["analyze", "relation", str(results), "--void", "fill", "--out", str(tmp_path / "f")]) == 0
    assert "blockwise (void=fill)" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "f" / "relation.json").read_text())["points"]) == 5
    results.write_text(json.dumps({"runs": _fake_runs()}))
    assert main(["analyze", "relation", str(results), "--void", "keep"]) != 0
    assert "no block-wise runs with void='keep'" in caplog.text

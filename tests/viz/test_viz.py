"""Colour maps, overlays, indexed PNGs, prediction panels and loss curves: files, sizes and known pixel colours."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.errors import DataError, ShapeError
from freqdense.viz import (
    cityscapes_palette,
    colorize_depth,
    colorize_labels,
    compose_prediction_panel,
    default_palette,
    label_boundaries,
    overlay,
    plot_loss_curves,
    prediction_panel,
    save_indexed_png,
)

PALETTE = np.array([(200, 100, 50), (10, 220, 30), (0, 40, 250)], dtype=np.uint8)
# magma's end colours: matplotlib's table starts (0.001462, 0.000466, 0.013866) and ends
# (0.987053, 0.991438, 0.749504); as bytes (x * 255 truncated) that is (0, 0, 3) and (251, 252, 191).
MAGMA_LOW, MAGMA_HIGH = (0, 0, 3), (251, 252, 191)


def test_importing_freqdense_viz_and_metrics_does_not_import_matplotlib():
    code = "import sys, freqdense.viz, freqdense.metrics; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_colorize_labels_known_pixels_and_ignore():
    labels = torch.tensor([[0, 1], [2, 255]])
    rgb = colorize_labels(labels, PALETTE)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == tuple(PALETTE[0])
    assert tuple(rgb[0, 1]) == tuple(PALETTE[1])
    assert tuple(rgb[1, 0]) == tuple(PALETTE[2])
    assert tuple(rgb[1, 1]) == (0, 0, 0)
    with pytest.raises(DataError, match=r"\[3\]"):
        colorize_labels(np.array([[0, 3]]), PALETTE)


def test_default_palette_is_deterministic_distinct_and_never_black():
    pal = default_palette(40)
    assert pal.shape == (40, 3) and pal.dtype == np.uint8
    assert np.array_equal(pal, default_palette(40))
    assert len({tuple(c) for c in default_palette(255)}) == 255
    assert (pal.astype(int).sum(1) > 60).all()
    # neighbouring ids differ clearly (L1 distance in RGB)
    assert (np.abs(np.diff(pal.astype(int), axis=0)).sum(1) > 60).all()
    assert tuple(cityscapes_palette()[0]) == (128, 64, 128)  # road


def test_save_indexed_png_stays_a_label_map(tmp_path):
    labels = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.int64)
    path = save_indexed_png(labels, PALETTE, tmp_path / "sub" / "labels.png")
    with Image.open(path) as img:
        assert img.mode == "P"
        assert np.array_equal(np.asarray(img), labels)
        flat = img.getpalette()
        assert tuple(flat[0:3]) == tuple(PALETTE[0])
        assert tuple(flat[3 * 255 : 3 * 256]) == (0, 0, 0)
        assert tuple(np.asarray(img.convert("RGB"))[0, 1]) == tuple(PALETTE[1])
    with pytest.raises(DataError):
        save_indexed_png(np.array([[7]]), PALETTE, tmp_path / "bad.png")


def test_colorize_depth_uses_inverse_depth_and_blacks_out_invalid():
    # disparities 1/depth: 1/1 = 1 (nearest), 1/2, 1/4, 1/8 (farthest); 0 = invalid
    depth = torch.tensor([[[1.0, 2.0, 0.0], [4.0, 8.0, float("nan")]]])
    rgb = colorize_depth(depth, vmin_percentile=0.0, vmax_percentile=100.0)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == MAGMA_HIGH  # nearest = brightest
    assert tuple(rgb[1, 1]) == MAGMA_LOW  # farthest = darkest
    assert tuple(rgb[0, 2]) == (0, 0, 0) and tuple(rgb[1, 2]) == (0, 0, 0)
    brightness = rgb.astype(int).sum(-1)
    assert brightness[0, 0] > brightness[0, 1] > brightness[1, 0] > brightness[1, 1]
    # explicit limits: disparity 1/2 sits in the middle of [0, 1]
    import matplotlib

    mid = colorize_depth(np.array([[2.0]]), vmin=0.0, vmax=1.0)
    assert tuple(mid[0, 0]) == tuple(matplotlib.colormaps["magma"](0.5, bytes=True)[:3])
    # valid mask and the 95th-percentile clip (monodepth2 default): the top 5 % saturate
    d = np.linspace(1.0, 10.0, 100).reshape(10, 10)
    out = colorize_depth(d, valid=d < 9.0)
    assert tuple(out[9, 9]) == (0, 0, 0)
    assert tuple(out[0, 0]) == MAGMA_HIGH and tuple(out[0, 1]) == MAGMA_HIGH


def test_overlay_blends_and_draws_boundaries():
    image = torch.zeros(3, 4, 4)  # black image, tensor convention
    labels = np.full((4, 4), 255)
    labels[:, :2] = 0
    out = overlay(image, labels, PALETTE, alpha=0.5, boundaries=False)
    assert tuple(out[0, 0]) == (100, 50, 25)  # 0.5 * black + 0.5 * (200, 100, 50)
    assert tuple(out[0, 3]) == (0, 0, 0)  # ignore shows the image
    with_edges = overlay(image, labels, PALETTE, alpha=0.5)
    assert tuple(with_edges[0, 1]) == (255, 255, 255)  # last labelled column touches the ignore region
    assert tuple(with_edges[0, 0]) == (100, 50, 25)
    assert label_boundaries(labels).sum() == 4
    with pytest.raises(ShapeError):
        overlay(image, np.zeros((3, 3), dtype=int), PALETTE)


def test_prediction_panel_seg_and_depth(tmp_path):
    h, w, gap = 6, 8, 4
    image = torch.rand(3, h, w)
    gt_sem = np.zeros((h, w), dtype=np.int64)
    gt_sem[0, 0] = 255
    pred_sem = np.full((h, w), 2)
    depth = torch.full((1, h, w), 2.0)
    path = prediction_panel(
        image, gt_sem, pred_sem, depth, depth, PALETTE, tmp_path / "panel.png", gap=gap, labelled=False
    )
    with Image.open(path) as img:
        assert img.size == (3 * w + 2 * gap, 2 * h + gap)
        panel = np.asarray(img.convert("RGB"))
    assert tuple(panel[1, w + gap + 1]) == tuple(PALETTE[0])  # GT tile, label 0
    assert tuple(panel[0, w + gap]) == (0, 0, 0)  # GT tile, ignore
    assert tuple(panel[1, 2 * (w + gap) + 1]) == tuple(PALETTE[2])  # prediction tile
    assert np.array_equal(panel[:h, :w], np.rint(image.permute(1, 2, 0).double().numpy() * 255).astype(np.uint8))
    assert tuple(panel[h + 1, 0]) == (255, 255, 255)  # gap row
    depth_row = panel[h + gap :]
    assert np.array_equal(depth_row[:, w + gap : 2 * w + gap], depth_row[:, 2 * (w + gap) :])  # same scale


def test_prediction_panel_depth_only_and_missing_gt(tmp_path):
    h, w = 5, 7
    image = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    pred = np.linspace(1, 5, h * w).reshape(h, w)
    panel = compose_prediction_panel(image, None, None, None, pred, None, gap=0)
    assert panel.shape == (h, 3 * w, 3)
    assert (panel[:, w : 2 * w] == 128).all()  # missing GT tile is grey
    assert np.array_equal(panel[:, :w], image)
    seg_only = compose_prediction_panel(image, None, np.zeros((h, w), dtype=int), None, None, PALETTE, gap=2)
    assert seg_only.shape == (h, 3 * w + 4, 3)
    with pytest.raises(ShapeError, match="palette"):
        compose_prediction_panel(image, np.zeros((h, w), dtype=int), None, None, None, None)
    with pytest.raises(ShapeError, match="at least one"):
        compose_prediction_panel(image, None, None, None, None, PALETTE)


def test_plot_loss_curves_writes_png_of_the_requested_size(tmp_path):
    history = [{"step": s, "loss": 1.0 / s, "loss/depth": 0.5 / s, "lr": 0.01} for s in range(1, 20)]
    history += [{"step": 10, "miou": 0.2, "rmse": 0.9, "iou/wall": 0.3}, {"step": 19, "miou": 0.3, "rmse": 0.8}]
    path = plot_loss_curves(history, tmp_path / "curves.png", figsize=(6.0, 4.0), dpi=50)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (300, 200)
    empty = plot_loss_curves([], tmp_path / "empty.png", figsize=(2.0, 2.0), dpi=50)
    with Image.open(empty) as img:
        assert img.size == (100, 100)

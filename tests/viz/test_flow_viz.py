"""Flow colour coding (Middlebury wheel), arrows, feature overlays and the Fig. 6-like panel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from freqdense.errors import ShapeError
from freqdense.viz.flow import (
    color_wheel,
    draw_flow_arrows,
    feature_energy,
    feature_overlay,
    flow_panel,
    flow_to_color,
)


def _unit(dx: float, dy: float) -> np.ndarray:
    return np.array([dx, dy], dtype=np.float64).reshape(2, 1, 1)


def test_wheel_has_the_published_ramps():
    # Baker et al. 2011: RY 15, YG 6, GC 4, CB 11, BM 13, MR 6 = 55 colours; ramp starts are the pure hues.
    wheel = color_wheel()
    assert wheel.shape == (55, 3) and wheel.dtype == np.uint8
    starts = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255), 49: (255, 0, 255)}
    for index, colour in starts.items():
        assert tuple(wheel[index]) == colour, index
    assert tuple(wheel[27]) == (0, 255 - (255 * 2) // 11, 255)  # two steps into cyan -> blue


def test_hue_at_known_angles():
    # Hand-computed from the wheel: angle a = atan2(-v, -u) / pi, position (a + 1) / 2 * 54 on the wheel.
    assert flow_to_color(_unit(1, 0), max_flow=1)[0, 0].tolist() == [255, 0, 0]  # right: a = -1 -> row 0, red
    assert flow_to_color(_unit(-1, 0), max_flow=1)[0, 0].tolist() == [0, 209, 255]  # left: row 27 (0, 209, 255)
    # down (+y): row 13.5, halfway between (255, 221, 0) and (255, 238, 0)
    assert flow_to_color(_unit(0, 1), max_flow=1)[0, 0].tolist() == [255, 229, 0]
    # up (-y): row 40.5, halfway between (78, 0, 255) and (98, 0, 255)
    assert flow_to_color(_unit(0, -1), max_flow=1)[0, 0].tolist() == [88, 0, 255]


def test_magnitude_desaturates_towards_white_and_darkens_beyond_max():
    assert flow_to_color(np.zeros((2, 3, 4))).tolist() == np.full((3, 4, 3), 255).tolist()  # zero flow -> white
    half = flow_to_color(_unit(0.5, 0), max_flow=1)[0, 0]
    assert half.tolist() == [255, 127, 127]  # 1 - 0.5 * (1 - (1, 0, 0)) = (1, .5, .5) -> floor(127.5)
    beyond = flow_to_color(_unit(2, 0), max_flow=1)[0, 0]
    assert beyond.tolist() == [191, 0, 0]  # 0.75 * red
    # default max_flow = the largest magnitude: the longest vector is fully saturated
    field = np.stack([np.array([[1.0, 3.0]]), np.zeros((1, 2))])
    assert flow_to_color(field)[0, 1].tolist() == [255, 0, 0]
    with pytest.raises(ShapeError, match=r"\(2, H, W\)"):
        flow_to_color(np.zeros((3, 4, 4)))


def test_arrows_point_along_the_flow_in_image_coordinates():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flow = np.zeros((2, 4, 6))
    flow[0], flow[1] = 1.5, -0.5
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    q = draw_flow_arrows(ax, flow, step=2, stride=4.0)
    np.testing.assert_allclose(q.U, 6.0)  # 1.5 feature px * stride 4
    np.testing.assert_allclose(q.V, -2.0)
    np.testing.assert_allclose(np.unique(q.X), [4.0, 12.0, 20.0])  # grid 1, 3, 5 at stride 4
    np.testing.assert_allclose(np.unique(q.Y), [4.0, 12.0])


def test_feature_energy_and_overlay():
    f = torch.zeros(4, 5, 6)
    f[:, 2, 3] = -2.0
    f[0, 1, 1] = 4.0  # channel mean |.| = 1
    e = feature_energy(f, percentile=100)
    assert e[2, 3] == pytest.approx(1.0) and e[1, 1] == pytest.approx(0.5) and e[0, 0] == 0
    over = feature_overlay(np.eye(3), np.eye(3)[::-1])
    assert over[0, 0].tolist() == [255, 0, 0] and over[0, 2].tolist() == [0, 255, 255]
    assert over[1, 1].tolist() == [255, 255, 255]
    assert feature_overlay(np.eye(3), np.eye(3), size=(6, 9)).shape == (6, 9, 3)


def test_panel_is_written(tmp_path):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 32, 48, generator=gen)
    depth = torch.ones(1, 32, 48) * 2.0
    depth[:, :, 20:] = 4.0
    flow = torch.randn(2, 8, 12, generator=gen)
    feats = (torch.rand(8, 8, 12, generator=gen), torch.rand(8, 8, 12, generator=gen))
    path = flow_panel(
        tmp_path / "sub" / "panel.png",
        image=image,
        depth=depth,
        flow=flow,
        true_flow=-flow,
        features_before=feats,
        features_after=feats,
        title="test",
    )
    img = Image.open(path)
    assert img.format == "PNG" and img.size[0] > 200
    # HHA-like 3-channel depth and a panel with only the image also work
    assert flow_panel(tmp_path / "hha.png", image=image, depth=torch.rand(3, 32, 48)).is_file()

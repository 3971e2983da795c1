"""`freqdense analyze fairness` on bad user inputs: a clear error naming the file, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from _harness import refused
from PIL import Image


class Payload:
    """Pickling this would run ``print`` on load: np.load(allow_pickle=True) would execute it."""

    def __reduce__(self):
        return (print, ("pickle executed",))


def _pfm(path, header=b"Pf", dims=b"4 3", values=12):
    path.write_bytes(header + b"\n" + dims + b"\n-1.0\n" + np.ones(values, "<f4").tobytes())


DISPARITIES = {
    "malicious.npy": lambda p: np.save(p, np.array([Payload()], dtype=object), allow_pickle=True),
    "truncated.npy": lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order'"),
    "cube.npy": lambda p: np.save(p, np.ones((2, 3, 4), np.float32)),
    "strings.npy": lambda p: np.save(p, np.array([["a", "b"]])),
    "badheader.pfm": lambda p: _pfm(p, header=b"P6"),
    "short.pfm": lambda p: _pfm(p, values=5),
    "baddims.pfm": lambda p: _pfm(p, dims=b"four three"),
    "empty.pfm": lambda p: p.write_bytes(b""),
}


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("left.png", "right.png"):
        Image.fromarray(rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)).save(tmp_path / name)
    return tmp_path / "left.png", tmp_path / "right.png"


@pytest.mark.parametrize("name", sorted(DISPARITIES))
def test_a_bad_disparity_file_is_refused_naming_it(name, cli, pair, tmp_path, unchanged):
    disparity = tmp_path / name
    DISPARITIES[name](disparity)
    args = ["analyze", "fairness", "--left", pair[0], "--right", pair[1], "--disparity", disparity]
    with unchanged(tmp_path):
        outcome = cli(*args, "--out", tmp_path / "plots")
    refused(outcome, name)
    assert "pickle executed" not in outcome.output


@pytest.mark.parametrize("which", ["left", "right"])
def test_a_non_image_view_is_refused_naming_it(which, cli, pair, tmp_path):
    disparity = tmp_path / "d.npy"
    np.save(disparity, np.ones((3, 4), np.float32))
    bad = tmp_path / f"{which}_bad.png"
    bad.write_text("not a png")
    left, right = (bad, pair[1]) if which == "left" else (pair[0], bad)
    refused(cli("analyze", "fairness", "--left", left, "--right", right, "--disparity", disparity), bad.name)

"""``freqdense eval-depth``: monodepth2's evaluate() on saved files, checked against an independent numpy reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqdense.cli.main import main

GARG = (0.40810811, 0.99189189, 0.03594771, 0.96405229)


def bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """cv2.resize(img, (out_w, out_h)) with INTER_LINEAR, written out: source coordinate (x + 0.5) * in / out - 0.5,
    clamped at the borders, linear weights, rows then columns."""
    in_h, in_w = img.shape

    def axis(n_out: int, n_in: int):
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, None)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, wy = axis(out_h, in_h)
    x0, x1, wx = axis(out_w, in_w)
    rows = img[y0] * (1 - wy)[:, None] + img[y1] * wy[:, None]
    return rows[:, x0] * (1 - wx)[None, :] + rows[:, x1] * wx[None, :]


def reference(disps, gts, *, eigen: bool, median: bool, scale: float = 1.0):
    """monodepth2's evaluate() loop in plain numpy (float64)."""
    errors, ratios = [], []
    for disp, gt in zip(disps, gts, strict=True):
        h, w = gt.shape
        pred = 1.0 / bilinear_half_pixel(disp.astype(np.float64), h, w)
        gt = gt.astype(np.float64)
        if eigen:
            mask = (gt > 1e-3) & (gt < 80)
            box = (np.array([GARG[0] * h, GARG[1] * h, GARG[2] * w, GARG[3] * w])).astype(np.int32)
            crop = np.zeros_like(mask)
            crop[box[0] : box[1], box[2] : box[3]] = True
            mask &= crop
        else:
            mask = gt > 0
        p, g = pred[mask] * scale, gt[mask]
        if median:
            r = np.median(g) / np.median(p)
            ratios.append(r)
            p = p * r
        p = np.clip(p, 1e-3, 80)
        thresh = np.maximum(g / p, p / g)
        errors.append(
            [
                np.mean(np.abs(g - p) / g),
                np.mean((g - p) ** 2 / g),
                np.sqrt(np.mean((g - p) ** 2)),
                np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
                np.mean(thresh < 1.25),
                np.mean(thresh < 1.25**2),
                np.mean(thresh < 1.25**3),
            ]
        )
    return np.mean(errors, axis=0), np.array(ratios)


@pytest.fixture()
def files(tmp_path):
    """Three predictions at 12x40 and ragged ground truth (two sizes, holes, depths beyond 80 m)."""
    rng = np.random.default_rng(0)
    gts = []
    for h, w in [(37, 124), (36, 122), (37, 124)]:
        gt = rng.uniform(2.0, 95.0, (h, w)).astype(np.float32)
        gt[rng.random((h, w)) < 0.4] = 0.0
        gts.append(gt)
    disps = rng.uniform(0.02, 0.5, (3, 12, 40)).astype(np.float32)
    np.save(tmp_path / "disps.npy", disps)
    np.savez_compressed(tmp_path / "gt_depths.npz", data=np.array(gts, dtype=object))
    return tmp_path, disps, gts


COLUMNS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


@pytest.mark.parametrize(
    ("protocol", "eigen", "median", "scale"),
    [
        ("kitti_eigen_mono", True, True, 1.0),
        ("kitti_eigen_stereo", True, False, 5.4),
        ("kitti_eigen_benchmark_mono", False, True, 1.0),
        ("kitti_eigen_benchmark_stereo", False, False, 5.4),
    ],
)
def test_matches_numpy_reference(files, capsys, protocol, eigen, median, scale):
    tmp, disps, gts = files
    out = tmp / "metrics.json"
    rc = main(["eval-depth", "--pred", str(tmp / "disps.npy"), "--gt", str(tmp / "gt_depths.npz"),
               "--protocol", protocol, "--out", str(out)])  # fmt: skip
    assert rc == 0
    got = json.loads(out.read_text())
    expected, ratios = reference(disps, gts, eigen=eigen, median=median, scale=scale)
    for name, value in zip(COLUMNS, expected, strict=True):
        assert got[name] == pytest.approx(value, abs=1e-6, rel=1e-6), name
    printed = capsys.readouterr().out
    assert "abs_rel |   sq_rel |     rmse | rmse_log |       a1 |       a2 |       a3" in printed
    assert f"{expected[0]: 8.4f}" in printed
    if median:
        med = np.median(ratios)
        assert got["ratio_median"] == pytest.approx(med, rel=1e-9)
        assert got["ratio_std_over_median"] == pytest.approx(np.std(ratios / med), rel=1e-6)
        assert got["ratio_mean"] == pytest.approx(ratios.mean(), rel=1e-9)
        assert f"med: {med:0.3f} | std: {np.std(ratios / med):0.3f}" in printed
    else:
        assert "ratio_median" not in got and "x 5.4" in printed


def test_benchmark_keeps_ground_truth_beyond_80m(files):
    _, disps, gts = files
    assert any((g > 80).any() for g in gts)
    eigen_rules, _ = reference(disps, gts, eigen=True, median=True)
    benchmark_rules, _ = reference(disps, gts, eigen=False, median=True)
    assert not np.allclose(eigen_rules, benchmark_rules)  # the fixture tells the two rule sets apart


def test_regular_array_and_n1hw_predictions(tmp_path, files):
    tmp, disps, gts = files
    same = [g[:36, :122] for g in gts]
    np.savez(tmp_path / "gt_regular.npz", data=np.stack(same))
    np.save(tmp_path / "disps4.npy", disps[:, None])
    out = tmp_path / "m.json"
    assert main(["eval-depth", "--pred", str(tmp_path / "disps4.npy"), "--gt", str(tmp_path / "gt_regular.npz"),
                 "--protocol", "kitti_eigen_mono", "--out", str(out)]) == 0  # fmt: skip
    expected, _ = reference(disps, same, eigen=True, median=True)
    assert json.loads(out.read_text())["abs_rel"] == pytest.approx(expected[0], abs=1e-6)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def _run_error(capsys, tmp, pred, gt, *extra):
    rc = main(["eval-depth", "--pred", str(pred), "--gt", str(gt), "--protocol", "kitti_eigen_mono", *extra])
    err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err.err + err.out
    return err.err + err.out


def test_bad_inputs_get_one_line_errors(files, capsys, caplog):
    tmp, disps, gts = files
    pred, gt = tmp / "disps.npy", tmp / "gt_depths.npz"
    cases = {}
    np.save(tmp / "flat.npy", disps[0])
    cases["shape"] = (tmp / "flat.npy", gt, (), "expected (N, h, w)")
    np.save(tmp / "two.npy", disps[:2])
    cases["count"] = (tmp / "two.npy", gt, (), "2 predictions")
    cases["key"] = (pred, gt, ("--key", "depths"), "has no array 'depths'")
    nan = disps.copy()
    nan[1, 3, 4] = np.nan
    np.save(tmp / "nan.npy", nan)
    cases["nan"] = (tmp / "nan.npy", gt, (), "NaN or inf (first in image 1)")
    neg = disps.copy()
    neg[2, 0, 0] = 0.0
    np.save(tmp / "zero.npy", neg)
    cases["non-positive"] = (tmp / "zero.npy", gt, (), "disparities <= 0 (first in image 2)")
    zeros = [g.copy() for g in gts]
    zeros[2][:] = 0.0
    np.savez(tmp / "zero_gt.npz", data=np.array(zeros, dtype=object))
    cases["all-zero gt"] = (pred, tmp / "zero_gt.npz", (), "ground-truth map 2")
    np.savez(tmp / "evil.npz", data=np.array([gts[0], _Evil(), gts[2]], dtype=object))
    cases["pickle"] = (pred, tmp / "evil.npz", (), "not allowed")
    cases["missing"] = (tmp / "nope.npy", gt, (), "do not exist")
    for name, (p, g, extra, message) in cases.items():
        caplog.clear()
        out = _run_error(capsys, tmp, p, g, *extra)
        text = out + caplog.text
        assert message in text, (name, text)
        assert "this must never run" not in text


def test_model_mode_equals_file_mode_on_its_saved_disparities(tmp_path, capsys):
    """Run a model through --monodepth2-weights + --config, save its disparities, export the ground truth the way
    export_gt_depth.py does, and score the files: both paths give the same numbers."""
    import torch

    from freqdense.config import load_config
    from freqdense.engine.data import build_dataset
    from freqdense.models import create_model
    from freqdense.models.monodepth import monodepth2_state_dicts

    overrides = ["data.val_args.num_samples=3", "data.val_batch_size=2", "model.backbone_kwargs.base_width=8"]
    cfg = load_config("synthetic/selfsup_m_r18", overrides)
    torch.manual_seed(0)
    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k != "pretrained"}
    model = create_model(cfg.model.name, **kwargs)
    folder = tmp_path / "weights_19"
    folder.mkdir()
    for stem, state in monodepth2_state_dicts(model, height=96, width=128).items():
        torch.save(state, folder / f"{stem}.pth")
    gts = [s["depth"][0].numpy() for s in build_dataset(cfg.data, cfg.data.val_split, train=False)]
    np.savez_compressed(tmp_path / "gt.npz", data=np.array(gts, dtype=object))
    common = ["--protocol", "kitti_eigen_benchmark_mono"]
    rc = main(["eval-depth", "--monodepth2-weights", str(folder), "--config", "synthetic/selfsup_m_r18",
               "--save-pred-disps", str(tmp_path / "disps.npy"), "--out", str(tmp_path / "model.json"), *common,
               *overrides])  # fmt: skip
    assert rc == 0
    disps = np.load(tmp_path / "disps.npy")
    assert disps.shape == (3, 96, 128) and disps.dtype == np.float32
    rc = main(["eval-depth", "--pred", str(tmp_path / "disps.npy"), "--gt", str(tmp_path / "gt.npz"),
               "--out", str(tmp_path / "files.json"), *common])  # fmt: skip
    assert rc == 0
    by_model = json.loads((tmp_path / "model.json").read_text())
    by_files = json.loads((tmp_path / "files.json").read_text())
    for name in (*COLUMNS, "ratio_median", "ratio_std_over_median"):
        assert by_model[name] == pytest.approx(by_files[name], rel=1e-6), name
    expected, _ = reference(list(disps), gts, eigen=False, median=True)
    assert by_files["abs_rel"] == pytest.approx(expected[0], rel=1e-6)

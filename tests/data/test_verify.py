"""`freqdense data verify`: every problem is collected with its sample; statistics are exact."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from freqdense.cli.data_cmd import SUBCOMMANDS
from freqdense.cli.main import build_parser, main
from freqdense.data.verify import depth_parallax, verify_dataset


class _Toy(torch.utils.data.Dataset):
    num_classes = 3
    classes = ("a", "b", "c")

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def _sample(labels, depth):
    labels = torch.tensor(labels)
    depth = torch.tensor(depth, dtype=torch.float32)[None]
    return {"image": torch.rand(3, *labels.shape), "semantic": labels, "depth": depth, "depth_valid": depth > 0}


def test_statistics_and_problems_are_collected():
    good = _sample([[0, 1], [1, 255]], [[1.0, 2.0], [0.0, 4.0]])
    bad_label = _sample([[0, 7], [1, 1]], [[1.0, 1.0], [1.0, 1.0]])
    bad_depth = _sample([[0, 0], [0, 0]], [[float("nan"), 1.0], [1.0, 1.0]])
    report = verify_dataset(_Toy([good, bad_label, good, bad_depth]))
    assert report.num_samples == 2
    assert report.label_counts == [2, 4, 0]  # two good samples: 0 once, 1 twice, 255 ignored, each
    assert report.ignored_pixels == 2 and report.num_pixels == 8
    assert (report.depth_min, report.depth_max) == (1.0, 4.0)
    assert report.valid_depth_pixels == 6 and report.depth_pixels == 8
    assert len(report.problems) == 2
    assert "_Toy[1]" in report.problems[0] and "7" in report.problems[0]
    assert "_Toy[3]" in report.problems[1]
    summary = report.as_dict(["a", "b", "c"])
    assert summary["absent_classes"] == ["c"] and summary["ignored_fraction"] == 0.25


def test_cli_verify_on_synthetic(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: multitask_baseline, num_classes: 10}\n"
        f"data: {{dataset: synthetic, args: {{size: [24, 32], num_samples: 3, cache_dir: '{tmp_path}'}}}}\n"
    )
    assert main(["data", "verify", str(cfg), "--split", "val"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_samples"] == 3 and out["problems"] == []
    assert abs(sum(out["label_fraction"].values()) - 1.0) < 1e-9


def test_missing_dataset_directory_names_the_path_and_the_fix(tmp_path):
    import pytest

    from freqdense.data import create_dataset
    from freqdense.errors import DataError

    missing = tmp_path / "no_such_dir"
    with pytest.raises(DataError, match="freqdense data synth --out") as err:
        create_dataset("synthetic", split="train", root=str(missing))
    assert str(missing) in str(err.value)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_data_help_describes_every_subcommand_for_users(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())  # argparse wraps the descriptions
    sub = _subparsers(_subparsers(build_parser()).choices["data"])
    names = [name for name, _ in SUBCOMMANDS]
    assert set(names) == set(sub.choices) and {"synth", "panel", "verify", "hha"} <= set(names)
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name in names:
        assert helps[name] and " ".join(helps[name].split()) in flat, name  # its one-line description
        assert f"freqdense data {name} " in text, f"no example for {name}"
    # User help, not the developer note of the module docstring.
    assert "SUBCOMMANDS" not in text and "_register_" not in text and "``" not in text


def _pose(rotation_y: float = 0.0, translation=(0.0, 0.0, 0.0)) -> torch.Tensor:
    c, s = math.cos(rotation_y), math.sin(rotation_y)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
    pose[:3, 3] = torch.tensor(translation, dtype=torch.float64)
    return pose


def test_parallax_of_a_sideways_translation_is_fx_tx_over_z():
    # Hand computation: a pure sideways translation t_x moves every pixel of a plane at depth z by
    # f_x t_x / z = 100 * 0.3 / 4 = 7.5 px horizontally, whatever the pixel; the infinite-depth motion is 0.
    K = torch.tensor([[100.0, 0.0, 15.5], [0.0, 90.0, 11.5], [0.0, 0.0, 1.0]])
    depth = torch.full((1, 24, 32), 4.0)
    depth[0, 0, :5] = 0.0  # invalid pixels are skipped
    motion = depth_parallax(depth, K, _pose(translation=(0.3, 0.0, 0.0)))
    assert motion.numel() == 24 * 32 - 5
    torch.testing.assert_close(motion, torch.full_like(motion, 7.5), rtol=0, atol=1e-9)


def test_parallax_ignores_rotation_and_sees_depth():
    # A pure rotation moves pixels but carries no depth information: parallax 0 at any depth.
    K = torch.tensor([[50.0, 0.0, 7.5], [0.0, 50.0, 5.5], [0.0, 0.0, 1.0]])
    depth = torch.rand(1, 12, 16) * 5 + 1
    assert depth_parallax(depth, K, _pose(rotation_y=0.1)).abs().max() < 1e-9
    # Rotation + sideways translation at the principal point, depth 2 m: the point (0, 0, 2) goes to
    # R (0, 0, 2) + t = (2 sin a + tx, 0, 2 cos a); its pixel minus the rotated ray's pixel (fx tan a) is
    # fx ((2 sin a + tx) / (2 cos a) - tan a) = fx tx / (2 cos a).
    a, tx = 0.1, 0.2
    flat = torch.full((1, 12, 16), 2.0)
    K2 = torch.tensor([[50.0, 0.0, 8.0], [0.0, 50.0, 6.0], [0.0, 0.0, 1.0]])  # principal point on pixel (8, 6)
    motion = depth_parallax(flat, K2, _pose(rotation_y=a, translation=(tx, 0.0, 0.0))).reshape(12, 16)
    expected = torch.tensor(50.0 * tx / (2.0 * math.cos(a)), dtype=torch.float64)
    torch.testing.assert_close(motion[6, 8], expected, rtol=0, atol=1e-9)


def test_verify_reports_parallax_for_temporal_and_stereo_views():
    K = torch.tensor([[100.0, 0.0, 15.5], [0.0, 100.0, 11.5], [0.0, 0.0, 1.0]])
    samples = []
    for z in (2.0, 4.0, 8.0):
        s = _sample([[0] * 32] * 24, [[z] * 32] * 24)
        s["intrinsics"] = K
        s["pose_prev"] = _pose(translation=(0.1, 0.0, 0.0)).float()  # 10 / z px
        s["pose_right"] = _pose(translation=(-0.05, 0.0, 0.0)).float()  # 5 / z px
        samples.append(s)
    summary = verify_dataset(_Toy(samples)).as_dict()
    # per-sample medians 5, 2.5, 1.25 px (temporal) and 2.5, 1.25, 0.625 px (stereo); median over samples
    assert summary["parallax"]["temporal"]["median_px"] == pytest.approx(2.5, abs=1e-5)
    assert summary["parallax"]["temporal"]["below_1px_fraction"] == 0.0
    assert summary["parallax"]["stereo"]["median_px"] == pytest.approx(1.25, abs=1e-5)
    assert summary["parallax"]["stereo"]["below_1px_fraction"] == pytest.approx(1 / 3)
    assert summary["parallax"]["stereo"]["samples"] == 3

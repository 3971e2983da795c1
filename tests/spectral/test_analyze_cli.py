"""freqdense.cli.analyze_cmd on a tiny randomly initialised model (no checkpoint, no engine)."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from freqdense.cli import analyze_cmd
from freqdense.spectral import TruncatedDecoder

NUM_CLASSES = 3


class TinySegmenter(nn.Module):
    """Encoder (stride 2) -> ``decoder`` (1x1 conv) -> bilinear upsampling: a 1x1-conv segmentation model."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.decoder = nn.Conv2d(8, NUM_CLASSES, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.decoder(torch.relu(self.encoder(image)))
        return {"semantic": F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)}


def _dataset(n: int = 3, size: int = 33) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        coarse = torch.randint(0, NUM_CLASSES, (1, 1, 5, 5), generator=g).float()
        labels = F.interpolate(coarse, size=(size, size), mode="nearest")[0, 0].long()
        labels[:2] = 255
        image = F.one_hot(labels.clamp_max(NUM_CLASSES - 1), NUM_CLASSES).permute(2, 0, 1).float()
        samples.append({"image": image + 0.1 * torch.rand(3, size, size, generator=g), "semantic": labels})
    return samples


@pytest.fixture
def model() -> TinySegmenter:
    torch.manual_seed(0)
    return TinySegmenter().eval()


def test_model_spectrum_sums_to_the_dataset_cross_entropy(model):
    data = _dataset()
    spec = analyze_cmd.compute_model_spectrum(model, data, num=2)
    with torch.no_grad():
        ce = sum(
            F.cross_entropy(
                model(s["image"][None])["semantic"].double(), s["semantic"][None], ignore_index=255, reduction="sum"
            ).item()
            for s in data[:2]
        )
    assert spec.num_images == 2 and spec.ce == pytest.approx(ce, rel=1e-6)
    assert spec.loss.sum().item() == pytest.approx(ce, rel=1e-5)
    assert spec.relative_discrepancy[-1].item() == 0.0
    batched = analyze_cmd.compute_model_spectrum(model, data, batch_size=2)
    assert batched.num_images == 3


def test_label_analysis_is_zero_at_the_full_band():
    result = analyze_cmd.compute_label_analysis(_dataset(), num_classes=NUM_CLASSES, nu_max=(1, 4, 16))
    rows = {row["nu_max"]: row for row in result["table"]}
    assert rows[16]["label_energy_r"] == 0.0 and rows[16]["oracle_r"] == 0.0
    assert rows[16]["blockwise_pixel_error"] == 0.0
    assert rows[1]["label_energy_r"] > rows[4]["label_energy_r"] > 0
    assert rows[1]["blockwise_pixel_error"] > 0
    assert result["num_images"] == 3 and len(result["label_energy"]) == 17


def test_truncation_rows_and_model_left_untouched(model):
    result = analyze_cmd.compute_truncation(model, _dataset(), sizes=[9, 5], num_classes=NUM_CLASSES)
    rows = result["rows"]
    assert [r["grid"] for r in rows] == [None, 9, 5]
    assert [r.get("nu_max") for r in rows] == [None, 4, 2]
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    assert rows[1]["baseline_r"] < rows[2]["baseline_r"]
    assert not isinstance(model.decoder, TruncatedDecoder)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freqdense")
    analyze_cmd.register(parser.add_subparsers(dest="command"))
    return parser


def test_parser_wiring():
    args = _parser().parse_args(["analyze", "truncation", "runs/x", "--sizes", "65", "33", "--num", "4"])
    assert args.sizes == [65, 33] and args.num == 4 and args.func is analyze_cmd._run_truncation
    args = _parser().parse_args(["analyze", "labels", "--arg", "num_samples=3", "--nu-max", "2", "8"])
    assert args.arg == ["num_samples=3"] and args.nu_max == [2, 8]
    assert _parser().parse_args(["analyze"]).func(None) == 2


def test_spectrum_command_writes_json_and_plots(model, tmp_path, monkeypatch, capsys):
    cfg = SimpleNamespace(
        task=SimpleNamespace(ignore_index=255),
        data=SimpleNamespace(val_split="val"),
        model=SimpleNamespace(name="tiny", kwargs={}),
    )
    monkeypatch.setattr(analyze_cmd, "_load_run", lambda args: (model, _dataset(), cfg, torch.device("cpu")))
    args = _parser().parse_args(
        ["analyze", "spectrum", "runs/x", "--out", str(tmp_path), "--nu-max", "2", "16", "--gradient-layer", "encoder"]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "spectrum.json").read_text())
    assert [row["nu_max"] for row in data["table"]] == [2, 16] and data["table"][1]["R"] == 0.0
    assert (tmp_path / "spectrum.png").stat().st_size > 0 and (tmp_path / "spectral_gradient.png").exists()
    assert "summed CE" in capsys.readouterr().out


def test_labels_command_writes_json(tmp_path, monkeypatch):
    import freqdense.data

    monkeypatch.setattr(freqdense.data, "create_dataset", lambda name, split, **kw: _dataset())
    args = _parser().parse_args(
        ["analyze", "labels", "--dataset", "toy", "--num-classes", "3", "--nu-max", "1", "16", "--out", str(tmp_path)]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "labels.json").read_text())
    assert data["dataset"] == "toy" and data["table"][1]["label_energy_r"] == 0.0
    assert data["oracle"]["relative_discrepancy"][-1] == 0.0


def test_analyze_help_lists_every_registered_analysis_with_its_description(capsys):
    from freqdense.cli.main import build_parser, main

    def subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    analyses = subparsers(subparsers(build_parser()).choices["analyze"])
    helps = {choice.dest: choice.help for choice in analyses._choices_actions}
    assert set(helps) == set(analyses.choices) and len(helps) >= 8
    assert {"spectrum", "labels", "truncation", *analyze_cmd._EXTRA_ANALYSES} <= set(helps)
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    bare = "".join(text.split())  # argparse wraps the descriptions, also after hyphens ("Freq-" / "aware")
    for name, help_text in helps.items():
        assert help_text, f"analyze {name} has no one-line description"
        assert f" {name} " in f" {flat} " and "".join(help_text.split()) in bare, name
    assert "freqdense analyze spectrum " in text  # an example

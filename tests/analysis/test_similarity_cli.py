"""``freqdense analyze similarity`` end to end on a tiny FreqFusion-FPN trained for two steps."""

from __future__ import annotations

import json

import pytest

from freqdense.cli.main import main
from freqdense.config.load import build_config
from freqdense.engine.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    raw = {
        "model": {
            "name": "fpn",
            "backbone": "resnet18",
            "backbone_kwargs": {"base_width": 8},
            "tasks": ["semantic", "depth"],
            "num_classes": 10,
            "fusion": "freqfusion",
            "decoder_channels": 16,
        },
        "data": {
            "dataset": "synthetic",
            "args": {"size": [32, 48], "modalities": ["image", "semantic", "depth"], "cache": False},
            "train_args": {"num_samples": 4},
            "val_args": {"num_samples": 2},
            "batch_size": 2,
            "val_batch_size": 2,
        },
        "task": {"name": "multitask", "max_depth": 20.0},
        "schedule": {"name": "constant", "total_steps": 2},
        "eval": {"every": 0},
        "train": {"seed": 0, "device": "cpu", "log_every": 1},
    }
    out = tmp_path_factory.mktemp("ffrun")
    train(build_config(raw), out)
    return out


def test_similarity_cli_writes_json_and_plots(run_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["analyze", "similarity", str(run_dir), "--num", "2", "--out", str(out)]) == 0
    assert "margin" in capsys.readouterr().out
    data = json.loads((out / "similarity.json").read_text())
    # default: the official feat_tool definition first, ours second (both always computed)
    official, sim = data["similarity"], data["similarity_other"]
    assert official["definition"] == "official" and official["edge_k"] == 5 and official["upsample"] == "bilinear"
    assert official["num_images"] == 2 and 0.0 <= official["accuracy"] <= 1.0
    assert (
        -1.0 <= official["intra"] <= 1.0 and abs(official["margin"] - (official["intra"] - official["inter"])) < 1e-12
    )
    assert sim["definition"] == "per-image"
    assert -1.0 <= sim["inter"] <= 1.0 and -1.0 <= sim["intra"] <= 1.0
    assert abs(sim["margin"] - (sim["intra"] - sim["inter"])) < 1e-6  # float32 per image
    # one response per FreqFusion module (three top-down steps); normalised non-negative kernels: |H(0)| = 1 >= |H|
    responses = data["lowpass_response"]
    assert sorted(responses) == ["decoder.fusions.0", "decoder.fusions.1", "decoder.fusions.2"]
    for r in responses.values():
        assert abs(r["radial"][0] - 1.0) < 1e-5
        assert max(max(row) for row in r["amplitude"]) <= 1.0 + 1e-5
    assert set(data["encoder_response"]) == set(responses)
    for name in ("intrasim_maps.png", "lowpass_response.png", "encoder_response.png"):
        assert (out / name).stat().st_size > 0


def test_per_image_definition_is_stored_first_when_asked(run_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["analyze", "similarity", str(run_dir), "--num", "2", "--out", str(out), "--definition", "per-image"]
    assert main([*args, "--edge-k", "0", "--upsample", "nearest"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("per-image") < printed.index("official (feat_tool, edge_k=0, nearest)")
    data = json.loads((out / "similarity.json").read_text())
    assert data["similarity"]["definition"] == "per-image" and data["similarity_other"]["edge_k"] == 0


def test_unknown_layer_is_a_clear_error(run_dir, caplog):
    assert main(["analyze", "similarity", str(run_dir), "--num", "1", "--layer", "decodr"]) == 1
    assert "not a submodule" in caplog.text

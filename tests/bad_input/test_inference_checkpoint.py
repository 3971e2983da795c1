"""`freqdense eval` / `predict` on damaged checkpoints, and non-finite values in evaluation and metrics.

One tiny run is trained per module (a few seconds); each case corrupts a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch
import yaml
from _harness import api_refused, refused
from PIL import Image

from freqdense._finite import check_finite_state
from freqdense.cli.main import main
from freqdense.errors import CheckpointError, NonFiniteError
from freqdense.metrics import BoundaryFScore, ConfusionMatrix, DepthMetrics
from tiny_config import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(root / "cache", **{"schedule.total_steps": 2, "schedule.warmup_steps": 0, "eval.every": 2})
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "cfg.yaml"), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _ckpt(run_dir):
    (ckpt,) = sorted((run_dir / "checkpoints").glob("step_*"))
    return ckpt


def _poke(weights, value: float, which: int = 0) -> str:
    """Overwrite the first float32 of the ``which``-th float32 tensor of a safetensors file in place (a byte flip)."""
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    keys = [k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"]
    key = sorted(keys)[which]
    start = 8 + length + header[key]["data_offsets"][0]
    with open(weights, "r+b") as f:
        f.seek(start)
        f.write(struct.pack("<f", value))
    return key


def _image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_byte_flipped_weight_is_refused_naming_file_and_tensor(command, value, cli, run, tmp_path, unchanged):
    weights = _ckpt(run) / "model.safetensors"
    key = _poke(weights, value)
    args = ["eval", run] if command == "eval" else ["predict", run, _image(tmp_path), "--out", tmp_path / "out"]
    with unchanged(run):
        refused(cli(*args), "model.safetensors", key)
    assert not (tmp_path / "out").exists()


def test_a_truncated_weight_file_is_refused(cli, run, unchanged):
    weights = _ckpt(run) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with unchanged(run):
        refused(cli("eval", run), "model.safetensors")


def test_a_missing_weight_file_is_refused(cli, run):
    (_ckpt(run) / "model.safetensors").unlink()
    refused(cli("eval", run), "model.safetensors")


def test_weights_of_another_model_are_refused(cli, run):
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(3, 3)}, str(_ckpt(run) / "model.safetensors"))
    refused(cli("eval", run), "model.safetensors", "head.weight")


def _tamper_pointer(run_dir, name):
    path = run_dir / "checkpoints" / "pointers.json"
    pointers = json.loads(path.read_text())
    pointers["best"]["dir"] = name
    path.write_text(json.dumps(pointers))


@pytest.mark.parametrize("target", ["../../elsewhere", "/tmp", "step_1/../../.."], ids=["parent", "absolute", "dots"])
def test_a_pointer_outside_the_run_is_refused(target, cli, run, unchanged):
    _tamper_pointer(run, target)
    with unchanged(run):
        refused(cli("eval", run), "pointers.json")


def test_a_symlinked_checkpoint_leading_out_of_the_run_is_refused(cli, run, tmp_path):
    outside = tmp_path / "outside" / "step_00000099"
    shutil.copytree(_ckpt(run), outside)
    os.symlink(outside, run / "checkpoints" / "step_00000099")
    _tamper_pointer(run, "step_00000099")
    refused(cli("eval", run), "pointers.json", "outside")


def test_check_finite_state_names_the_first_bad_tensor():
    state = {"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")]), "c": torch.tensor([float("inf")])}
    message = api_refused(lambda: check_finite_state(state, "x.safetensors"), CheckpointError, "x.safetensors", "'b'")
    assert "2 tensors" in message
    check_finite_state({"n": torch.arange(3)}, "ints.safetensors")  # integer tensors cannot be non-finite


# --- evaluation and metrics ------------------------------------------------------------------------------------


class _Echo(torch.nn.Module):
    """semantic logits = the image's first 3 channels, depth = 1 + image mean (NaN propagates as in a network)."""

    def forward(self, image):
        return {"semantic": image[:, :3] * 10, "depth": 1 + image.mean(1, keepdim=True)}


class _Task:
    inputs = ("image",)

    def make_metrics(self):
        from freqdense.tasks import MetricSet

        return MetricSet({"depth": DepthMetrics(max_depth=None)})

    def evaluation_step(self, model, batch, metrics):
        out = model(batch["image"])
        metrics.metrics["depth"].update(out["depth"], batch["depth"])
        return out


def _batch(poison_input=None):
    image = torch.full((2, 3, 4, 5), 0.5)
    if poison_input is not None:
        image[1, 0, 0, 0] = poison_input
    return {"image": image, "depth": torch.full((2, 1, 4, 5), 2.0), "meta": {"id": ["s_a", "s_b"]}}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_evaluate_refuses_a_non_finite_input_naming_the_sample(value):
    from freqdense.engine.evaluate import evaluate

    api_refused(
        lambda: evaluate(_Echo(), _Task(), [_batch(value)], device=torch.device("cpu")),
        NonFiniteError,
        "'s_b'",
        "'image'",
    )


def test_evaluate_refuses_a_nan_prediction_naming_the_sample():
    from freqdense.engine.evaluate import evaluate

    class NanDepth(_Echo):
        def forward(self, image):
            out = super().forward(image)
            out["depth"][0, 0, 1, 1] = float("nan")
            return out

    message = api_refused(
        lambda: evaluate(NanDepth(), _Task(), [_batch()], device=torch.device("cpu")), NonFiniteError, "'s_a'"
    )
    assert "'s_b'" not in message


def test_depth_metrics_never_average_a_nan_prediction():
    metric = DepthMetrics(max_depth=None)
    gt = torch.full((2, 1, 3, 3), 2.0)
    pred = gt.clone()
    pred[1, 0, 0, 0] = float("nan")
    api_refused(lambda: metric.update(pred, gt), NonFiniteError, "batch items [1]", "1 evaluated pixels")
    # at an invalid ground-truth pixel the prediction is not evaluated, so NaN there is ignored like the pixel
    gt[1, 0, 0, 0] = 0.0
    metric.update(pred, gt)
    assert metric.compute()["abs_rel"] == 0.0


@pytest.mark.parametrize("metric_type", [ConfusionMatrix, BoundaryFScore])
def test_segmentation_metrics_refuse_nan_logits_but_not_at_ignored_pixels(metric_type):
    metric = metric_type(3)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0] = 1.0
    logits[0, 2, 1, 1] = float("nan")
    api_refused(lambda: metric.update(logits, target), NonFiniteError, "pred logits", "batch items [0]")
    target[0, 1, 1] = 255
    metric.update(logits, target)

"""Bad inputs to ``freqdense convert``: each is refused with exit 1 (argparse: 2), no traceback, the culprit named,
and no output folder (or temporary folder) left behind."""

from __future__ import annotations

import functools
import os
import pickle

import pytest
import torch
from _harness import refused, snapshot

from freqdense.models import create_model


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _mtl_state():
    return dict(_official_pad_net())


@functools.cache
def _official_pad_net():
    model = create_model("pad_net", backbone="hrnet_w18_small", num_classes=4)
    return {
        "module." + k.replace(".semantic", ".semseg").replace(".predictions.", ".conv_out."): v
        for k, v in model.state_dict().items()
    }


def _write(kind: str, folder):
    path = folder / "ckpt.pth.tar"
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "text file":
        path.write_text("not a checkpoint\n")
    elif kind == "truncated":
        torch.save(_mtl_state(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "malicious pickle":
        with open(path, "wb") as f:
            pickle.dump({"state_dict": _Evil()}, f)
    elif kind == "code object next to the weights":
        torch.save({"model": {"a": torch.zeros(1)}, "hook": _Evil()}, path)
    elif kind == "a list, not a dict":
        torch.save([torch.zeros(1)], path)
    elif kind == "no tensors inside":
        torch.save({"epoch": 3, "best_pred": 0.5}, path)
    elif kind == "mixed entries":
        torch.save({"a": torch.zeros(1), "lr": 0.1}, path)
    elif kind == "not an MTL model":
        torch.save({"foo.weight": torch.zeros(1)}, path)
    elif kind == "a task freqdense lacks":
        state = _mtl_state()
        state["module.heads.normals.2.weight"] = torch.zeros(3, 256, 1, 1)
        torch.save(state, path)
    elif kind == "renamed key":
        state = _mtl_state()
        state["module.heads.semseg.0.conv1.weights"] = state.pop("module.heads.semseg.0.conv1.weight")
        torch.save(state, path)
    elif kind == "classifier renamed":
        state = _mtl_state()
        state["module.heads.semseg.2.weights"] = state.pop("module.heads.semseg.2.weight")
        torch.save(state, path)
    elif kind == "wrong shape":
        state = _mtl_state()
        state["module.heads.depth.2.bias"] = torch.zeros(2)
        torch.save(state, path)
    else:
        raise AssertionError(kind)
    return path


CASES = {
    "empty file": "ckpt.pth.tar",
    "text file": "ckpt.pth.tar",
    "truncated": "ckpt.pth.tar",
    "malicious pickle": "refused to unpickle",
    "code object next to the weights": "refused to unpickle",
    "a list, not a dict": "expected a state dict",
    "no tensors inside": "no tensors found",
    "mixed entries": "'lr'",
    "not an MTL model": "not a Multi-Task-Learning-PyTorch",
    "a task freqdense lacks": "normals",
    "renamed key": "heads.semantic.0.conv1.weight (closest: heads.semantic.0.conv1.weights)",
    "classifier renamed": "number of classes (closest key: heads.semantic.2.weights)",
    "wrong shape": "heads.depth.2.bias: checkpoint (2,) vs model (1,)",
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bad_checkpoint_file_is_refused_naming_it(kind, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(kind, tmp_path)
    out = tmp_path / "out"
    message = refused(cli("convert", "mtl-pytorch", path, "--out", out), CASES[kind])
    assert "\n" not in message
    assert not out.exists() and not list(tmp_path.glob(".tmp-convert-*"))
    assert not (tmp_path / "pwned").exists()


def test_bad_sources_and_outputs(cli, tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_mtl_state(), good)
    refused(
        cli("convert", "mtl-pytorch", tmp_path / "missing.pth", "--out", tmp_path / "o1"),
        "missing.pth",
        "does not exist",
    )
    refused(cli("convert", "mtl-pytorch", tmp_path, "--out", tmp_path / "o2"), "is not a file")
    refused(cli("convert", "monodepth2", good, "--out", tmp_path / "o3"), "good.pth", "weights folder")
    (tmp_path / "md2").mkdir()
    refused(cli("convert", "monodepth2", tmp_path / "md2", "--out", tmp_path / "o4"), "encoder.pth is missing")
    refused(cli("convert", "onnx", good, "--out", tmp_path / "o5"), "invalid choice", code=2)
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    before = snapshot(existing)
    refused(cli("convert", "mtl-pytorch", good, "--out", existing), str(existing), "already exists")
    assert snapshot(existing) == before
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    refused(cli("convert", "mtl-pytorch", good, "--out", a_file), str(a_file), "already exists")
    refused(
        cli("convert", "mtl-pytorch", good, "--out", tmp_path / "o6", "model.num_classes=40"),
        "model.num_classes=40 but the checkpoint has 4",
    )
    refused(cli("convert", "mtl-pytorch", good, "--out", tmp_path / "o7", "model.output_stride=8"), "output_stride")
    refused(cli("convert", "mtl-pytorch", good, "--out", tmp_path / "o8", "--config", "nyud/nope"), "nyud/nope")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 9))

"""Bad-input cases: pre-flight checks before training step 1, export opsets, synthetic sizes, bad output locations.

Every case asserts exit 1, no traceback, the culprit named in the one error message, and nothing half-written.
"""

from __future__ import annotations

import errno
import os

import pytest
import torch
from _harness import refused

from freqdense.data.synthetic.dataset import MIN_SIZE, SyntheticScenes
from tiny_config import NUM_CLASSES

# ---------------------------------------------------------------------------------------------------------------
# Pre-flight: every split is checked before step 1


def _corrupt_split(monkeypatch, split: str, index: int, value: int) -> None:
    """Sample ``index`` of ``split`` gets one label id ``value`` (outside the classes) at pixel (0, 0)."""
    original = SyntheticScenes.__getitem__

    def getitem(self, i):
        sample = original(self, i)
        if self.split == split and i == index:
            semantic = sample["semantic"].clone()
            semantic[..., 0, 0] = value
            sample = {**sample, "semantic": semantic}
        return sample

    monkeypatch.setattr(SyntheticScenes, "__getitem__", getitem)


@pytest.mark.parametrize(("split", "index", "value"), [("val", 2, NUM_CLASSES + 3), ("val", 0, 77), ("train", 5, 99)])
def test_bad_label_in_any_split_stops_the_run_before_step_1(
    cli, write_config, tmp_path, monkeypatch, split, index, value
):
    _corrupt_split(monkeypatch, split, index, value)
    out = tmp_path / "run"
    message = refused(cli("train", write_config(), "--out", out), f"{split} split", f"[{index}]", str(value))
    assert "semantic" in message
    assert not out.exists(), "nothing may be written before the pre-flight check passes"


def test_empty_val_split_is_refused(cli, write_config, tmp_path):
    out = tmp_path / "run"
    config = write_config(**{"data.val_args": {"num_samples": 0}})
    refused(cli("train", config, "--out", out), "val split", "0 samples")
    assert not out.exists()


@pytest.mark.parametrize("delta", [-1, -5, 2])
def test_model_num_classes_must_match_the_dataset(cli, write_config, tmp_path, delta):
    import yaml

    from tiny_config import tiny_config

    raw = tiny_config(tmp_path / "cache")
    raw["model"]["num_classes"] = NUM_CLASSES + delta
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    refused(cli("train", config, "--out", out), f"model.num_classes={NUM_CLASSES + delta}", str(NUM_CLASSES))
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# data synth --size


@pytest.mark.parametrize("size", [(0, 0), (2, 2), (3, 64), (64, MIN_SIZE - 1), (-4, 8)])
def test_synth_size_below_the_loader_minimum(cli, tmp_path, size):
    out = tmp_path / "synth"
    refused(cli("data", "synth", "--out", out, "--num", 1, "--size", *size), "--size", f">= {MIN_SIZE}")
    assert not out.exists()


def test_synth_minimum_size_is_readable_by_the_loader(cli, tmp_path):
    out = tmp_path / "synth"
    assert cli("data", "synth", "--out", out, "--num", 1, "--size", MIN_SIZE, MIN_SIZE).code == 0
    sample = SyntheticScenes(root=out, split="train")[0]
    assert tuple(sample["image"].shape[-2:]) == (MIN_SIZE, MIN_SIZE)


# ---------------------------------------------------------------------------------------------------------------
# Bad output locations (cli/main.py maps the OSError of the first write to one message naming the path)


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("keep me")
    return path


@pytest.mark.parametrize("below", [False, True], ids=["is-a-file", "below-a-file"])
def test_synth_out_is_a_file(cli, tmp_path, a_file, unchanged, below):
    out = a_file / "x" if below else a_file
    with unchanged(a_file):
        refused(cli("data", "synth", "--out", out, "--num", 1, "--size", 8, 8), str(a_file.name))


@pytest.mark.parametrize("below", [False, True], ids=["is-a-file", "below-a-file"])
def test_train_out_is_a_file(cli, write_config, a_file, unchanged, below):
    out = a_file / "run" if below else a_file
    with unchanged(a_file):
        refused(cli("train", write_config(), "--out", out), str(a_file))


def test_panel_out_is_a_directory(cli, tmp_path, unchanged):
    folder = tmp_path / "panel.png"
    folder.mkdir()
    with unchanged(tmp_path):
        refused(cli("data", "panel", "--out", folder, "--num", 1, "--size", 16, 16), "panel.png", "directory")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EISDIR, "is a directory"),
        (errno.ENOTDIR, "is a file where a directory"),
        (errno.EEXIST, "already exists"),
    ],
    ids=["ENOSPC", "EROFS", "EACCES", "EISDIR", "ENOTDIR", "EEXIST"],
)
def test_every_os_error_kind_is_one_clear_line(cli, tmp_path, monkeypatch, code, words):
    """Whatever the command, an OSError of these kinds at its first write is one message naming the path."""
    from freqdense.data.synthetic import storage

    target = tmp_path / "synth" / "train" / "meta.json"

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(storage, "synthesize", failing)
    refused(cli("data", "synth", "--out", tmp_path / "synth", "--num", 1, "--size", 8, 8), str(target), words)


def test_other_os_errors_keep_their_traceback(cli, tmp_path, monkeypatch):
    """Kinds that are not the user's to fix (here EBADF) are bugs: they are not hidden behind a message."""
    from freqdense.data.synthetic import storage

    def failing(*args, **kwargs):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF), "x")

    monkeypatch.setattr(storage, "synthesize", failing)
    with pytest.raises(OSError):
        cli("data", "synth", "--out", tmp_path / "synth", "--num", 1, "--size", 8, 8)


def test_read_only_folder(cli, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root (or on a filesystem without permissions): chmod 0o500 does not block writes")
        refused(cli("data", "synth", "--out", folder / "synth", "--num", 1, "--size", 8, 8), str(folder))
        assert not (folder / "synth").exists()
    finally:
        folder.chmod(0o700)


# ---------------------------------------------------------------------------------------------------------------
# export --opset


@pytest.fixture
def tiny_model_export(monkeypatch):
    """``freqdense export`` of a two-layer model, without a run directory (the command's loader is replaced)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from freqdense.cli import export_cmd

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, image):
            return {"semantic": self.conv(image)}

    meta = {"input_size": [8, 8], "classes": ["a", "b"], "tasks": ["semantic"]}
    monkeypatch.setattr(export_cmd, "_load_model", lambda path: (Tiny().eval(), meta))


@pytest.mark.parametrize("opset", [0, -1, 99])
def test_export_opset_outside_what_onnx_knows(cli, tmp_path, tiny_model_export, opset):
    out = tmp_path / "m.onnx"
    with_dir = tmp_path
    refused(cli("export", "run", "--out", out, "--opset", opset, "--no-check", "--static"), f"--opset {opset}")
    assert not out.exists() and not (with_dir / "m.onnx.json").exists()


def test_export_opset_the_exporter_cannot_write(cli, tmp_path, tiny_model_export):
    """torch.onnx falls back to its own opset 18 when the converter cannot lower a graph to 5 (here: the Shape ops
    of dynamic H/W): refused, not recorded as 5. (The static graph of this model does convert to 5.)"""
    out = tmp_path / "m.onnx"
    message = refused(cli("export", "run", "--out", out, "--opset", 5, "--no-check"), "--opset 5", "opset 18")
    assert "nothing was written" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_records_the_opset_it_wrote(cli, tmp_path, tiny_model_export):
    import json

    import onnx

    out = tmp_path / "m.onnx"
    assert cli("export", "run", "--out", out, "--opset", 17, "--no-check", "--static").code == 0
    written = {o.domain: o.version for o in onnx.load(str(out)).opset_import}
    assert written.get("", written.get("ai.onnx")) == 17
    assert json.loads((tmp_path / "m.onnx.json").read_text())["opset"] == 17


@pytest.mark.parametrize("where", ["a-directory", "below-a-file"])
def test_export_out_location(cli, tmp_path, tiny_model_export, unchanged, where):
    if where == "a-directory":
        out = tmp_path / "m.onnx"
        out.mkdir()
        culprit = "m.onnx"
    else:
        (tmp_path / "a_file").write_text("keep me")
        out = tmp_path / "a_file" / "m.onnx"
        culprit = "a_file"
    with unchanged(tmp_path):
        refused(cli("export", "run", "--out", out, "--no-check", "--static"), culprit)

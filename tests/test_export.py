"""export_onnx / `freqdense export`: real exports of small conv models, checked here against ONNX Runtime."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freqdense.cli import export_cmd
from freqdense.cli.main import main
from freqdense.errors import ConfigError
from freqdense.export import ExportError, export_onnx

META = {
    "classes": ["a", "b", "c", "d"],
    "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
    "depth_unit": "m",
    "input_size": [32, 48],
    "tasks": ["semantic", "depth"],
}


class TinyDense(nn.Module):
    """Normalisation buffers, strided conv + BatchNorm, x2 bilinear upsampling, seg/depth heads, an aux output.

    ``grid`` adds a pyramid-pooling branch (AdaptiveAvgPool2d to a fixed grid, upsampled back).
    """

    def __init__(self, num_classes: int = 4, grid: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(grid) if grid else None
        self.seg = nn.Conv2d(8, num_classes, 1)
        self.depth = nn.Conv2d(8, 1, 1)
        gen = torch.Generator().manual_seed(0)
        bn = self.stem[1]
        with torch.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm matters
            bn.running_mean.copy_(torch.randn(8, generator=gen) * 0.3)
            bn.running_var.copy_(torch.rand(8, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(8, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(8, generator=gen) * 0.1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.stem((image - self.mean) / self.std)
        if self.pool is not None:
            f = f + F.interpolate(self.pool(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        f = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False)
        return {"semantic": self.seg(f), "depth": F.softplus(self.depth(f)) + 0.1, "aux_features": f}


class ExportOnlyOffset(TinyDense):
    """Behaves differently while being exported, so the ONNX graph cannot match eager PyTorch."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(image)
        if torch.compiler.is_exporting():
            out["depth"] = out["depth"] + 0.01
        return out


@pytest.fixture
def ort():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    return pytest.importorskip("onnxruntime")


def _run_onnx(ort, path, image: torch.Tensor) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image.numpy()})))


@pytest.mark.export
def test_dynamic_export_matches_onnxruntime_at_other_sizes(ort, tmp_path):
    model = TinyDense().train()
    bn_before = model.stem[1].running_mean.clone()
    path = tmp_path / "sub" / "model.onnx"
    report = export_onnx(model, path, height=32, width=48, meta=META)

    assert report.dynamic_hw and report.fallback_reason is None
    assert report.input_shape == ("batch", 3, "height", "width")
    assert report.output_names == ("semantic", "depth")  # the aux output is dropped
    assert report.checked_sizes == ((32, 48), (64, 112), (49, 77))  # traced, +32/+64, odd +17/+29
    assert all(0 <= d <= 1e-4 for d in report.max_abs_diff.values())
    assert model.training and torch.equal(model.stem[1].running_mean, bn_before)  # mode restored, stats untouched

    # Independent check at a size and batch the exporter never saw.
    image = torch.rand(3, 3, 40, 72, generator=torch.Generator().manual_seed(1))
    got = _run_onnx(ort, path, image)
    assert list(got) == ["semantic", "depth"]
    with torch.no_grad():
        expected = model.eval()(image)
    for name in ("semantic", "depth"):
        torch.testing.assert_close(torch.from_numpy(got[name]), expected[name], atol=1e-4, rtol=1e-3)

    side = json.loads(report.sidecar_path.read_text())
    assert report.sidecar_path == tmp_path / "sub" / "model.onnx.json"
    assert side["input"]["name"] == "image" and side["input"]["layout"] == "NCHW"
    assert side["input"]["shape"] == ["batch", 3, "height", "width"]
    assert [o["name"] for o in side["outputs"]] == ["semantic", "depth"]
    assert side["classes"] == META["classes"] and side["palette"] == META["palette"]
    assert side["depth_unit"] == "m" and side["dynamic_hw"] is True
    assert "inside the graph" in side["input"]["normalization"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["model.onnx", "model.onnx.json"]


@pytest.mark.export
def test_graph_that_differs_from_pytorch_raises_and_writes_nothing(ort, tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="'depth' differs from PyTorch"):
        export_onnx(ExportOnlyOffset(), path, height=32, width=48)
    assert list(tmp_path.iterdir()) == []  # no .onnx, no sidecar, no temporary file


@pytest.mark.export
def test_size_specific_graph_falls_back_to_static(ort, tmp_path, caplog):
    # AdaptiveAvgPool2d((4, 6)) is translated to an AveragePool whose kernel is fixed from the traced size, so
    # the dynamic graph is only right at 32x48; the second-size check must catch it and re-export statically.
    model = TinyDense(grid=(4, 6)).eval()
    with caplog.at_level(logging.WARNING, logger="freqdense.export"):
        report = export_onnx(model, tmp_path / "m.onnx", height=32, width=48)
    assert not report.dynamic_hw and "second size" in report.fallback_reason
    assert report.input_shape == ("batch", 3, 32, 48) and report.checked_sizes == ((32, 48),)
    assert any("static H/W = 32x48" in r.getMessage() for r in caplog.records)

    image = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    got = _run_onnx(ort, tmp_path / "m.onnx", image)
    with torch.no_grad():
        expected = model(image)
    torch.testing.assert_close(torch.from_numpy(got["semantic"]), expected["semantic"], atol=1e-4, rtol=1e-3)


@pytest.mark.export
def test_explicit_outputs_keep_their_order_static_unchecked(ort, tmp_path):
    model = TinyDense().eval()
    report = export_onnx(
        model,
        tmp_path / "m.onnx",
        height=16,
        width=24,
        outputs=("depth", "aux_features"),
        dynamic_hw=False,
        check=False,
    )
    assert report.output_names == ("depth", "aux_features") and report.checked_sizes == ()
    image = torch.rand(2, 3, 16, 24)
    got = _run_onnx(ort, tmp_path / "m.onnx", image)
    assert list(got) == ["depth", "aux_features"]
    with torch.no_grad():
        torch.testing.assert_close(
            torch.from_numpy(got["aux_features"]), model(image)["aux_features"], atol=1e-4, rtol=1e-3
        )


@pytest.mark.export
def test_bad_requests_fail_before_exporting(ort, tmp_path):
    with pytest.raises(ConfigError, match=r"\['normals'\] are not tensors"):
        export_onnx(TinyDense(), tmp_path / "m.onnx", height=16, width=16, outputs=["semantic", "normals"])

    class SegmentationOnlyTuple(nn.Module):
        def forward(self, image):
            return (image,)

    with pytest.raises(ConfigError, match="dict"):
        export_onnx(SegmentationOnlyTuple(), tmp_path / "m.onnx", height=16, width=16)
    with pytest.raises(ConfigError, match="positive"):
        export_onnx(TinyDense(), tmp_path / "m.onnx", height=0, width=16)
    assert list(tmp_path.iterdir()) == []


def test_missing_export_extra_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'freqdense\[export\]'"):
        export_onnx(TinyDense(), tmp_path / "m.onnx", height=16, width=16)


@pytest.mark.export
def test_cli_export_uses_checkpoint_input_size(ort, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export_cmd, "_load_model", lambda path: (TinyDense(), dict(META)))
    out = tmp_path / "cli.onnx"
    assert main(["export", "runs/x", "--out", str(out), "--static", "--no-check"]) == 0
    side = json.loads((tmp_path / "cli.onnx.json").read_text())
    assert side["input"]["shape"] == ["batch", 3, 32, 48] and side["check"] is None
    assert "wrote" in capsys.readouterr().out

    assert main(["export", "runs/x", "--out", str(out), "--height", "32"]) == 1  # --width missing


@pytest.mark.export
def test_export_logs_a_heartbeat_while_torch_onnx_export_runs(ort, tmp_path, caplog, monkeypatch):
    import threading
    import time

    from freqdense import _progress

    real_export = torch.onnx.export

    def slow_export(*args, **kwargs):  # the exporter gives no progress of its own: only the heartbeat can
        time.sleep(0.3)
        return real_export(*args, **kwargs)

    monkeypatch.setattr(_progress, "LOG_INTERVAL_S", 0.1)
    monkeypatch.setattr(torch.onnx, "export", slow_export)
    with caplog.at_level(logging.INFO):
        export_onnx(TinyDense().eval(), tmp_path / "m.onnx", height=32, width=48)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("still exporting TinyDense to ONNX (dynamic H/W)... ") for m in messages)
    assert any(m.startswith("checking the ONNX graph against PyTorch with ONNX Runtime") for m in messages)
    assert not [t for t in threading.enumerate() if t.name.startswith("heartbeat")]  # every heartbeat stopped


class TinyFreqFusion(nn.Module):
    """Two stride-2 convs and one FreqFusion step: the smallest model with the FreqFusion export path."""

    def __init__(self) -> None:
        super().__init__()
        from freqdense.nn.freq_fusion import FreqFusion

        self.fine = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.coarse = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fusion = FreqFusion(8, 8, compressed_channels=8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        fine = self.fine(image)
        _, hr, lr = self.fusion(fine, self.coarse(fine))
        return {"semantic": self.head(hr + lr)}


@pytest.mark.export
@pytest.mark.slow
def test_freqfusion_graph_runs_at_odd_sizes(ort, tmp_path):
    # Issue 18: the dynamic graph once assumed H, W divisible by 4 here (a size test in FreqFusion traced into a
    # guard) and failed in ONNX Runtime with "Reshape ... requested shape {1,1,25,13,2,19,2}" at 400x600-like sizes.
    torch.manual_seed(0)
    model = TinyFreqFusion().eval()
    report = export_onnx(model, tmp_path / "ff.onnx", height=32, width=32)
    assert report.dynamic_hw and report.fallback_reason is None
    assert report.checked_sizes == ((32, 32), (64, 96), (49, 61))  # the built-in check includes the odd size
    for size in [(50, 75), (37, 29)]:  # sizes the export never saw, odd at several levels
        image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        got = torch.from_numpy(_run_onnx(ort, tmp_path / "ff.onnx", image)["semantic"])
        with torch.no_grad():
            expected = model(image)["semantic"]
        assert got.shape == expected.shape == (1, 2, (size[0] + 1) // 2, (size[1] + 1) // 2)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)  # float32 kernels, softmax: ~1e-7 measured

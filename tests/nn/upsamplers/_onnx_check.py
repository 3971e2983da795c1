"""Shared check of the up-sampler tests: export a guided member with the dynamo exporter and compare onnxruntime."""

from __future__ import annotations

import pytest
import torch


class FusedOutput(torch.nn.Module):
    """``module(hr, lr).lr_feat`` as a single-output graph."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.up = module

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return self.up(hr, lr).lr_feat


def assert_dynamo_onnx_matches(module: torch.nn.Module, hr_shape: tuple, lr_shape: tuple, atol: float = 1e-4) -> None:
    """Export at the given (odd) sizes with ``dynamo=True`` (as ``freqdense export``: the legacy exporter folds
    ``carafe``'s autograd.Function into a constant) and compare onnxruntime with torch on inputs other than the
    traced ones. Static H/W keeps the tests short."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    fused = FusedOutput(module).eval()
    program = torch.onnx.export(fused, (torch.rand(*hr_shape), torch.rand(*lr_shape)), dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        hr, lr = torch.randn(*hr_shape, generator=gen), torch.randn(*lr_shape, generator=gen)
        feed = dict(zip((i.name for i in session.get_inputs()), (hr.numpy(), lr.numpy())))
        (got,) = session.run(None, feed)
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), fused(hr, lr), atol=atol, rtol=0)

from __future__ import annotations

import math

import pytest
import torch

from freqdense.errors import ShapeError
from freqdense.ops.dct import dct2d, dct_matrix, idct2d

# Generated with:
#   import numpy as np, scipy.fft
#   x = np.sqrt(np.arange(15.0)).reshape(3, 5)
#   scipy.fft.dctn(x, type=2, norm="ortho"); scipy.fft.idctn(x, type=2, norm="ortho")   (scipy 1.17.1)
DCT_REF = [
    [9.44910163111641, -1.4615164449117748, -0.25518391021354875, -0.23141327947243084, -0.0682061830944034],
    [-3.524025893843908, -0.7207080133891799, -0.2784614924183442, -0.18496010656467599, -0.07844340192756011],
    [-0.5263605040255932, -0.29814190354027525, -0.14895542958063668, -0.09497588884268854, -0.043473696480170715],
]
IDCT_REF = [
    [
        8.1878684217943025e00,
        -3.3029867921733760e00,
        1.7284454361814032e00,
        -6.4693925536118224e-01,
        4.5589744143972022e-01,
    ],
    [
        -4.5597871024874825e00,
        5.8805734303101875e-01,
        -1.0841307586921132e00,
        -1.6634326028115776e-01,
        -5.5129891346652482e-01,
    ],
    [
        4.5933905123960811e-01,
        -6.9688143064182784e-01,
        -2.6177859515932878e-03,
        -2.7729560069437975e-01,
        -1.3132679393641633e-01,
    ],
]

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dct2d_matches_scipy_reference(dtype):
    x = torch.arange(15.0, dtype=torch.float64).sqrt().reshape(3, 5).to(dtype)
    torch.testing.assert_close(dct2d(x), torch.tensor(DCT_REF, dtype=dtype), **TOL[dtype])
    torch.testing.assert_close(idct2d(x), torch.tensor(IDCT_REF, dtype=dtype), **TOL[dtype])


def test_dct2d_matches_scipy_on_random_batches():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = torch.randn(2, 3, 7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(scipy_fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)))
    torch.testing.assert_close(dct2d(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_dct_matrix_is_orthonormal_and_has_closed_form_entries(n):
    d = dct_matrix(n, dtype=torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-13)
    # Row 0 is the constant 1/sqrt(n); row k at sample i is sqrt(2/n) cos(pi k (2i+1) / (2n)).
    torch.testing.assert_close(d[0], torch.full((n,), 1 / math.sqrt(n), dtype=torch.float64))
    if n > 2:
        assert d[2, 1].item() == pytest.approx(math.sqrt(2 / n) * math.cos(math.pi * 2 * 3 / (2 * n)), abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_and_parseval(dtype):
    x = torch.randn(4, 2, 9, 16, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y = dct2d(x)
    torch.testing.assert_close(idct2d(y), x, **TOL[dtype])
    torch.testing.assert_close(y.square().sum((-2, -1)), x.square().sum((-2, -1)), **TOL[dtype])


def test_dc_coefficient_and_cosine_peak():
    h, w = 6, 10
    assert dct2d(torch.ones(h, w, dtype=torch.float64))[0, 0].item() == pytest.approx(math.sqrt(h * w))
    # A separable DCT-II basis function is transformed into a single coefficient.
    u, v = 2, 7
    d_h, d_w = dct_matrix(h, dtype=torch.float64), dct_matrix(w, dtype=torch.float64)
    y = dct2d(torch.outer(d_h[u], d_w[v]))
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[u, v] = 1.0
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-13)


def test_gradcheck_float64():
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2d, (x,))
    assert torch.autograd.gradcheck(idct2d, (x,))


def test_basis_cache_returns_same_tensor_per_key():
    a = dct_matrix(11, dtype=torch.float32)
    assert dct_matrix(11, dtype=torch.float32) is a
    assert dct_matrix(11, dtype=torch.float64) is not a


def test_rejects_bad_inputs():
    with pytest.raises(ShapeError, match="at least 2 dims"):
        dct2d(torch.ones(5))
    with pytest.raises(ShapeError, match="floating-point"):
        dct2d(torch.ones(3, 3, dtype=torch.int64))


def test_compiles_fullgraph():
    x = torch.randn(2, 3, 5, 6)
    compiled = torch.compile(dct2d, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), dct2d(x))


@pytest.mark.export
def test_onnx_export_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")

    class Dct(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return idct2d(dct2d(x) * 0.5) + dct2d(x)

    x = torch.randn(2, 3, 13, 17)  # sizes no other test uses: the basis cache is empty for them
    program = torch.onnx.export(Dct().eval(), (x,), dynamo=True, verbose=False)
    # Tracing must not leave fake tensors in the basis cache.
    assert type(dct_matrix(13, dtype=torch.float32)) is torch.Tensor
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert "MatMul" in ops
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), Dct()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.export
def test_onnx_export_with_dynamic_height_and_width_is_exact_at_other_sizes():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")

    class Dct(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return dct2d(x)

    x = torch.randn(1, 2, 11, 14)
    dims = {"x": {2: torch.export.Dim("h", min=2, max=64), 3: torch.export.Dim("w", min=2, max=64)}}
    program = torch.onnx.export(Dct().eval(), (x,), dynamo=True, dynamic_shapes=dims, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((1, 2, 11, 14), (1, 2, 7, 20)):  # the second size was never traced
        y = torch.randn(shape)
        (got,) = session.run(None, {session.get_inputs()[0].name: y.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), dct2d(y), rtol=1e-5, atol=1e-5)

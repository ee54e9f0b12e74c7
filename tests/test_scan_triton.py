"""The Triton scan against the float64 loop: values and gradients, real and complex, both directions.

Without a GPU the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set per test; the module
builds its kernel for the setting in force at launch, so import order does not matter) on small CPU
tensors. Tests marked `cuda` compile the real kernel and skip without a GPU; all tests that launch
the kernel skip when triton is not installed.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sequence_models.scan import scan_reference
from sequence_models.kernels.scan_triton import triton_available, triton_linear_scan, triton_linear_scan_no_grad

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
needs_cuda = pytest.mark.skipif(
    not (HAS_TRITON and torch.cuda.is_available()), reason="needs triton and a CUDA GPU"
)

REAL = (torch.float32, torch.float64)
COMPLEX = (torch.complex64, torch.complex128)
TOLERANCE = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.complex128: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.complex64: dict(rtol=1e-4, atol=1e-5),
}


@pytest.fixture
def interpreter(monkeypatch):
    """Run kernels in the Triton interpreter on CPU tensors for the duration of one test."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _inputs(batch, length, features, dtype, seed=0, device="cpu"):
    """Coefficients inside the unit disc (stable), values and initial state of any sign."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, length, *features)
    real_dtype = torch.float64
    if dtype.is_complex:
        radius = torch.rand(shape, generator=g, dtype=real_dtype)
        phase = 6.28 * torch.rand(shape, generator=g, dtype=real_dtype)
        a = torch.polar(radius, phase)
        b = torch.randn(shape, generator=g, dtype=torch.complex128)
        h0 = torch.randn((batch, *features), generator=g, dtype=torch.complex128)
    else:
        a = 2 * torch.rand(shape, generator=g, dtype=real_dtype) - 1
        b = torch.randn(shape, generator=g, dtype=real_dtype)
        h0 = torch.randn((batch, *features), generator=g, dtype=real_dtype)
    return tuple(x.to(dtype=dtype, device=device) for x in (a, b, h0))


def _reference(a, b, h0, reverse):
    """The loop in float64 / complex128 (reverse: on the time-flipped sequence)."""
    wide = torch.complex128 if b.is_complex() else torch.float64
    a, b = a.to(wide), b.to(wide)
    h0 = None if h0 is None else h0.to(wide)
    if reverse:
        return scan_reference(a.flip(1), b.flip(1), h0).flip(1)
    return scan_reference(a, b, h0)


def _check_values_and_gradients(a, b, h0, reverse):
    """Forward and backward of the Triton scan against autograd through the float64 loop."""
    tolerance = TOLERANCE[b.dtype]
    leaves = [x.detach().clone().requires_grad_() for x in (a, b)]
    if h0 is not None:
        leaves.append(h0.detach().clone().requires_grad_())
    wide_leaves = [x.detach().to(torch.complex128 if x.is_complex() else torch.float64).requires_grad_() for x in leaves]

    out = triton_linear_scan(*leaves[:2], leaves[2] if h0 is not None else None, reverse=reverse)
    expected = _reference(*wide_leaves[:2], wide_leaves[2] if h0 is not None else None, reverse)
    assert out.dtype == b.dtype and out.shape == b.shape
    torch.testing.assert_close(out.to(expected.dtype), expected.detach(), **tolerance)

    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=expected.dtype).to(out.device)
    (out * weight.to(out.dtype)).real.sum().backward()
    (expected * weight).real.sum().backward()
    for leaf, wide in zip(leaves, wide_leaves):
        torch.testing.assert_close(leaf.grad.to(wide.dtype), wide.grad, **tolerance)


def test_triton_available_never_raises_and_is_false_off_cuda():
    assert triton_available(torch.device("cpu")) is False
    assert triton_available("cpu") is False
    assert triton_available(None) is False
    assert triton_available("not a device") is False
    assert triton_available(torch.device("cuda")) is (HAS_TRITON and torch.cuda.is_available())


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("length", [1, 7, 19])
@pytest.mark.parametrize("features", [(3,), (3, 5)])
@pytest.mark.parametrize("with_initial", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_interpreted_matches_loop_float64(interpreter, dtype, length, features, with_initial, reverse):
    a, b, h0 = _inputs(2, length, features, dtype, seed=length)
    _check_values_and_gradients(a, b, h0 if with_initial else None, reverse)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("reverse", [False, True])
def test_interpreted_matches_loop_float32(interpreter, dtype, reverse):
    a, b, h0 = _inputs(2, 19, (3, 5), dtype)
    _check_values_and_gradients(a, b, h0, reverse)
    _check_values_and_gradients(a, b, None, reverse)


@needs_triton
def test_interpreted_several_feature_blocks_with_a_ragged_last_block(interpreter):
    """40 features over two programs of 32 (the second one masked) per batch row."""
    a, b, h0 = _inputs(2, 7, (40,), torch.float64)
    _check_values_and_gradients(a, b, h0, reverse=False)
    a, b, h0 = _inputs(2, 5, (40,), torch.complex128)
    _check_values_and_gradients(a, b, h0, reverse=True)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("reverse", [False, True])
def test_interpreted_gradcheck(interpreter, dtype, reverse):
    a, b, h0 = _inputs(1, 3, (2,), dtype, seed=3)
    inputs = tuple(x.clone().requires_grad_() for x in (a, b, h0))
    assert torch.autograd.gradcheck(
        lambda a, b, h0: triton_linear_scan(a, b, h0, reverse=reverse), inputs, fast_mode=True
    )


@needs_triton
def test_interpreted_expanded_coefficients_and_strided_values(interpreter):
    """A stride-0 expanded diagonal is read in place and its gradient summed back by autograd; values
    and the incoming gradient may be non-contiguous (a transposed b, the stride-0 gradient of sum())."""
    diagonal = torch.tensor([0.0, 0.5, -0.9], dtype=torch.float64, requires_grad=True)
    b_storage = torch.randn(2, 3, 9, dtype=torch.float64)
    b = b_storage.transpose(1, 2).requires_grad_()  # (2, 9, 3), time stride 1
    out = triton_linear_scan(diagonal.expand_as(b), b)
    out.sum().backward()
    wide_diagonal = diagonal.detach().clone().requires_grad_()
    wide_b = b.detach().clone().requires_grad_()
    expected = scan_reference(wide_diagonal.expand_as(wide_b), wide_b)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(diagonal.grad, wide_diagonal.grad)
    torch.testing.assert_close(b.grad, wide_b.grad)

    # One coefficient per (batch, step) shared by all features: stride 0 along the features.
    column = torch.rand(2, 9, 1, dtype=torch.complex128, requires_grad=True)
    values = torch.randn(2, 9, 3, dtype=torch.complex128)
    out = triton_linear_scan(column.expand_as(values), values, reverse=True)
    (out.abs() ** 2).sum().backward()
    wide_column = column.detach().clone().requires_grad_()
    expected = _reference(wide_column.expand_as(values), values, None, reverse=True)
    (expected.abs() ** 2).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(column.grad, wide_column.grad)


@needs_triton
def test_interpreted_no_grad_kernel_matches_loop(interpreter):
    a, b, h0 = _inputs(2, 7, (3,), torch.complex128)
    for reverse in (False, True):
        out = triton_linear_scan_no_grad(a.requires_grad_(), b, h0, reverse=reverse)
        assert not out.requires_grad
        torch.testing.assert_close(out, _reference(a.detach(), b, h0, reverse))


@needs_triton
def test_interpreted_empty_and_only_needed_gradients(interpreter):
    a, b, h0 = _inputs(2, 0, (3,), torch.float64)
    assert triton_linear_scan(a, b, h0).shape == (2, 0, 3)
    a, b, h0 = _inputs(2, 5, (3,), torch.float64)
    b.requires_grad_()
    triton_linear_scan(a, b, h0).sum().backward()
    assert a.grad is None and h0.grad is None
    torch.testing.assert_close(b.grad, torch.autograd.grad(scan_reference(a, b, h0).sum(), b)[0])


@needs_triton
def test_clear_errors_for_unsupported_inputs(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    a, b, h0 = _inputs(2, 4, (3,), torch.float64)
    with pytest.raises(ValueError, match="float32, float64, complex64"):
        triton_linear_scan(a.half(), b.half())
    with pytest.raises(ValueError, match="float32, float64, complex64"):
        triton_linear_scan(a.long(), b.long())
    with pytest.raises(ValueError, match="same dtype"):
        triton_linear_scan(a.float(), b)
    with pytest.raises(ValueError, match="shape of b"):
        triton_linear_scan(a[:, :, :1], b)
    with pytest.raises(ValueError, match="batch, time"):
        triton_linear_scan(b[0, 0], b[0, 0])
    with pytest.raises(ValueError, match="initial_state must have shape"):
        triton_linear_scan(a, b, h0[:1])
    with pytest.raises(ValueError, match="initial_state must have dtype"):
        triton_linear_scan(a, b, h0.float())
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA"):
        triton_linear_scan(a, b)
    with pytest.raises(ValueError, match="CUDA"):
        triton_linear_scan_no_grad(a, b)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
@pytest.mark.parametrize("reverse", [False, True])
def test_cuda_kernel_matches_loop(dtype, reverse):
    for length, features in ((1, (5,)), (33, (3, 5)), (257, (300,))):
        a, b, h0 = _inputs(3, length, features, dtype, device="cuda")
        _check_values_and_gradients(a, b, h0, reverse)
        _check_values_and_gradients(a, b, None, reverse)


@needs_cuda
def test_cuda_kernel_at_model_sizes():
    """Many programs per row and several feature blocks, float32 / complex64 against the float64 loop."""
    a, b, h0 = _inputs(16, 512, (256,), torch.float32, device="cuda")
    a = a.abs().clamp(max=0.999)
    _check_values_and_gradients(a, b, h0, reverse=False)
    a, b, h0 = _inputs(4, 1024, (64,), torch.complex64, device="cuda")
    _check_values_and_gradients(a, b, h0, reverse=True)

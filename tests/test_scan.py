"""Scans against the float64 loop: real and complex, with initial state, odd lengths, gradients."""

import pytest
import torch

from sequence_models.kernels.backend import get_scan_backend, set_scan_backend
from sequence_models.scan import linear_scan, scan_log_space, scan_reference


@pytest.fixture(autouse=True, params=["torch", "auto"])
def scan_backend(request):
    """Every test runs on the pure-PyTorch scan and on the automatic choice (the CPU kernels here)."""
    previous = get_scan_backend()
    set_scan_backend(request.param)
    yield request.param
    set_scan_backend(previous)

LENGTHS = [1, 2, 7, 31, 64, 257]


def _real(batch, length, width, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, length, width, generator=g, dtype=dtype)
    b = torch.randn(batch, length, width, generator=g, dtype=dtype)
    h0 = torch.randn(batch, width, generator=g, dtype=dtype)
    return a, b, h0


def _complex(batch, length, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    radius = torch.rand(batch, length, width, generator=g, dtype=torch.float64)
    phase = 6.28 * torch.rand(batch, length, width, generator=g, dtype=torch.float64)
    b = torch.randn(batch, length, width, generator=g, dtype=torch.complex128)
    h0 = torch.randn(batch, width, generator=g, dtype=torch.complex128)
    return torch.polar(radius, phase), b, h0


def test_reference_loop_is_the_recurrence():
    a = torch.tensor([[[0.5], [2.0], [0.0]]])
    b = torch.tensor([[[1.0], [1.0], [3.0]]])
    out = scan_reference(a, b, torch.tensor([[4.0]]))
    assert out.flatten().tolist() == [3.0, 7.0, 3.0]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("chunk_size", [None, 2, 5])
def test_linear_scan_real_matches_loop(length, chunk_size):
    a, b, h0 = _real(3, length, 4)
    for initial in (None, h0):
        expected = scan_reference(a, b, initial)
        torch.testing.assert_close(linear_scan(a, b, initial, chunk_size=chunk_size), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length", LENGTHS)
def test_linear_scan_complex_matches_loop(length):
    a, b, h0 = _complex(2, length, 5)
    torch.testing.assert_close(linear_scan(a, b, h0), scan_reference(a, b, h0), rtol=1e-12, atol=1e-12)


def test_linear_scan_broadcasts_a_constant_diagonal_and_runs_in_reverse():
    _, b, h0 = _real(2, 23, 3)
    diagonal = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64)
    forward = linear_scan(diagonal, b, h0)
    torch.testing.assert_close(forward, scan_reference(diagonal.expand_as(b), b, h0))
    backward = linear_scan(diagonal, b, h0, reverse=True)
    torch.testing.assert_close(backward, scan_reference(diagonal.expand_as(b), b.flip(1), h0).flip(1))


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("chunk_size", [None, 4, 16])
def test_log_space_scan_matches_loop(length, chunk_size):
    a, b, h0 = _real(3, length, 4)
    b = b.abs() + 1e-3
    for initial in (None, h0):  # the initial state may be negative: it enters linearly
        expected = scan_reference(a, b, initial)
        got = scan_log_space(a.log(), b.log(), initial, chunk_size=chunk_size)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_gradcheck_float64():
    a, b, h0 = _real(2, 9, 2)
    a.requires_grad_(), b.requires_grad_(), h0.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, h: linear_scan(a, b, h, chunk_size=3), (a, b, h0))
    ac, bc, hc = _complex(2, 9, 2)
    for t in (ac, bc, hc):
        t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, h: linear_scan(a, b, h, chunk_size=4), (ac, bc, hc))
    log_a = a.detach().log().requires_grad_()
    log_b = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    for chunk in (None, 4):
        assert torch.autograd.gradcheck(lambda la, lb, h: scan_log_space(la, lb, h, chunk_size=chunk), (log_a, log_b, h0))


def _assert_finite_with_gradients(scan, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = scan(*leaves)
    assert torch.isfinite(out).all()
    out.abs().square().mean().backward()
    for leaf in leaves:
        assert torch.isfinite(leaf.grad).all()
    return out


def test_float32_finite_at_65536_steps():
    g = torch.Generator().manual_seed(0)
    length = 65_536
    gate = 4 * torch.randn(2, length, 8, generator=g)  # strongly saturated gates: the hard case for log-space
    log_a, log_b = -torch.nn.functional.softplus(gate), -torch.nn.functional.softplus(-gate)
    for chunk in (None, 256):
        out = _assert_finite_with_gradients(lambda la, lb: scan_log_space(la, lb, chunk_size=chunk), log_a, log_b)
        assert out.dtype == torch.float32
    a = torch.rand(2, length, 8, generator=g)
    b = torch.randn(2, length, 8, generator=g)
    _assert_finite_with_gradients(linear_scan, a, b)
    ac = torch.polar(torch.rand(1, length, 4, generator=g), torch.rand(1, length, 4, generator=g))
    bc = torch.randn(1, length, 4, dtype=torch.complex64, generator=g)
    _assert_finite_with_gradients(linear_scan, ac, bc)


def test_chunking_bounds_log_space_error():
    """Whole-sequence Heinsen loses precision as |cumsum log a| grows; chunks keep it bounded."""
    g = torch.Generator().manual_seed(1)
    gate = 2 * torch.randn(1, 8192, 16, generator=g, dtype=torch.float64)
    log_a, log_b = -torch.nn.functional.softplus(gate), -torch.nn.functional.softplus(-gate)
    exact = scan_reference(log_a.exp(), log_b.exp())
    whole = scan_log_space(log_a.float(), log_b.float(), chunk_size=None).double()
    chunked = scan_log_space(log_a.float(), log_b.float(), chunk_size=256).double()
    error_whole = ((whole - exact).abs() / exact.abs()).max().item()
    error_chunked = ((chunked - exact).abs() / exact.abs()).max().item()
    assert error_chunked < 1e-4
    assert error_chunked < error_whole


def test_low_precision_inputs_scan_in_float32():
    a, b, _ = _real(1, 10, 3, dtype=torch.float32)
    assert linear_scan(a.bfloat16(), b.bfloat16()).dtype == torch.float32
    assert scan_log_space(a.log().half(), b.abs().log().half()).dtype == torch.float32


def test_bad_shapes_raise_before_compute():
    a, b, h0 = _real(2, 5, 3)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        linear_scan(a, b, h0[:, :2])
    with pytest.raises(ValueError, match="does not broadcast"):
        linear_scan(a[:, :, :2], b)
    with pytest.raises(ValueError, match="complex"):
        scan_log_space(a.to(torch.complex128), b.to(torch.complex128))
    with pytest.raises(ValueError, match="chunk_size"):
        linear_scan(a, b, chunk_size=1)

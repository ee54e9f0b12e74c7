"""NaN and Inf pass through every fused CPU kernel as through the float64 reference loop.

The training loop stops on a NaN loss; that guard only works if a NaN (or Inf) in a layer's input
reaches the loss. The kernels are compiled with -ffast-math, so these tests pin down that
-fno-finite-math-only keeps non-finite values flowing: forward and backward of the generic scan
(real and complex, both directions, per-step and constant coefficients) and of the fused minGRU /
minLSTM passes (exact and DSF / truncated gradients), on widths that run the vectorized loops and
their scalar tails. The forward passes and the generic scan's backward give NaN exactly where the
loop does, the same Infs and the same finite values (complex: non-finite exactly where the loop is).
The fused minGRU / minLSTM backward, whose formulas are derived by hand, never turns a NaN or Inf
finite and agrees on the finite values; see _assert_nonfinite_kept for where it may differ.
"""

import pytest
import torch

from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.kernels.backend import get_scan_backend, set_scan_backend
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.scan import linear_scan, scan_reference

needs_kernels = pytest.mark.skipif(cpu_kernels.load() is None, reason="the CPU kernels could not be built here")

BATCH, LENGTH, WIDTH = 2, 9, 70  # 70 features: one full 64-wide block (vectorized) and a ragged tail
TOLERANCE = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


@pytest.fixture
def cpu_backend():
    previous = get_scan_backend()
    set_scan_backend("cpu")
    yield
    set_scan_backend(previous)


def _poison(t: torch.Tensor, seed: int, count: int = 9) -> torch.Tensor:
    """A copy of t with NaN, +Inf and -Inf at a few places (complex: in the real or imaginary part)."""
    g = torch.Generator().manual_seed(seed)
    t = t.clone()
    flat = torch.view_as_real(t).reshape(-1) if t.is_complex() else t.reshape(-1)
    places = torch.randperm(flat.numel(), generator=g)[:count]
    for n, place in enumerate(places):
        flat[place] = (float("nan"), float("inf"), float("-inf"))[n % 3]
    return t


def _assert_same_values(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Real: NaN exactly where the reference has NaN, the same Infs, the finite values close.
    Complex: finite exactly where the reference is (which part is NaN and which Inf may differ:
    c10::complex multiplies textbook-style, PyTorch's vectorized complex ops do not), finite values close."""
    tolerance = TOLERANCE[torch.float32 if got.dtype in (torch.float32, torch.complex64) else torch.float64]
    got, expected = got.detach().to(expected.dtype), expected.detach()
    if got.is_complex():
        finite = torch.view_as_real(expected).isfinite().all(-1)
        assert torch.equal(torch.view_as_real(got).isfinite().all(-1), finite), f"{what}: non-finite values not kept"
        got, expected = got[finite], expected[finite]
    torch.testing.assert_close(got, expected, equal_nan=True, **tolerance, msg=what)


def _assert_nonfinite_kept(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """The fused backward never makes a non-finite gradient finite, and agrees where both are finite.
    It may be non-finite where autograd's reference is not (its hand-derived formulas meet a 0 * Inf
    that autograd's order of operations avoids, or give the Inf limit where autograd gives NaN), but
    only near the poisoned inputs: most gradients stay finite."""
    tolerance = TOLERANCE[torch.float32 if got.dtype == torch.float32 else torch.float64]
    got, expected = got.detach().to(expected.dtype), expected.detach()
    assert not (~expected.isfinite() & got.isfinite()).any(), f"{what}: a NaN or Inf became finite"
    assert expected.isnan().any(), f"{what}: the poisoned inputs did not reach the reference (inputs too tame)"
    both = expected.isfinite() & got.isfinite()
    assert both.float().mean() > 0.9, f"{what}: the kernel's gradients are mostly non-finite"
    torch.testing.assert_close(got[both], expected[both], **tolerance, msg=what)


def _gradients(output: torch.Tensor, leaves: list[torch.Tensor], weights: torch.Tensor) -> tuple:
    return torch.autograd.grad((output * weights).real.sum(), leaves, allow_unused=True)


def _scan_inputs(dtype, constant_a: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    wide = torch.complex128 if dtype.is_complex else torch.float64
    shape = (BATCH, LENGTH, WIDTH)
    a_shape = (WIDTH,) if constant_a else shape
    a = torch.rand(a_shape, generator=g, dtype=torch.float64)
    if dtype.is_complex:
        a = torch.polar(a, 6.28 * torch.rand(a_shape, generator=g, dtype=torch.float64))
    b = torch.randn(shape, generator=g, dtype=wide)
    h0 = torch.randn(BATCH, WIDTH, generator=g, dtype=wide)
    weights = torch.randn(shape, generator=g, dtype=wide)
    return _poison(a, seed + 1, count=3), _poison(b, seed + 2), _poison(h0, seed + 3, count=3), weights


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.complex128, torch.complex64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("constant_a", [False, True])
def test_generic_scan_passes_nan_and_inf_like_the_loop(cpu_backend, dtype, reverse, constant_a):
    a, b, h0, weights = _scan_inputs(dtype, constant_a, seed=10 * reverse + constant_a)
    reference_leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
    ra, rb, rh0 = reference_leaves
    ra_full = ra.expand_as(rb)
    if reverse:
        expected = scan_reference(ra_full.flip(1), rb.flip(1), rh0).flip(1)
    else:
        expected = scan_reference(ra_full, rb, rh0)
    expected_grads = _gradients(expected, reference_leaves, weights)

    leaves = [t.to(dtype).clone().requires_grad_() for t in (a, b, h0)]
    h = linear_scan(*leaves, reverse=reverse)
    grads = _gradients(h, leaves, weights.to(dtype))
    _assert_same_values(h, expected, "h")
    assert not torch.view_as_real(expected).isfinite().all() if expected.is_complex() else not expected.isfinite().all()
    for name, got, want in zip(("grad a", "grad b", "grad h0"), grads, expected_grads):
        _assert_same_values(got, want, name)


def _min_rnn_inputs(cell: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    per_unit = 2 if cell == "mingru" else 3
    projected = 2 * torch.randn(BATCH, LENGTH, per_unit * WIDTH, generator=g, dtype=torch.float64)
    h0 = torch.randn(BATCH, WIDTH, generator=g, dtype=torch.float64)
    feedback = torch.rand(WIDTH, generator=g, dtype=torch.float64)
    weights = torch.randn(BATCH, LENGTH, WIDTH, generator=g, dtype=torch.float64)
    return _poison(projected, seed + 1, count=12), _poison(h0, seed + 2, count=3), feedback, weights


def _reference_min_rnn(projected, h0, cell, normalize, gradient, feedback, weights):
    """h by the layer's coefficients and the float64 loop; gradients exact (bptt) or DSF's by their
    definition: δ_t = e_t + A δ_{t+1} (A = feedback, or 0 for truncated), each step's gradient the
    one-step cell's at δ_t with h_{t-1} held fixed."""
    layer = MinGRU(1) if cell == "mingru" else MinLSTM(1, normalize=normalize)
    projected, h0 = projected.clone().requires_grad_(), h0.clone().requires_grad_()
    a, b = layer.coefficients(projected)
    h = scan_reference(a, b, h0)
    if gradient == "bptt":
        return h, torch.autograd.grad((h * weights).sum(), [projected, h0])
    diagonal = feedback if gradient == "dsf" else torch.zeros_like(feedback)
    delta = scan_reference(diagonal.expand_as(weights).flip(1), weights.flip(1)).flip(1)
    previous = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1).detach()
    one_step = a * previous + b
    grad_projected, = torch.autograd.grad(one_step, [projected], grad_outputs=delta)
    return h, (grad_projected,)


@needs_kernels
@pytest.mark.parametrize("cell, normalize", [("mingru", False), ("minlstm", True), ("minlstm", False)])
@pytest.mark.parametrize("gradient", ["bptt", "dsf", "truncated"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_min_rnn_passes_nan_and_inf_like_the_loop(cell, normalize, gradient, dtype):
    projected, h0, feedback, weights = _min_rnn_inputs(cell, seed=3 * len(gradient) + normalize)
    expected_h, expected_grads = _reference_min_rnn(projected, h0, cell, normalize, gradient, feedback, weights)

    leaves = [projected.to(dtype).requires_grad_(), h0.to(dtype).requires_grad_()]
    h = cpu_kernels.MinRNNScan.apply(*leaves, cell, normalize, gradient, feedback.to(dtype))
    grads = torch.autograd.grad((h * weights.to(dtype)).sum(), leaves, allow_unused=True)
    _assert_same_values(h, expected_h, "h")
    assert expected_h.isnan().any() and expected_h.isinf().any(), "the poisoned inputs did not reach h"
    _assert_nonfinite_kept(grads[0], expected_grads[0], "grad projected")
    if gradient == "bptt":
        _assert_nonfinite_kept(grads[1], expected_grads[1], "grad h0")

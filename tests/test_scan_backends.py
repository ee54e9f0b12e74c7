"""The scan backends agree: the fused CPU kernels (values and gradients) against the pure-PyTorch
path and the float64 loop, for the raw scan and for minGRU / minLSTM / LRU; backend selection."""

import pytest
import torch

from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.lru import LRU
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.kernels.backend import get_scan_backend, scan_backend_for, set_scan_backend
from sequence_models.scan import linear_scan, scan_reference

needs_kernels = pytest.mark.skipif(cpu_kernels.load() is None, reason="the CPU kernels could not be built here")


@pytest.fixture
def backend():
    previous = get_scan_backend()
    yield set_scan_backend
    set_scan_backend(previous)


def _coefficients(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype.is_complex else dtype
    a = torch.rand(shape, generator=g, dtype=real)
    if dtype.is_complex:
        a = torch.polar(a, 6.28 * torch.rand(shape, generator=g, dtype=real))
    b = torch.randn(shape, generator=g, dtype=dtype)
    h0 = torch.randn(shape[0], *shape[2:], generator=g, dtype=dtype)
    return a, b, h0


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
@pytest.mark.parametrize("length", [1, 2, 33, 130])
@pytest.mark.parametrize("reverse", [False, True])
def test_cpu_scan_matches_loop(backend, dtype, length, reverse):
    backend("cpu")
    a, b, h0 = _coefficients((3, length, 5, 2), dtype)
    for initial in (None, h0):
        if reverse:
            expected = scan_reference(a.flip(1), b.flip(1), initial).flip(1)
        else:
            expected = scan_reference(a, b, initial)
        tolerance = 1e-5 if dtype in (torch.float32, torch.complex64) else 1e-12
        torch.testing.assert_close(linear_scan(a, b, initial, reverse=reverse), expected, rtol=tolerance, atol=tolerance)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("reverse", [False, True])
def test_cpu_scan_gradcheck(backend, dtype, reverse):
    backend("cpu")
    a, b, h0 = (t.requires_grad_() for t in _coefficients((2, 7, 3), dtype, seed=1))
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, reverse=reverse), (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b: linear_scan(a, b, reverse=reverse), (a, b))


@needs_kernels
def test_cpu_scan_broadcast_coefficient_gets_summed_gradient(backend):
    """A constant diagonal a of shape (D,) (as DSF uses) gets the gradient summed over (B, T)."""
    backend("cpu")
    a = torch.rand(4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: linear_scan(a, b, reverse=True), (a, b))


def _layers():
    return {
        "minGRU": lambda: MinGRU(6),
        "minGRU expanded, learned h0": lambda: MinGRU(6, expansion=1.5, learned_init_state=True),
        "minLSTM": lambda: MinLSTM(6),
        "minLSTM unnormalized": lambda: MinLSTM(6, normalize=False),
        "minGRU dsf, learned h0": lambda: MinGRU(6, gradient="dsf", learned_init_state=True),
        "minLSTM dsf": lambda: MinLSTM(6, gradient="dsf", feedback_init="uniform", feedback_low=0.2),
        "minLSTM unnormalized truncated": lambda: MinLSTM(6, normalize=False, gradient="truncated"),
        "LRU": lambda: LRU(6, state_dim=5),
    }


@needs_kernels
@pytest.mark.parametrize("name", list(_layers()))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layers_agree_across_backends(backend, name, dtype):
    torch.manual_seed(0)
    layer = _layers()[name]().to(dtype)
    if getattr(layer, "initial_state", None) is not None:
        torch.nn.init.normal_(layer.initial_state)
    x = torch.randn(3, 37, 6, dtype=dtype, requires_grad=True)
    weights = torch.randn(3, 37, 6, dtype=dtype)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for state in (None, torch.randn_like(layer.init_state(3, dtype=dtype))):
        results = {}
        for name_ in ("torch", "cpu"):
            backend(name_)
            y, last = layer(x, state)
            grads = torch.autograd.grad((y * weights).sum(), [x, *layer.parameters()], allow_unused=True)
            results[name_] = (y, last, [g for g in grads if g is not None])
        for got, expected in zip(results["cpu"][:2], results["torch"][:2]):
            torch.testing.assert_close(got, expected, **tolerance)
        assert len(results["cpu"][2]) == len(results["torch"][2])
        for got, expected in zip(results["cpu"][2], results["torch"][2]):
            torch.testing.assert_close(got, expected, **tolerance)


@needs_kernels
@pytest.mark.parametrize("layer_type", [MinGRU, MinLSTM])
@pytest.mark.parametrize("gradient", ["bptt", "dsf"])
def test_kernels_agree_past_the_first_feature_block(backend, layer_type, gradient):
    """Features past the kernels' first 64-wide lane read their own previous state in the backward
    (a lane once read features j - 64's: invisible at the small widths of the other tests)."""
    torch.manual_seed(0)
    layer = layer_type(70, learned_init_state=True, gradient=gradient).double()
    torch.nn.init.normal_(layer.initial_state)
    x = torch.randn(2, 11, 70, dtype=torch.float64)
    results = {}
    for name in ("torch", "cpu"):
        backend(name)
        y, _ = layer(x)
        results[name] = torch.autograd.grad((y * torch.linspace(-1, 1, 70, dtype=y.dtype)).sum(), list(layer.parameters()))
    for got, expected in zip(results["cpu"], results["torch"]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    a, b, h0 = (t.requires_grad_() for t in _coefficients((2, 11, 70), torch.float64, seed=3))
    grads = {}
    for name in ("torch", "cpu"):
        backend(name)
        grads[name] = torch.autograd.grad((linear_scan(a, b, h0) * b.detach()).sum(), [a, b, h0])
    for got, expected in zip(grads["cpu"], grads["torch"]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@needs_kernels
@pytest.mark.parametrize("cell, normalize", [("mingru", False), ("minlstm", True), ("minlstm", False)])
def test_fused_min_rnn_gradcheck(cell, normalize):
    g = torch.Generator().manual_seed(2)
    per_unit = 2 if cell == "mingru" else 3
    projected = (3 * torch.randn(2, 6, per_unit * 3, generator=g, dtype=torch.float64)).requires_grad_()
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    function = cpu_kernels.MinRNNScan.apply
    assert torch.autograd.gradcheck(lambda p, h: function(p, h, cell, normalize), (projected, h0))
    assert torch.autograd.gradcheck(lambda p: function(p, None, cell, normalize), (projected,))


def test_backend_selection(backend, monkeypatch):
    with pytest.raises(ValueError, match="auto, cpu, triton, torch"):
        backend("fast")
    backend("torch")
    assert scan_backend_for(torch.device("cpu")) == "torch"
    backend("triton")
    with pytest.raises(ValueError, match="CUDA"):
        scan_backend_for(torch.device("cpu"))
    backend("cpu")
    with pytest.raises(ValueError, match="CPU tensors only"):
        scan_backend_for(torch.device("cuda"))
    monkeypatch.setattr(cpu_kernels, "load", lambda: None)  # e.g. no compiler: auto falls back
    with pytest.raises(RuntimeError, match="could not be built"):
        scan_backend_for(torch.device("cpu"))
    backend("auto")
    assert scan_backend_for(torch.device("cpu")) == "torch"


@pytest.mark.parametrize("name", ["torch", "auto"])
def test_empty_sequences_scan_to_empty_states(backend, name):
    backend(name)
    a, b = torch.rand(2, 0, 3, requires_grad=True), torch.randn(2, 0, 3, requires_grad=True)
    h = linear_scan(a, b, torch.randn(2, 3))
    assert h.shape == (2, 0, 3)
    h.sum().backward()
    assert b.grad.shape == (2, 0, 3)

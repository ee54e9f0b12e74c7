"""The fused Triton minGRU / minLSTM kernel (min_rnn_triton.TritonMinRNNScan) against the float64
PyTorch reference (the layers' `coefficients` + the scan loop, gradients by autograd) and against the
fused CPU kernel (cpu_kernels.MinRNNScan), whose DSF / truncated gradients are the reference for
those modes; and the layers' "triton" path against the "torch" backend.

Without a GPU the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set per test) on small CPU
tensors, as tests/test_scan_triton.py does. Tests marked `cuda` run the compiled kernel and skip
without a GPU; all tests that launch the kernel skip when triton is not installed.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sequence_models import min_rnn
from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.kernels.min_rnn_triton import TritonMinRNNScan
from sequence_models.kernels.backend import get_scan_backend, set_scan_backend
from sequence_models.scan import scan_reference

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
needs_cuda = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs triton and a CUDA GPU")
needs_kernels = pytest.mark.skipif(cpu_kernels.load() is None, reason="the CPU kernels could not be built here")

CELLS = [("mingru", False), ("minlstm", True), ("minlstm", False)]
GRADIENTS = ("bptt", "dsf", "truncated")
TOLERANCE = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.fixture
def interpreter(monkeypatch):
    """Run kernels in the Triton interpreter on CPU tensors for the duration of one test."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def backend():
    previous = get_scan_backend()
    yield set_scan_backend
    set_scan_backend(previous)


def _inputs(batch, length, width, cell, dtype, seed=0, device="cpu"):
    """Pre-activations spread over both branches of g, an initial state, a feedback diagonal and
    the weights of the loss sum(w * h)."""
    g = torch.Generator().manual_seed(seed)
    per_unit = 2 if cell == "mingru" else 3
    projected = 2 * torch.randn(batch, length, per_unit * width, generator=g, dtype=torch.float64)
    h0 = torch.randn(batch, width, generator=g, dtype=torch.float64)
    feedback = torch.rand(width, generator=g, dtype=torch.float64)
    weights = torch.randn(batch, length, width, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype=dtype, device=device) for t in (projected, h0, feedback, weights))


def _reference_states(projected, h0, cell, normalize):
    """h from the layers' own coefficients and the plain loop (float64 in, float64 out)."""
    layer = MinGRU(1) if cell == "mingru" else MinLSTM(1, normalize=normalize)
    a, b = layer.coefficients(projected)
    return scan_reference(a, b, h0)


def _run(function, projected, h0, cell, normalize, gradient, feedback, weights):
    """h and the gradients of sum(weights * h) w.r.t. projected (and h0)."""
    leaves = [projected.detach().clone().requires_grad_()]
    if h0 is not None:
        leaves.append(h0.detach().clone().requires_grad_())
    h = function(leaves[0], leaves[1] if h0 is not None else None, cell, normalize, gradient, feedback)
    grads = torch.autograd.grad((h * weights.to(h.dtype)).sum(), leaves)
    return h.detach(), grads


def _triton(*args):
    return TritonMinRNNScan.apply(*args)


def _reference(projected, h0, cell, normalize, gradient, feedback):
    assert gradient == "bptt"
    return _reference_states(projected, h0, cell, normalize)


@needs_triton
@pytest.mark.parametrize("cell, normalize", CELLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("length, width", [(1, 5), (7, 40), (19, 5)])
def test_interpreted_matches_reference_and_cpu_kernel(interpreter, cell, normalize, dtype, length, width):
    projected, h0, feedback, weights = _inputs(2, length, width, cell, dtype)
    tolerance = TOLERANCE[dtype]
    kernels = cpu_kernels.load()
    for initial in (None, h0):
        wide = (projected.double(), None if initial is None else initial.double(), cell, normalize)
        expected_h, expected_grads = _run(_reference, *wide, "bptt", None, weights.double())
        for gradient in GRADIENTS if initial is not None else ("bptt",):
            h, grads = _run(_triton, projected, initial, cell, normalize, gradient, feedback, weights)
            assert h.dtype == dtype and h.shape == (2, length, width)
            assert [g.dtype for g in grads] == [dtype] * len(grads)
            torch.testing.assert_close(h.double(), expected_h, **tolerance)
            if gradient == "bptt":
                for got, expected in zip(grads, expected_grads):
                    torch.testing.assert_close(got.double(), expected, **tolerance)
            if kernels is not None:  # the CPU kernel: the reference for dsf / truncated
                cpu_h, cpu_grads = _run(
                    cpu_kernels.MinRNNScan.apply, projected, initial, cell, normalize, gradient, feedback, weights
                )
                torch.testing.assert_close(h, cpu_h, **tolerance)
                for got, expected in zip(grads, cpu_grads):
                    torch.testing.assert_close(got, expected, **tolerance)


@needs_triton
@pytest.mark.parametrize("cell, normalize", CELLS)
def test_interpreted_dsf_and_truncated_gradients_follow_their_definition(interpreter, cell, normalize):
    """Without the CPU kernel too: truncated = the one-step cell's gradient at each step alone
    (initial state gets 0); dsf with feedback 0 = truncated; the forward is always the exact one."""
    projected, h0, feedback, weights = _inputs(2, 6, 5, cell, torch.float64, seed=3)
    h, truncated = _run(_triton, projected, h0, cell, normalize, "truncated", None, weights)
    _, dsf_zero = _run(_triton, projected, h0, cell, normalize, "dsf", torch.zeros_like(feedback), weights)
    torch.testing.assert_close(h, _reference_states(projected, h0, cell, normalize), rtol=1e-12, atol=1e-12)
    for got, expected in zip(dsf_zero, truncated):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.all(truncated[1] == 0)
    # one step of the cell from the exact previous states, differentiated by autograd
    previous = torch.cat([h0[:, None], h[:, :-1]], dim=1)
    leaf = projected.clone().requires_grad_()
    layer = MinGRU(1) if cell == "mingru" else MinLSTM(1, normalize=normalize)
    a, b = layer.coefficients(leaf)
    (expected,) = torch.autograd.grad(((a * previous + b) * weights).sum(), leaf)
    torch.testing.assert_close(truncated[0], expected, rtol=1e-10, atol=1e-10)
    # dsf: the carry is feedback * total, so the initial state's gradient is feedback * total_0
    _, dsf = _run(_triton, projected, h0, cell, normalize, "dsf", feedback, weights)
    total = weights.clone()
    for t in range(weights.shape[1] - 2, -1, -1):
        total[:, t] += feedback * total[:, t + 1]
    torch.testing.assert_close(dsf[1], feedback * total[:, 0], rtol=1e-10, atol=1e-10)


@needs_triton
@pytest.mark.parametrize("cell, normalize", CELLS)
def test_interpreted_gradcheck(interpreter, cell, normalize):
    projected, h0, _, _ = _inputs(2, 3, 2, cell, torch.float64, seed=1)
    projected.requires_grad_()
    h0.requires_grad_()
    function = TritonMinRNNScan.apply  # fast mode: a few random directions, few interpreted launches
    assert torch.autograd.gradcheck(lambda p, h: function(p, h, cell, normalize), (projected, h0), fast_mode=True)
    assert torch.autograd.gradcheck(lambda p: function(p, None, cell, normalize), (projected,), fast_mode=True)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_interpreted_half_precision_computes_in_float32(interpreter, dtype):
    projected, h0, _, weights = _inputs(2, 5, 6, "minlstm", dtype)
    h, grads = _run(_triton, projected, h0, "minlstm", True, "bptt", None, weights)
    h32, grads32 = _run(_triton, projected.float(), h0.float(), "minlstm", True, "bptt", None, weights.float())
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, h32, rtol=0, atol=0)
    assert [g.dtype for g in grads] == [dtype, dtype]
    for got, expected in zip(grads, grads32):
        torch.testing.assert_close(got, expected.to(dtype), rtol=0, atol=0)


@needs_triton
def test_interpreted_strided_inputs_empty_sequences_and_only_needed_gradients(interpreter):
    projected, h0, _, weights = _inputs(3, 4, 5, "mingru", torch.float64)
    strided = projected.transpose(0, 1).contiguous().transpose(0, 1)  # not contiguous
    assert not strided.is_contiguous()
    torch.testing.assert_close(
        TritonMinRNNScan.apply(strided, h0, "mingru", False), _reference_states(projected, h0, "mingru", False)
    )
    leaf = projected.clone().requires_grad_()
    h = TritonMinRNNScan.apply(leaf, h0, "mingru", False)  # h0 needs no gradient
    h.backward(weights)
    assert leaf.grad.shape == projected.shape
    empty = torch.randn(2, 0, 6, dtype=torch.float64, requires_grad=True)
    start = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = TritonMinRNNScan.apply(empty, start, "minlstm", True)
    assert h.shape == (2, 0, 2)
    h.sum().backward()
    assert empty.grad.shape == (2, 0, 6) and torch.all(start.grad == 0)


def test_clear_errors_for_unsupported_inputs(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    projected = torch.randn(2, 3, 4)
    if HAS_TRITON:
        with pytest.raises(ValueError, match="CUDA"):
            TritonMinRNNScan.apply(projected, None, "mingru", False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if not HAS_TRITON:
        return
    with pytest.raises(ValueError, match="unknown cell"):
        TritonMinRNNScan.apply(projected, None, "gru", False)
    with pytest.raises(ValueError, match="3 \\* hidden"):
        TritonMinRNNScan.apply(projected, None, "minlstm", False)
    with pytest.raises(ValueError, match="initial_state"):
        TritonMinRNNScan.apply(projected, torch.zeros(2, 3), "mingru", False)
    with pytest.raises(ValueError, match="feedback"):
        TritonMinRNNScan.apply(projected, None, "mingru", False, "dsf", None)


def _layer_results(layer, x, state):
    x = x.clone().requires_grad_()
    out, last = layer(x, state)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], device=out.device, dtype=out.dtype)).sum() + last.square().sum()
    leaves = [x, *layer.parameters()]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)  # truncated: none for the initial state
    grads = [torch.zeros_like(leaf) if grad is None else grad for leaf, grad in zip(leaves, grads)]
    return out.detach(), last.detach(), grads


@needs_triton
@pytest.mark.parametrize("layer_type, options", [(MinGRU, {}), (MinLSTM, {}), (MinLSTM, {"normalize": False})])
@pytest.mark.parametrize("gradient", GRADIENTS)
def test_layers_take_the_fused_triton_path(interpreter, backend, monkeypatch, layer_type, options, gradient):
    """_MinRNN.forward with the "triton" backend (faked on CPU: the interpreter runs the kernel) gives
    the torch backend's outputs and gradients, for every gradient mode, with a learned initial state."""
    torch.manual_seed(0)
    layer = layer_type(6, expansion=1.5, learned_init_state=True, gradient=gradient, **options).double()
    with torch.no_grad():
        layer.initial_state.normal_()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    backend("torch")
    expected = _layer_results(layer, x, None)
    calls = []
    original = TritonMinRNNScan.apply
    monkeypatch.setattr(min_rnn, "scan_backend_for", lambda device, kernel="scan": "triton")
    monkeypatch.setattr(TritonMinRNNScan, "apply", lambda *args: calls.append(1) or original(*args))
    got = _layer_results(layer, x, None)
    assert calls, "the triton backend did not use the fused kernel"
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])
    for a, b in zip(got[2], expected[2]):
        torch.testing.assert_close(a, b)


def _has_nvidia_backend() -> bool:
    try:
        import triton.backends

        return "nvidia" in triton.backends.backends
    except Exception:  # noqa: BLE001 - no triton, or a build without backends
        return False


@pytest.mark.skipif(not _has_nvidia_backend(), reason="needs triton with its NVIDIA backend (no GPU needed)")
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernels_compile_ahead_of_time_for_sm90(monkeypatch, dtype):
    """The real compiler (not the interpreter) accepts both kernels for an H100 / H200 (sm_90)."""
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from sequence_models.kernels import min_rnn_triton

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    flags = dict(LSTM=True, NORMALIZE=True, HAS_INIT=True, EXACT=True, HAS_FEEDBACK=False, GRAD_INIT=True, BLOCK=128)
    for function in (min_rnn_triton._forward_kernel, min_rnn_triton._backward_kernel):
        names = list(inspect.signature(function).parameters)
        constexprs = {name: flags[name] for name in names if name in flags}
        signature = {
            name: "constexpr" if name in constexprs else f"*{dtype}" if name.endswith("_ptr") else "i32"
            for name in names
        }
        source = ASTSource(triton.jit(function), signature, constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
        assert compiled.asm.get("cubin")


@needs_cuda
@pytest.mark.parametrize("cell, normalize", CELLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_kernel_matches_reference(cell, normalize, dtype):
    for length, width, batch in ((1, 5, 3), (19, 40, 3), (300, 300, 5)):
        projected, h0, feedback, weights = _inputs(batch, length, width, cell, dtype)
        wide = (projected.double(), h0.double(), cell, normalize)
        expected_h, expected_grads = _run(_reference, *wide, "bptt", None, weights.double())
        h, grads = _run(_triton, projected.cuda(), h0.cuda(), cell, normalize, "bptt", None, weights.cuda())
        tolerance = TOLERANCE[dtype] if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(h.cpu().double(), expected_h, **tolerance)
        for got, expected in zip(grads, expected_grads):
            torch.testing.assert_close(got.cpu().double(), expected, **tolerance)
        if cpu_kernels.load() is not None:
            for gradient in ("dsf", "truncated"):
                cpu = _run(cpu_kernels.MinRNNScan.apply, projected, h0, cell, normalize, gradient, feedback, weights)
                gpu = _run(_triton, *(t.cuda() for t in (projected, h0)), cell, normalize, gradient, feedback.cuda(),
                           weights.cuda())
                for got, expected in zip((gpu[0], *gpu[1]), (cpu[0], *cpu[1])):
                    torch.testing.assert_close(got.cpu(), expected, **tolerance)


@needs_cuda
@pytest.mark.parametrize("layer_type", [MinGRU, MinLSTM])
def test_cuda_layers_match_torch_backend(backend, layer_type):
    torch.manual_seed(0)
    layer = layer_type(32, learned_init_state=True).cuda()
    x = torch.randn(4, 50, 32, device="cuda")
    backend("torch")
    expected = _layer_results(layer, x, None)
    backend("auto")
    assert min_rnn.scan_backend_for(x.device) == "triton"
    got = _layer_results(layer, x, None)
    for a, b in zip((got[0], got[1], *got[2]), (expected[0], expected[1], *expected[2])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

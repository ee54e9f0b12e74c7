"""Classic RNN / GRU / LSTM mixers under bptt, dsf and truncated, against float64 references written
here from the equations (independent of torch's fused kernels and of torch._VF's cells)."""

import pytest
import torch

from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import backbone_config
from sequence_models.classic_rnn import GRU, LSTM, RNN
from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.kernels.backend import get_scan_backend, set_scan_backend

DIM, HIDDEN, BATCH, LENGTH = 5, 4, 3, 11
CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
MODES = ("bptt", "dsf", "truncated")


def _cell_equations(name, module):
    """One step of the named cell written from torch's documented equations: (x, prev) -> new state."""
    rnn = module.rnn
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0

    def rnn_cell(x, h):
        return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)

    def gru_cell(x, h):
        gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r = torch.sigmoid(gi[..., :HIDDEN] + gh[..., :HIDDEN])
        z = torch.sigmoid(gi[..., HIDDEN : 2 * HIDDEN] + gh[..., HIDDEN : 2 * HIDDEN])
        n = torch.tanh(gi[..., 2 * HIDDEN :] + r * gh[..., 2 * HIDDEN :])
        return (1 - z) * n + z * h

    def lstm_cell(x, state):
        h, c = state[..., :HIDDEN], state[..., HIDDEN:]
        gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = gates.split(HIDDEN, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.cat([torch.sigmoid(o) * torch.tanh(c_new), c_new], dim=-1)

    return {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}[name]


def _loop(cell, x, h0):
    states, h = [], h0
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1)


def _make(name, gradient="bptt", seed=0, **options):
    torch.manual_seed(seed)
    return CELLS[name](DIM, HIDDEN, gradient=gradient, **options).double()


def _data(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, LENGTH, DIM, generator=generator, dtype=torch.float64).requires_grad_()
    h0 = (0.5 * torch.randn(BATCH, module.state_dim, generator=generator, dtype=torch.float64)).requires_grad_()
    target = torch.randn(BATCH, LENGTH, DIM, generator=generator, dtype=torch.float64)
    return x, h0, target


def _loss(y, last_state, target):
    return ((y - target) ** 2).sum() + (last_state * torch.linspace(-1, 1, last_state.shape[-1], dtype=y.dtype)).sum()


def _grads(loss, module, x, h0):
    inputs = [x, h0, *module.parameters()]
    return [g if g is not None else torch.zeros_like(i) for g, i in zip(torch.autograd.grad(loss, inputs, allow_unused=True), inputs)]


@pytest.mark.parametrize("name", CELLS)
def test_parameter_names_are_torchs(name):
    module = _make(name)
    assert {n for n, _ in module.named_parameters()} == {
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "to_out.weight"
    }
    assert "feedback" not in dict(module.named_buffers())
    assert _make(name, "dsf").feedback.shape == (module.state_dim,)
    assert module.state_dim == (2 * HIDDEN if name == "lstm" else HIDDEN)


@pytest.mark.parametrize("name", CELLS)
def test_bptt_equals_python_loop_float64(name):
    module = _make(name)
    x, h0, target = _data(module)
    y, last = module(x, h0)
    states = _loop(_cell_equations(name, module), x, h0)
    y_ref = module.to_out(states[..., :HIDDEN])
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last, states[:, -1], rtol=1e-12, atol=1e-12)
    for got, want in zip(_grads(_loss(y, last, target), module, x, h0), _grads(_loss(y_ref, states[:, -1], target), module, x, h0)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def _dsf_reference(name, module, x, h0, target, feedback):
    """e from the loss with every recurrent edge cut, δ by an explicit reverse loop, then the
    gradients of the one-step cell outputs weighted by δ (plus the exact gradients of to_out)."""
    cell = _cell_equations(name, module)
    with torch.no_grad():
        states = _loop(cell, x, h0)
    leaf = states.clone().requires_grad_()
    loss = _loss(module.to_out(leaf[..., :HIDDEN]), leaf[:, -1], target)
    e = torch.autograd.grad(loss, leaf, retain_graph=True)[0]
    delta = torch.zeros_like(e)
    delta[:, -1] = e[:, -1]
    for t in range(LENGTH - 2, -1, -1):
        delta[:, t] = e[:, t] + feedback * delta[:, t + 1]
    previous = torch.cat([h0.detach().unsqueeze(1), states[:, :-1]], dim=1)
    one_step = cell(x, previous)  # all (b, t) pairs at once
    params = list(module.rnn.parameters())
    grad_x, *grad_rnn = torch.autograd.grad(one_step, [x, *params], delta)
    grad_out = torch.autograd.grad(loss, module.to_out.weight)[0]
    return [grad_x, feedback * delta[:, 0], *grad_rnn, grad_out]


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("gradient", ["dsf", "truncated"])
@pytest.mark.parametrize("init", [{}, {"feedback_init": "uniform", "feedback_low": 0.3, "feedback_high": 0.9}, {"feedback_init": "constant", "feedback_constant": 0.7}])
def test_dsf_gradients_equal_float64_reference(name, gradient, init):
    module = _make(name, gradient, **init)
    x, h0, target = _data(module)
    y, last = module(x, h0)
    got = _grads(_loss(y, last, target), module, x, h0)
    feedback = module.feedback if gradient == "dsf" else torch.zeros(module.state_dim, dtype=torch.float64)
    want = _dsf_reference(name, module, x, h0, target, feedback)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(cpu_kernels.load() is None, reason="the fused CPU kernels could not be built here")
@pytest.mark.parametrize("name, options", [("gru", {}), ("gru", {"bias": False}), ("rnn", {}),
                                           ("rnn", {"nonlinearity": "relu"}), ("rnn", {"bias": False})])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_time_loop_equals_torchs_module(name, options, dtype):
    """On CPU the GRU and Elman RNN run the project's C++ time loop; --scan-backend torch keeps torch's
    nn.GRU / nn.RNN. Same outputs, final state and gradients (input, h0, every parameter)."""
    module = _make(name, **options).to(dtype)
    x, h0, target = (t.detach().to(dtype).requires_grad_(t.requires_grad) for t in _data(module))
    results = {}
    previous = get_scan_backend()
    try:
        for backend in ("torch", "cpu"):
            set_scan_backend(backend)
            y, last = module(x, h0)
            results[backend] = [y, last, *_grads(_loss(y, last, target), module, x, h0)]
    finally:
        set_scan_backend(previous)
    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for got, want in zip(results["cpu"], results["torch"]):
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("name", CELLS)
def test_truncated_equals_dsf_with_zero_feedback(name):
    dsf, truncated = _make(name, "dsf"), _make(name, "truncated")
    dsf.feedback.zero_()
    x, h0, target = _data(dsf)
    for g, w in zip(_grads(_loss(*dsf(x, h0), target), dsf, x, h0), _grads(_loss(*truncated(x, h0), target), truncated, x, h0)):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_identical_across_modes(name, dtype):
    modules = [_make(name, mode).to(dtype) for mode in MODES]
    x, h0, _ = _data(modules[0])
    outputs = [m(x.to(dtype), h0.to(dtype)) for m in modules]
    exact = dtype == torch.float64
    for y, last in outputs[1:]:
        torch.testing.assert_close(y, outputs[0][0], rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)
        torch.testing.assert_close(last, outputs[0][1], rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("gradient", MODES)
def test_step_equals_forward(name, gradient):
    module = _make(name, gradient)
    x, h0, _ = _data(module)
    y, last = module(x, h0)
    state, outputs = h0, []
    for t in range(LENGTH):
        y_t, state = module.step(x[:, t], state)
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, last, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("gradient", MODES)
def test_chunked_training_gets_the_gradients_of_one_call(name, gradient):
    """The carried-in state receives A ⊙ δ_0, so passing the state on undetached is exact chunking."""
    module = _make(name, gradient)
    x, h0, target = _data(module)
    whole = _grads(_loss(*module(x, h0), target), module, x, h0)
    y1, state = module(x[:, :5], h0)
    y2, last = module(x[:, 5:], state)
    chunked = _grads(_loss(torch.cat([y1, y2], dim=1), last, target), module, x, h0)
    for g, w in zip(chunked, whole):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", CELLS)
def test_hidden_equal_to_dim_has_no_projection(name):
    module = CELLS[name](DIM, gradient="dsf")
    assert isinstance(module.to_out, torch.nn.Identity) and module.hidden == DIM
    y, _ = module(torch.randn(2, 4, DIM))
    assert y.shape == (2, 4, DIM)


def test_dsf_keeps_only_inputs_and_states_for_backward():
    """No graph through the fused forward: saved tensors are x, the states, h0 and A (plus to_out's)."""
    saved = []
    module = GRU(DIM, gradient="dsf")
    x = torch.randn(2, 7, DIM, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        y, _ = module(x)
    assert sorted(map(tuple, saved)) == sorted([(2, 7, DIM), (2, 7, DIM), (DIM,)])
    y.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_no_graph_under_no_grad():
    module = LSTM(DIM, gradient="dsf")
    with torch.no_grad():
        y, state = module(torch.randn(2, 7, DIM))
    assert not y.requires_grad and state.shape == (2, 2 * DIM)


def test_runs_under_cpu_autocast():
    module = GRU(DIM, HIDDEN, gradient="dsf")
    x = torch.randn(2, 7, DIM, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = module(x)
    y.float().sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("gradient", MODES)
def test_backbone_stack_trains_in_every_mode(name, gradient):
    torch.manual_seed(0)
    backbone = build_backbone(backbone_config(name, d_model=8, n_layers=2, mlp_ratio=0, dropout=0.0, gradient=gradient))
    x = torch.randn(2, 9, 8, requires_grad=True)
    y, state = backbone(x)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for param_name, param in backbone.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
    assert len(state) == 2


def test_bad_input():
    with pytest.raises(ValueError, match="dim and hidden must be positive"):
        GRU(DIM, hidden=0)
    with pytest.raises(ValueError, match="unknown gradient mode 'bpt'; valid modes: bptt, dsf, truncated"):
        LSTM(DIM, gradient="bpt")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(DIM, nonlinearity="gelu")
    module = LSTM(DIM)
    with pytest.raises(ValueError, match=r"state must have shape \(2, 10\)"):
        module(torch.randn(2, 3, DIM), torch.zeros(2, DIM))
    with pytest.raises(ValueError, match=r"\(batch, time, 5\)"):
        module(torch.randn(2, 3, DIM + 1))
    with pytest.raises(ValueError, match=r"\(batch, 5\)"):
        module.step(torch.randn(2, 1, DIM), None)
    with pytest.raises(ValueError, match="hidden must be positive"):
        backbone_config("gru", hidden=-1)

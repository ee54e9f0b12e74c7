"""The DSF mechanism (sequence_models/feedback.py) on its own and on minGRU, minLSTM and LRU:
exactness where DSF is exact, float64 references, feedback initialisation, config errors."""

import warnings

import pytest
import torch

from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import backbone_config
from sequence_models.feedback import make_feedback, state_feedback
from sequence_models.gradient_modes import FeedbackRangeWarning
from sequence_models.lru import LRU
from sequence_models.min_rnn import MinGRU, MinLSTM

B, T, D, S = 3, 12, 4, 5


def _loop(cell, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1)


def test_dsf_is_exact_when_the_jacobian_is_the_feedback():
    """h_t = A ⊙ h_{t-1} + tanh(W x_t + b): J_t = diag(A) exactly, so DSF with that A is BPTT."""
    g = torch.Generator().manual_seed(0)
    A = torch.rand(S, generator=g, dtype=torch.float64)
    W = torch.randn(S, D, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(S, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, S, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(B, T, S, generator=g, dtype=torch.float64)

    def cell(x_t, h):
        return A * h + torch.tanh(x_t @ W.T + bias)

    def loss(states):
        return ((states - target) ** 2).sum() + states[:, -1].sum()

    exact = torch.autograd.grad(loss(_loop(cell, x, h0)), [W, bias, x, h0])
    with torch.no_grad():
        states = _loop(cell, x, h0)
    dsf = torch.autograd.grad(loss(state_feedback(cell, x, states, h0, A, [W, bias])), [W, bias, x, h0])
    for got, want in zip(dsf, exact):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_state_feedback_returns_the_given_states_and_no_graph_without_grad():
    states = torch.randn(B, T, S)
    with torch.no_grad():
        out = state_feedback(lambda x, h: h, torch.randn(B, T, D), states, None, torch.ones(S), [])
    assert torch.equal(out, states) and not out.requires_grad
    with pytest.raises(ValueError, match="share"):
        state_feedback(lambda x, h: h, torch.randn(B, T + 1, D), states, None, None, [])


def test_long_sequence_backward_is_a_scan_not_a_loop():
    """T = 4096 with a constant cell Jacobian: still exact, and quick (the reverse scan is chunked)."""
    A = torch.full((S,), 0.9, dtype=torch.float64)
    x = torch.randn(1, 4096, S, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        states = torch.zeros_like(x)
    out = state_feedback(lambda x_t, h: A * h + x_t, x, states, None, A, [])
    out[:, -1].sum().backward()
    torch.testing.assert_close(x.grad[0, :, 0], 0.9 ** torch.arange(4095, -1, -1, dtype=torch.float64))


# ---- feedback initialisation ----------------------------------------------------------------


def test_feedback_initialisations():
    torch.testing.assert_close(make_feedback(6), torch.linspace(0, 1, 6))
    uniform = make_feedback(1000, "uniform", 0.2, 0.6)
    assert uniform.min() >= 0.2 and uniform.max() <= 0.6 and uniform.std() > 0.05
    torch.testing.assert_close(make_feedback(3, "constant", constant=0.25), torch.full((3,), 0.25))
    assert MinGRU(D, gradient="dsf", feedback_init="constant", feedback_constant=0.3).feedback.eq(0.3).all()
    assert LRU(D, state_dim=7, gradient="dsf").feedback.shape == (7,)


def test_feedback_outside_unit_interval_warns():
    with pytest.warns(FeedbackRangeWarning, match=r"range \[0.0, 1.5\] is outside \[0, 1\].*may diverge"):
        make_feedback(4, "linspace", 0.0, 1.5)
    with pytest.warns(FeedbackRangeWarning, match="constant -0.5"):
        make_feedback(4, "constant", constant=-0.5)
    with pytest.warns(FeedbackRangeWarning) as record:
        build_backbone(backbone_config("gru", d_model=8, n_layers=3, gradient="dsf", feedback_high=1.2))
    assert len(record) == 1  # once per config, not once per layer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_feedback(4, "uniform", 0.1, 0.9)
        backbone_config("gru", gradient="bptt", feedback_high=1.2)  # unused by bptt: no warning
        backbone_config("lstm", gradient="truncated", feedback_high=1.2)  # A = 0 under truncated


def test_bad_feedback_options_raise():
    with pytest.raises(ValueError, match="unknown feedback_init 'ramp'; valid: linspace, uniform, constant"):
        make_feedback(4, "ramp")
    with pytest.raises(ValueError, match="must not exceed"):
        backbone_config("mingru", gradient="dsf", feedback_low=0.8, feedback_high=0.2)


# ---- config-time errors ---------------------------------------------------------------------


def test_gradient_mode_errors_at_config_time():
    with pytest.raises(ValueError, match=r"'transformer' supports gradient modes \['bptt'\], not 'dsf'; dsf applies to: .*gru"):
        backbone_config("transformer", gradient="dsf")
    with pytest.raises(ValueError, match="unknown gradient mode 'exact'; valid modes: bptt, dsf, truncated"):
        backbone_config("lstm", gradient="exact")
    for name in ("mingru", "minlstm", "lru", "gru", "lstm", "rnn"):
        for mode in ("bptt", "dsf", "truncated"):
            mixer = backbone_config(name, gradient=mode, d_model=8).build_mixer()
            assert mixer.gradient == mode


# ---- minGRU, minLSTM, LRU ---------------------------------------------------------------------


def _sigmoid_g(k):
    return torch.where(k >= 0, k + 0.5, torch.sigmoid(k))


def _equations(name, layer):
    """(cell parameters, one step (x, h) -> h) written from the papers' equations."""
    if name == "mingru":
        W = layer.to_hidden_and_gate.weight

        def cell(x, h):
            k_h, k_z = (x @ W.T).chunk(2, dim=-1)
            z = torch.sigmoid(k_z)
            return (1 - z) * h + z * _sigmoid_g(k_h)

        return [W], cell
    if name == "minlstm":
        W = layer.to_hidden_and_gates.weight

        def cell(x, h):
            k_h, k_f, k_i = (x @ W.T).chunk(3, dim=-1)
            f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
            return f / (f + i) * h + i / (f + i) * _sigmoid_g(k_h)

        return [W], cell
    params = [layer.nu_log, layer.theta_log, layer.gamma_log, layer.B_re, layer.B_im]

    def cell(x, h):
        lam = torch.exp(-torch.exp(layer.nu_log)) * torch.exp(1j * torch.exp(layer.theta_log))
        B = torch.complex(layer.B_re, layer.B_im) * torch.exp(layer.gamma_log)[:, None]
        return lam * h + x.to(B.dtype) @ B.T

    return params, cell


LAYERS = {
    "mingru": lambda **kw: MinGRU(D, expansion=1.5, learned_init_state=True, **kw),
    "minlstm": lambda **kw: MinLSTM(D, expansion=2.0, **kw),
    "lru": lambda **kw: LRU(D, state_dim=6, r_min=0.5, r_max=0.95, **kw),
}


def _make_layer(name, gradient):
    torch.manual_seed(0)
    layer = LAYERS[name](gradient=gradient, feedback_init="uniform", feedback_low=0.2, feedback_high=0.95).double()
    if getattr(layer, "initial_state", None) is not None:
        with torch.no_grad():
            layer.initial_state.normal_()
    return layer


def _state_of(layer, batch):
    if isinstance(layer, LRU):
        return None
    return layer.initial_state.expand(batch, -1) if layer.initial_state is not None else None


def _loss(y, target):
    return ((y - target) ** 2).sum()


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("gradient", ["dsf", "truncated"])
def test_min_rnn_and_lru_dsf_equal_float64_reference(name, gradient):
    layer = _make_layer(name, gradient)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    all_params = [x, *layer.parameters()]
    got = torch.autograd.grad(_loss(layer(x)[0], target), all_params, allow_unused=True, materialize_grads=True)

    params, cell = _equations(name, layer)
    h0 = _state_of(layer, B)
    start = torch.zeros(B, layer.feedback.shape[0], dtype=torch.complex128 if name == "lru" else torch.float64)
    start = start if h0 is None else h0
    with torch.no_grad():
        states = _loop(cell, x, start)
    leaf = states.clone().requires_grad_()
    output = layer._output(leaf, x) if name == "lru" else layer.to_out(leaf)
    loss = _loss(output, target)
    e = torch.autograd.grad(loss, leaf, retain_graph=True)[0]
    feedback = layer.feedback if gradient == "dsf" else torch.zeros_like(layer.feedback)
    delta = torch.zeros_like(e)
    delta[:, -1] = e[:, -1]
    for t in range(T - 2, -1, -1):
        delta[:, t] = e[:, t] + feedback * delta[:, t + 1]
    previous = torch.cat([start.detach().unsqueeze(1), states[:, :-1]], dim=1)
    one_step = cell(x, previous)
    # parameters outside the recurrence (to_out, C, D) and x's direct path (D ⊙ x) get exact gradients
    want = dict(zip(map(id, all_params), torch.autograd.grad(loss, all_params, allow_unused=True)))
    recurrent = torch.autograd.grad(one_step, [x, *params], delta)
    want[id(x)] = want[id(x)] + recurrent[0] if want[id(x)] is not None else recurrent[0]
    for p, grad in zip(params, recurrent[1:]):
        want[id(p)] = grad
    if getattr(layer, "initial_state", None) is not None:
        want[id(layer.initial_state)] = (feedback * delta[:, 0]).sum(0)
    for got_grad, p in zip(got, all_params):
        torch.testing.assert_close(got_grad, want[id(p)], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", LAYERS)
def test_min_rnn_and_lru_modes_share_the_forward_and_truncated_is_zero_feedback(name):
    layers = {mode: _make_layer(name, mode) for mode in ("bptt", "dsf", "truncated")}
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    outputs = {mode: layer(x) for mode, layer in layers.items()}
    for mode in ("dsf", "truncated"):
        torch.testing.assert_close(outputs[mode][0], outputs["bptt"][0], rtol=0, atol=0)
        torch.testing.assert_close(outputs[mode][1], outputs["bptt"][1], rtol=0, atol=0)
    layers["dsf"].feedback.zero_()
    grads = {
        mode: torch.autograd.grad(layers[mode](x)[0].square().sum(), [x, *layers[mode].parameters()], allow_unused=True, materialize_grads=True)
        for mode in ("dsf", "truncated")
    }
    for a, b in zip(grads["dsf"], grads["truncated"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("gradient", ["dsf", "truncated"])
def test_min_rnn_and_lru_step_equals_forward(name, gradient):
    layer = _make_layer(name, gradient)
    x = torch.randn(B, T, D, dtype=torch.float64)
    y, last = layer(x)
    state, outputs = None, []
    for t in range(T):
        y_t, state = layer.step(x[:, t], state)
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y)
    torch.testing.assert_close(state, last)


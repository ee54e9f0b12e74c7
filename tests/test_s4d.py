"""S4D: the recurrent layer against its equations as a plain float64 loop and against the reference's
convolution kernel K_l = 2 Re(C B̄ Ā^l) (values and gradients, every scan backend), carried state,
O(1) steps, long sequences, the S4D-Lin / S4D-Inv inits, and the registry / flags."""

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
import tyro

from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import BackboneChoice, S4DConfig, backbone_config
from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.kernels.backend import get_scan_backend, set_scan_backend
from sequence_models.s4d import S4D

DIM, D_STATE = 8, 6
BACKENDS = ["torch"] + (["cpu"] if cpu_kernels.load() is not None else [])


@pytest.fixture
def backend():
    previous = get_scan_backend()
    yield set_scan_backend
    set_scan_backend(previous)


def _layer(seed=0, **options):
    torch.manual_seed(seed)
    layer = S4D(DIM, d_state=D_STATE, dt_min=0.05, dt_max=0.5, **options).double()
    with torch.no_grad():  # spread the real parts, so every mode decays at its own rate
        layer.log_A_real.add_(0.5 * torch.randn_like(layer.log_A_real))
    return layer


def _inputs(length=13, batch=3, seed=1):
    return torch.randn(batch, length, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _discretized(layer):
    A = torch.complex(-torch.exp(layer.log_A_real), layer.A_imag)
    A_bar = torch.exp(torch.exp(layer.log_dt)[:, None] * A)
    return A_bar, (A_bar - 1) / A


def _head(layer, y):
    return F.glu(layer.output_linear(F.gelu(y)), dim=-1)


def s4d_loop(layer: S4D, u: torch.Tensor, state: torch.Tensor | None = None):
    """h_t = Ā h_{t−1} + B̄ u_t, y_t = 2 Re(C h_t) + D u_t, one step at a time."""
    A_bar, B_bar = _discretized(layer)
    C = torch.view_as_complex(layer.C)
    h = torch.zeros(u.shape[0], DIM, D_STATE // 2, dtype=torch.complex128) if state is None else state
    outputs = []
    for t in range(u.shape[1]):
        h = A_bar * h + B_bar * u[:, t, :, None]
        outputs.append(_head(layer, 2 * (C * h).sum(-1).real + layer.D * u[:, t]))
    return torch.stack(outputs, dim=1), h


def s4d_convolution(layer: S4D, u: torch.Tensor):
    """The reference's computation: y = K * u + D u with K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l)."""
    A_bar, B_bar = _discretized(layer)
    C = torch.view_as_complex(layer.C)
    length = u.shape[1]
    K = 2 * (C * B_bar)[..., None] * A_bar[..., None] ** torch.arange(length)  # (H, N/2, L)
    K = K.sum(1).real
    y = torch.stack([sum(K[:, lag] * u[:, t - lag] for lag in range(t + 1)) for t in range(length)], dim=1)
    return _head(layer, y + layer.D * u)


@pytest.mark.parametrize("scan_backend", BACKENDS)
@pytest.mark.parametrize("init", ["lin", "inv"])
def test_recurrence_matches_loop_and_reference_convolution(backend, scan_backend, init):
    backend(scan_backend)
    layer, u = _layer(init=init), _inputs()
    y, state = layer(u)
    y_loop, h_loop = s4d_loop(layer, u)
    torch.testing.assert_close(y, y_loop, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(state, h_loop, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(y, s4d_convolution(layer, u), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("scan_backend", BACKENDS)
def test_gradients_match_autograd_through_the_loop(backend, scan_backend):
    backend(scan_backend)
    layer = _layer()
    u = _inputs(length=9, batch=2).requires_grad_()
    weights = torch.randn(2, 9, DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    params = [u, *layer.parameters()]
    grads = torch.autograd.grad((layer(u)[0] * weights).sum(), params)
    grads_loop = torch.autograd.grad((s4d_loop(layer, u)[0] * weights).sum(), params)
    names = ["input", *(n for n, _ in layer.named_parameters())]
    for name, g, g_loop in zip(names, grads, grads_loop):
        torch.testing.assert_close(g, g_loop, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("split", [1, 6, 12])
def test_chunked_equals_whole_with_carried_state(split):
    layer, u = _layer(), _inputs()
    whole, whole_state = layer(u)
    first, state = layer(u[:, :split])
    second, final_state = layer(u[:, split:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(final_state, whole_state)
    torch.testing.assert_close(second, s4d_loop(layer, u[:, split:], state)[0], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("convolution", ["direct", "fft"])
@pytest.mark.parametrize("length", [1, 2, 7, 40])
def test_any_length_with_a_carried_state_matches_the_loop(convolution, length):
    """One step, odd and longer lengths, with a state carried in, by Toeplitz matmul and by FFT: outputs, final
    state and the gradients of the input, the carried state and the parameters as the loop's."""
    layer = _layer()
    layer.direct_convolution_max_length = length if convolution == "direct" else 0
    u = _inputs(length=length, batch=2).requires_grad_()
    generator = torch.Generator().manual_seed(4)
    state = torch.randn(2, DIM, D_STATE // 2, dtype=torch.complex128, generator=generator).requires_grad_()
    weights = torch.randn(2, length, DIM, dtype=torch.float64, generator=generator)
    state_weights = torch.randn(2, DIM, D_STATE // 2, 2, dtype=torch.float64, generator=generator)
    params = [u, state, *layer.parameters()]

    def loss_and_outputs(forward):
        y, final_state = forward(u, state)
        return (y * weights).sum() + (torch.view_as_real(final_state) * state_weights).sum(), y, final_state

    loss, y, final_state = loss_and_outputs(layer)
    loss_loop, y_loop, final_state_loop = loss_and_outputs(lambda u, state: s4d_loop(layer, u, state))
    torch.testing.assert_close(y, y_loop, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(final_state, final_state_loop, rtol=1e-9, atol=1e-10)
    names = ["input", "state", *(n for n, _ in layer.named_parameters())]
    for name, g, g_loop in zip(names, torch.autograd.grad(loss, params), torch.autograd.grad(loss_loop, params)):
        torch.testing.assert_close(g, g_loop, rtol=1e-8, atol=1e-10, msg=name)


def test_step_equals_forward():
    layer, u = _layer(), _inputs()
    y, final_state = layer(u)
    state, outputs = None, []
    for t in range(u.shape[1]):
        y_t, state = layer.step(u[:, t], state)
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state, final_state)


def test_long_sequence_is_finite():
    torch.manual_seed(0)
    layer = S4D(4, d_state=4)
    layer.scan_chunk_elements = 65_536 * 4 * 2 // 8  # 25 checkpointed chunks of 32,768 // (H (N/2 + B)) = 2,730 steps
    u = torch.randn(1, 65_536, 4, requires_grad=True)
    y, state = layer(u)
    assert torch.isfinite(y).all() and torch.isfinite(torch.view_as_real(state)).all()
    y[:, -1].sum().backward()
    assert torch.isfinite(u.grad).all() and all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_initialisation(init):
    torch.manual_seed(0)
    N, H = 64, 16
    layer = S4D(H, d_state=N, init=init, dt_min=1e-3, dt_max=1e-1)
    n = torch.arange(N // 2, dtype=torch.float64)
    imaginary = math.pi * n if init == "lin" else N / math.pi * (N / (2 * n + 1) - 1)
    torch.testing.assert_close(layer.A_imag.double(), imaginary.expand(H, N // 2), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(torch.exp(layer.log_A_real), torch.full((H, N // 2), 0.5))
    dt = torch.exp(layer.log_dt)
    assert (dt >= 1e-3 * (1 - 1e-5)).all() and (dt <= 1e-1 * (1 + 1e-5)).all()
    reference_shapes = {"log_dt": (H,), "log_A_real": (H, N // 2), "A_imag": (H, N // 2), "C": (H, N // 2, 2),
                        "D": (H,), "output_linear.weight": (2 * H, H), "output_linear.bias": (2 * H,)}
    assert {name: tuple(p.shape) for name, p in layer.state_dict().items()} == reference_shapes
    A_bar, _ = layer.discretized()
    assert (A_bar.abs() < 1).all()  # Re A < 0: every mode decays


def test_bfloat16_autocast_runs_the_recurrence_in_float32():
    layer, u = S4D(DIM, d_state=D_STATE), _inputs().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = layer(u)
    assert y.dtype == torch.float32 and state.dtype == torch.complex64 and torch.isfinite(y).all()


def test_registry_and_flags():
    @dataclass
    class Args:
        backbone: BackboneChoice = backbone_config("transformer")

    args = tyro.cli(Args, args=["backbone:s4d", "--backbone.d-state", "16", "--backbone.init", "inv",
                                "--backbone.d-model", "32"])
    assert isinstance(args.backbone, S4DConfig) and args.backbone.init == "inv" and args.backbone.mlp_ratio == 0
    stack = build_backbone(args.backbone)
    assert all(isinstance(b.mixer, S4D) and b.mixer.d_state == 16 and b.mlp is None for b in stack.blocks)
    y, state = stack(torch.randn(2, 5, 32))
    assert y.shape == (2, 5, 32) and len(state) == args.backbone.n_layers


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="'s4d' supports gradient modes \\['bptt'\\], not 'dsf'"):
        backbone_config("s4d", gradient="dsf")
    with pytest.raises(ValueError, match="not 'truncated'"):
        backbone_config("s4d", gradient="truncated")
    with pytest.raises(ValueError, match="even d_state"):
        backbone_config("s4d", d_state=5)
    with pytest.raises(ValueError, match="unknown S4D init 'legs'"):
        S4D(DIM, init="legs")
    with pytest.raises(ValueError, match="must be complex"):
        _layer()(_inputs(), torch.zeros(3, DIM, D_STATE // 2, dtype=torch.float64))


def test_scan_in_time_chunks_is_exact_and_checkpointed():
    """Past scan_chunk_elements the scan runs chunk by chunk (checkpointed under grad): same values, same gradients."""
    layer = _layer()
    u = _inputs(length=20, batch=2).requires_grad_()
    y, state = layer(u)
    grads = torch.autograd.grad(y.square().sum(), [u, *layer.parameters()])
    layer.scan_chunk_elements = 2 * DIM * (D_STATE // 2) * 3  # chunks of 3 steps
    y_chunked, state_chunked = layer(u)
    grads_chunked = torch.autograd.grad(y_chunked.square().sum(), [u, *layer.parameters()])
    torch.testing.assert_close(y_chunked, y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state_chunked, state, rtol=1e-10, atol=1e-12)
    for g, g_chunked in zip(grads, grads_chunked):
        torch.testing.assert_close(g_chunked, g, rtol=1e-9, atol=1e-11)

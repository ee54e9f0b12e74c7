"""Mamba: the parallel layer against its equations written as a plain float64 loop (values and
gradients, every scan backend), carried state, O(1) steps, long sequences, the reference's
parameter layout and init, and the registry / flags."""

from dataclasses import dataclass

import pytest
import torch
import tyro

from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import BackboneChoice, MambaConfig, backbone_config
from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.kernels.backend import get_scan_backend, set_scan_backend
from sequence_models.mamba import Mamba, MambaState

DIM, D_STATE = 8, 4
BACKENDS = ["torch"] + (["cpu"] if cpu_kernels.load() is not None else [])


@pytest.fixture
def backend():
    previous = get_scan_backend()
    yield set_scan_backend
    set_scan_backend(previous)


def _layer(seed=0, **options):
    torch.manual_seed(seed)
    layer = Mamba(DIM, d_state=D_STATE, **options).double()
    with torch.no_grad():  # make A, D and the biases less uniform than their init, so tests see every term
        layer.A_log.add_(0.3 * torch.randn_like(layer.A_log))
        layer.D.normal_()
        layer.conv1d.bias.normal_()
    return layer


def _inputs(length=13, batch=3, seed=1):
    return torch.randn(batch, length, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _silu(v):
    return v * torch.sigmoid(v)


def mamba_loop(layer: Mamba, u: torch.Tensor, state: MambaState | None = None):
    """The Mamba block one token at a time, straight from the paper's equations."""
    E, N, K, R = layer.d_inner, layer.d_state, layer.d_conv, layer.dt_rank
    batch, length, _ = u.shape
    conv_weight = layer.conv1d.weight[:, 0]  # (E, K)
    A = -torch.exp(layer.A_log)
    past = [torch.zeros(batch, E, dtype=u.dtype)] * (K - 1) if state is None else list(state.conv.unbind(1))
    h = torch.zeros(batch, E, N, dtype=u.dtype) if state is None else state.ssm
    outputs = []
    for t in range(length):
        xz = u[:, t] @ layer.in_proj.weight.T
        x, z = xz[:, :E], xz[:, E:]
        past = past + [x]
        window = past[len(past) - K:]
        x = _silu(layer.conv1d.bias + sum(conv_weight[:, k] * window[k] for k in range(K)))
        projected = x @ layer.x_proj.weight.T
        low_rank_dt, B, C = projected[:, :R], projected[:, R:R + N], projected[:, R + N:]
        delta = torch.log1p(torch.exp(low_rank_dt @ layer.dt_proj.weight.T + layer.dt_proj.bias))
        h = torch.exp(delta[:, :, None] * A) * h + delta[:, :, None] * B[:, None, :] * x[:, :, None]
        y = (h * C[:, None, :]).sum(-1) + layer.D * x
        outputs.append((y * _silu(z)) @ layer.out_proj.weight.T)
    return torch.stack(outputs, dim=1), h


@pytest.mark.parametrize("scan_backend", BACKENDS)
def test_parallel_matches_loop(backend, scan_backend):
    backend(scan_backend)
    layer, u = _layer(), _inputs()
    y, state = layer(u)
    y_loop, h_loop = mamba_loop(layer, u)
    torch.testing.assert_close(y, y_loop, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(state.ssm, h_loop, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("scan_backend", BACKENDS)
def test_gradients_match_autograd_through_the_loop(backend, scan_backend):
    backend(scan_backend)
    layer = _layer()
    u = _inputs(length=9, batch=2).requires_grad_()
    weights = torch.randn(2, 9, DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    params = [u, *layer.parameters()]
    grads = torch.autograd.grad((layer(u)[0] * weights).sum(), params)
    grads_loop = torch.autograd.grad((mamba_loop(layer, u)[0] * weights).sum(), params)
    names = ["input", *(n for n, _ in layer.named_parameters())]
    for name, g, g_loop in zip(names, grads, grads_loop):
        torch.testing.assert_close(g, g_loop, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("split", [1, 2, 3, 7, 12])
def test_chunked_equals_whole_with_carried_state(split):
    layer, u = _layer(), _inputs()
    whole, whole_state = layer(u)
    first, state = layer(u[:, :split])
    second, final_state = layer(u[:, split:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(final_state.conv, whole_state.conv)
    torch.testing.assert_close(final_state.ssm, whole_state.ssm)
    # and the loop started from the same carried state agrees
    second_loop, _ = mamba_loop(layer, u[:, split:], state)
    torch.testing.assert_close(second, second_loop, rtol=1e-9, atol=1e-10)


def test_step_equals_forward():
    layer, u = _layer(), _inputs()
    y, final_state = layer(u)
    state, outputs = None, []
    for t in range(u.shape[1]):
        y_t, state = layer.step(u[:, t], state)
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state.conv, final_state.conv)
    torch.testing.assert_close(state.ssm, final_state.ssm)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the fused CPU kernels could not be built here")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_selective_scan_matches_the_torch_scan_with_carried_state(backend, dtype):
    """The fused kernel against the (B, T, E, N) PyTorch scan: y and h_T from a carried state, and the
    gradients of a loss on both (so dL/dh_T and dL/dh_0 flow through the kernel's backward)."""
    layer, u = _layer(), _inputs(length=11, batch=3)
    _, carried = layer(u[:, :4])
    layer, u = layer.to(dtype), u[:, 4:].to(dtype).requires_grad_()
    start = MambaState(carried.conv.detach().to(dtype), carried.ssm.detach().to(dtype).requires_grad_())
    weights = torch.randn(3, 7, DIM, dtype=dtype, generator=torch.Generator().manual_seed(5))
    results = {}
    for name in ("torch", "cpu"):
        backend(name)
        y, state = layer(u, start)
        loss = (y * weights).sum() + state.ssm.square().sum()
        results[name] = (y, state.ssm, *torch.autograd.grad(loss, [u, start.ssm, *layer.parameters()]))
    tolerance = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    labels = ["y", "h_T", "input", "h_0", *(n for n, _ in layer.named_parameters())]
    for label, fused, reference in zip(labels, results["cpu"], results["torch"]):
        torch.testing.assert_close(fused, reference, **tolerance, msg=label)


def test_scan_in_time_chunks_is_exact_and_checkpointed(backend):
    """Past scan_chunk_elements the torch scan runs chunk by chunk (checkpointed under grad): same values, same
    gradients. (The fused CPU kernel builds no (B, T, E, N) tensor, so it never chunks.)"""
    backend("torch")
    layer = _layer()
    u = _inputs(length=20, batch=2).requires_grad_()
    y, state = layer(u)
    grads = torch.autograd.grad(y.square().sum(), [u, *layer.parameters()])
    layer.scan_chunk_elements = 2 * layer.d_inner * D_STATE * 3  # chunks of 3 steps
    y_chunked, state_chunked = layer(u)
    grads_chunked = torch.autograd.grad(y_chunked.square().sum(), [u, *layer.parameters()])
    torch.testing.assert_close(y_chunked, y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state_chunked.ssm, state.ssm, rtol=1e-10, atol=1e-12)
    for g, g_chunked in zip(grads, grads_chunked):
        torch.testing.assert_close(g_chunked, g, rtol=1e-9, atol=1e-11)


def test_long_sequence_is_finite():
    torch.manual_seed(0)
    layer = Mamba(4, d_state=2, expand=1)
    u = torch.randn(1, 65_536, 4)
    with torch.no_grad():
        y, state = layer(u)
    assert torch.isfinite(y).all() and torch.isfinite(state.ssm).all()
    # a tiny gradient through the chunked, checkpointed path (8 chunks)
    layer.scan_chunk_elements = 65_536 * layer.d_inner * 2 // 8
    y, _ = layer(u[:, :16_384].requires_grad_())
    y[:, -1].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_reference_parameter_layout_and_init():
    torch.manual_seed(0)
    d_model, N, K = 32, 16, 4
    layer = Mamba(d_model, d_state=N, d_conv=K, expand=2, dt_min=1e-3, dt_max=1e-1)
    E, R = 64, 2  # expand * d_model, ceil(d_model / 16)
    reference_shapes = {
        "in_proj.weight": (2 * E, d_model), "conv1d.weight": (E, 1, K), "conv1d.bias": (E,),
        "x_proj.weight": (R + 2 * N, E), "dt_proj.weight": (E, R), "dt_proj.bias": (E,),
        "A_log": (E, N), "D": (E,), "out_proj.weight": (d_model, E),
    }
    assert {n: tuple(p.shape) for n, p in layer.state_dict().items()} == reference_shapes
    layer.load_state_dict({n: torch.randn(s) for n, s in reference_shapes.items()})  # a reference checkpoint loads
    fresh = Mamba(d_model, d_state=N)
    torch.testing.assert_close(fresh.A(), -torch.arange(1, N + 1, dtype=torch.float32).expand(E, N))  # S4D-real
    torch.testing.assert_close(fresh.D.detach(), torch.ones(E))
    dt = torch.nn.functional.softplus(fresh.dt_proj.bias.detach())
    assert (dt >= 1e-3 * (1 - 1e-5)).all() and (dt <= 1e-1 * (1 + 1e-5)).all()


def test_bfloat16_autocast_runs_the_scan_in_float32():
    layer, u = Mamba(DIM, d_state=D_STATE), _inputs().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = layer(u)
        y_t, _ = layer.step(u[:, 0], None)
    assert y.dtype == torch.float32 and state.ssm.dtype == torch.float32 and torch.isfinite(y).all()
    assert y_t.dtype == torch.float32


def test_registry_and_flags():
    @dataclass
    class Args:
        backbone: BackboneChoice = backbone_config("transformer")

    args = tyro.cli(Args, args=["backbone:mamba", "--backbone.d-state", "8", "--backbone.d-model", "32"])
    assert isinstance(args.backbone, MambaConfig) and args.backbone.d_state == 8 and args.backbone.mlp_ratio == 0
    stack = build_backbone(args.backbone)
    assert all(isinstance(b.mixer, Mamba) and b.mixer.d_state == 8 and b.mlp is None for b in stack.blocks)
    y, state = stack(torch.randn(2, 5, 32))
    assert y.shape == (2, 5, 32) and len(state) == args.backbone.n_layers


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="'mamba' supports gradient modes \\['bptt'\\], not 'dsf'"):
        backbone_config("mamba", gradient="dsf")
    with pytest.raises(ValueError, match="not 'truncated'"):
        backbone_config("mamba", gradient="truncated")
    with pytest.raises(ValueError, match="d_state"):
        backbone_config("mamba", d_state=0)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        Mamba(DIM, dt_min=0.2, dt_max=0.1)
    with pytest.raises(ValueError, match="state"):
        _layer()(_inputs(), (torch.zeros(3, 2, 16), torch.zeros(3, 16, D_STATE)))

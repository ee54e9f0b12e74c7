"""The backbone contract for every mixer and for the residual stack: forward == step by step,
chunked == whole, causality; plus each layer's own invariants and bad-input errors."""

import math

import pytest
import torch

from sequence_models.attention import CausalSelfAttention
from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import BACKBONE_CONFIGS, backbone_config
from sequence_models.lru import LRU
from sequence_models.mamba import Mamba
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.s4d import S4D

DIM = 8


def _mixers():
    return {
        "mingru": lambda: MinGRU(DIM, expansion=1.5),
        "mingru_learned_h0": lambda: MinGRU(DIM, learned_init_state=True),
        "mingru_log_space": lambda: MinGRU(DIM, scan="log"),
        "minlstm_log_space": lambda: MinLSTM(DIM, scan="log", learned_init_state=True),
        "minlstm": lambda: MinLSTM(DIM, expansion=2.0),
        "minlstm_unnormalized": lambda: MinLSTM(DIM, normalize=False),
        "lru": lambda: LRU(DIM, state_dim=6, r_min=0.5, r_max=0.99),
        "attention": lambda: CausalSelfAttention(DIM, n_heads=2),
        "mamba": lambda: Mamba(DIM, d_state=4),
        "mamba_no_conv_bias_wide_dt": lambda: Mamba(DIM, d_state=3, d_conv=2, expand=1.5, dt_rank=3, conv_bias=False),
        "s4d": lambda: S4D(DIM, d_state=6),
        "s4d_inv": lambda: S4D(DIM, d_state=4, init="inv"),
    }


def _stacks():
    names = [n for n in BACKBONE_CONFIGS]
    stacks = {f"stack_{n}": (lambda n=n: build_backbone(backbone_config(n, d_model=DIM, n_layers=2, dropout=0.0)))
              for n in names}
    stacks["stack_mingru_rmsnorm"] = lambda: build_backbone(backbone_config("mingru", d_model=DIM, n_layers=2,
                                                                            dropout=0.0, norm="rms"))
    for name, kernel in (("mingru", 3), ("transformer", 2), ("lstm", 4)):
        stacks[f"stack_{name}_conv{kernel}"] = (lambda name=name, kernel=kernel: build_backbone(
            backbone_config(name, d_model=DIM, n_layers=2, dropout=0.0, conv_kernel=kernel)))
    return stacks


MODULES = {**_mixers(), **_stacks()}


def _make(name):
    torch.manual_seed(0)
    module = MODULES[name]().double().eval()
    if getattr(module, "initial_state", None) is not None:  # make the learned h0 non-trivial
        with torch.no_grad():
            module.initial_state.normal_()
    return module


def _inputs(length=13, batch=3):
    return torch.randn(batch, length, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("name", MODULES)
def test_forward_equals_step_by_step(name):
    module, x = _make(name), _inputs()
    y, final_state = module(x)
    state = module.init_state(x.shape[0], dtype=torch.float64) if "learned" not in name else None
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = module.step(x[:, t], state)
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, dim=1), y, rtol=1e-10, atol=1e-10)
    if isinstance(final_state, torch.Tensor):
        torch.testing.assert_close(state, final_state)


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("split", [1, 6, 12])
def test_chunked_forward_carries_state(name, split):
    module, x = _make(name), _inputs()
    whole, _ = module(x)
    first, state = module(x[:, :split])
    second, _ = module(x[:, split:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", MODULES)
def test_causal(name):
    module, x = _make(name), _inputs()
    cut = 6
    changed = x.clone()
    changed[:, cut:] = torch.randn_like(changed[:, cut:]) * 3
    y, _ = module(x)
    y_changed, _ = module(changed)
    torch.testing.assert_close(y_changed[:, :cut], y[:, :cut], rtol=0, atol=0)
    assert not torch.allclose(y_changed[:, cut:], y[:, cut:])


@pytest.mark.parametrize("name", MODULES)
def test_gradients_reach_every_parameter(name):
    module = MODULES[name]()
    x = _inputs().float().requires_grad_()
    y, _ = module(x)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for param_name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


def test_mixers_gradcheck_float64():
    x = _inputs(length=5, batch=2).requires_grad_()
    for name in ("mingru", "mingru_log_space", "minlstm", "lru", "attention", "mamba", "s4d"):
        module = _make(name)
        assert torch.autograd.gradcheck(lambda x: module(x)[0], (x,)), name


def test_minlstm_normalized_gates_sum_to_one():
    layer = MinLSTM(DIM, expansion=1.0)
    projected = layer.project(_inputs().float() * 5)
    log_f, log_i = layer.log_gates(projected)
    torch.testing.assert_close(log_f.exp() + log_i.exp(), torch.ones_like(log_f))
    f, i = layer.gates(projected)
    torch.testing.assert_close(f + i, torch.ones_like(f))
    torch.testing.assert_close(f.log(), log_f)
    raw_f, raw_i = MinLSTM(DIM, normalize=False).log_gates(projected)
    assert not torch.allclose(raw_f.exp() + raw_i.exp(), torch.ones_like(raw_f))


@pytest.mark.parametrize("layer_class", [MinGRU, MinLSTM])
def test_linear_and_log_coefficients_agree(layer_class):
    layer = layer_class(DIM).double()
    projected = layer.project(_inputs() * 4)
    a, b = layer.coefficients(projected)
    log_a, log_b = layer.log_coefficients(projected)
    torch.testing.assert_close(a.log(), log_a)
    torch.testing.assert_close(b.log(), log_b)


def test_mingru_matches_its_equations():
    layer = MinGRU(DIM).double()
    x = _inputs(length=4)
    hidden, gate = layer.to_hidden_and_gate(x).chunk(2, dim=-1)
    z = torch.sigmoid(gate)
    h_tilde = torch.where(hidden >= 0, hidden + 0.5, torch.sigmoid(hidden))
    h = torch.zeros_like(h_tilde[:, 0])
    expected = []
    for t in range(x.shape[1]):
        h = (1 - z[:, t]) * h + z[:, t] * h_tilde[:, t]
        expected.append(h)
    torch.testing.assert_close(layer(x)[0], torch.stack(expected, dim=1))


@pytest.mark.parametrize("r_min,r_max,max_phase", [(0.0, 1.0, 2 * math.pi), (0.9, 0.999, math.pi / 10), (0.5, 0.5, 1.0)])
def test_lru_ring_initialisation(r_min, r_max, max_phase):
    torch.manual_seed(0)
    layer = LRU(16, state_dim=512, r_min=r_min, r_max=r_max, max_phase=max_phase)
    modulus = torch.exp(-torch.exp(layer.nu_log.double()))
    phase = torch.exp(layer.theta_log.double())
    assert (modulus >= r_min - 1e-6).all() and (modulus <= r_max + 1e-6).all()
    assert (phase >= 0).all() and (phase <= max_phase + 1e-6).all()
    torch.testing.assert_close(
        torch.exp(2 * layer.gamma_log.double()) + modulus**2, torch.ones(512, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(layer.eigenvalues().abs().double(), modulus, rtol=1e-5, atol=1e-6)


def test_lru_output_is_real_part_plus_skip():
    layer = LRU(DIM, state_dim=4).double()
    x = _inputs(length=3)
    lam = layer.eigenvalues()
    b = torch.complex(layer.B_re, layer.B_im) * torch.exp(layer.gamma_log)[:, None]
    c = torch.complex(layer.C_re, layer.C_im)
    h = torch.zeros(x.shape[0], 4, dtype=torch.complex128)
    expected = []
    for t in range(x.shape[1]):
        h = lam * h + x[:, t].to(torch.complex128) @ b.T
        expected.append((h @ c.T).real + layer.D * x[:, t])
    torch.testing.assert_close(layer(x)[0], torch.stack(expected, dim=1))


def test_attention_padding_mask_hides_padded_keys():
    torch.manual_seed(0)
    layer = CausalSelfAttention(DIM, n_heads=2).eval()
    x = _inputs(length=7).float()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, :3] = False  # left padding on the first sequence
    y, _ = layer(x, padding_mask=mask)
    changed = x.clone()
    changed[0, :3] = 100.0
    y_changed, _ = layer(changed, padding_mask=mask)
    torch.testing.assert_close(y_changed[0, 3:], y[0, 3:])  # real tokens never see the padding
    torch.testing.assert_close(y_changed[1:], y[1:])
    assert torch.isfinite(y).all()
    # and the same tokens without their padding give the same outputs
    y_unpadded, _ = layer(x[:1, 3:])
    torch.testing.assert_close(y[0, 3:], y_unpadded[0], rtol=1e-5, atol=1e-6)


def test_attention_kv_cache_remembers_padding():
    layer = CausalSelfAttention(DIM).eval()
    x = _inputs(length=6).float()
    mask = torch.tensor([[False, True, True, True, True, True]] * 3)
    full, _ = layer(x, padding_mask=mask)
    _, cache = layer(x[:, :4], padding_mask=mask[:, :4])
    y_t, _ = layer.step(x[:, 4], cache)
    torch.testing.assert_close(y_t, full[:, 4], rtol=1e-5, atol=1e-6)


def test_stack_rejects_padding_mask_for_recurrent_backbones():
    backbone = build_backbone(backbone_config("mingru", d_model=DIM, n_layers=1))
    with pytest.raises(ValueError, match="pad on the right"):
        backbone(_inputs().float(), padding_mask=torch.ones(3, 13, dtype=torch.bool))


@pytest.mark.parametrize("name", list(_mixers()))
def test_bad_input_shapes_raise_value_error(name):
    module = MODULES[name]()
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        module(torch.randn(13, DIM))
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        module(torch.randn(2, 13, DIM + 1))
    with pytest.raises(ValueError, match=r"\(batch, 8\)"):
        module.step(torch.randn(2, 1, DIM), None)
    good_state = module.init_state(2)
    bad_state = good_state[:1] if isinstance(good_state, torch.Tensor) else type(good_state)(*(t[:, :1] for t in good_state))
    with pytest.raises(ValueError, match="state"):
        module(torch.randn(2, 5, DIM), bad_state)


def test_bad_configs_raise_value_error():
    with pytest.raises(ValueError, match="unknown backbone 'mingur'.*did you mean 'mingru'"):
        backbone_config("mingur")
    with pytest.raises(ValueError, match="r_min <= r_max"):
        backbone_config("lru", r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="r_min <= r_max"):
        LRU(DIM, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="expansion must be > 0"):
        backbone_config("mingru", expansion=0)
    with pytest.raises(ValueError, match="expansion must be > 0"):
        MinLSTM(DIM, expansion=-1)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        backbone_config("transformer", d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="unknown gradient mode 'bpt'.*bptt, dsf, truncated"):
        backbone_config("transformer", gradient="bpt")
    with pytest.raises(ValueError, match="'transformer' supports gradient modes \\['bptt'\\], not 'dsf'"):
        backbone_config("transformer", gradient="dsf")
    with pytest.raises(ValueError, match="no option"):
        backbone_config("mingru", n_heads=2)


def test_rms_norm_replaces_every_layer_norm_of_the_stack():
    from torch import nn

    stack = build_backbone(backbone_config("lru", d_model=DIM, n_layers=2, norm="rms", mlp_ratio=2.0))
    norms = [type(m) for m in stack.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))]
    assert norms == [nn.RMSNorm] * 5  # two per block (mixer, MLP) and the final one

"""--amp: bf16 autocast on CUDA and on CPUs with native bf16, float32 (with one note) elsewhere; under
it the values stay close to float32, the scans and recurrences stay float32, and evaluation acts sensibly.

The bf16 paths are forced on here (the detector patched), whatever this CPU has, so they are checked
everywhere; where bf16 is emulated they are slower, never wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.benchmarks.untrained import benchmark_store, untrained_model
from agents.policy import Policy
from agents.trainer import agent_loss
from envs.segment_sampler import SegmentSampler
from sequence_models import scan
from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import BACKBONE_CONFIGS, backbone_config
from sequence_models.training import device as device_module
from sequence_models.training.config import OptimConfig
from sequence_models.training.device import (
    amp_enabled,
    autocast,
    cpuinfo_has_native_bf16,
)
from sequence_models.training.distributed import Context
from sequence_models.training.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)


def test_cpuinfo_flags_decide_native_bf16():
    assert cpuinfo_has_native_bf16("processor : 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 sse\n")
    assert cpuinfo_has_native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpuinfo_has_native_bf16("flags : fpu avx2 avx512f avx512bw\n")
    assert not cpuinfo_has_native_bf16("no flags here\n")


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False)])
def test_environment_overrides_the_detection(monkeypatch, value, expected):
    monkeypatch.setenv(device_module.CPU_BF16_OVERRIDE, value)
    device_module.cpu_has_native_bf16.cache_clear()
    try:
        assert device_module.cpu_has_native_bf16() is expected
    finally:
        device_module.cpu_has_native_bf16.cache_clear()


def test_cpu_without_native_bf16_falls_back_to_float32_with_one_note(monkeypatch, capsys):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    device_module._note_float32_fallback.cache_clear()
    assert not amp_enabled(True, CPU) and not amp_enabled(True, CPU)
    assert capsys.readouterr().err.count("running in float32") == 1
    assert not amp_enabled(False, CPU)
    assert amp_enabled(True, torch.device("cuda"))


def test_cpu_with_native_bf16_runs_amp(native_bf16):
    assert amp_enabled(True, CPU) and not amp_enabled(False, CPU)


@pytest.mark.parametrize("name", list(BACKBONE_CONFIGS))
def test_bf16_forward_of_every_backbone_is_close_to_float32(name):
    torch.manual_seed(0)
    net = build_backbone(backbone_config(name, d_model=32, n_layers=2)).eval()
    x = torch.randn(2, 24, 32)
    with torch.no_grad():
        expected, _ = net(x)
        with autocast(CPU, True):
            y, _ = net(x)
    assert y.dtype == torch.float32  # the residual stream stays float32
    assert (y - expected).abs().max() < 0.03 * expected.abs().max()


@pytest.mark.parametrize("name,gradient", [("lstm", "bptt"), ("lstm", "dsf"), ("gru", "dsf")])
def test_classic_recurrences_train_under_cpu_autocast(name, gradient):
    """oneDNN has no bf16 LSTM on CPUs without native bf16: the recurrence runs in float32 instead of failing."""
    torch.manual_seed(0)
    net = build_backbone(backbone_config(name, d_model=16, n_layers=1, gradient=gradient))
    with autocast(CPU, True):
        y, state = net(torch.randn(2, 10, 16))
    y.square().mean().backward()
    assert all(layer_state.dtype == torch.float32 for layer_state in state)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)


def test_scans_stay_float32_under_autocast():
    a = torch.rand(2, 16, 8).to(torch.bfloat16)
    b = torch.randn(2, 16, 8).to(torch.bfloat16)
    with autocast(CPU, True):
        h = scan.linear_scan(a, b)
        log_h = scan.scan_log_space(a.float().log(), b.float().abs().log())
    assert h.dtype == torch.float32 and log_h.dtype == torch.float32
    torch.testing.assert_close(h, scan.scan_reference(a.float(), b.float()))


@pytest.fixture(scope="module")
def store():
    return benchmark_store()


def agent_trainer(store, amp: bool) -> Trainer:
    torch.manual_seed(0)
    model = untrained_model("mingru", store, 5, {"d_model": 16, "n_layers": 2})
    sampler = SegmentSampler(store, 5, 8, seed=0)
    return Trainer(model, agent_loss(sampler, Context(device=CPU)), OptimConfig(warmup_steps=1), 10, CPU, amp=amp)


def test_training_loss_under_bf16_is_float32_and_close(store, native_bf16):
    losses = {}
    for amp in (False, True):
        trainer = agent_trainer(store, amp)
        assert trainer.use_amp == amp
        losses[amp] = [trainer.train_step() for _ in range(3)]
    for fp32, bf16 in zip(losses[False], losses[True]):
        assert bf16.dtype == torch.float32
        assert abs(bf16.item() - fp32.item()) < 0.03 * fp32.item()


@pytest.mark.parametrize("mode", ["window", "recurrent"])
def test_evaluation_under_amp_takes_sensible_actions(store, native_bf16, mode):
    torch.manual_seed(0)
    model = untrained_model("mingru", store, 5, {"d_model": 16, "n_layers": 2}).eval()
    rng = np.random.default_rng(0)
    inputs = [(rng.normal(size=(3, model.obs_dim)), 9000.0 - 100.0 * t + rng.normal(size=3)) for t in range(8)]
    actions = {}
    for amp in (False, True):
        policy = Policy(model, mode, 3, 5, amp=amp)
        assert policy.use_amp == amp
        actions[amp] = np.stack([policy.act(obs, rtg, t).numpy() for t, (obs, rtg) in enumerate(inputs)])
    assert actions[True].dtype == np.float32 and np.isfinite(actions[True]).all()
    low, high = model.action_low.numpy(), model.action_high.numpy()
    assert (actions[True] >= low).all() and (actions[True] <= high).all()
    np.testing.assert_allclose(actions[True], actions[False], atol=0.02 * float((high - low).max()), rtol=0)

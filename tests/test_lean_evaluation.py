"""The lean evaluation path (preallocated window buffers, inference mode) acts as the plain loop it
replaced: every step re-runs the last K steps from tensors concatenated afresh (the old Policy's way)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.benchmarks.untrained import benchmark_store, untrained_model
from agents.policy import Policy

K = 4


@pytest.fixture(scope="module")
def store():
    return benchmark_store()


def model_for(store, name: str):
    torch.manual_seed(0)
    model = untrained_model(name, store, K, {"d_model": 16, "n_layers": 2}).eval()
    with torch.no_grad():  # larger outputs than the init gives, so that a difference would show
        model.predict_action.weight.mul_(20)
    return model


def episode_inputs(model, steps: int, batch: int = 3):
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(batch, model.obs_dim)), 9000.0 - 100.0 * t + rng.normal(size=batch)) for t in range(steps)]


@torch.no_grad()
def reference_window_actions(model, inputs, return_scale: float = 1e-3) -> np.ndarray:
    """The window loop written plainly: histories grown by torch.cat, the last K steps re-run each step."""
    states, actions, returns, timesteps, out = [], [], [], [], []
    for t, (obs, rtg) in enumerate(inputs):
        b = obs.shape[0]
        states.append(model.normalize_states(torch.as_tensor(obs, dtype=torch.float32)))
        returns.append(torch.as_tensor(np.asarray(rtg) * return_scale, dtype=torch.float32)[:, None])
        timesteps.append(torch.full((b,), t, dtype=torch.long))
        actions.append(torch.zeros(b, model.act_dim))
        window = slice(max(0, len(states) - K), len(states))
        action = model.window_actions(torch.stack(returns[window], 1), torch.stack(states[window], 1),
                                      torch.stack(actions[window], 1), torch.stack(timesteps[window], 1))
        actions[-1] = action
        out.append(action.numpy())
    return np.stack(out)


@pytest.mark.parametrize("name", ["transformer", "mingru", "lstm"])
def test_window_mode_acts_as_the_plain_loop(store, name):
    model = model_for(store, name)
    inputs = episode_inputs(model, 3 * K + 2)  # past the buffer's first wrap-around
    policy = Policy(model, "window", 3, K)
    lean = np.stack([policy.act(obs, rtg, t).numpy() for t, (obs, rtg) in enumerate(inputs)])
    expected = reference_window_actions(model, inputs)
    assert np.abs(expected).max() > 0.05
    np.testing.assert_allclose(lean, expected, atol=1e-6, rtol=0)


def test_window_buffers_are_allocated_once_per_episode(store):
    model = model_for(store, "mingru")
    policy = Policy(model, "window", 3, K)
    buffer = policy.window.states
    for t, (obs, rtg) in enumerate(episode_inputs(model, 3 * K)):
        policy.act(obs, rtg, t)
    assert policy.window.states is buffer
    policy.reset()
    assert policy.window.end == 0 and policy.window.states is buffer


@pytest.mark.parametrize("mode", ["window", "recurrent"])
def test_actions_are_float32_and_carry_no_graph(store, mode):
    model = model_for(store, "mingru")
    policy = Policy(model, mode, 3, K)
    for t, (obs, rtg) in enumerate(episode_inputs(model, K + 1)):
        action = policy.act(obs, rtg, t)
        assert action.dtype == torch.float32 and not action.requires_grad

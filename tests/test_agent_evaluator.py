"""Evaluator: window and recurrent modes agree on the first K steps; a vector env equals separate runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.checkpoints import build_model
from envs.dataset_info import DatasetInfo
from agents.evaluator import evaluate
from agents.run import load_store
from sequence_models.backbone_configs import BACKBONE_CONFIGS
from tests.agent_helpers import tiny_config

K = 5


@pytest.fixture(scope="module")
def store():
    return load_store(tiny_config(Path("/tmp")))


def tiny_model(store, tmp_path, name: str):
    torch.manual_seed(0)
    config = tiny_config(tmp_path, name, context_len=K)
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, n_layers=2, dropout=0.1))
    info = DatasetInfo.from_store(store)
    model = build_model(config, info, store)
    with torch.no_grad():  # larger outputs than the init gives, so that a difference would show
        model.predict_action.weight.mul_(20)
    return model, info


@pytest.mark.parametrize("name", list(BACKBONE_CONFIGS))
def test_window_and_recurrent_agree_on_first_k_steps(store, tmp_path, name):
    model, info = tiny_model(store, tmp_path, name)
    common = dict(targets=[9000.0, 2000.0], episodes=2, context_len=K, max_steps=K, record_actions=True, seed=3)
    window = evaluate(model, info.eval_env_spec, mode="window", **common)
    recurrent = evaluate(model, info.eval_env_spec, mode="recurrent", **common)
    assert window.actions.shape == recurrent.actions.shape and window.actions.shape[1] == 4
    assert np.abs(window.actions).max() > 0.05
    np.testing.assert_allclose(window.actions, recurrent.actions, atol=2e-5, rtol=0)
    # the whole-episode KV cache (kv_steps=0) gives the same first K actions too
    unbounded = evaluate(model, info.eval_env_spec, mode="recurrent", kv_steps=0, **common)
    np.testing.assert_allclose(unbounded.actions, recurrent.actions, atol=2e-5, rtol=0)


class NeverTerminates(gym.Wrapper):
    def step(self, action):
        obs, reward, _, truncated, info = self.env.step(action)
        return obs, reward, False, truncated, info


def no_termination_spec(max_steps: int):
    name = "tests/InvertedDoublePendulumNoTermination-v0"
    if name not in gym.registry:
        gym.register(name, entry_point=lambda **kw: NeverTerminates(gym.make("InvertedDoublePendulum-v5", **kw).unwrapped))
    return dataclasses.replace(gym.spec(name), max_episode_steps=max_steps)


def test_transformer_kv_cache_of_k_steps_sees_what_the_window_sees(store, tmp_path):
    """With one layer, a K-step KV cache gives exactly the window's attention span at every step
    (a layer's keys and values depend on its own token only). DT's layout: with one token per step a
    window's first token has a_{t-1} = 0 where the cache keeps the true one (agents/model.py)."""
    torch.manual_seed(0)
    config = tiny_config(tmp_path, "transformer", context_len=K, token_layout="dt")
    info = DatasetInfo.from_store(store)
    model = build_model(config, info, store)
    common = dict(targets=[9000.0], episodes=2, context_len=K, max_steps=3 * K, record_actions=True, seed=1)
    spec = no_termination_spec(3 * K)
    window = evaluate(model, spec, mode="window", **common)
    recurrent = evaluate(model, spec, mode="recurrent", **common)
    assert window.actions.shape[0] == 3 * K and np.abs(window.actions).max() > 0.01
    np.testing.assert_allclose(window.actions, recurrent.actions, atol=2e-5, rtol=0)


@pytest.mark.parametrize("mode", ["window", "recurrent"])
def test_vector_env_equals_separate_single_env_runs(store, tmp_path, mode):
    model, info = tiny_model(store, tmp_path, "mingru")
    reference, _ = info.reference_with_reason
    spec = info.eval_env_spec
    n, seed = 3, 11
    together = evaluate(model, spec, [9000.0], n, mode=mode, context_len=K, seed=seed, max_steps=30, reference=reference)
    alone = [evaluate(model, spec, [9000.0], 1, mode=mode, context_len=K, seed=seed + e, max_steps=30, reference=reference)
             for e in range(n)]
    np.testing.assert_allclose(together.targets[0].returns, [a.targets[0].returns[0] for a in alone], rtol=1e-6, atol=1e-6)
    assert together.targets[0].lengths == [a.targets[0].lengths[0] for a in alone]
    np.testing.assert_allclose(together.targets[0].normalized, [a.targets[0].normalized[0] for a in alone], rtol=1e-6)


def test_async_vector_env_matches_sync(store, tmp_path):
    model, info = tiny_model(store, tmp_path, "mingru")
    spec = info.eval_env_spec
    kwargs = dict(targets=[9000.0], episodes=2, context_len=K, seed=5, max_steps=15)
    sync = evaluate(model, spec, vectorization="sync", **kwargs)
    asynchronous = evaluate(model, spec, vectorization="async", **kwargs)
    np.testing.assert_allclose(sync.targets[0].returns, asynchronous.targets[0].returns, rtol=1e-6)


def test_report_without_reference_gives_raw_returns_and_the_reason(store, tmp_path):
    model, info = tiny_model(store, tmp_path, "mingru")
    report = evaluate(model, info.eval_env_spec, [100.0], 2, context_len=K, max_steps=5,
                      no_reference_reason="no reference score for SomeEnv-v0")
    assert report.reference is None and report.targets[0].normalized is None
    assert "no reference score for SomeEnv-v0" in report.lines()[-1]
    assert report.score(0) == report.targets[0].return_mean

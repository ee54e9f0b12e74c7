"""Policy: the one stepping code of the evaluator and the benchmarks; window and recurrent agree on the
first K steps, and the transformer's KV cache keeps exactly kv_steps steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import evaluator
from agents.benchmarks import evaluation, latency
from agents.benchmarks.untrained import benchmark_store, untrained_model
from agents.evaluator import evaluate
from agents.policy import Policy
from sequence_models.attention import KVCache
from sequence_models.backbone_configs import BACKBONE_CONFIGS

K = 5
TINY = {"d_model": 16, "n_layers": 2}


@pytest.fixture(scope="module")
def store():
    return benchmark_store()


def tiny_model(store, name: str, size: dict = TINY, token_layout: str = "dt"):
    model = untrained_model(name, store, K, size, token_layout=token_layout)
    with torch.no_grad():  # larger outputs than the init gives, so that a difference would show
        model.predict_action.weight.mul_(20)
    return model


def random_inputs(model, steps: int, batch: int = 3, seed: int = 0):
    """(observations, returns-to-go) per step, as an env would give them."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, model.obs_dim)), 9000.0 - 100.0 * t + rng.normal(size=batch)) for t in range(steps)]


def play(policy: Policy, inputs) -> np.ndarray:
    return np.stack([policy.act(obs, rtg, t).numpy() for t, (obs, rtg) in enumerate(inputs)])


def test_evaluator_and_benchmarks_step_through_the_one_policy():
    assert evaluator.Policy is evaluation.Policy is latency.Policy is Policy


@pytest.mark.parametrize("token_layout", ["dt", "step"])
@pytest.mark.parametrize("name", list(BACKBONE_CONFIGS))
def test_window_and_recurrent_agree_on_first_k_steps(store, name, token_layout):
    model = tiny_model(store, name, token_layout=token_layout)
    inputs = random_inputs(model, K)
    window = play(Policy(model, "window", 3, K), inputs)
    recurrent = play(Policy(model, "recurrent", 3, K), inputs)
    assert np.abs(window).max() > 0.05
    np.testing.assert_allclose(window, recurrent, atol=2e-5, rtol=0)


def test_reset_starts_a_new_episode(store):
    model = tiny_model(store, "mingru")
    inputs = random_inputs(model, K + 2)
    for mode in ("window", "recurrent"):
        policy = Policy(model, mode, 3, K)
        first = play(policy, inputs)
        policy.reset()
        np.testing.assert_array_equal(play(policy, inputs), first)


def _cache_tokens(policy: Policy) -> set[int]:
    return {c.keys.shape[2] for c in policy.carry if isinstance(c, KVCache)}


@pytest.mark.parametrize("kv_steps, kept", [(2, 3 * 2 - 4), (-1, 3 * K - 4), (0, None)])
def test_kv_cache_is_cut_to_kv_steps_before_the_next_three_tokens(store, kv_steps, kept):
    policy = Policy(tiny_model(store, "transformer"), "recurrent", 2, K, kv_steps=kv_steps)
    for t, (obs, rtg) in enumerate(random_inputs(policy.model, 3 * K, batch=2)):
        policy.act(obs, rtg, t)
        tokens = 2 + 3 * t  # R̂_0 s_0, then a, R̂, s per step
        assert _cache_tokens(policy) == {tokens if kept is None else min(tokens, kept)}


def test_kv_steps_cache_sees_what_a_kv_steps_window_sees(store):
    """One layer: a kv_steps-step KV cache gives a kv_steps-step window's attention span at every step,
    whatever the context length (keys and values of one layer depend on their own token only)."""
    model = tiny_model(store, "transformer", {"d_model": 16, "n_layers": 1})
    inputs = random_inputs(model, 4 * K)
    window = play(Policy(model, "window", 3, 3), inputs)
    recurrent = play(Policy(model, "recurrent", 3, K, kv_steps=3), inputs)
    np.testing.assert_allclose(window, recurrent, atol=2e-5, rtol=0)


def test_dt_loop_plays_the_evaluators_episodes(store):
    """The DT/CORL baseline (one env, batch 1) and the evaluator (one vector env) run the same episodes."""
    model = tiny_model(store, "lru")
    spec = evaluation.benchmark_env_spec(12)
    steps, _, returns = evaluation.dt_style_evaluation(model, spec, 2, K, 9000.0)
    report = evaluate(model, spec, [9000.0], 2, mode="window", context_len=K, seed=0, vectorization="sync")
    assert steps == 24 and report.targets[0].lengths == [12, 12]
    np.testing.assert_allclose(returns, report.targets[0].returns, rtol=1e-6)


def test_policy_rejects_an_unknown_mode(store):
    with pytest.raises(ValueError, match="mode must be"):
        Policy(tiny_model(store, "mingru"), "beam", 1, K)

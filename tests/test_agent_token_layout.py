"""token_layout "step" (one token per step from R̂_t, s_t, a_{t-1}): causal as the DT layout, the same
parameters, the KV cache keeps kv_steps steps, and a run trains, saves and evaluates with it (window
and recurrent inference agree: tests/test_agent_policy.py, both layouts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.benchmarks.untrained import benchmark_store, untrained_model
from agents.policy import Policy
from sequence_models.attention import KVCache
from tests.agent_helpers import tiny_config
from tests.test_agent_policy import random_inputs

K = 5
TINY = {"d_model": 16, "n_layers": 2}


@pytest.fixture(scope="module")
def store():
    return benchmark_store()


def step_model(store, name: str, size: dict = TINY):
    model = untrained_model(name, store, K, size, token_layout="step")
    with torch.no_grad():  # larger outputs than the init gives, so that a difference would show
        model.predict_action.weight.mul_(20)
    return model


def segment(model, batch: int = 2, steps: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, steps, 1, generator=g), torch.randn(batch, steps, model.obs_dim, generator=g),
            torch.randn(batch, steps, model.act_dim, generator=g).clamp(-1, 1), torch.arange(steps).repeat(batch, 1))


def test_same_parameters_as_the_dt_layout(store):
    dt = untrained_model("mingru", store, K, TINY)
    assert [(n, p.shape) for n, p in step_model(store, "mingru").named_parameters()] == \
        [(n, p.shape) for n, p in dt.named_parameters()]


@pytest.mark.parametrize("name", ["mingru", "transformer", "lstm"])
def test_action_t_reads_the_previous_action_not_its_own(store, name):
    model = untrained_model(name, store, K, TINY, token_layout="step")  # unscaled: tanh must not saturate
    rtg, states, actions, t = segment(model)
    base = model(rtg, states, actions, t)
    changed = actions.clone()
    changed[:, 3] += 0.5
    moved = model(rtg, states, changed, t)
    torch.testing.assert_close(moved[:, :4], base[:, :4], atol=1e-6, rtol=0)  # â_≤3 does not see a_3
    assert (moved[:, 4] - base[:, 4]).abs().max() > 1e-4  # â_4 does


def test_window_action_is_the_forward_prediction_at_the_last_step(store):
    model = step_model(store, "lru")
    rtg, states, actions, t = segment(model)
    torch.testing.assert_close(model.window_actions(rtg, states, actions, t), model(rtg, states, actions, t)[:, -1])


@pytest.mark.parametrize("kv_steps", [2, 3])
def test_kv_cache_keeps_kv_steps_steps(store, kv_steps):
    model = step_model(store, "transformer", {"d_model": 16, "n_layers": 1})
    policy = Policy(model, "recurrent", 2, K, kv_steps=kv_steps)
    for t, (obs, rtg) in enumerate(random_inputs(model, 3 * K, batch=2)):
        policy.act(obs, rtg, t)
        assert {c.keys.shape[2] for c in policy.carry if isinstance(c, KVCache)} == {min(t + 1, kv_steps - 1)}


def test_a_run_trains_saves_and_evaluates_with_it(tmp_path):
    from agents.checkpoints import load_agent
    from agents.run import train_agent
    from sequence_models.training.config import override

    result = train_agent(override(tiny_config(tmp_path), token_layout="step"), quiet=True)
    model, config, _ = load_agent(f"{result['run_dir']}/checkpoints/last.pt", torch.device("cpu"))
    assert config.token_layout == "step" and model.token_layout == "step"
    assert all(np.isfinite(v) for v in result["final_score"].values())


def test_the_default_is_one_token_per_step_and_the_dt_presets_keep_dts():
    from agents.config import PRESETS, AgentConfig

    assert AgentConfig().token_layout == "step" and PRESETS["claims-cheetah"]().token_layout == "step"
    assert {PRESETS[name]().token_layout for name in ("dt", "hopper-medium", "walker2d-expert")} == {"dt"}


def test_a_config_saved_before_the_field_existed_keeps_dts_layout(tmp_path):
    """A config.yaml or checkpoint without token_layout was written when every run used DT's layout."""
    import yaml

    from agents.config import AgentConfig
    from sequence_models.training.config import from_plain, load_config_file, to_plain

    plain = to_plain(AgentConfig())
    assert from_plain(AgentConfig, plain).token_layout == "step"
    del plain["token_layout"]
    assert from_plain(AgentConfig, plain).token_layout == "dt"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"task": "agent", "command": "old", "config": plain}))
    assert load_config_file(path, AgentConfig, "agent").token_layout == "dt"

"""The blocks' options inside the agent: a causal convolution before each mixer (--backbone.conv-kernel)
and RMSNorm (--backbone.norm rms) keep window and recurrent inference in agreement, the transformer's
KV cache cut to kv_steps, and a run trains and reloads with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.benchmarks.untrained import benchmark_store, untrained_model
from agents.policy import Policy
from sequence_models.attention import KVCache
from sequence_models.backbone import BlockState
from tests.agent_helpers import tiny_config
from tests.test_agent_policy import play, random_inputs

K = 5
CONV = {"d_model": 16, "n_layers": 2, "conv_kernel": 3, "norm": "rms"}


@pytest.fixture(scope="module")
def store():
    return benchmark_store()


@pytest.mark.parametrize("name", ["mingru", "transformer", "gru"])
def test_window_and_recurrent_agree_on_first_k_steps(store, name):
    model = untrained_model(name, store, K, CONV)
    with torch.no_grad():
        model.predict_action.weight.mul_(20)
    inputs = random_inputs(model, K)
    window = play(Policy(model, "window", 3, K), inputs)
    np.testing.assert_allclose(window, play(Policy(model, "recurrent", 3, K), inputs), atol=2e-5, rtol=0)
    assert np.abs(window).max() > 0.05


def test_kv_cache_inside_a_conv_block_is_cut_to_kv_steps(store):
    policy = Policy(untrained_model("transformer", store, K, CONV), "recurrent", 2, K, kv_steps=2)
    for t, (obs, rtg) in enumerate(random_inputs(policy.model, 3 * K, batch=2)):
        policy.act(obs, rtg, t)
        assert all(isinstance(c, BlockState) for c in policy.carry)
        assert {c.mixer.keys.shape[2] for c in policy.carry if isinstance(c.mixer, KVCache)} == {min(2 + 3 * t, 2)}


def test_a_run_trains_and_reloads_with_them(tmp_path):
    import dataclasses

    from agents.checkpoints import load_agent
    from agents.run import train_agent

    config = tiny_config(tmp_path)
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, conv_kernel=3, norm="rms"))
    result = train_agent(config, quiet=True)
    model, loaded, _ = load_agent(f"{result['run_dir']}/checkpoints/last.pt", torch.device("cpu"))
    assert loaded.backbone.conv_kernel == 3 and model.backbone.blocks[0].conv is not None
    assert all(np.isfinite(v) for v in result["final_score"].values())

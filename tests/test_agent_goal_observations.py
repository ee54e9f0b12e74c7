"""Goal-conditioned Dict observations end to end: an agent trains on a Dict-observation Minari dataset
this test records and evaluates in its env, which returns dicts; the store and the evaluator flatten
them the same way (concat(observation, desired_goal))."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.run import train_agent
from envs.dataset_writing import rollout_episodes, write_minari_dataset
from tests.agent_helpers import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")
ENV_ID = "tests/GoalPendulum-v0"


class GoalPendulum(gym.Wrapper):
    """InvertedDoublePendulum with pointmaze-style Dict observations: a goal to reach with the cart."""

    def __init__(self, **kwargs):
        super().__init__(gym.make("InvertedDoublePendulum-v5", **kwargs))
        inner = self.env.observation_space
        goal = gym.spaces.Box(-1.0, 1.0, (1,), np.float64)
        self.observation_space = gym.spaces.Dict({"observation": inner, "achieved_goal": goal, "desired_goal": goal})
        self.goal = np.zeros(1)

    def _dict(self, obs):
        return {"observation": obs, "achieved_goal": obs[:1].copy(), "desired_goal": self.goal.copy()}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.goal = self.env.np_random.uniform(-0.5, 0.5, size=1)
        return self._dict(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._dict(obs), reward, terminated, truncated, info


@pytest.fixture
def goal_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=f"{__name__}:GoalPendulum", max_episode_steps=40)
    env = gym.make(ENV_ID)
    buffers = rollout_episodes(env, None, seeds=range(6))
    env.close()
    write_minari_dataset("tests/goalpendulum/random-v0", buffers, ENV_ID, None, None, algorithm_name="random policy",
                         description="goal-conditioned Dict observations (test)")
    return "tests/goalpendulum/random-v0"


def test_train_and_evaluate_on_dict_observations(tmp_path, goal_dataset):
    results = train_agent(tiny_config(tmp_path, dataset=goal_dataset, eval_targets=(50.0,), eval_max_steps=10),
                          quiet=True)
    target = results["final"]["targets"][0]
    assert len(target["returns"]) == 2 and all(1 <= n <= 10 for n in target["lengths"])
    assert results["env_id"] == ENV_ID

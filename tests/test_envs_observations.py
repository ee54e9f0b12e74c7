"""flatten_observation: the store's flattening of a goal-conditioned Dict dataset, and the same for env observations."""

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from envs.observations import GOAL_KEYS, UnsupportedObservationError, flat_observation_dim, flatten_observation
from envs.trajectory_store import TrajectoryStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")
GOAL_SPACE = gym.spaces.Dict({
    "achieved_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
    "desired_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
    "observation": gym.spaces.Box(-10, 10, (4,), np.float64),
})


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def goal_episode(seed: int, t: int) -> EpisodeBuffer:
    rng = np.random.default_rng(seed)
    obs = {k: rng.normal(size=(t + 1,) + GOAL_SPACE[k].shape) for k in GOAL_SPACE}
    trunc = np.zeros(t, bool)
    trunc[-1] = True
    return EpisodeBuffer(observations=obs, actions=rng.uniform(-1, 1, (t, 1)).astype(np.float32), rewards=np.ones(t),
                         terminations=np.zeros(t, bool), truncations=trunc, infos={})


def test_store_rows_are_flatten_observation_of_single_and_batched_dicts():
    episodes = [goal_episode(0, 3), goal_episode(1, 5)]
    minari.create_dataset_from_buffers("tests/goalmaze-v0", episodes, observation_space=GOAL_SPACE,
                                       action_space=gym.spaces.Box(-1, 1, (1,), np.float32))
    store = TrajectoryStore.from_dataset_id("tests/goalmaze-v0")
    assert store.obs_dim == flat_observation_dim(GOAL_SPACE) == 6
    for e, episode in enumerate(episodes):
        rows = store.states[store.episode_starts[e]:store.episode_starts[e + 1]]
        for t in range(len(rows)):  # one env observation, as gym.Env.step returns it
            single = {k: v[t] for k, v in episode.observations.items()}
            np.testing.assert_array_equal(flatten_observation(single), rows[t])
            np.testing.assert_array_equal(rows[t], np.concatenate([single[k] for k in GOAL_KEYS]).astype(np.float32))
        # a vector env's batch: one (N, d) array per key
        batch = {k: v[:-1] for k, v in episode.observations.items()}
        flat = flatten_observation(batch)
        assert flat.dtype == np.float32 and flat.shape == (len(rows), 6)
        np.testing.assert_array_equal(flat, rows)


def test_box_observations_pass_and_unsupported_ones_are_refused():
    vec = np.arange(3, dtype=np.float64)
    assert flatten_observation(vec).dtype == np.float32 and flatten_observation(vec).shape == (3,)
    assert flatten_observation(np.ones((4, 3))).shape == (4, 3)
    with pytest.raises(UnsupportedObservationError, match=r"lacks \['desired_goal'\]"):
        flatten_observation({"observation": vec})
    with pytest.raises(UnsupportedObservationError, match="expected one vector"):
        flatten_observation(np.zeros((2, 4, 4)))
    with pytest.raises(UnsupportedObservationError, match="must all be single or all batches"):
        flatten_observation({"observation": np.zeros((2, 4)), "desired_goal": np.zeros(2)})
    with pytest.raises(UnsupportedObservationError, match="image observations"):
        flat_observation_dim(gym.spaces.Box(0, 255, (4, 4, 3), np.uint8))

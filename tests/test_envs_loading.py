"""Minari loading: state/action alignment on every episode, goal observations, clear errors."""

from types import SimpleNamespace

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from envs.dataset_writing import rollout_episodes, write_minari_dataset
from envs.minari_loading import (
    DatasetDownloadError,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    InvalidDatasetIdError,
    flatten_episodes,
    load_episodes,
)
from envs.scripted_controllers import ReacherOperationalSpace

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")
ACT = gym.spaces.Box(-1e6, 1e6, (1,), np.float32)


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def _episode(observations, actions, terminated=False):
    t = len(actions)
    term, trunc = np.zeros(t, bool), np.zeros(t, bool)
    (term if terminated else trunc)[-1] = True
    return EpisodeBuffer(observations=observations, actions=np.asarray(actions, np.float32), rewards=np.ones(t),
                         terminations=term, truncations=trunc, infos={})


def test_counter_dataset_aligned_on_every_episode():
    # State = (episode, t); the action taken in it is the number episode*1000 + t. Episodes of
    # different lengths (1 step included): any off-by-one after episode 0 shows up exactly.
    lengths = [5, 1, 7, 3, 12]
    buffers = []
    for e, t in enumerate(lengths):
        obs = np.stack([np.full(t + 1, e), np.arange(t + 1)], axis=1).astype(np.float64)
        buffers.append(_episode(obs, (e * 1000 + np.arange(t))[:, None], terminated=e % 2 == 0))
    space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    minari.create_dataset_from_buffers("tests/counter-v0", buffers, observation_space=space, action_space=ACT)

    data = load_episodes("tests/counter-v0")
    assert data.num_episodes == len(lengths)
    assert np.array_equal(data.episode_lengths, lengths)
    for e in range(data.num_episodes):
        s, end = data.episode_starts[e], data.episode_starts[e + 1]
        states, actions = data.observations[s:end], data.actions[s:end, 0]
        assert np.all(states[:, 0] == e)
        assert np.array_equal(actions, states[:, 0] * 1000 + states[:, 1])  # a = pi(s) at every step
        assert np.array_equal(states[:, 1], np.arange(end - s))  # the final observation is not a state
        assert data.terminations[end - 1] == (e % 2 == 0) and data.truncations[end - 1] == (e % 2 == 1)
        assert not data.terminations[s:end - 1].any() and not data.truncations[s:end - 1].any()


def test_controller_dataset_action_is_policy_of_stored_state_on_every_episode():
    env = gym.make("Reacher-v5")
    policy = ReacherOperationalSpace(env)
    buffers = rollout_episodes(env, policy, seeds=range(6))
    write_minari_dataset("tests/reacher/ctrl-v0", buffers, "Reacher-v5", None, None, "osc", "test")

    data = load_episodes("tests/reacher/ctrl-v0")
    assert data.num_episodes == 6
    for e in range(data.num_episodes):
        s, end = data.episode_starts[e], data.episode_starts[e + 1]
        expected = np.stack([policy(o) for o in data.observations[s:end].astype(np.float64)])
        np.testing.assert_allclose(data.actions[s:end], expected, atol=1e-4)
        # the test has power: pairing actions with the next states (the usual bug) fails it
        shifted = np.stack([policy(o) for o in data.observations[s + 1:end].astype(np.float64)])
        assert np.abs(data.actions[s:end - 1] - shifted).max() > 1e-2


def test_goal_dict_observations_are_observation_then_desired_goal():
    space = gym.spaces.Dict({
        "achieved_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
        "desired_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
        "observation": gym.spaces.Box(-10, 10, (4,), np.float64),
    })
    buffers = []
    for e, t in enumerate([3, 4]):
        obs = {"observation": np.arange(4 * (t + 1), dtype=np.float64).reshape(t + 1, 4) + 100 * e,
               "achieved_goal": np.full((t + 1, 2), -1.0), "desired_goal": np.full((t + 1, 2), float(e))}
        buffers.append(_episode(obs, np.zeros((t, 1))))
    minari.create_dataset_from_buffers("tests/maze-v0", buffers, observation_space=space, action_space=ACT)

    data = load_episodes("tests/maze-v0")
    assert data.observations.shape == (7, 6)
    assert data.observation_layout == "observation(4,) + desired_goal(2,)"
    np.testing.assert_array_equal(data.observations[3], [100, 101, 102, 103, 1, 1])  # episode 1, t = 0
    np.testing.assert_array_equal(data.observations[2], [8, 9, 10, 11, 0, 0])  # episode 0, last state


def test_unknown_dataset_says_how_to_list_and_download_and_names_builtins():
    with pytest.raises(DatasetNotFoundError) as err:
        load_episodes("mujoco/nothere/expert-v0")
    msg = str(err.value)
    assert "minari list remote" in msg and "minari download mujoco/nothere/expert-v0" in msg
    assert "builtin/inverteddoublependulum/mixed-v0" in msg
    with pytest.raises(DatasetNotFoundError, match="not a built-in"):
        load_episodes("builtin/nothere/mixed-v0")
    for bad in ("no spaces allowed", "nope", "a/b", 3):  # "nope" made minari's parser raise a TypeError
        with pytest.raises(InvalidDatasetIdError, match="not a Minari dataset id: expected namespace/name-vN") as err:
            load_episodes(bad)
        assert repr(bad) in str(err.value) and "builtin/" in str(err.value) and "\n" not in str(err.value)
        assert isinstance(err.value, ValueError) and isinstance(err.value, DatasetError)


def test_download_failures_are_clear_and_leave_nothing(monkeypatch, minari_root):
    def offline(dataset_id):
        (minari_root / dataset_id / "data").mkdir(parents=True)  # what a partial download leaves
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(minari, "download_dataset", offline)
    with pytest.raises(DatasetDownloadError, match="no network") as err:
        load_episodes("mujoco/hopper/expert-v0", download=True)
    assert "minari download mujoco/hopper/expert-v0" in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, DatasetError)
    assert not (minari_root / "mujoco/hopper/expert-v0").exists()

    (minari_root / "mujoco/hopper/expert-v0").mkdir(parents=True)  # a folder left by something else
    monkeypatch.setattr(minari, "download_dataset", lambda dataset_id: None)  # minari skips existing folders
    with pytest.raises(DatasetDownloadError, match="holds no complete dataset.*remove that folder"):
        load_episodes("mujoco/hopper/expert-v0", download=True)
    (minari_root / "mujoco/hopper/expert-v0").rmdir()

    def no_client(dataset_id):
        raise ImportError("huggingface_hub is not installed")

    monkeypatch.setattr(minari, "download_dataset", no_client)
    with pytest.raises(DatasetDownloadError, match=r"minari\[hf\]"):
        load_episodes("mujoco/hopper/expert-v0", download=True)


def test_empty_and_image_datasets_are_refused():
    box = gym.spaces.Box(-1, 1, (2,), np.float64)
    minari.create_dataset_from_buffers("tests/empty-v0", [], observation_space=box, action_space=ACT)
    with pytest.raises(DatasetFormatError, match="empty"):
        load_episodes("tests/empty-v0")
    image = gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    buffer = _episode(np.zeros((3, 4, 4, 3), np.uint8), np.zeros((2, 1)))
    minari.create_dataset_from_buffers("tests/image-v0", [buffer], observation_space=image, action_space=ACT,
                                       jpeg_encoding=False)
    with pytest.raises(DatasetFormatError, match="image observations"):
        load_episodes("tests/image-v0")


def test_zero_length_episode_is_refused():
    # Minari itself cannot write one, but datasets from elsewhere can hold one: a duck-typed dataset.
    box = gym.spaces.Box(-1, 1, (2,), np.float64)
    episodes = [
        SimpleNamespace(id=0, observations=np.zeros((3, 2)), actions=np.zeros((2, 1)), rewards=np.zeros(2),
                        terminations=np.zeros(2, bool), truncations=np.zeros(2, bool)),
        SimpleNamespace(id=1, observations=np.zeros((1, 2)), actions=np.zeros((0, 1)), rewards=np.zeros(0),
                        terminations=np.zeros(0, bool), truncations=np.zeros(0, bool)),
    ]
    fake = SimpleNamespace(spec=SimpleNamespace(dataset_id="tests/fake-v0", env_spec=None), observation_space=box,
                           action_space=ACT, total_episodes=2, total_steps=2, env_spec=None,
                           iterate_episodes=lambda: iter(episodes), storage=SimpleNamespace(metadata={}))
    with pytest.raises(DatasetFormatError, match="episode 1 has zero steps"):
        flatten_episodes(fake)

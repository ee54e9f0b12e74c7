"""d3rlpy's `get_minari` misaligns states and actions on every episode after the first (README, "Peers"):
it concatenates each episode's T+1 observations but only its T actions, then cuts both at the action
offsets, so episode e's states lag its actions by e steps. Reproduced here on a dataset the test
makes, next to the export the peers suite hands d3rlpy instead (write_peer_episodes), which lines up.

Runs only where d3rlpy is importable. d3rlpy 2.8.1 pins gymnasium 1.0.0, so it is skipped in the
project's environment; run it with the peer environment's python (README, "Peers"). This file imports
envs and the export alone, nothing that needs the project's gymnasium.
"""

import numpy as np
import pytest

d3rlpy = pytest.importorskip("d3rlpy")
minari = pytest.importorskip("minari")

from minari.data_collector import EpisodeBuffer

from agents.benchmarks.peer_process import write_peer_episodes
from envs.minari_loading import load_episodes

pytestmark = pytest.mark.filterwarnings("ignore")
LENGTHS = [6, 4, 7, 5]
DATASET_ID = "tests/counterpendulum/aligned-v0"


@pytest.fixture()
def counter_dataset(tmp_path, monkeypatch):
    """InvertedDoublePendulum-v5 episodes whose state encodes (episode, t) and whose action encodes the
    state it was taken in: action = (100 e + t) / 1000."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    buffers = []
    for e, steps in enumerate(LENGTHS):
        observations = np.zeros((steps + 1, 9))
        observations[:, 0], observations[:, 1] = e, np.arange(steps + 1)
        truncations = np.zeros(steps, bool)
        truncations[-1] = True
        buffers.append(EpisodeBuffer(id=e, observations=observations,
                                     actions=((100 * e + np.arange(steps)) / 1000)[:, None].astype(np.float32),
                                     rewards=np.ones(steps), terminations=np.zeros(steps, bool),
                                     truncations=truncations, infos={}))
    minari.create_dataset_from_buffers(DATASET_ID, buffers, env="InvertedDoublePendulum-v5",
                                       algorithm_name="counter", author="tests", author_email="n/a",
                                       code_permalink="tests", description="counter")
    return DATASET_ID


def _taken_in(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(episode, t) of the state each action was taken in."""
    code = np.rint(actions[:, 0] * 1000).astype(int)
    return code // 100, code % 100


def test_get_minari_states_lag_actions_by_the_episode_index(counter_dataset):
    dataset, _env = d3rlpy.datasets.get_minari(counter_dataset)
    assert [len(ep.actions) for ep in dataset.episodes] == LENGTHS
    for e, episode in enumerate(dataset.episodes):
        action_episode, action_t = _taken_in(episode.actions)
        assert np.all(action_episode == e) and np.array_equal(action_t, np.arange(LENGTHS[e]))
        state_episode, state_t = episode.observations[:, 0], episode.observations[:, 1]
        # the first e states are the tail of the episodes before; from there on state t is step t - e
        assert np.all(state_episode[:e] != e)
        assert np.all(state_episode[e:] == e) and np.array_equal(state_t[e:], np.arange(LENGTHS[e] - e))
    misaligned = sum(not np.array_equal(ep.observations[:, 1], _taken_in(ep.actions)[1]) for ep in dataset.episodes)
    assert misaligned == len(LENGTHS) - 1


def test_the_peers_export_is_aligned_in_d3rlpy(counter_dataset, tmp_path):
    path = write_peer_episodes(load_episodes(counter_dataset), tmp_path / "episodes.npz")
    data = np.load(path)
    dataset = d3rlpy.dataset.MDPDataset(observations=data["observations"], actions=data["actions"],
                                        rewards=data["rewards"], terminals=data["terminals"], timeouts=data["timeouts"])
    assert [len(ep.actions) for ep in dataset.episodes] == LENGTHS
    for e, episode in enumerate(dataset.episodes):
        action_episode, action_t = _taken_in(episode.actions)
        assert np.all(episode.observations[:, 0] == action_episode) and np.all(action_episode == e)
        assert np.array_equal(episode.observations[:, 1], action_t)

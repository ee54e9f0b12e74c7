"""Built-in datasets and make_dataset: real Minari datasets, read back by minari; nothing half-written."""

import time
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from envs.builtin_datasets import BUILTIN_DATASETS, GALLOP, ensure_builtin_dataset
from envs.dataset_writing import rollout_episodes, write_minari_dataset
from envs.eval_env import eval_env_spec, make_eval_vector_env
from envs.minari_ids import DEFAULT_DATASET_ID
from envs.scripted_controllers import DoublePendulumLQR
from envs.trajectory_store import TrajectoryStore
from tests.script_loading import load_script



@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_default_builtin_is_quick_and_its_returns_spread():
    start = time.perf_counter()
    path = ensure_builtin_dataset(DEFAULT_DATASET_ID)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"default built-in took {elapsed:.1f} s"
    assert Path(path).exists() and ensure_builtin_dataset(DEFAULT_DATASET_ID) == path  # second call: no work

    dataset = minari.load_dataset(DEFAULT_DATASET_ID)
    spec = BUILTIN_DATASETS[DEFAULT_DATASET_ID]
    assert dataset.total_episodes == spec.num_episodes
    store = TrajectoryStore.from_dataset_id(DEFAULT_DATASET_ID)
    assert store.num_steps == dataset.total_steps
    scores, name = store.normalize(store.episode_returns)
    assert name == f"minari metadata of {DEFAULT_DATASET_ID}"
    # return conditioning matters: near-random and expert episodes both present, the mean well below the best
    assert scores.min() < 10 and scores.max() > 95 and 25 < scores.mean() < 75
    assert (scores > 90).sum() >= 10 and (scores < 20).sum() >= 10


def test_lqr_controller_balances_and_random_does_not():
    env = gym.make("InvertedDoublePendulum-v5")
    expert = rollout_episodes(env, DoublePendulumLQR(env), seeds=[0, 1])
    random = rollout_episodes(env, None, seeds=[0, 1])
    assert all(len(b["actions"]) == 1000 for b in expert)
    assert all(len(b["actions"]) < 100 for b in random)


def test_make_dataset_random_recording_read_back_by_minari(minari_root):
    module = load_script("make_dataset")
    module.main(["--dataset-id", "local/reacher/random-v0", "--env-id", "Reacher-v5", "--num-episodes", "4", "--seed", "5"])
    dataset = minari.load_dataset("local/reacher/random-v0")
    assert (dataset.total_episodes, dataset.total_steps) == (4, 200)
    episode = next(iter(dataset.iterate_episodes()))
    assert episode.observations.shape == (51, 10) and episode.actions.shape == (50, 2)
    assert dataset.env_spec.id == "Reacher-v5"
    assert eval_env_spec("local/reacher/random-v0").id == "Reacher-v5"
    vector_env = make_eval_vector_env("local/reacher/random-v0", 2)
    assert vector_env.num_envs == 2 and vector_env.spec.id == "Reacher-v5"
    vector_env.close()
    with pytest.raises(FileExistsError, match="already exists"):
        module.main(["--dataset-id", "local/reacher/random-v0", "--env-id", "Reacher-v5", "--num-episodes", "4"])
    with pytest.raises(ValueError, match="not a registered Gymnasium env"):
        module.main(["--dataset-id", "local/x/random-v0", "--env-id", "NoSuchEnv-v0"])
    with pytest.raises(ValueError, match="give --env-id"):
        module.main(["--dataset-id", "local/x/random-v0"])
    with pytest.raises(ValueError, match="not a Minari dataset id"):  # before any episode is rolled out
        module.main(["--dataset-id", "nope", "--env-id", "Reacher-v5"])
    with pytest.raises(ValueError, match="Discrete action space"):
        module.main(["--dataset-id", "local/cartpole/random-v0", "--env-id", "CartPole-v1"])


def test_failed_write_leaves_nothing(minari_root, monkeypatch):
    env = gym.make("Reacher-v5")
    buffers = rollout_episodes(env, None, seeds=[0, 1])
    def crash(self, episodes):
        raise RuntimeError("disk full")

    import minari.dataset._storages.hdf5_storage as hdf5

    monkeypatch.setattr(hdf5.HDF5Storage, "update_episodes", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_minari_dataset("local/reacher/crash-v0", buffers, "Reacher-v5", None, None, "random", "test")
    assert leftovers(minari_root) == []
    with pytest.raises(ValueError, match="zero steps"):
        write_minari_dataset("local/reacher/empty-v0", [dict(buffers[0], actions=np.zeros((0, 2)))],
                             "Reacher-v5", None, None, "random", "test")
    with pytest.raises(ValueError, match="not a Minari dataset id"):
        write_minari_dataset("bad id", buffers, "Reacher-v5", None, None, "random", "test")
    assert leftovers(minari_root) == []
    assert minari.list_local_datasets() == {}


def test_overwrite_replaces_and_refusal_keeps_the_original(minari_root):
    env = gym.make("Reacher-v5")
    write_minari_dataset("local/reacher/x-v0", rollout_episodes(env, None, seeds=[0]), "Reacher-v5", None, None, "r", "t")
    with pytest.raises(FileExistsError):
        write_minari_dataset("local/reacher/x-v0", rollout_episodes(env, None, seeds=[1, 2]), "Reacher-v5", None, None, "r", "t")
    assert minari.load_dataset("local/reacher/x-v0").total_episodes == 1
    write_minari_dataset("local/reacher/x-v0", rollout_episodes(env, None, seeds=[1, 2]), "Reacher-v5", None, None,
                         "r", "t", overwrite=True)
    assert minari.load_dataset("local/reacher/x-v0").total_episodes == 2
    assert [p.name for p in (minari_root).iterdir() if p.name.startswith(".")] == []


CHEETAH = "builtin/halfcheetah/gaits-v0"


def test_halfcheetah_gaits_is_a_real_minari_dataset_whose_returns_spread_and_actions_are_the_gaits():
    """The built-in where backbones differ: full 250-step episodes, mean normalized 20-40, experts present;
    re-recorded identically, episode 0 being the gait formula itself."""
    start = time.perf_counter()
    ensure_builtin_dataset(CHEETAH)
    elapsed = time.perf_counter() - start
    dataset = minari.load_dataset(CHEETAH)
    spec = BUILTIN_DATASETS[CHEETAH]
    assert (dataset.total_episodes, dataset.total_steps) == (spec.num_episodes, spec.num_episodes * 250)
    assert dataset.env_spec.id == "HalfCheetah-v5" and dataset.env_spec.max_episode_steps == 250
    assert eval_env_spec(CHEETAH).max_episode_steps == 250  # evaluation runs the same time limit
    ref_min, ref_max = dataset.storage.metadata["ref_min_score"], dataset.storage.metadata["ref_max_score"]
    assert ref_min < 0 < ref_max  # random: control cost, no progress; the gallop runs forward
    store = TrajectoryStore.from_dataset_id(CHEETAH)
    scores, name = store.normalize(store.episode_returns)
    assert name == f"minari metadata of {CHEETAH}"
    assert 20 < scores.mean() < 40, f"mean normalized {scores.mean():.1f}"
    assert (scores > 90).sum() >= 5 and (scores < 10).sum() >= 10
    print(f"{CHEETAH}: made in {elapsed:.1f} s")  # under ~30 s on a 2-core CPU (about 10 s measured); not asserted

    # deterministic, and episode 0's actions are the noise-free gallop (made once: it takes 10 s)
    first = next(iter(dataset.iterate_episodes()))
    env = gym.make("HalfCheetah-v5", max_episode_steps=250)
    spec = BUILTIN_DATASETS[CHEETAH]
    again = rollout_episodes(env, spec.controller(env, **spec.episode_controllers[0]), [spec.first_seed],
                             [spec.noise_scales[0]])[0]
    np.testing.assert_allclose(first.actions, again["actions"], atol=1e-6)
    np.testing.assert_allclose(first.observations, again["observations"], atol=1e-6)
    assert spec.noise_scales[0] == 0.0  # so episode 0 is the noise-free gallop: the gait, read off the sim clock
    t = np.arange(250) * env.unwrapped.dt
    gait = GALLOP
    expected = np.clip(np.asarray(gait["amplitudes"]) * np.sin(2 * np.pi * gait["frequency"] * t[:, None]
                                                               + np.asarray(gait["phases"])), -1, 1)
    np.testing.assert_allclose(first.actions, expected, atol=1e-5)

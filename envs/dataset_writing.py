"""Record episodes of a policy in a Gymnasium env and write them as a Minari dataset, atomically.

The dataset is first written under a hidden temporary folder of the Minari data folder (Minari's
listing skips hidden folders) and moved into place with one rename once complete: a failure at any
point (an exception, Ctrl-C) leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
from tqdm import tqdm

Policy = Callable[[np.ndarray], np.ndarray]


def stack_observations(observations: list) -> np.ndarray | dict[str, np.ndarray]:
    """An episode's observations as Minari stores them: one array, or one array per key of a Dict space."""
    if isinstance(observations[0], dict):
        return {key: np.asarray([o[key] for o in observations]) for key in observations[0]}
    return np.asarray(observations)


def rollout_episodes(
    env: gym.Env,
    policy: Policy | None,
    seeds: Sequence[int],
    noise_scales: Sequence[float] | None = None,
    progress: str | None = None,
) -> list[dict]:
    """One Minari episode buffer per seed: the policy's action plus N(0, noise²) noise, clipped to the bounds.

    policy None is the uniform random policy. Episode i resets with seeds[i] and draws its noise
    (or random actions) from a generator seeded with seeds[i], so a recording is reproducible.
    """
    noise_scales = [0.0] * len(seeds) if noise_scales is None else noise_scales
    low, high = env.action_space.low, env.action_space.high
    buffers = []
    for seed, noise in tqdm(list(zip(seeds, noise_scales)), desc=progress, disable=progress is None, leave=False):
        obs, _ = env.reset(seed=int(seed))
        env.action_space.seed(int(seed))
        rng = np.random.default_rng(int(seed))
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        done = False
        while not done:
            if policy is None:
                action = env.action_space.sample()
            else:
                action = policy(obs)
                if noise > 0:
                    action = np.clip(action + noise * rng.standard_normal(action.shape), low, high)
            action = np.asarray(action, dtype=env.action_space.dtype)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(dict(
            observations=stack_observations(observations), actions=np.asarray(actions),
            rewards=np.asarray(rewards, np.float64), terminations=np.asarray(terminations),
            truncations=np.asarray(truncations), infos={}, seed=int(seed),
        ))
    return buffers


@contextlib.contextmanager
def _minari_root(path: Path):
    """Point Minari at another data folder for the duration of the block (it reads the env var per call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def write_minari_dataset(
    dataset_id: str,
    buffers: list,
    env_id: str | gym.envs.registration.EnvSpec,
    ref_min_score: float | None,
    ref_max_score: float | None,
    algorithm_name: str,
    description: str,
    overwrite: bool = False,
) -> Path:
    """Write episodes (dicts as from rollout_episodes, or EpisodeBuffers) as Minari dataset `dataset_id`.

    All or nothing; returns the dataset's folder. ref_min/ref_max go into the Minari metadata.
    """
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.namespace import create_namespace, list_local_namespaces
    from minari.storage import get_dataset_path

    from envs.minari_loading import check_dataset_id

    check_dataset_id(dataset_id)  # a malformed id fails here, before anything is written (InvalidDatasetIdError)
    if not buffers:
        raise ValueError(f"refusing to write {dataset_id}: no episodes")
    if any(len(b["actions"]) == 0 for b in buffers):
        raise ValueError(f"refusing to write {dataset_id}: an episode has zero steps")
    root = get_dataset_path()
    final = get_dataset_path(dataset_id)
    if final.exists() and not overwrite:
        raise FileExistsError(f"dataset {dataset_id} already exists at {final}; pass overwrite=True (--overwrite) to replace it")
    refs = {} if ref_min_score is None or ref_max_score is None else dict(ref_min_score=ref_min_score, ref_max_score=ref_max_score)
    episodes = [b if isinstance(b, EpisodeBuffer) else EpisodeBuffer(id=i, **b) for i, b in enumerate(buffers)]
    tmp_root = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        with _minari_root(tmp_root):
            minari.create_dataset_from_buffers(
                dataset_id, episodes, env=env_id, eval_env=env_id, algorithm_name=algorithm_name,
                author="decision-backbones", author_email="n/a", code_permalink="envs/dataset_writing.py",
                description=description, requirements=[
                    f"gymnasium=={importlib.metadata.version('gymnasium')}", f"mujoco=={importlib.metadata.version('mujoco')}",
                ], **refs,
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp_root / dataset_id, final)  # one rename: the dataset appears complete or not at all
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    namespace = dataset_id.rsplit("/", 1)[0] if "/" in dataset_id else None
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)
    return final

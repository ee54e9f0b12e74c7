"""Load a Minari dataset by id and flatten its episodes into contiguous, aligned arrays.

Alignment. Minari stores T+1 observations per episode against T actions: observations[t] is the
state in which actions[t] was taken, observations[T] is the final state. We keep
observations[:-1] as the states and observations[1:] as the next states, episode by episode, so the
state/action pairing is right on every episode, not only the first (concatenating the raw
observation arrays and slicing once shifts every later episode by one step per earlier episode).

Observations. Box observations are used as they are (flattened to one vector). Dict observations of
goal-conditioned tasks (pointmaze, antmaze: keys observation / achieved_goal / desired_goal) become
`concat(observation, desired_goal)`: the agent sees where it is and where it must go; achieved_goal
is left out because it is a function of the observation. Image observations are refused.

Flattened layout. Episode e occupies rows episode_starts[e] : episode_starts[e + 1] of every array.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

GOAL_KEYS = ("observation", "desired_goal")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset id is neither local, nor built in, nor (when asked) downloadable."""


class DatasetDownloadError(RuntimeError):
    """The download could not run (no network, no remote client installed)."""


class DatasetFormatError(ValueError):
    """The dataset is present but cannot be used: empty, zero-length episodes, images, ..."""


@dataclass(frozen=True)
class EpisodeArrays:
    """All episodes of one dataset, concatenated; episode e is rows episode_starts[e]:episode_starts[e+1]."""

    dataset_id: str
    observations: np.ndarray  # (N, obs_dim) float32: the state in which actions[i] was taken
    next_observations: np.ndarray  # (N, obs_dim) float32: the state after actions[i]
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float64
    terminations: np.ndarray  # (N,) bool: the MDP ended (no bootstrap)
    truncations: np.ndarray  # (N,) bool: cut by a time limit
    episode_starts: np.ndarray  # (E + 1,) int64 offsets
    observation_layout: str  # how a row of observations was built from the dataset's space
    action_space: gym.spaces.Box
    env_spec: gym.envs.registration.EnvSpec | None
    eval_env_spec: gym.envs.registration.EnvSpec | None
    metadata: dict = field(default_factory=dict)  # the raw Minari metadata (ref scores, author, ...)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts) - 1

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_starts)


def _help(dataset_id: str) -> str:
    from envs.builtin_datasets import BUILTIN_DATASETS

    return (
        f"List datasets with `minari list remote` (or `minari list local`), download one with "
        f"`minari download {dataset_id}` (or pass download=True / --download). Built-in datasets that "
        f"need no network: {', '.join(BUILTIN_DATASETS)}."
    )


def load_minari_dataset(dataset_id: str, download: bool = False):
    """The minari.MinariDataset for an id: local, built in (created on first use), or downloaded."""
    import minari
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage import get_dataset_path

    from envs.builtin_datasets import BUILTIN_DATASETS, ensure_builtin_dataset

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise DatasetNotFoundError(
            f"'{dataset_id}' is not a Minari dataset id (namespace/name-vN, e.g. mujoco/hopper/medium-v0). "
            + _help(dataset_id)
        ) from None
    if dataset_id in BUILTIN_DATASETS:
        ensure_builtin_dataset(dataset_id)
        return minari.load_dataset(dataset_id)
    path = get_dataset_path(dataset_id)
    if (path / "data").exists():
        return minari.load_dataset(dataset_id)
    if dataset_id.startswith("builtin/"):
        raise DatasetNotFoundError(f"'{dataset_id}' is not a built-in dataset. " + _help(dataset_id))
    if not download:
        raise DatasetNotFoundError(
            f"dataset '{dataset_id}' is not in the local Minari folder {get_dataset_path()} "
            "(MINARI_DATASETS_PATH). " + _help(dataset_id)
        )
    existed = path.exists()
    try:
        minari.download_dataset(dataset_id)
    except ImportError as e:
        raise DatasetDownloadError(
            f"cannot download '{dataset_id}': the Minari remote client is missing ({e}). "
            "Install it with `pip install \"minari[hf]\"`, or download on a machine that has it and copy the "
            f"dataset folder to {path} (or point MINARI_DATASETS_PATH at a folder that holds it)."
        ) from None
    except ValueError as e:  # Minari's answer for ids the remote does not hold
        raise DatasetNotFoundError(f"cannot download '{dataset_id}': {e} " + _help(dataset_id)) from None
    except Exception as e:  # network errors come in many types (OSError, requests, huggingface_hub)
        raise DatasetDownloadError(
            f"cannot download '{dataset_id}' (no network? remote {os.environ.get('MINARI_REMOTE', 'hf://farama-minari')}): "
            f"{type(e).__name__}: {e}. Download it where there is network (`minari download {dataset_id}`) and copy "
            f"it to {path}, or use a built-in dataset."
        ) from None
    finally:
        if not existed and path.exists() and not (path / "data" / "metadata.json").exists():
            shutil.rmtree(path, ignore_errors=True)  # never leave a half-downloaded dataset behind
    return minari.load_dataset(dataset_id)


def observation_layout(space: gym.Space) -> str:
    """How observations of this space are flattened; raises DatasetFormatError when they cannot be."""
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) > 1:
            raise DatasetFormatError(
                f"image observations (Box{space.shape}) are not supported: the agents take state vectors. "
                "Use a state-based dataset (e.g. mujoco/*, D4RL/pointmaze/*)."
            )
        return f"Box{space.shape}"
    if isinstance(space, gym.spaces.Dict):
        keys = list(space.spaces)
        if not all(k in keys for k in GOAL_KEYS):
            raise DatasetFormatError(
                f"Dict observations with keys {keys} are not supported; only goal-conditioned ones with "
                f"keys {GOAL_KEYS} (pointmaze, antmaze), which are flattened to concat(observation, desired_goal)."
            )
        for k in GOAL_KEYS:
            observation_layout(space[k])
        return " + ".join(f"{k}{space[k].shape}" for k in GOAL_KEYS)
    raise DatasetFormatError(f"observation space {space} is not supported (Box, or Dict with {GOAL_KEYS}).")


def _flat_observations(observations, space: gym.Space) -> np.ndarray:
    if isinstance(space, gym.spaces.Dict):
        parts = [np.asarray(observations[k]).reshape(len(observations[k]), -1) for k in GOAL_KEYS]
        return np.concatenate(parts, axis=1)
    observations = np.asarray(observations)
    return observations.reshape(len(observations), -1)


def flatten_episodes(dataset) -> EpisodeArrays:
    """Concatenate a minari.MinariDataset's episodes into aligned arrays (see the module docstring)."""
    dataset_id = dataset.spec.dataset_id
    obs_space, act_space = dataset.observation_space, dataset.action_space
    layout = observation_layout(obs_space)
    if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
        raise DatasetFormatError(f"{dataset_id}: action space {act_space} is not supported (a 1-D Box is needed).")
    if dataset.total_episodes == 0 or dataset.total_steps == 0:
        raise DatasetFormatError(f"{dataset_id} is empty ({dataset.total_episodes} episodes, {dataset.total_steps} steps).")

    n, act_dim = dataset.total_steps, act_space.shape[0]
    obs_dim = int(sum(np.prod(obs_space[k].shape) for k in GOAL_KEYS)) if isinstance(obs_space, gym.spaces.Dict) \
        else int(np.prod(obs_space.shape))
    observations = np.empty((n, obs_dim), np.float32)
    next_observations = np.empty((n, obs_dim), np.float32)
    actions = np.empty((n, act_dim), np.float32)
    rewards = np.empty(n, np.float64)
    terminations = np.empty(n, bool)
    truncations = np.empty(n, bool)
    starts = [0]
    for episode in dataset.iterate_episodes():
        t = len(episode.rewards)
        if t == 0:
            raise DatasetFormatError(
                f"{dataset_id}: episode {episode.id} has zero steps (one observation, no action); "
                "remove it from the dataset (e.g. rebuild it without empty episodes)."
            )
        obs = _flat_observations(episode.observations, obs_space)
        if len(obs) != t + 1:
            raise DatasetFormatError(
                f"{dataset_id}: episode {episode.id} has {len(obs)} observations for {t} actions; Minari stores "
                "T + 1 observations per episode, so the states cannot be aligned with the actions."
            )
        s, e = starts[-1], starts[-1] + t
        if e > n:
            raise DatasetFormatError(f"{dataset_id}: episodes hold more steps than total_steps={n} in the metadata.")
        observations[s:e], next_observations[s:e] = obs[:-1], obs[1:]
        actions[s:e] = np.asarray(episode.actions, np.float32).reshape(t, act_dim)
        rewards[s:e] = episode.rewards
        terminations[s:e] = episode.terminations
        truncations[s:e] = episode.truncations
        starts.append(e)
    if starts[-1] != n:
        raise DatasetFormatError(f"{dataset_id}: episodes hold {starts[-1]} steps, metadata says {n}.")

    metadata = dict(dataset.storage.metadata)
    return EpisodeArrays(
        dataset_id=dataset_id,
        observations=observations,
        next_observations=next_observations,
        actions=actions,
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
        episode_starts=np.asarray(starts, np.int64),
        observation_layout=layout,
        action_space=act_space,
        env_spec=dataset.spec.env_spec,
        eval_env_spec=getattr(dataset, "_eval_env_spec", None) or dataset.spec.env_spec,
        metadata=metadata,
    )


def load_episodes(dataset_id: str, download: bool = False) -> EpisodeArrays:
    """load_minari_dataset + flatten_episodes."""
    return flatten_episodes(load_minari_dataset(dataset_id, download=download))

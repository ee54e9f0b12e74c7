"""Load a Minari dataset by id and flatten its episodes into contiguous, aligned arrays.

Alignment. Minari stores T+1 observations per episode against T actions: observations[t] is the
state in which actions[t] was taken, observations[T] is the final state. We keep
observations[:-1] as the states, episode by episode, so the state/action pairing is right on every
episode, not only the first (concatenating the raw observation arrays and slicing once shifts every
later episode by one step per earlier episode). The final observation pairs with no action and is
not kept (nothing trains on next states).

Observations. Flattened by envs.observations.flatten_observation (Box as is; goal-conditioned Dicts
to concat(observation, desired_goal)), the one function evaluation uses too. Image observations are
refused.

Stored env specs are data. Minari's metadata holds the collection and evaluation env specs as JSON;
both are checked by envs.env_specs.env_spec_from_data BEFORE minari.load_dataset runs (Minari calls
gym.make on a stored spec when the metadata lacks its spaces), and the EnvSpecs kept are the rebuilt
ones, never Minari's parse of the file.

Flattened layout. Episode e occupies rows episode_starts[e] : episode_starts[e + 1] of every array.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from envs.dataset_errors import (  # noqa: F401  (re-exported: callers import them from here)
    DatasetDownloadError,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    InvalidDatasetIdError,
)
from envs.env_specs import env_spec_from_data
from envs.observations import GOAL_KEYS, flat_observation_dim, flatten_observation, observation_layout  # noqa: F401


@dataclass(frozen=True)
class EpisodeArrays:
    """All episodes of one dataset, concatenated; episode e is rows episode_starts[e]:episode_starts[e+1]."""

    dataset_id: str
    observations: np.ndarray  # (N, obs_dim) float32: the state in which actions[i] was taken
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float64
    terminations: np.ndarray  # (N,) bool: the MDP ended (no bootstrap)
    truncations: np.ndarray  # (N,) bool: cut by a time limit
    episode_starts: np.ndarray  # (E + 1,) int64 offsets
    observation_layout: str  # how a row of observations was built from the dataset's space
    action_space: gym.spaces.Box
    env_spec: EnvSpec | None  # rebuilt by env_spec_from_data (checked), never the file's own
    eval_env_spec: EnvSpec | None
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


def check_dataset_id(dataset_id: object) -> str:
    """The id when it has Minari's form (namespace/name-vN); InvalidDatasetIdError (one line) otherwise."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        if not isinstance(dataset_id, str):
            raise TypeError
        parse_dataset_id(dataset_id)  # raises TypeError (not ValueError) for ids without -vN, e.g. "nope"
    except (TypeError, ValueError):
        raise InvalidDatasetIdError(
            f"{dataset_id!r} is not a Minari dataset id: expected namespace/name-vN, e.g. mujoco/hopper/medium-v0, "
            "or a built-in one, builtin/<task>/<flavour>-v0. " + _help(str(dataset_id))
        ) from None
    return dataset_id


def read_stored_env_specs(dataset_id: str, allow_foreign_code: bool = False) -> tuple[EnvSpec | None, EnvSpec | None]:
    """(collection env spec, evaluation env spec) from a local dataset's metadata file, each checked
    by env_spec_from_data (UnsafeEnvSpec / InvalidEnvSpec, one line); None where none is stored."""
    from minari.storage import get_dataset_path

    path = get_dataset_path(dataset_id) / "data" / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetFormatError(f"dataset {dataset_id}: cannot read {path} ({e}); re-create or re-download it") from None
    if not isinstance(metadata, dict):
        raise DatasetFormatError(f"dataset {dataset_id}: {path} does not hold a JSON object; re-create or re-download it")
    specs = []
    for key in ("env_spec", "eval_env_spec"):
        stored = metadata.get(key)
        specs.append(None if stored is None else env_spec_from_data(
            stored, allow_foreign_code=allow_foreign_code, where=f"dataset {dataset_id}: {key}"))
    return specs[0], specs[1]


def _download(dataset_id: str, path) -> None:
    """minari.download_dataset with its failures as one-line dataset errors (it retries network errors itself)."""
    import minari

    existed = path.exists()
    try:
        minari.download_dataset(dataset_id)
    except ImportError as e:
        raise DatasetDownloadError(
            f"cannot download '{dataset_id}': the Minari remote client is missing ({_one_line(e)}). "
            "Install it with `pip install \"minari[hf]\"`, or download on a machine that has it and copy the "
            f"dataset folder to {path} (or point MINARI_DATASETS_PATH at a folder that holds it)."
        ) from None
    except ValueError as e:  # Minari's answer for ids the remote does not hold
        raise DatasetNotFoundError(f"cannot download '{dataset_id}': {_one_line(e)} " + _help(dataset_id)) from None
    except Exception as e:  # network errors come in many types (OSError, httpx, requests, huggingface_hub)
        raise DatasetDownloadError(
            f"cannot download '{dataset_id}' (no network? remote {os.environ.get('MINARI_REMOTE', 'hf://farama-minari')}): "
            f"{type(e).__name__}: {_one_line(e)}. Download it where there is network (`minari download {dataset_id}`) "
            f"and copy it to {path}, or use a built-in dataset."
        ) from None
    finally:
        if not existed and path.exists() and not (path / "data" / "metadata.json").exists():
            shutil.rmtree(path, ignore_errors=True)  # never leave a half-downloaded dataset behind
    if not (path / "data" / "metadata.json").exists():  # Minari skips the download when the folder exists
        raise DatasetDownloadError(
            f"'{dataset_id}': {path} exists but holds no complete dataset (data/metadata.json is missing); "
            "remove that folder and download again"
        )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def load_minari_dataset(dataset_id: str, download: bool = False, allow_foreign_code: bool = False):
    """The minari.MinariDataset for an id: local, built in (created on first use), or downloaded.

    Its stored env specs are checked (read_stored_env_specs) before Minari reads the dataset."""
    import minari
    from minari.storage import get_dataset_path

    from envs.builtin_datasets import BUILTIN_DATASETS, ensure_builtin_dataset

    check_dataset_id(dataset_id)
    path = get_dataset_path(dataset_id)
    if dataset_id in BUILTIN_DATASETS:
        ensure_builtin_dataset(dataset_id)
    elif not (path / "data").exists():
        if dataset_id.startswith("builtin/"):
            raise DatasetNotFoundError(f"'{dataset_id}' is not a built-in dataset. " + _help(dataset_id))
        if not download:
            raise DatasetNotFoundError(
                f"dataset '{dataset_id}' is not in the local Minari folder {get_dataset_path()} "
                "(MINARI_DATASETS_PATH). " + _help(dataset_id)
            )
        _download(dataset_id, path)
    read_stored_env_specs(dataset_id, allow_foreign_code)
    return minari.load_dataset(dataset_id)


def _checked_spec(spec: EnvSpec | None, dataset_id: str, key: str, allow_foreign_code: bool) -> EnvSpec | None:
    if spec is None:
        return None
    return env_spec_from_data(spec, allow_foreign_code=allow_foreign_code, where=f"dataset {dataset_id}: {key}")


def flatten_episodes(dataset, allow_foreign_code: bool = False) -> EpisodeArrays:
    """Concatenate a minari.MinariDataset's episodes into aligned arrays (see the module docstring).

    The env specs kept are rebuilt by env_spec_from_data (UnsafeEnvSpec unless allow_foreign_code)."""
    dataset_id = dataset.spec.dataset_id
    env_spec = _checked_spec(dataset.spec.env_spec, dataset_id, "env_spec", allow_foreign_code)
    eval_env_spec = _checked_spec(getattr(dataset, "_eval_env_spec", None), dataset_id, "eval_env_spec",
                                  allow_foreign_code)
    obs_space, act_space = dataset.observation_space, dataset.action_space
    layout = observation_layout(obs_space)
    if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
        raise DatasetFormatError(f"{dataset_id}: action space {act_space} is not supported (a 1-D Box is needed).")
    if dataset.total_episodes == 0 or dataset.total_steps == 0:
        raise DatasetFormatError(f"{dataset_id} is empty ({dataset.total_episodes} episodes, {dataset.total_steps} steps).")

    n, act_dim = dataset.total_steps, act_space.shape[0]
    observations = np.empty((n, flat_observation_dim(obs_space)), np.float32)
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
        obs = flatten_observation(episode.observations)
        obs = obs.reshape(len(obs), -1)  # a Box of shape () gives (T + 1,)
        if len(obs) != t + 1:
            raise DatasetFormatError(
                f"{dataset_id}: episode {episode.id} has {len(obs)} observations for {t} actions; Minari stores "
                "T + 1 observations per episode, so the states cannot be aligned with the actions."
            )
        s, e = starts[-1], starts[-1] + t
        if e > n:
            raise DatasetFormatError(f"{dataset_id}: episodes hold more steps than total_steps={n} in the metadata.")
        observations[s:e] = obs[:-1]  # the final observation has no action: not a state of any pair
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
        actions=actions,
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
        episode_starts=np.asarray(starts, np.int64),
        observation_layout=layout,
        action_space=act_space,
        env_spec=env_spec,
        eval_env_spec=eval_env_spec or env_spec,
        metadata=metadata,
    )


def load_episodes(dataset_id: str, download: bool = False, allow_foreign_code: bool = False) -> EpisodeArrays:
    """load_minari_dataset + flatten_episodes."""
    dataset = load_minari_dataset(dataset_id, download=download, allow_foreign_code=allow_foreign_code)
    return flatten_episodes(dataset, allow_foreign_code=allow_foreign_code)

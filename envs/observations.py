"""One way to turn an observation into the flat state vector the agents see, for training and evaluation alike.

Box observations are flattened to one vector. Dict observations of goal-conditioned tasks
(pointmaze, antmaze: keys observation / achieved_goal / desired_goal) become
`concat(observation, desired_goal)`: the agent sees where it is and where it must go; achieved_goal
is left out because it is a function of the observation. The trajectory store flattens dataset
observations with `flatten_observation` and the evaluator must flatten env observations with the
same function, or a policy trained on flat vectors is fed dicts (or another key order).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from envs.dataset_errors import DatasetFormatError

GOAL_KEYS = ("observation", "desired_goal")  # the concatenation order


class UnsupportedObservationError(DatasetFormatError):
    """An observation (or space) that is neither a state vector nor a goal-conditioned Dict."""


def observation_layout(space: gym.Space) -> str:
    """How observations of this space are flattened (printable); raises UnsupportedObservationError when they cannot be."""
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) > 1:
            raise UnsupportedObservationError(
                f"image observations (Box{space.shape}) are not supported: the agents take state vectors. "
                "Use a state-based dataset (e.g. mujoco/*, D4RL/pointmaze/*)."
            )
        return f"Box{space.shape}"
    if isinstance(space, gym.spaces.Dict):
        keys = list(space.spaces)
        if not all(k in keys for k in GOAL_KEYS):
            raise UnsupportedObservationError(
                f"Dict observations with keys {keys} are not supported; only goal-conditioned ones with "
                f"keys {GOAL_KEYS} (pointmaze, antmaze), which are flattened to concat(observation, desired_goal)."
            )
        for k in GOAL_KEYS:
            observation_layout(space[k])
        return " + ".join(f"{k}{space[k].shape}" for k in GOAL_KEYS)
    raise UnsupportedObservationError(f"observation space {space} is not supported (Box, or Dict with {GOAL_KEYS}).")


def flat_observation_dim(space: gym.Space) -> int:
    """The length of flatten_observation's vector for observations of this space."""
    observation_layout(space)
    if isinstance(space, gym.spaces.Dict):
        return int(sum(np.prod(space[k].shape) for k in GOAL_KEYS))
    return int(np.prod(space.shape))


def _as_vectors(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim > 2:
        raise UnsupportedObservationError(f"{name} has shape {x.shape}; expected one vector (D,) or a batch (N, D)")
    return x


def flatten_observation(obs: Any) -> np.ndarray:
    """float32 state vector(s): (D,) for one observation, (N, D) for a batch (a vector env's, an episode's).

    A Box observation passes as float32; a goal Dict becomes concat(observation, desired_goal) along
    the last axis (batched dicts hold one (N, d) array per key, as vector envs and Minari return)."""
    if isinstance(obs, Mapping):
        missing = [k for k in GOAL_KEYS if k not in obs]
        if missing:
            raise UnsupportedObservationError(
                f"Dict observation with keys {list(obs)} lacks {missing}; only goal-conditioned ones with "
                f"keys {GOAL_KEYS} can be flattened"
            )
        parts = [_as_vectors(obs[k], f"observation[{k!r}]") for k in GOAL_KEYS]
        if len({p.ndim for p in parts}) != 1 or (parts[0].ndim == 2 and len({len(p) for p in parts}) != 1):
            raise UnsupportedObservationError(
                f"Dict observation parts have shapes {[p.shape for p in parts]}; they must all be single or all batches of one size"
            )
        return np.concatenate(parts, axis=-1)
    return _as_vectors(obs, "observation")

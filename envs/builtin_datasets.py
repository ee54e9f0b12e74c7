"""Built-in Minari datasets that need no network: scripted controllers on Gymnasium MuJoCo tasks.

Each built-in is a real Minari dataset (written with minari.create_dataset_from_buffers) in the
local Minari folder, under the `builtin/` namespace, created on first use by `ensure_builtin_dataset`.

Flavours: the controller's action plus Gaussian noise, clipped to the action bounds.
  expert  small noise: near-controller returns.
  medium  one noise level that makes most episodes fail part-way.
  mixed   a ladder of noise levels, one per episode, so episode returns spread from near-random to
          expert and return conditioning matters: an agent asked for a high return must pick out
          the good behaviour.
Reference scores (stored in each dataset's metadata): ref_min = mean return of the uniform random
policy over 100 episodes (seeds 0..99), ref_max = mean return of the noise-free controller over 10
episodes (seeds 100..109).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from envs.scripted_controllers import DoublePendulumLQR, ReacherOperationalSpace

DEFAULT_DATASET_ID = "builtin/inverteddoublependulum/mixed-v0"
REFERENCE_RANDOM_SEEDS = range(0, 100)
REFERENCE_CONTROLLER_SEEDS = range(100, 110)


@dataclass(frozen=True)
class BuiltinDataset:
    env_id: str
    controller: Callable[[gym.Env], Callable[[np.ndarray], np.ndarray]]
    controller_name: str
    noise_scales: tuple[float, ...]  # one per episode
    first_seed: int  # episode i resets with first_seed + i
    description: str

    @property
    def num_episodes(self) -> int:
        return len(self.noise_scales)


def _ladder(low: float, high: float, n: int) -> tuple[float, ...]:
    return tuple(float(x) for x in np.linspace(low, high, n))


_IDP, _REACHER = "InvertedDoublePendulum-v5", "Reacher-v5"
_LQR, _OSC = "LQR (MuJoCo RK4 linearisation, discrete Riccati)", "operational-space PD (J^T F)"
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "builtin/inverteddoublependulum/expert-v0": BuiltinDataset(
        _IDP, DoublePendulumLQR, _LQR, (0.05,) * 20, 1000, "LQR balancing, action noise 0.05: episodes last the full 1000 steps."),
    "builtin/inverteddoublependulum/medium-v0": BuiltinDataset(
        _IDP, DoublePendulumLQR, _LQR, (0.2,) * 40, 2000, "LQR balancing, action noise 0.2: most episodes fall part-way."),
    "builtin/inverteddoublependulum/mixed-v0": BuiltinDataset(
        _IDP, DoublePendulumLQR, _LQR, _ladder(0.05, 0.35, 80), 3000,
        "LQR balancing, action noise 0.05..0.35 (one level per episode): returns from near-random to expert."),
    "builtin/reacher/expert-v0": BuiltinDataset(
        _REACHER, ReacherOperationalSpace, _OSC, (0.05,) * 200, 1000, "Operational-space reaching, action noise 0.05."),
    "builtin/reacher/medium-v0": BuiltinDataset(
        _REACHER, ReacherOperationalSpace, _OSC, (0.3,) * 200, 2000, "Operational-space reaching, action noise 0.3."),
    "builtin/reacher/mixed-v0": BuiltinDataset(
        _REACHER, ReacherOperationalSpace, _OSC, _ladder(0.0, 0.8, 400), 3000,
        "Operational-space reaching, action noise 0..0.8 (one level per episode)."),
}


def builtin_reference_scores(env_id: str, controller, progress: bool = False) -> tuple[float, float]:
    """(random-policy mean return, noise-free controller mean return) on env_id, fixed seeds."""
    from envs.dataset_writing import rollout_episodes

    env = gym.make(env_id)
    try:
        label = f"references for {env_id}" if progress else None
        random_returns = [b["rewards"].sum() for b in rollout_episodes(env, None, REFERENCE_RANDOM_SEEDS, progress=label)]
        policy = controller(env)
        expert_returns = [b["rewards"].sum() for b in rollout_episodes(env, policy, REFERENCE_CONTROLLER_SEEDS, progress=label)]
    finally:
        env.close()
    return float(np.mean(random_returns)), float(np.mean(expert_returns))


def create_builtin_dataset(dataset_id: str, overwrite: bool = False, progress: bool = False) -> Path:
    """Record and write a built-in dataset into the local Minari folder; returns its folder."""
    from envs.dataset_writing import rollout_episodes, write_minari_dataset

    if dataset_id not in BUILTIN_DATASETS:
        raise KeyError(f"'{dataset_id}' is not a built-in dataset; built-in ones: {', '.join(BUILTIN_DATASETS)}")
    spec = BUILTIN_DATASETS[dataset_id]
    from minari.storage import get_dataset_path

    if get_dataset_path(dataset_id).exists() and not overwrite:  # before spending time recording
        raise FileExistsError(f"dataset {dataset_id} already exists at {get_dataset_path(dataset_id)}; pass overwrite=True (--overwrite) to replace it")
    ref_min, ref_max = builtin_reference_scores(spec.env_id, spec.controller, progress)
    env = gym.make(spec.env_id)
    try:
        seeds = range(spec.first_seed, spec.first_seed + spec.num_episodes)
        buffers = rollout_episodes(env, spec.controller(env), seeds, spec.noise_scales,
                                   progress=f"recording {dataset_id}" if progress else None)
    finally:
        env.close()
    return write_minari_dataset(
        dataset_id, buffers, spec.env_id, ref_min, ref_max, algorithm_name=f"{spec.controller_name} + Gaussian action noise",
        description=spec.description + f" Episode i resets with seed {spec.first_seed}+i; noise levels per episode "
        f"{spec.noise_scales[0]:g}..{spec.noise_scales[-1]:g}. ref_min: random policy, seeds 0..99; ref_max: "
        "noise-free controller, seeds 100..109.",
        overwrite=overwrite,
    )


def ensure_builtin_dataset(dataset_id: str = DEFAULT_DATASET_ID, progress: bool = False) -> str:
    """The local folder of a built-in dataset, creating it first when it is missing (seconds, offline)."""
    from minari.storage import get_dataset_path

    path = get_dataset_path(dataset_id)
    if (path / "data" / "metadata.json").exists():
        return str(path)
    try:
        return str(create_builtin_dataset(dataset_id, progress=progress))
    except (FileExistsError, OSError):
        if (path / "data" / "metadata.json").exists():  # another process created it meanwhile
            return str(path)
        raise

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

builtin/halfcheetah/gaits-v0 is the one on which backbones and context lengths differ (the
InvertedDoublePendulum ones saturate at 100 for every backbone): HalfCheetah-v5 with a 250-step time
limit (no termination, so every episode is 250 steps; a quarter of the env's 1000 keeps it cheap on a
CPU), driven by three open-loop central-pattern-generator gaits of different quality (the best found
by a random search over per-joint sinusoids, and two poorer ones) under a noise ladder. An open-loop
gait hides its phase from a single observation, and noise and the odd flip onto the back spread the
returns: the dataset's mean normalized return is about 30, its best episodes near 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from envs.minari_ids import DEFAULT_DATASET_ID
from envs.scripted_controllers import CentralPatternGait, DoublePendulumLQR, ReacherOperationalSpace

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
    episode_controllers: tuple[dict, ...] = ()
    """keyword arguments of the controller for episode i (empty: its defaults for every episode, which
    are also what ref_max measures)"""
    max_episode_steps: int | None = None
    """a shorter time limit than the env's registered one (None: the registered one)"""

    @property
    def num_episodes(self) -> int:
        return len(self.noise_scales)


def _ladder(low: float, high: float, n: int) -> tuple[float, ...]:
    return tuple(float(x) for x in np.linspace(low, high, n))


# HalfCheetah-v5 gaits (frequency in Hz of the simulator clock, per-joint amplitude and phase for bthigh,
# bshin, bfoot, fthigh, fshin, ffoot). GALLOP: the best of a random search (250 draws, then 250
# refinements) scored by the worst of 4 noise-free episodes; TROT and SHUFFLE: draws from that search
# with about 40 % and 15 % of its return.
GALLOP = dict(frequency=4.7116, amplitudes=(0.474, 0.341, 0.822, 0.639, 0.714, 1.0),
              phases=(0.68, 2.244, 0.264, 1.925, 1.477, 1.738))
TROT = dict(frequency=3.971, amplitudes=(0.479, 0.646, 0.645, 0.33, 0.79, 0.762),
            phases=(0.0, 1.387, 0.426, 2.474, 0.737, 1.739))
SHUFFLE = dict(frequency=1.909, amplitudes=(0.271, 0.885, 0.585, 0.258, 0.582, 0.236),
               phases=(0.0, 5.64, 2.161, 2.089, 1.91, 3.581))




def gait_controller(env: gym.Env, **gait) -> CentralPatternGait:
    """A CentralPatternGait on env: GALLOP unless `gait` names another (frequency, amplitudes, phases)."""
    return CentralPatternGait(env, **{**GALLOP, **gait})


_CHEETAH_GAITS = (GALLOP, TROT, SHUFFLE)
_CHEETAH_NOISE = _ladder(0.0, 0.4, 40)  # per gait: episodes 0-39 gallop, 40-79 trot, 80-119 shuffle


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
    "builtin/halfcheetah/gaits-v0": BuiltinDataset(
        "HalfCheetah-v5", gait_controller, "open-loop central-pattern-generator gaits (per-joint sinusoids)",
        _CHEETAH_NOISE * len(_CHEETAH_GAITS), 4000,
        "HalfCheetah-v5 with a 250-step time limit, three open-loop sinusoidal gaits (gallop, trot, shuffle: "
        "40 episodes each) under action noise 0..0.4: returns from below random to expert.",
        episode_controllers=tuple(g for g in _CHEETAH_GAITS for _ in _CHEETAH_NOISE), max_episode_steps=250),
}


def _make_env(env_id: str, max_episode_steps: int | None) -> gym.Env:
    return gym.make(env_id, max_episode_steps=max_episode_steps) if max_episode_steps else gym.make(env_id)


def builtin_reference_scores(env_id: str, controller, progress: bool = False, max_episode_steps: int | None = None
                             ) -> tuple[float, float]:
    """(random-policy mean return, noise-free controller mean return) on env_id, fixed seeds."""
    from envs.dataset_writing import rollout_episodes

    env = _make_env(env_id, max_episode_steps)
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
    ref_min, ref_max = builtin_reference_scores(spec.env_id, spec.controller, progress, spec.max_episode_steps)
    env = _make_env(spec.env_id, spec.max_episode_steps)
    try:
        seeds = range(spec.first_seed, spec.first_seed + spec.num_episodes)
        label = f"recording {dataset_id}" if progress else None
        if spec.episode_controllers:  # one controller per episode; each episode still resets and draws from its seed
            buffers = [b for seed, noise, gait in zip(seeds, spec.noise_scales, spec.episode_controllers)
                       for b in rollout_episodes(env, spec.controller(env, **gait), [seed], [noise])]
        else:
            buffers = rollout_episodes(env, spec.controller(env), seeds, spec.noise_scales, progress=label)
        env_spec = env.spec if spec.max_episode_steps else spec.env_id  # the spec carries the shorter time limit
    finally:
        env.close()
    return write_minari_dataset(
        dataset_id, buffers, env_spec, ref_min, ref_max, algorithm_name=f"{spec.controller_name} + Gaussian action noise",
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

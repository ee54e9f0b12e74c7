"""Gymnasium env(s) to evaluate an agent trained on a dataset: the env the dataset says to use.

`source` is a dataset id (its recorded eval env spec, else its collection env spec: same env id,
same kwargs, same time limit) or a plain Gymnasium env id / EnvSpec.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec


def eval_env_spec(source: str | EnvSpec, download: bool = False) -> EnvSpec:
    """The EnvSpec for a dataset id, a Gymnasium env id, or an EnvSpec."""
    if isinstance(source, EnvSpec):
        return source
    if source in gym.registry:
        return gym.spec(source)
    from envs.minari_loading import load_minari_dataset

    dataset = load_minari_dataset(source, download=download)
    spec = getattr(dataset, "_eval_env_spec", None) or dataset.env_spec
    if spec is None:
        raise ValueError(f"dataset {source} records no environment; pass a Gymnasium env id to evaluate in instead")
    return spec


def make_eval_env(source: str | EnvSpec, **kwargs) -> gym.Env:
    """One env (kwargs go to gym.make, e.g. render_mode="rgb_array")."""
    return gym.make(eval_env_spec(source), **kwargs)


def make_eval_vector_env(
    source: str | EnvSpec, num_envs: int, vectorization_mode: str = "sync", **kwargs
) -> gym.vector.VectorEnv:
    """num_envs copies in one vector env ("sync": one process; "async": one process per env).

    Gymnasium's default autoreset (next step) applies: an env that finished is reset on the call
    after the one that reported terminated/truncated; evaluators counting N episodes track that.
    """
    spec = eval_env_spec(source)
    return gym.make_vec(spec, num_envs=num_envs, vectorization_mode=vectorization_mode, **kwargs)

"""Gymnasium env(s) to evaluate an agent trained on a dataset: the env the dataset says to use.

`source` is a dataset id (its recorded eval env spec, else its collection env spec: same env id,
same kwargs, same time limit), a registered Gymnasium env id, or an EnvSpec / stored spec data.
Every spec goes through envs.env_specs.env_spec_from_data: a spec read from a dataset or a
checkpoint runs only registered code unless the user passed allow_foreign_code (--allow-foreign-env).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from envs.env_specs import env_spec_from_data


def eval_env_spec(
    source: str | EnvSpec | Mapping[str, Any], download: bool = False, allow_foreign_code: bool = False
) -> EnvSpec:
    """The checked EnvSpec for a dataset id, a registered Gymnasium env id, an EnvSpec or spec data (a dict)."""
    if isinstance(source, (EnvSpec, Mapping)):
        return env_spec_from_data(source, allow_foreign_code=allow_foreign_code, where="evaluation env spec")
    if source in gym.registry:  # a plain dict lookup: never gym.spec(), which imports "module:Env-v0" ids
        return env_spec_from_data({"id": source}, where=f"env id {source}")
    from envs.minari_loading import load_minari_dataset

    dataset = load_minari_dataset(source, download=download, allow_foreign_code=allow_foreign_code)
    spec = getattr(dataset, "_eval_env_spec", None) or dataset.env_spec
    if spec is None:
        raise ValueError(f"dataset {source} records no environment; pass a Gymnasium env id to evaluate in instead")
    key = "eval_env_spec" if getattr(dataset, "_eval_env_spec", None) is not None else "env_spec"
    return env_spec_from_data(spec, allow_foreign_code=allow_foreign_code, where=f"dataset {source}: {key}")


def make_eval_vector_env(
    source: str | EnvSpec | Mapping[str, Any], num_envs: int, vectorization_mode: str = "sync",
    allow_foreign_code: bool = False, **kwargs,
) -> gym.vector.VectorEnv:
    """num_envs copies in one vector env ("sync": one process; "async": one process per env).

    Gymnasium's default autoreset (next step) applies: an env that finished is reset on the call
    after the one that reported terminated/truncated; evaluators counting N episodes track that.
    Observations are as the env returns them: flatten them with envs.observations.flatten_observation,
    as the trajectory store flattened the dataset's.
    """
    spec = eval_env_spec(source, allow_foreign_code=allow_foreign_code)
    return gym.make_vec(spec, num_envs=num_envs, vectorization_mode=vectorization_mode, **kwargs)

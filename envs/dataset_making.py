"""Writing datasets on this machine (scripts/make_dataset.py): the built-in ones, or the uniform
random policy on any Gymnasium env with continuous actions. Every input is checked before the first
episode is rolled out.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from envs.builtin_datasets import BUILTIN_DATASETS, create_builtin_dataset
from envs.command_args import MakeDatasetArgs
from envs.dataset_writing import rollout_episodes, write_minari_dataset
from envs.minari_loading import check_dataset_id
from envs.trajectory_store import TrajectoryStore


def dataset_exists(dataset_id: str) -> bool:
    from minari.storage import get_dataset_path

    return (get_dataset_path(dataset_id) / "data" / "metadata.json").is_file()


def make_random_dataset(args: MakeDatasetArgs) -> None:
    """Record the uniform random policy; every check runs before the first episode."""
    check_dataset_id(args.dataset_id)
    if args.env_id not in gym.registry:
        raise ValueError(f"'{args.env_id}' is not a registered Gymnasium env id (e.g. Hopper-v5, Reacher-v5)")
    if args.num_episodes < 1:
        raise ValueError("--num-episodes must be >= 1")
    if dataset_exists(args.dataset_id) and not args.overwrite:
        raise FileExistsError(f"dataset {args.dataset_id} already exists; pass --overwrite to replace it")
    env = gym.make(args.env_id)
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise ValueError(f"{args.env_id} has a {type(env.action_space).__name__} action space; the agents predict "
                         "continuous (Box) actions")
    seeds = range(args.seed, args.seed + args.num_episodes)
    buffers = rollout_episodes(env, None, seeds, progress=f"random policy on {args.env_id}")
    env.close()
    random_mean = float(np.mean([b["rewards"].sum() for b in buffers]))
    # No ref scores in the metadata: a random recording has no expert, and a half-made pair would hide
    # where the max came from. Scores on this dataset use the shipped table / D4RL, named as such.
    write_minari_dataset(
        args.dataset_id, buffers, args.env_id, None, None, algorithm_name="uniform random policy",
        description=f"Uniform random policy on {args.env_id}, episode i reset with seed {args.seed}+i "
        f"(mean return {random_mean:.3f}).",
        overwrite=args.overwrite,
    )


def make_datasets(args: MakeDatasetArgs) -> None:
    """What scripts/make_dataset.py does: list, or write the asked-for datasets."""
    if args.list:
        for dataset_id, spec in BUILTIN_DATASETS.items():
            print(f"{dataset_id:45s} {spec.env_id:28s} {spec.num_episodes:4d} episodes  {spec.description}")
        return
    ids = list(BUILTIN_DATASETS) if args.all_builtin else [args.dataset_id]
    for dataset_id in ids:
        start = time.perf_counter()
        if dataset_id in BUILTIN_DATASETS:
            if args.env_id is not None:
                raise ValueError(f"{dataset_id} is built in (its env is {BUILTIN_DATASETS[dataset_id].env_id}); drop --env-id")
            create_builtin_dataset(dataset_id, overwrite=args.overwrite, progress=True)
        elif args.env_id is None:
            raise ValueError(f"'{dataset_id}' is not built in (see --list); to record a random policy give --env-id")
        else:
            make_random_dataset(MakeDatasetArgs(**{**args.__dict__, "dataset_id": dataset_id}))
        print(f"wrote {dataset_id} in {time.perf_counter() - start:.1f} s")
        print(TrajectoryStore.from_dataset_id(dataset_id).summary())

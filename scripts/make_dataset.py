"""Write a Minari dataset locally, no network needed.

    python scripts/make_dataset.py                                                   # the default built-in
    python scripts/make_dataset.py --dataset-id builtin/reacher/expert-v0
    python scripts/make_dataset.py --all-builtin
    python scripts/make_dataset.py --dataset-id local/hopper/random-v0 --env-id Hopper-v5 --num-episodes 100
    python scripts/make_dataset.py --list

Built-in ids (builtin/...) are scripted controllers plus noise (see envs/builtin_datasets.py); any
other id with --env-id records the uniform random policy on that Gymnasium env (no reference scores in
its metadata: scores on it come from envs/reference_scores.csv or D4RL, named as such). Datasets go to the Minari folder (MINARI_DATASETS_PATH, default
~/.minari/datasets); a failed run leaves nothing there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import tyro

from envs.builtin_datasets import BUILTIN_DATASETS, DEFAULT_DATASET_ID, create_builtin_dataset
from envs.dataset_writing import rollout_episodes, write_minari_dataset
from envs.trajectory_store import TrajectoryStore


@dataclass(frozen=True)
class Args:
    dataset_id: str = DEFAULT_DATASET_ID
    """A built-in id, or a new id (namespace/name-vN) to record the random policy on --env-id."""
    env_id: str | None = None
    """Gymnasium env id for a random-policy recording."""
    num_episodes: int = 100
    """Episodes of a random-policy recording."""
    seed: int = 0
    """Random-policy episode i resets with seed + i."""
    overwrite: bool = False
    """Replace the dataset if it exists."""
    all_builtin: bool = False
    """Write every built-in dataset."""
    list: bool = False
    """List the built-in datasets and exit."""


def make_random_dataset(args: Args) -> None:
    if args.env_id not in gym.registry:
        sys.exit(f"error: '{args.env_id}' is not a registered Gymnasium env id (e.g. Hopper-v5, Reacher-v5)")
    if args.num_episodes < 1:
        sys.exit("error: --num-episodes must be >= 1")
    env = gym.make(args.env_id)
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


def main(args: Args) -> None:
    if args.list:
        for dataset_id, spec in BUILTIN_DATASETS.items():
            print(f"{dataset_id:45s} {spec.env_id:28s} {spec.num_episodes:4d} episodes  {spec.description}")
        return
    ids = list(BUILTIN_DATASETS) if args.all_builtin else [args.dataset_id]
    for dataset_id in ids:
        start = time.perf_counter()
        try:
            if dataset_id in BUILTIN_DATASETS:
                if args.env_id is not None:
                    sys.exit(f"error: {dataset_id} is built in (its env is {BUILTIN_DATASETS[dataset_id].env_id}); drop --env-id")
                create_builtin_dataset(dataset_id, overwrite=args.overwrite, progress=True)
            elif args.env_id is None:
                sys.exit(f"error: '{dataset_id}' is not built in (see --list); to record a random policy give --env-id")
            else:
                make_random_dataset(Args(**{**args.__dict__, "dataset_id": dataset_id}))
        except FileExistsError as e:
            sys.exit(f"error: {e}")
        except ValueError as e:  # malformed ids and the like, as Minari words them
            sys.exit(f"error: {e}")
        print(f"wrote {dataset_id} in {time.perf_counter() - start:.1f} s")
        print(TrajectoryStore.from_dataset_id(dataset_id).summary())


if __name__ == "__main__":
    main(tyro.cli(Args))

"""The arguments of db-make-dataset and db-measure-reference-scores: no gymnasium or minari, so --help is quick
(envs/dataset_making.py and envs/reference_measuring.py do the work)."""

from __future__ import annotations

from dataclasses import dataclass

from envs.minari_ids import DEFAULT_DATASET_ID


@dataclass(frozen=True)
class MakeDatasetArgs:
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


@dataclass(frozen=True)
class MeasureArgs:
    env_ids: tuple[str, ...] = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
    """Gymnasium env ids to measure."""
    expert_datasets: tuple[str, ...] = ("mujoco/hopper/expert-v0", "mujoco/halfcheetah/expert-v0", "mujoco/walker2d/expert-v0")
    """Expert Minari dataset for each env id, same order; used when it is local."""
    num_episodes: int = 100
    seed: int = 0
    write_table: bool = True
    """Update the shipped table envs/reference_scores.csv with the measured rows."""

"""Reference scores for normalized return: 0 = random policy, 100 = expert.

Where a reference comes from matters as much as its value (D4RL's constants were measured on the
old v2 MuJoCo envs, Minari's mujoco/*-v0 datasets use v5), so every reference carries a name that
says which one it is, and every printed score should print that name next to it.

Lookup order (first hit wins), see `find_reference_score`:
  1. the dataset's own Minari metadata (`ref_min_score` / `ref_max_score`);
  2. the shipped table `reference_scores.csv`, row for the exact env id (e.g. Hopper-v5);
  3. the D4RL v2 constants for the env family (hopper, halfcheetah, walker2d), as a documented
     fallback for envs the table does not measure.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

TABLE_PATH = Path(__file__).with_name("reference_scores.csv")
TABLE_COLUMNS = ("env_id", "ref_min_score", "ref_max_score", "min_source", "max_source", "provenance")

# D4RL (Fu et al. 2020, d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE), measured on the v2 envs.
D4RL_V2_REFERENCES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


class NoReferenceScoreError(LookupError):
    """No reference score is known for a dataset / env; the message says what was tried."""


@dataclass(frozen=True)
class ReferenceScore:
    min_score: float  # mean return of a random policy
    max_score: float  # mean return of an expert
    name: str  # short, printable: which reference produced a score
    provenance: str = ""  # how the numbers were obtained

    def normalize(self, returns) -> np.ndarray:
        """100 * (return - min) / (max - min), elementwise."""
        returns = np.asarray(returns, dtype=np.float64)
        return 100.0 * (returns - self.min_score) / (self.max_score - self.min_score)


def env_family(env_id: str) -> str:
    """'Hopper-v5' -> 'hopper', 'mujoco/hopper/expert-v0' -> 'hopper', 'HalfCheetah-v5' -> 'halfcheetah'."""
    name = env_id.split("/")[-2] if env_id.count("/") >= 2 else env_id.split("/")[-1]
    return re.sub(r"-v\d+$", "", name).lower()


def read_table(path: Path = TABLE_PATH) -> dict[str, dict[str, str]]:
    """The shipped table as {env_id: row}."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["env_id"]: row for row in csv.DictReader(f)}


def write_table(rows: Mapping[str, Mapping[str, object]], path: Path = TABLE_PATH) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        for env_id in sorted(rows):
            writer.writerow({k: rows[env_id].get(k, "") for k in TABLE_COLUMNS})


def find_reference_score(
    env_id: str | None,
    metadata: Mapping[str, object] | None = None,
    dataset_id: str | None = None,
    table_path: Path = TABLE_PATH,
) -> ReferenceScore:
    """The reference for a dataset (its Minari metadata) or env; raises NoReferenceScoreError."""
    metadata = metadata or {}
    lo, hi = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if lo is not None and hi is not None:
        return ReferenceScore(
            float(lo), float(hi), f"minari metadata of {dataset_id or 'the dataset'}",
            "ref_min_score / ref_max_score stored in the dataset's Minari metadata",
        )
    tried = [f"Minari metadata of {dataset_id or 'the dataset'} (no ref_min_score/ref_max_score)"]
    if env_id is None:
        raise NoReferenceScoreError(
            "no reference score: " + "; ".join(tried) + "; and no env id is recorded to look up the table"
        )
    row = read_table(table_path).get(env_id)
    if row is not None:
        return ReferenceScore(
            float(row["ref_min_score"]), float(row["ref_max_score"]),
            f"table {env_id} (min: {row['min_source']}; max: {row['max_source']})", row["provenance"],
        )
    tried.append(f"{table_path.name} (no row for {env_id})")
    family = env_family(env_id)
    if family in D4RL_V2_REFERENCES:
        lo, hi = D4RL_V2_REFERENCES[family]
        return ReferenceScore(
            lo, hi, f"D4RL v2 constants ({family}; measured on {family} v2, not {env_id})",
            "d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE",
        )
    tried.append(f"D4RL v2 constants (none for '{family}')")
    raise NoReferenceScoreError(
        f"no reference score for {env_id}: tried " + "; ".join(tried)
        + ". Measure one with `python scripts/measure_reference_scores.py --env-ids " + env_id + "`."
    )


def measure_random_return(env, num_episodes: int = 100, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Undiscounted returns of a uniform random policy, episode i seeded with seed + i.

    `env` is a Gymnasium env id, an EnvSpec or an env. Both the reset and the action space are
    seeded per episode, so the numbers are reproducible for a given env version.
    """
    import gymnasium as gym
    from tqdm import tqdm

    env = gym.make(env) if isinstance(env, (str, gym.envs.registration.EnvSpec)) else env
    returns = np.zeros(num_episodes)
    for i in tqdm(range(num_episodes), desc=f"random policy on {env.spec.id if env.spec else env}",
                  disable=not progress, leave=False):
        env.reset(seed=seed + i)
        env.action_space.seed(seed + i)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            returns[i] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def expert_dataset_return(dataset_id: str) -> float:
    """Mean episode return of a local expert dataset: D4RL's definition of ref_max_score."""
    import minari

    dataset = minari.load_dataset(dataset_id)
    returns = [float(np.sum(ep.rewards)) for ep in dataset.iterate_episodes()]
    if not returns:
        raise NoReferenceScoreError(f"expert dataset {dataset_id} has no episodes")
    return float(np.mean(returns))

"""TrajectoryStore: one dataset's episodes as flat arrays, with the statistics an agent needs.

Holds the aligned arrays from envs.minari_loading (episode e is rows episode_starts[e] :
episode_starts[e + 1]) plus undiscounted returns-to-go, per-episode returns and lengths, the state
mean/std used for normalisation, the action bounds, the env to evaluate in, and the reference that
turns a return into a normalized score (and says which reference it is).

The env to evaluate in (`env_spec`) is the episodes' eval env spec, which envs.minari_loading has
already rebuilt from the Gymnasium registry (envs.env_specs): a store never holds a spec that chose
its own code, unless the user allowed foreign code when loading.
"""

from __future__ import annotations

import numpy as np

from envs.minari_loading import EpisodeArrays, load_episodes
from envs.reference_scores import NoReferenceScoreError, ReferenceScore, find_reference_score

STD_EPS = 1e-6


def returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """Undiscounted R̂_t = Σ_{t' ≥ t} r_t' within each episode, for all episodes at once."""
    tail = np.concatenate([np.cumsum(rewards[::-1], dtype=np.float64)[::-1], [0.0]])  # tail[i] = Σ_{j ≥ i} r_j
    ends = np.repeat(episode_starts[1:], np.diff(episode_starts))  # end of the episode of each row
    return tail[:-1] - tail[ends]


class TrajectoryStore:
    def __init__(self, episodes: EpisodeArrays):
        self.episodes = episodes
        self.dataset_id = episodes.dataset_id
        self.states = episodes.observations
        self.actions = episodes.actions
        self.rewards = episodes.rewards
        self.episode_starts = episodes.episode_starts
        self.episode_lengths = np.diff(self.episode_starts)
        self.returns_to_go = returns_to_go(self.rewards, self.episode_starts)
        self.episode_returns = self.returns_to_go[self.episode_starts[:-1]].copy()
        self.timesteps = np.arange(len(self.rewards)) - np.repeat(self.episode_starts[:-1], self.episode_lengths)
        self.state_mean = self.states.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.state_std = (self.states.std(axis=0, dtype=np.float64) + STD_EPS).astype(np.float32)
        self.action_low = episodes.action_space.low.astype(np.float32)
        self.action_high = episodes.action_space.high.astype(np.float32)
        spec = episodes.eval_env_spec or episodes.env_spec
        self.env_spec = spec
        self.env_id: str | None = spec.id if spec is not None else None
        self.max_episode_steps: int = (
            spec.max_episode_steps if spec is not None and spec.max_episode_steps else int(self.episode_lengths.max())
        )
        try:
            self.reference: ReferenceScore | None = find_reference_score(self.env_id, episodes.metadata, self.dataset_id)
            self.reference_missing_reason = ""
        except NoReferenceScoreError as e:
            self.reference, self.reference_missing_reason = None, str(e)

    @classmethod
    def from_dataset_id(cls, dataset_id: str, download: bool = False, allow_foreign_code: bool = False) -> "TrajectoryStore":
        """Load a dataset; its stored env specs are checked (envs.env_specs: UnsafeEnvSpec unless allow_foreign_code)."""
        return cls(load_episodes(dataset_id, download=download, allow_foreign_code=allow_foreign_code))

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def num_steps(self) -> int:
        return len(self.rewards)

    @property
    def obs_dim(self) -> int:
        return self.states.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def normalize(self, returns) -> tuple[np.ndarray, str]:
        """(100 · (R - ref_min) / (ref_max - ref_min), name of the reference); raises when there is none."""
        if self.reference is None:
            raise NoReferenceScoreError(self.reference_missing_reason)
        return self.reference.normalize(returns), self.reference.name

    def summary(self) -> str:
        r = self.episode_returns
        lines = [
            f"dataset   {self.dataset_id}  (env {self.env_id}, max {self.max_episode_steps} steps)",
            f"episodes  {self.num_episodes}, steps {self.num_steps}, length min/mean/max "
            f"{self.episode_lengths.min()}/{self.episode_lengths.mean():.1f}/{self.episode_lengths.max()}",
            f"states    {self.obs_dim}-d ({self.episodes.observation_layout}), actions {self.act_dim}-d "
            f"in [{self.action_low.min():g}, {self.action_high.max():g}]",
            f"return    min/mean/max {r.min():.2f}/{r.mean():.2f}/{r.max():.2f}",
        ]
        if self.reference is not None:
            n, name = self.normalize([r.min(), r.mean(), r.max()])
            lines.append(f"normalized min/mean/max {n[0]:.1f}/{n[1]:.1f}/{n[2]:.1f}  [reference: {name}]")
        else:
            lines.append(f"normalized n/a: {self.reference_missing_reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

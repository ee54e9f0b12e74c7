"""Per-step inference latency: the model alone (no env), ms per env step for a batch of envs.

Each backbone steps a Policy (agents/policy.py, the evaluator's) in window and in recurrent mode on
random observations, at steady state: after K+1 steps, so the window is full and the transformer's
KV cache already trimmed to kv_steps. The two modes are timed in turns (median of the rounds), and
recurrent_speedup is the window's time over each mode's.
"""

from __future__ import annotations

import statistics

import torch
from tqdm import tqdm

from agents.benchmarks.options import ALL_BACKBONES
from agents.benchmarks.untrained import untrained_model
from agents.policy import MODES, Policy
from envs.trajectory_store import TrajectoryStore
from sequence_models.benchmarks.profiling import timed

RETURN_TO_GO = 9000.0


class RandomEpisode:
    """A Policy fed random observations at consecutive timesteps: the model's share of an evaluation step."""

    def __init__(self, policy: Policy):
        self.policy, self.t = policy, 0

    def step(self) -> torch.Tensor:
        policy = self.policy
        observation = torch.randn(policy.batch_size, policy.model.obs_dim, device=policy.device)
        action = policy.act(observation, RETURN_TO_GO, self.t)
        self.t += 1
        return action


def benchmark_latency(store: TrajectoryStore, backbones=ALL_BACKBONES, batches: tuple[int, ...] = (1, 10),
                      context_len: int = 20, steps: int = 100, repeats: int = 3, kv_steps: int = -1,
                      device: str | torch.device = "cpu", size: dict | None = None) -> list[dict]:
    """Model time per env step (ms, a whole batch of envs) in window vs recurrent mode, timed in turns."""
    device = torch.device(device)
    rows = []
    for name in tqdm(backbones, desc="agent latency"):
        model = untrained_model(name, store, context_len, size, device)
        for batch in batches:
            episodes = {mode: RandomEpisode(Policy(model, mode, batch, context_len, kv_steps)) for mode in MODES}
            for episode in episodes.values():  # fill the window / the trimmed KV cache: steady state
                for _ in range(context_len + 1):
                    episode.step()
            times: dict[str, list[float]] = {mode: [] for mode in episodes}
            for _ in range(repeats):
                for mode, episode in episodes.items():
                    times[mode].append(timed(lambda: [episode.step() for _ in range(steps)], device) / steps)
            ms = {mode: 1e3 * statistics.median(t) for mode, t in times.items()}
            for mode in episodes:
                rows.append({"backbone": name, "envs": batch, "mode": mode, "ms_per_step": ms[mode],
                             "recurrent_speedup": ms["window"] / ms[mode]})
    return rows

"""The agent suites' flags (agent, long-context), on top of the flags every benchmark suite shares."""

from __future__ import annotations

from dataclasses import dataclass

from sequence_models.backbone_configs import BACKBONE_CONFIGS
from sequence_models.benchmarks.options import BenchmarkArgs

ALL_BACKBONES = tuple(BACKBONE_CONFIGS)


@dataclass(frozen=True)
class AgentBenchmarkArgs(BenchmarkArgs):
    backbones: tuple[str, ...] = ALL_BACKBONES
    """agent and long-context suites: backbones (untrained, bptt)"""
    embed: int = 128
    """agent and long-context suites: d_model (DT: 128)"""
    n_layers: int = 3
    """agent and long-context suites: layers (DT: 3)"""
    episodes: int = 10
    """agent suite: evaluation episodes, all in one vector env"""
    baseline_episodes: int = 2
    """agent suite: episodes of the one-env DT/CORL loop (its rate does not depend on how many)"""
    max_steps: int = 1000
    """agent suite: steps per episode (termination switched off so every episode is full length)"""
    eval_kv_steps: int = -1
    """agent suite, recurrent mode, transformer: steps its KV cache keeps (-1: K, the trained span; 0: the whole episode)"""
    train_steps: int = 12
    """agent suite: timed training steps per backbone (in --repeats rounds, backbones in turns)"""
    train_batch: int = 64
    """agent suite: training batch (K=20)"""
    latency_batches: tuple[int, ...] = (1, 10)
    """agent suite: batches of envs for the per-step latency"""
    latency_steps: int = 100
    """agent suite: timed model steps per round and mode"""
    context_lens: tuple[int, ...] = (20, 100, 250, 500, 1000)
    """long-context suite: K"""
    long_context_tokens: int = 8000
    """long-context suite: timesteps per batch at every K (batch = this // K: 400 at K=20, 8 at K=1000)"""
    long_context_steps: int = 1
    """long-context suite: timed training steps per round (--repeats rounds, every backbone and K in turns)"""

    @property
    def model_size(self) -> dict:
        return {"d_model": self.embed, "n_layers": self.n_layers}

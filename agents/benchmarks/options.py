"""The agent suites' flags (agent, long-context, peers), on top of the flags every benchmark suite shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sequence_models.backbone_configs import BACKBONE_CONFIGS
from sequence_models.benchmarks.options import BenchmarkArgs

ALL_BACKBONES = tuple(BACKBONE_CONFIGS)


@dataclass(frozen=True)
class AgentBenchmarkArgs(BenchmarkArgs):
    backbones: tuple[str, ...] = ALL_BACKBONES
    """agent and long-context suites: backbones (untrained, bptt)"""
    embed: int = 128
    """agent, long-context and peers suites: d_model (DT: 128)"""
    n_layers: int = 3
    """agent, long-context and peers suites: layers (DT: 3)"""
    episodes: int = 10
    """agent and peers suites: evaluation episodes, all in one vector env"""
    baseline_episodes: int = 2
    """agent and peers suites: episodes of the one-env DT/CORL loop emulation (its rate does not depend on how many)"""
    max_steps: int = 1000
    """agent and peers suites: steps per episode (termination switched off so every episode is full length)"""
    eval_kv_steps: int = -1
    """agent and peers suites, recurrent mode, transformer: steps its KV cache keeps (-1: K, the trained span; 0: the whole episode)"""
    train_steps: int = 12
    """agent suite: timed training steps per backbone (in --repeats rounds, backbones in turns)"""
    train_batch: int = 64
    """agent and peers suites: training batch (K=20)"""
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
    peers_backbones: tuple[str, ...] = ("transformer", "mingru")
    """peers suite: our backbones timed against d3rlpy's DecisionTransformer"""
    peers_train_steps: int = 20
    """peers suite: timed training steps per candidate and round (after --peers-warmup-steps)"""
    peers_warmup_steps: int = 2
    """peers suite: untimed training steps first (ours once, the peer in each round's fresh process)"""
    peer_python: Path | None = None
    """peers suite: a python that has d3rlpy 2.8.1 (default: the one in --peer-venv)"""
    peer_venv: Path = Path("~/.cache/decision-backbones/peers-venv")
    """peers suite: the peer's virtual environment (d3rlpy pins gymnasium 1.0.0, so it never shares ours)"""
    make_peer_env: bool = False
    """peers suite: create --peer-venv first when it is missing (python -m venv + pip install; network, minutes)"""

    @property
    def model_size(self) -> dict:
        return {"d_model": self.embed, "n_layers": self.n_layers}

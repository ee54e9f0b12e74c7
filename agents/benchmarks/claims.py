"""The agent claim at CPU scale: every backbone on builtin/halfcheetah/gaits-v0, and whole-episode context.

All runs start from the claims-cheetah preset (agents/config.py) and change only the backbone (2 x
64 for every one; the transformer one head, as DT) or the context: the recurrent backbones also
train on whole episodes (K = the episode length, 250, segment_start "fit") with the batch cut so a
step sees as many timesteps as at K=20 (64 x 20 = 1280: batch 5), the same compute per step. Each
setting runs `seeds` seeds; the score is the normalized return at the first (high) target, mean ±
std over seeds. The gait dataset hides the gait's phase from a single observation, which is what
should let context and memory matter here (the InvertedDoublePendulum built-ins saturate at 100).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from agents.benchmarks.claims_suite import BACKBONES
from agents.config import PRESETS, AgentConfig
from agents.run import train_agent
from sequence_models.backbone_configs import backbone_config
from sequence_models.benchmarks.claim_runs import ClaimResult, read_curve, train_many
from sequence_models.training.config import override

RECURRENT = BACKBONES[1:]
FLAT_TOLERANCE = 15.0
"""normalized points: an evaluation of 10 episodes moves by about this much from noise alone"""


def _smoke(config: AgentConfig) -> AgentConfig:
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, d_model=16, n_layers=1))
    return override(config, steps=4, eval_every=2, log_every=2, batch_size=4, eval_episodes=1, eval_max_steps=5)


def _config(base: AgentConfig, backbone: str, seed: int, whole_episode: int = 0) -> AgentConfig:
    shape = dict(d_model=base.backbone.d_model, n_layers=base.backbone.n_layers, dropout=base.backbone.dropout)
    config = dataclasses.replace(base, backbone=backbone_config(backbone, **shape))
    config = override(config, seed=seed)
    if whole_episode:
        batch = max(1, round(base.batch_size * base.context_len / whole_episode))
        config = override(config, context_len=whole_episode, segment_start="fit", batch_size=batch)
    return config


def _mean_std(scores: list[float]) -> str:
    """mean ± std over seeds; one seed has no spread to show (and no verdict rests on it)."""
    if len(scores) == 1:
        return f"{scores[0]:.1f} (1 seed)"
    return f"{statistics.mean(scores):.1f} ± {statistics.stdev(scores):.1f}"


def agents(runs_dir: Path, smoke: bool = False, seeds: tuple[int, ...] = (0, 1, 2),
           backbones: tuple[str, ...] = BACKBONES, whole_episode: bool = True, workers: int = 1) -> ClaimResult:
    """Every backbone at K=20, and the recurrent ones with whole-episode context; `seeds` each."""
    base = PRESETS["claims-cheetah"]()
    base = _smoke(base) if smoke else base
    result = ClaimResult("agents", f"{base.dataset}: 2 x {base.backbone.d_model}, {base.steps} steps, seeds "
                         f"{', '.join(map(str, seeds))}", tolerance=FLAT_TOLERANCE)
    scores: dict[tuple[str, int], list[float]] = {}
    episode_len = 0
    settings = [(b, 0) for b in backbones] + ([(b, -1) for b in backbones if b in RECURRENT] if whole_episode else [])
    if any(context == -1 for _, context in settings):
        episode_len = _episode_length(base)
    plan = []
    for backbone, context in settings:
        for seed in seeds:
            config = _config(base, backbone, seed, episode_len if context == -1 else 0)
            plan.append((f"{backbone} K={config.context_len} s{seed}", config))
    runs = train_many([(_run_name(label), train_agent, config) for label, config in plan], runs_dir, workers)
    for label, config in plan:
        backbone = label.split()[0]
        r: dict[str, Any] = runs[_run_name(label)]
        target = next(iter(r["final_score"]))
        score = r["final_score"][target]
        scores.setdefault((backbone, config.context_len), []).append(score)
        result.run_row(label, read_curve(r["run_dir"], f"eval/normalized@{target}", label),
                       parameters=r["parameters"], context=config.context_len, batch=config.batch_size,
                       steps=r["steps"], target=target, normalized=score)
    short = {b: s for (b, k), s in scores.items() if k == base.context_len}
    if short:
        means = {b: statistics.mean(s) for b, s in short.items()}
        best, worst = max(means, key=means.get), min(means, key=means.get)
        result.claim(f"backbones at K={base.context_len}: normalized score at the high target (mean ± std)", "-",
                     "; ".join(f"{b} {_mean_std(s)}" for b, s in short.items()), None,
                     [r["run"] for r in result.runs if r["context"] == base.context_len])
        result.claim("backbones differ (best - worst mean > the larger std)", "-",
                     f"{best} {means[best]:.1f} vs {worst} {means[worst]:.1f}",
                     means[best] - means[worst] > max(_std(short[best]), _std(short[worst])) if len(seeds) > 1 else None,
                     [r["run"] for r in result.runs if r["context"] == base.context_len])
    for backbone in backbones:
        long = scores.get((backbone, episode_len))
        if long and backbone in short:
            labels = [r["run"] for r in result.runs if r["run"].startswith(f"{backbone} K=")]
            result.claim(f"{backbone}: whole-episode context (K={episode_len}) against K={base.context_len}", "-",
                         f"{_mean_std(long)} vs {_mean_std(short[backbone])}", None, labels)
    return result


def _run_name(label: str) -> str:
    return label.replace(" ", "-").replace("=", "")


def _std(scores: list[float]) -> float:
    return statistics.stdev(scores) if len(scores) > 1 else 0.0


def _episode_length(config: AgentConfig) -> int:
    """The dataset's longest episode (its time limit when episodes run out)."""
    from agents.run import load_store

    return int(load_store(config).episode_lengths.max())

"""The agent claim at CPU scale: every backbone on builtin/halfcheetah/gaits-v0, and whole-episode context.

All runs start from the claims-cheetah preset (agents/config.py: whole episodes, K = the 250-step time
limit, segments that fit, batch 5, return scale 0.01) and change only the backbone (2 x 64 for every one;
the transformer one head, as DT) or, for the comparison, the context: DT's K=20 with segments starting
anywhere and batch 64 (about as many timesteps per step: 1280 against 1250). Each setting runs `seeds`
seeds; the score is the normalized return at the first (high) target after the last step (50 episodes),
mean ± std over seeds. At each context the recurrent backbones are held to the transformer (PARITY_MARGIN).
The gait dataset hides the gait's phase from a single observation, which is what should let context
and memory matter here (the InvertedDoublePendulum built-ins saturate at 100).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import statistics
from pathlib import Path
from typing import Any

from agents.benchmarks.claims_suite import BACKBONES
from agents.config import PRESETS, AgentConfig
from agents.run import train_agent
from sequence_models.backbone_configs import backbone_config
from sequence_models.benchmarks.claim_runs import ClaimResult, read_curve, train_many
from sequence_models.training.config import BACKBONE_SHAPE, override

RECURRENT = BACKBONES[1:]
"""every registered backbone but the transformer"""
FLAT_TOLERANCE = 15.0
"""normalized points: an evaluation of 10 episodes moves by about this much from noise alone"""
PARITY_MARGIN = {"mingru": 5.0, "minlstm": 5.0, "lru": 10.0, "gru": 10.0, "lstm": 10.0, "rnn": 10.0}
"""normalized points a recurrent backbone may trail the transformer by (issue 18's goal, after the minGRU
paper's Table 3: minGRU-DT 78.2, minLSTM-DT 78.1, DT 76.4 on D4RL)"""
WINDOW_MARGIN = 5.0
"""normalized points: "recurrent evaluation no worse than window evaluation" allows about one standard error of
a mean over 3 seeds x 50 episodes (an episode's score spreads by ~30)"""
SHORT = dict(context_len=20, segment_start="any", batch_size=64)
"""the setting whole episodes are compared with: DT's K and sampling, the batch as many timesteps as the preset's
(64 x 20 = 1280, 5 x 250 = 1250)"""
PAPER_TABLE_3 = "minGRU-DT 78.2, minLSTM-DT 78.1 vs DT 76.4 (D4RL average)"


def _smoke(config: AgentConfig) -> AgentConfig:
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, d_model=16, n_layers=1))
    return override(config, steps=4, eval_every=2, log_every=2, batch_size=4, eval_episodes=1, eval_max_steps=5)


def _config(base: AgentConfig, backbone: str, seed: int, short: bool = False) -> AgentConfig:
    """The preset with `backbone` at the preset's shape; `short`: DT's context and sampling (SHORT)."""
    shape = {name: getattr(base.backbone, name) for name in BACKBONE_SHAPE}
    config = dataclasses.replace(base, backbone=backbone_config(backbone, **shape))
    return override(config, seed=seed, **(SHORT if short else {}))


def _mean_std(scores: list[float]) -> str:
    """mean ± std over seeds; one seed has no spread to show (and no verdict rests on it)."""
    if len(scores) == 1:
        return f"{scores[0]:.1f} (1 seed)"
    return f"{statistics.mean(scores):.1f} ± {statistics.stdev(scores):.1f}"


def agents(runs_dir: Path, smoke: bool = False, seeds: tuple[int, ...] = (0, 1, 2),
           backbones: tuple[str, ...] = BACKBONES, short_context: bool = True, workers: int = 1,
           window_check: bool = True, device: str = "auto") -> ClaimResult:
    """Every backbone at the preset's settings (whole episodes) and (`short_context`) at DT's K=20, `seeds` each;
    at each context the recurrent backbones against the transformer. The recurrent backbones' K=20 runs are also
    evaluated in window mode (`window_check`): the same episodes, the checkpoint after the last step. Every run and
    evaluation goes on `device` (auto: CUDA when available)."""
    base = override(PRESETS["claims-cheetah"](), device=device)
    base = _smoke(base) if smoke else base
    result = ClaimResult("agents", f"{base.dataset}: 2 x {base.backbone.d_model}, {base.steps} steps, seeds "
                         f"{', '.join(map(str, seeds))}", tolerance=FLAT_TOLERANCE)
    settings = [False] + ([True] if short_context else [])
    plan = [(f"{backbone} K={config.context_len} s{seed}", config)
            for short in settings for backbone in backbones for seed in seeds
            for config in [_config(base, backbone, seed, short)]]
    runs = train_many([(_run_name(label), train_agent, config) for label, config in plan], runs_dir, workers)
    scores: dict[int, dict[str, list[float]]] = {}
    for label, config in plan:
        backbone = label.split()[0]
        r: dict[str, Any] = runs[_run_name(label)]
        target = next(iter(r["final_score"]))
        score = r["final_score"][target]
        scores.setdefault(config.context_len, {}).setdefault(backbone, []).append(score)
        result.run_row(label, read_curve(r["run_dir"], f"eval/normalized@{target}", label), r,
                       parameters=r["parameters"], context=config.context_len, batch=config.batch_size,
                       steps=r["steps"], target=target, normalized=score)
    for context, at_context in scores.items():
        _context_claims(result, at_context, context, len(seeds) > 1)
    if short_context and window_check:
        _window_claims(result, plan, runs, SHORT["context_len"])
    if short_context:
        long, short = scores[base.context_len], scores[SHORT["context_len"]]
        for backbone in backbones:
            labels = [r["run"] for r in result.runs if r["run"].startswith(f"{backbone} K=")]
            holds = (statistics.mean(long[backbone]) >= statistics.mean(short[backbone]) - WINDOW_MARGIN
                     if backbone in RECURRENT else None)
            result.claim(f"{backbone}: whole-episode context (K={base.context_len}) no worse than "
                         f"K={SHORT['context_len']} (within {WINDOW_MARGIN:g})", "-",
                         f"{_mean_std(long[backbone])} vs {_mean_std(short[backbone])}", holds, labels)
    return result


def _context_claims(result: ClaimResult, scores: dict[str, list[float]], context: int, spread: bool) -> None:
    """At one context: every backbone's score, whether they differ, and parity with the transformer."""
    labels = [r["run"] for r in result.runs if r["context"] == context]
    means = {b: statistics.mean(s) for b, s in scores.items()}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    result.claim(f"backbones at K={context}: normalized score at the high target (mean ± std)", "-",
                 "; ".join(f"{b} {_mean_std(s)}" for b, s in scores.items()), None, labels)
    result.claim(f"backbones differ at K={context} (best - worst mean > the larger std)", "-",
                 f"{best} {means[best]:.1f} vs {worst} {means[worst]:.1f}",
                 means[best] - means[worst] > max(_std(scores[best]), _std(scores[worst])) if spread else None, labels)
    if "transformer" in scores:
        _parity_claims(result, scores, context)


def _parity_claims(result: ClaimResult, scores: dict[str, list[float]], context: int) -> None:
    """Each recurrent backbone's mean against the transformer's at one context, within its PARITY_MARGIN."""
    transformer = statistics.mean(scores["transformer"])
    for backbone, margin in PARITY_MARGIN.items():
        if backbone in scores:
            mean = statistics.mean(scores[backbone])
            ours = f"{_mean_std(scores[backbone])} vs {_mean_std(scores['transformer'])} ({mean - transformer:+.1f})"
            labels = [r["run"] for r in result.runs
                      if r["context"] == context and r["run"].split()[0] in (backbone, "transformer")]
            result.claim(f"{backbone} within {margin:g} points of the transformer (K={context})", PAPER_TABLE_3, ours,
                         mean >= transformer - margin, labels)


def _window_claims(result: ClaimResult, plan: list[tuple[str, AgentConfig]], runs: dict[str, dict[str, Any]],
                   context: int) -> None:
    """The recurrent K=`context` runs in both evaluation modes: recurrent no worse than window (each evaluated on
    its own run's device)."""
    by_backbone: dict[str, tuple[list[float], list[float]]] = {}
    for label, config in plan:
        backbone = label.split()[0]
        if backbone not in RECURRENT or config.context_len != context:
            continue
        r = runs[_run_name(label)]
        target = next(iter(r["final_score"]))
        recurrent, window = by_backbone.setdefault(backbone, ([], []))
        recurrent.append(r["final_score"][target])
        window.append(window_score(Path(r["run_dir"]), float(target), config.run.device))
    for backbone, (recurrent, window) in by_backbone.items():
        result.claim(f"{backbone}: recurrent evaluation no worse than window (K={context}, within {WINDOW_MARGIN:g})",
                     "-", f"recurrent {_mean_std(recurrent)} vs window {_mean_std(window)}",
                     statistics.mean(recurrent) >= statistics.mean(window) - WINDOW_MARGIN,
                     [r["run"] for r in result.runs if r["context"] == context and r["run"].split()[0] == backbone])


def window_score(run_dir: Path, target: float, device: str = "auto") -> float:
    """Normalized score of run_dir's last checkpoint in window mode at `target`, on the run's final evaluation's
    episodes (read back from run_dir/eval-last-window.json when it holds that target)."""
    from agents.evaluate_checkpoint import EvaluateArgs, evaluate_checkpoint

    saved = run_dir / "eval-last-window.json"
    summary = json.loads(saved.read_text()) if saved.is_file() else {}
    if [t["target"] for t in summary.get("targets", [])] != [target]:
        with contextlib.redirect_stdout(io.StringIO()):
            summary = evaluate_checkpoint(EvaluateArgs(checkpoint=str(run_dir / "checkpoints" / "last.pt"),
                                                       targets=(target,), mode="window", output=str(saved),
                                                       device=device))
    row = summary["targets"][0]
    return float(row.get("normalized_mean", row["return_mean"]))


def _run_name(label: str) -> str:
    return label.replace(" ", "-").replace("=", "")


def _std(scores: list[float]) -> float:
    return statistics.stdev(scores) if len(scores) > 1 else 0.0

"""Evaluator: every (target, episode) pair in one Gymnasium vector env, one batched model call per step.

Layout. The batch is targets x episodes: env j·E + e is episode e conditioned on target j, reset
with seed `seed + e` (the same start states for every target, so targets compare like for like).

Finished episodes. All envs start together and step together, so every env is at the same step
count and a window is exact without padding. An env that terminates or truncates is *masked*: its
return and length stop counting at its first end, and it keeps stepping with the others (Gymnasium's
default next-step autoreset starts it on a new episode, whose rewards are ignored). Masking keeps the
batch shape fixed (no re-batching, no per-env bookkeeping in the model's state) at the price of
model calls for finished envs; the loop stops as soon as every env has finished once.

Modes: window (re-run the last K steps, as DT) or recurrent (carry the backbone state; a KV cache of
`kv_steps` steps for the transformer); agents/policy.py, whose Policy steps the model for every env,
describes both. They give the same actions for the first K steps.

Data parallel (torchrun): pass a distributed Context and the targets x episodes envs are split
into contiguous shares, one per rank; each env keeps its seed (seed + e) and target, so the gathered
report holds the same episodes as one process running them all (every rank gets the whole report).

Return-to-go: R̂_0 = target, R̂_{t+1} = R̂_t − r_t (the Policy scales it by return_scale, as DT).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec

from agents.model import DecisionModel
from agents.policy import MODES, Policy
from envs.eval_env import eval_env_spec, make_eval_vector_env
from envs.observations import flatten_observation
from envs.reference_scores import ReferenceScore
from sequence_models.training.distributed import Context, all_gather_object, shard


@dataclass
class TargetResult:
    target: float
    returns: list[float]
    lengths: list[int]
    normalized: list[float] | None = None

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_std(self) -> float:
        return float(np.std(self.returns))

    def summary(self) -> dict[str, Any]:
        out = {
            "target": self.target,
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "length_mean": float(np.mean(self.lengths)),
            "returns": self.returns,
            "lengths": self.lengths,
        }
        if self.normalized is not None:
            out.update(normalized_mean=float(np.mean(self.normalized)), normalized_std=float(np.std(self.normalized)),
                       normalized=self.normalized)
        return out


@dataclass
class EvalReport:
    mode: str
    episodes: int
    targets: list[TargetResult]
    env_steps: int  # env steps that counted (sum of episode lengths)
    env_steps_total: int  # env steps taken, masked ones included
    seconds: float
    reference: str | None  # the reference's name, or None
    note: str = ""  # why there is no normalized score, when there is none
    actions: np.ndarray | None = field(default=None, repr=False)  # (steps, B, act_dim) when recorded

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / max(self.seconds, 1e-9)

    def score(self, index: int = 0) -> float:
        """Mean normalized score at targets[index] (the first target is the high one), else the mean return."""
        t = self.targets[index]
        return float(np.mean(t.normalized)) if t.normalized is not None else t.return_mean

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "episodes": self.episodes, "reference": self.reference, "note": self.note,
            "env_steps": self.env_steps, "env_steps_per_s": self.env_steps_per_s, "seconds": self.seconds,
            "targets": [t.summary() for t in self.targets],
        }

    def lines(self) -> list[str]:
        out = []
        for t in self.targets:
            text = f"target {t.target:g}: return {t.return_mean:.1f} ± {t.return_std:.1f}"
            if t.normalized is not None:
                text += f", normalized {np.mean(t.normalized):.1f} ± {np.std(t.normalized):.1f}"
            text += f", length {np.mean(t.lengths):.0f}"
            out.append(text)
        out.append(
            f"{self.mode} mode, {self.episodes} episodes per target, {self.env_steps_per_s:.0f} env steps/s"
            + (f"  [reference: {self.reference}]" if self.reference else f"  [raw returns: {self.note}]")
        )
        return out


def choose_vectorization(num_envs: int, requested: str = "auto") -> str:
    """auto: one process for few envs (or few cores), one process per env for many."""
    if requested != "auto":
        return requested
    return "async" if num_envs >= 16 and (os.cpu_count() or 1) >= 8 else "sync"


def with_time_limit(spec: EnvSpec, max_steps: int) -> EnvSpec:
    """The same env with a shorter (or unchanged) time limit."""
    if max_steps <= 0:
        return spec
    limit = spec.max_episode_steps
    return dataclasses.replace(spec, max_episode_steps=max_steps if not limit else min(limit, max_steps))


@torch.inference_mode()
def evaluate(
    model: DecisionModel,
    env: EnvSpec | str,
    targets: list[float] | tuple[float, ...],
    episodes: int,
    mode: str = "recurrent",
    context_len: int = 20,
    return_scale: float = 1e-3,
    seed: int = 0,
    max_steps: int = 0,
    vectorization: str = "auto",
    reference: ReferenceScore | None = None,
    no_reference_reason: str = "",
    record_actions: bool = False,
    kv_steps: int = -1,
    ctx: Context | None = None,
    allow_foreign_code: bool = False,
    amp: bool = False,
) -> EvalReport:
    """Run len(targets) x episodes episodes in one vector env and report per-target returns and scores.

    env: an EnvSpec (or its plain data), a registered env id or a dataset id; checked once as data
    (envs.env_specs): a foreign entry point or wrapper is refused unless allow_foreign_code.
    kv_steps (recurrent mode, transformer): steps kept in the KV cache; -1: context_len; 0: all.
    ctx: when distributed, this rank runs its share of the episodes and the report gathers them all.
    amp: the model acts under bf16 autocast where the device does bf16 natively (training's --amp)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'window' or 'recurrent', got {mode!r}")
    if not targets or episodes < 1 or context_len < 1:
        raise ValueError("need at least one target, one episode and context_len >= 1")
    ctx = ctx or Context()
    if record_actions and ctx.enabled:
        raise ValueError("record_actions needs a single process (the episodes are split across ranks)")
    spec = with_time_limit(eval_env_spec(env, allow_foreign_code=allow_foreign_code), max_steps)
    horizon = spec.max_episode_steps or model.max_ep_len
    all_targets = np.repeat(np.asarray(targets, dtype=np.float64), episodes)  # env j·E + e: target j ...
    all_seeds = [seed + e for _ in targets for e in range(episodes)]  # ... reset with seed + e
    mine = shard(len(all_seeds), ctx)
    returns, lengths, steps_taken, recorded, seconds = (
        _run_episodes(model, spec, all_targets[mine.start:mine.stop], all_seeds[mine.start:mine.stop], horizon, mode,
                      context_len, return_scale, vectorization, record_actions, kv_steps, allow_foreign_code, amp)
        if len(mine) else (np.zeros(0), np.zeros(0, dtype=np.int64), 0, [], 0.0))
    env_steps_total = steps_taken * len(mine)
    if ctx.enabled:  # every rank's share, in env order (shards are contiguous and in rank order)
        shares = all_gather_object(ctx, (returns, lengths, env_steps_total, seconds))
        returns = np.concatenate([s[0] for s in shares])
        lengths = np.concatenate([s[1] for s in shares])
        env_steps_total = sum(s[2] for s in shares)
        seconds = max(s[3] for s in shares)

    normalized, note, ref_name = None, "", None
    if reference is not None:
        normalized, ref_name = reference.normalize(returns), reference.name
    else:
        note = no_reference_reason or "no reference score for this env"
    results = []
    for j, target in enumerate(targets):
        rows = slice(j * episodes, (j + 1) * episodes)
        results.append(TargetResult(
            float(target), returns[rows].tolist(), lengths[rows].tolist(),
            normalized[rows].tolist() if normalized is not None else None,
        ))
    return EvalReport(
        mode=mode, episodes=episodes, targets=results, env_steps=int(lengths.sum()),
        env_steps_total=env_steps_total, seconds=seconds, reference=ref_name, note=note,
        actions=np.stack(recorded) if record_actions else None,
    )


def _run_episodes(model: DecisionModel, spec: EnvSpec, target_column: np.ndarray, seeds: list[int], horizon: int,
                  mode: str, context_len: int, return_scale: float, vectorization: str, record_actions: bool,
                  kv_steps: int, allow_foreign_code: bool, amp: bool) -> tuple[np.ndarray, np.ndarray, int, list[np.ndarray], float]:
    """One vector env, env i conditioned on target_column[i] and reset with seeds[i]:
    (returns, lengths, steps taken, recorded actions, seconds after the env was made)."""
    batch = len(seeds)
    was_training = model.training
    model.eval()

    envs = make_eval_vector_env(spec, batch, vectorization_mode=choose_vectorization(batch, vectorization),
                                allow_foreign_code=allow_foreign_code)
    try:
        t0 = time.perf_counter()
        obs, _ = envs.reset(seed=list(seeds))
        policy = Policy(model, mode, batch, context_len, kv_steps, return_scale, amp)
        rtg = target_column.copy()  # unscaled R̂ per env
        returns = np.zeros(batch)
        lengths = np.zeros(batch, dtype=np.int64)
        done = np.zeros(batch, dtype=bool)
        recorded, steps_taken = [], 0
        overlap = isinstance(envs, gym.vector.AsyncVectorEnv)

        for t in range(horizon):
            action = policy.act(flatten_observation(obs), rtg, t)  # as the store flattened the dataset's
            action_np = action.cpu().numpy()  # float32; the step's one host sync
            if overlap:  # the workers step while this process records
                envs.step_async(action_np)
            if record_actions:
                recorded.append(action_np)
            obs, reward, terminated, truncated, _ = envs.step_wait() if overlap else envs.step(action_np)
            steps_taken += 1
            active = ~done
            returns[active] += reward[active]
            lengths[active] += 1
            rtg = rtg - reward
            done |= terminated | truncated
            if done.all():
                break
        seconds = time.perf_counter() - t0
    finally:
        envs.close()
        model.train(was_training)
    return returns, lengths, steps_taken, recorded, seconds


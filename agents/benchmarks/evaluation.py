"""Evaluation speed: env steps/s of the DT/CORL loop and of our evaluator, window and recurrent mode.

The DT/CORL way (`dt_style_evaluation`): one env, one episode at a time, and every step re-runs the
model on the last K steps (here without DT's left padding to K, so the baseline does slightly *less*
work than DT's and the ratios are conservative). It steps the model through the evaluator's own
Policy (window mode, batch 1), so the baseline differs from ours only in what the comparison is
about: one env and one episode at a time, instead of every episode in one vector env with one
batched model call per step. Its rate does not depend on how many episodes it runs, so it runs
`baseline_episodes` of them. Ours: agents.evaluator.evaluate in window mode (the same K-step re-run,
batched) and recurrent mode (O(1) per step; a KV cache of eval_kv_steps steps for the transformer).

Episodes are full length: the benchmark env is the built-in dataset's InvertedDoublePendulum-v5 with
termination switched off (an untrained model falls within steps), time limit max_steps.
"""

from __future__ import annotations

import time
from dataclasses import replace

import gymnasium as gym
import torch
from gymnasium.envs.registration import EnvSpec
from tqdm import tqdm

from agents.benchmarks.options import ALL_BACKBONES
from agents.benchmarks.untrained import untrained_model
from agents.evaluator import evaluate
from agents.model import DecisionModel
from agents.policy import Policy
from envs.trajectory_store import TrajectoryStore

BENCHMARK_BASE_ENV = "InvertedDoublePendulum-v5"
BENCHMARK_ENV = "decision-backbones/InvertedDoublePendulumNoTermination-v0"
TARGET = 9000.0


class NeverTerminates(gym.Wrapper):
    """Every episode runs to the time limit, whatever the policy does (timing needs full episodes)."""

    def step(self, action):
        obs, reward, _terminated, truncated, info = self.env.step(action)
        return obs, reward, False, truncated, info


def _make_benchmark_env(**kwargs) -> gym.Env:
    return NeverTerminates(gym.make(BENCHMARK_BASE_ENV, **kwargs).unwrapped)


def benchmark_env_spec(max_steps: int) -> EnvSpec:
    if BENCHMARK_ENV not in gym.registry:
        gym.register(BENCHMARK_ENV, entry_point=_make_benchmark_env)
    return replace(gym.spec(BENCHMARK_ENV), max_episode_steps=max_steps)


@torch.no_grad()
def dt_style_evaluation(model: DecisionModel, spec: EnvSpec, episodes: int, context_len: int, target: float,
                        return_scale: float = 1e-3) -> tuple[int, float, list[float]]:
    """One env, one episode at a time (reset with seed e), the last K steps re-run every step.
    (env steps, seconds, each episode's return)"""
    env = gym.make(spec)
    policy = Policy(model, "window", 1, context_len, return_scale=return_scale)
    steps, returns, t0 = 0, [], time.perf_counter()
    for e in range(episodes):
        obs, _ = env.reset(seed=e)
        policy.reset()
        rtg, episode_return = target, 0.0
        for t in range(spec.max_episode_steps):
            action = policy.act(obs[None], rtg, t)[0]
            obs, reward, terminated, truncated, _ = env.step(action.float().cpu().numpy())
            rtg -= reward
            episode_return += reward
            steps += 1
            if terminated or truncated:
                break
        returns.append(float(episode_return))
    seconds = time.perf_counter() - t0
    env.close()
    return steps, seconds, returns


def benchmark_evaluation(store: TrajectoryStore, backbones=ALL_BACKBONES, episodes: int = 10, max_steps: int = 1000,
                         context_len: int = 20, baseline_episodes: int = 2, kv_steps: int = -1,
                         device: str | torch.device = "cpu", size: dict | None = None) -> list[dict]:
    """Env steps/s of the DT/CORL loop and of our evaluator (window, recurrent); speed-up over the loop."""
    spec = benchmark_env_spec(max_steps)
    rows = []
    for name in tqdm(backbones, desc="agent evaluation"):
        model = untrained_model(name, store, context_len, size, device)
        steps, seconds, _ = dt_style_evaluation(model, spec, baseline_episodes, context_len, TARGET)
        baseline = steps / seconds
        rows.append({"backbone": name, "method": "DT/CORL loop emulation (1 env, K-window)", "envs": 1,
                     "env_steps": steps, "seconds": seconds, "env_steps_per_s": baseline, "speedup": 1.0})
        for mode in ("window", "recurrent"):
            report = evaluate(model, spec, [TARGET], episodes, mode=mode, context_len=context_len, seed=0,
                              vectorization="sync", kv_steps=kv_steps)
            rate = report.env_steps / report.seconds
            rows.append({"backbone": name, "method": f"ours, vector env, {mode}", "envs": episodes,
                         "env_steps": report.env_steps, "seconds": report.seconds, "env_steps_per_s": rate,
                         "speedup": rate / baseline})
    return rows

"""Agent speed: evaluation env steps/s against the DT/CORL loop, and training samples/s.

    python scripts/benchmark.py --suite agent                  # transformer and minGRU, 10 episodes x 1000 steps
    python scripts/benchmark.py --suite agent --episodes 4 --max-steps 200 --backbones mingru lru

Evaluation. The DT/CORL way: one env, one episode at a time, and every step re-runs the model on the
last K steps (here without DT's left padding to K, so the baseline does slightly *less* work than DT's
and the ratios are conservative). Ours: all episodes in one vector env with one batched model call
per step, in window mode (the same K-step re-run, batched) and recurrent mode (O(1) per step; a KV
cache for the transformer). Episodes are full length: the benchmark env is the built-in dataset's
InvertedDoublePendulum-v5 with termination switched off (an untrained model falls within steps),
time limit max_steps. Models are the DT paper's size (embed 128, 3 layers, 1 head, K = 20), untrained.

Training: samples/s (segments of K steps per second) of the training step, batch 64.

"""

from __future__ import annotations

import time

import gymnasium as gym
import torch

from agents.checkpoints import build_model, dataset_info
from agents.config import AgentConfig
from agents.evaluator import evaluate
from agents.run import load_store
from agents.trainer import Trainer
from envs.segment_sampler import SegmentSampler
from sequence_models.backbone import backbone_config

BENCHMARK_ENV = "decision-backbones/InvertedDoublePendulumNoTermination-v0"


class NeverTerminates(gym.Wrapper):
    """Every episode runs to the time limit, whatever the policy does (timing needs full episodes)."""

    def step(self, action):
        obs, reward, _terminated, truncated, info = self.env.step(action)
        return obs, reward, False, truncated, info


def _make_benchmark_env(**kwargs) -> gym.Env:
    return NeverTerminates(gym.make("InvertedDoublePendulum-v5", **kwargs).unwrapped)


def benchmark_env_spec(max_steps: int):
    if BENCHMARK_ENV not in gym.registry:
        gym.register(BENCHMARK_ENV, entry_point=_make_benchmark_env)
    from dataclasses import replace

    return replace(gym.spec(BENCHMARK_ENV), max_episode_steps=max_steps)


def dt_model(name: str, store, context_len: int = 20):
    fields = {"d_model": 128, "n_layers": 3, "dropout": 0.1}
    if name == "transformer":
        fields["n_heads"] = 1
    config = AgentConfig(backbone=backbone_config(name, **fields), context_len=context_len)
    info = dataset_info(store)
    torch.manual_seed(0)
    return build_model(config, info, store).eval(), config


@torch.no_grad()
def dt_style_evaluation(model, spec, episodes: int, context_len: int, target: float, return_scale: float = 1e-3) -> tuple[int, float]:
    """One env, one episode at a time, the last K steps re-run every step. (env steps, seconds)"""
    env = gym.make(spec)
    steps, t0 = 0, time.perf_counter()
    for e in range(episodes):
        obs, _ = env.reset(seed=e)
        states, actions, rtgs, timesteps = [], [], [], []
        rtg = target
        for t in range(spec.max_episode_steps):
            states.append(torch.as_tensor(obs, dtype=torch.float32))
            rtgs.append(torch.tensor([rtg * return_scale], dtype=torch.float32))
            timesteps.append(t)
            actions.append(torch.zeros(model.act_dim))
            window = slice(-context_len, None)
            s = model.normalize_states(torch.stack(states[window]))[None]
            action = model.window_actions(torch.stack(rtgs[window])[None], s, torch.stack(actions[window])[None],
                                          torch.tensor(timesteps[window])[None])[0]
            actions[-1] = action
            obs, reward, terminated, truncated, _ = env.step(action.numpy())
            rtg -= reward
            steps += 1
            if terminated or truncated:
                break
    env.close()
    return steps, time.perf_counter() - t0


def benchmark_evaluation(backbones=("transformer", "mingru"), episodes: int = 10, max_steps: int = 1000,
                         context_len: int = 20) -> list[dict]:
    store = load_store(AgentConfig())
    spec = benchmark_env_spec(max_steps)
    rows = []
    for name in backbones:
        model, _ = dt_model(name, store, context_len)
        steps, seconds = dt_style_evaluation(model, spec, episodes, context_len, 9000.0)
        baseline = steps / seconds
        rows.append({"backbone": name, "method": "DT/CORL loop (1 env, K-window)", "episodes": episodes,
                     "env_steps": steps, "seconds": seconds, "env_steps_per_s": baseline, "speedup": 1.0})
        for mode in ("window", "recurrent"):
            report = evaluate(model, spec, [9000.0], episodes, mode=mode, context_len=context_len, seed=0,
                              vectorization="sync")
            rate = report.env_steps / report.seconds
            rows.append({"backbone": name, "method": f"ours, vector env, {mode}", "episodes": episodes,
                         "env_steps": report.env_steps, "seconds": report.seconds, "env_steps_per_s": rate,
                         "speedup": rate / baseline})
    return rows


def benchmark_training(backbones=("transformer", "mingru"), steps: int = 20, batch_size: int = 64,
                       context_len: int = 20, device: str = "cpu") -> list[dict]:
    store = load_store(AgentConfig())
    rows = []
    for name in backbones:
        model, config = dt_model(name, store, context_len)
        model.to(device)
        config = AgentConfig(backbone=config.backbone, context_len=context_len, batch_size=batch_size, steps=steps)
        sampler = SegmentSampler(store, context_len, batch_size, device=device, seed=0)
        trainer = Trainer(model, sampler, config, torch.device(device))
        for _ in range(3):
            trainer.train_step()
        trainer.read_metrics()
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        trainer.read_metrics()  # one host sync: the device has finished
        seconds = time.perf_counter() - t0
        rows.append({"backbone": name, "batch_size": batch_size, "context_len": context_len, "device": device,
                     "steps": steps, "seconds": seconds, "samples_per_s": steps * batch_size / seconds})
    return rows

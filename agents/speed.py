"""Agent speed: evaluation env steps/s, per-step inference latency, training samples/s, long contexts.

    python scripts/benchmark.py --suite agent          # every backbone: evaluation, latency, training
    python scripts/benchmark.py --suite long-context   # training time per token at K = 20 ... 1000

Models are the DT paper's size (embed 128, 3 layers, 1 head, dropout 0.1), untrained, every backbone
with its default (bptt) gradient; the sizes are arguments so tests can shrink them.

Evaluation (`benchmark_evaluation`). The DT/CORL way: one env, one episode at a time, and every step
re-runs the model on the last K steps (here without DT's left padding to K, so the baseline does
slightly *less* work than DT's and the ratios are conservative). Its rate does not depend on how many
episodes it runs, so it runs `baseline_episodes` of them. Ours: all episodes in one vector env with
one batched model call per step, in window mode (the same K-step re-run, batched) and recurrent mode
(O(1) per step; a KV cache for the transformer). Episodes are full length: the benchmark env is the
built-in dataset's InvertedDoublePendulum-v5 with termination switched off (an untrained model falls
within steps), time limit max_steps.

Latency (`benchmark_latency`): the model alone (no env), ms per step for a batch of envs, in window
and recurrent mode, at steady state (after K steps, so the window is full and the KV cache trimmed),
the two modes timed in turns.

Training (`benchmark_training`): samples/s (segments of K steps per second) of the trainer's step,
every backbone timed in turns. `benchmark_long_context`: the same step at K = 20 ... 1000 with a
constant number of timesteps per batch (batch = tokens // K), reported as time per timestep; for
recurrent backbones the cost per timestep should stay flat as K grows, for attention it grows with K.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import gymnasium as gym
import torch
from tqdm import tqdm

from agents.checkpoints import build_model, dataset_info
from agents.config import AgentConfig
from agents.evaluator import evaluate, trim_kv_cache
from agents.run import load_store
from agents.trainer import Trainer
from envs.segment_sampler import SegmentSampler
from sequence_models.backbone import BACKBONE_CONFIGS, backbone_config

BENCHMARK_ENV = "decision-backbones/InvertedDoublePendulumNoTermination-v0"
ALL_BACKBONES = tuple(BACKBONE_CONFIGS)
DT_SIZE = {"d_model": 128, "n_layers": 3}


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
    return replace(gym.spec(BENCHMARK_ENV), max_episode_steps=max_steps)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dt_model(name: str, store, context_len: int = 20, size: dict | None = None, device: str | torch.device = "cpu"):
    """An untrained DecisionModel with backbone `name` (DT size unless `size` says otherwise), in eval mode."""
    fields = {**DT_SIZE, **(size or {}), "dropout": 0.1}
    if name == "transformer":
        fields["n_heads"] = 1
    config = AgentConfig(backbone=backbone_config(name, **fields), context_len=context_len)
    torch.manual_seed(0)
    return build_model(config, dataset_info(store), store).to(device).eval(), config


@torch.no_grad()
def dt_style_evaluation(model, spec, episodes: int, context_len: int, target: float, return_scale: float = 1e-3) -> tuple[int, float]:
    """One env, one episode at a time, the last K steps re-run every step. (env steps, seconds)"""
    device = next(model.parameters()).device
    env = gym.make(spec)
    steps, t0 = 0, time.perf_counter()
    for e in range(episodes):
        obs, _ = env.reset(seed=e)
        states, actions, rtgs, timesteps = [], [], [], []
        rtg = target
        for t in range(spec.max_episode_steps):
            states.append(torch.as_tensor(obs, dtype=torch.float32, device=device))
            rtgs.append(torch.tensor([rtg * return_scale], dtype=torch.float32, device=device))
            timesteps.append(t)
            actions.append(torch.zeros(model.act_dim, device=device))
            window = slice(-context_len, None)
            s = model.normalize_states(torch.stack(states[window]))[None]
            action = model.window_actions(torch.stack(rtgs[window])[None], s, torch.stack(actions[window])[None],
                                          torch.tensor(timesteps[window], device=device)[None])[0]
            actions[-1] = action
            obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
            rtg -= reward
            steps += 1
            if terminated or truncated:
                break
    env.close()
    return steps, time.perf_counter() - t0


def benchmark_evaluation(backbones=ALL_BACKBONES, episodes: int = 10, max_steps: int = 1000, context_len: int = 20,
                         baseline_episodes: int = 2, device: str | torch.device = "cpu", size: dict | None = None,
                         store=None) -> list[dict]:
    """Env steps/s of the DT/CORL loop and of our evaluator (window, recurrent); speed-up over the loop."""
    store = store if store is not None else load_store(AgentConfig())
    spec = benchmark_env_spec(max_steps)
    rows = []
    for name in tqdm(backbones, desc="agent evaluation"):
        model, _ = dt_model(name, store, context_len, size, device)
        steps, seconds = dt_style_evaluation(model, spec, baseline_episodes, context_len, 9000.0)
        baseline = steps / seconds
        rows.append({"backbone": name, "method": "DT/CORL loop (1 env, K-window)", "envs": 1,
                     "env_steps": steps, "seconds": seconds, "env_steps_per_s": baseline, "speedup": 1.0})
        for mode in ("window", "recurrent"):
            report = evaluate(model, spec, [9000.0], episodes, mode=mode, context_len=context_len, seed=0,
                              vectorization="sync")
            rate = report.env_steps / report.seconds
            rows.append({"backbone": name, "method": f"ours, vector env, {mode}", "envs": episodes,
                         "env_steps": report.env_steps, "seconds": report.seconds, "env_steps_per_s": rate,
                         "speedup": rate / baseline})
    return rows


class _Policy:
    """The evaluator's per-step model call without the env: window (last K steps re-run) or recurrent."""

    def __init__(self, model, mode: str, batch: int, context_len: int, device: torch.device):
        self.model, self.mode, self.batch, self.k, self.device = model, mode, batch, context_len, device
        self.t = 0
        self.carry = self.previous_action = self.previous_t = None
        self.kv_keep = max(0, 3 * context_len - 4)
        self.history = None

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        model, b, device = self.model, self.batch, self.device
        state = torch.randn(b, model.obs_dim, device=device)
        rtg = torch.full((b, 1), 9.0, device=device)
        timestep = torch.full((b,), self.t, dtype=torch.long, device=device)
        if self.mode == "recurrent":
            action, self.carry = model.recurrent_actions(rtg, state, timestep, self.previous_action, self.previous_t,
                                                         self.carry)
            self.carry = trim_kv_cache(self.carry, self.kv_keep)
            self.previous_action, self.previous_t = action, timestep
        else:
            new = (rtg[:, None], state[:, None], torch.zeros(b, 1, model.act_dim, device=device), timestep[:, None])
            if self.history is None:
                self.history = new
            else:
                self.history = tuple(torch.cat([h[:, -(self.k - 1):] if self.k > 1 else h[:, :0], n], dim=1)
                                     for h, n in zip(self.history, new))
            action = model.window_actions(*self.history)
            self.history[2][:, -1] = action
        self.t += 1
        return action


def benchmark_latency(backbones=ALL_BACKBONES, batches: tuple[int, ...] = (1, 10), context_len: int = 20,
                      steps: int = 100, repeats: int = 3, device: str | torch.device = "cpu",
                      size: dict | None = None, store=None) -> list[dict]:
    """Model time per env step (ms, a whole batch of envs) in window vs recurrent mode, timed in turns."""
    store = store if store is not None else load_store(AgentConfig())
    device = torch.device(device)
    rows = []
    for name in tqdm(backbones, desc="agent latency"):
        model, _ = dt_model(name, store, context_len, size, device)
        for batch in batches:
            policies = {mode: _Policy(model, mode, batch, context_len, device) for mode in ("window", "recurrent")}
            for policy in policies.values():  # fill the window / the trimmed KV cache: steady state
                for _ in range(context_len + 1):
                    policy.step()
            times = {mode: [] for mode in policies}
            for _ in range(repeats):
                for mode, policy in policies.items():
                    _synchronize(device)
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        policy.step()
                    _synchronize(device)
                    times[mode].append((time.perf_counter() - t0) / steps)
            ms = {mode: 1e3 * statistics.median(t) for mode, t in times.items()}
            for mode in policies:
                rows.append({"backbone": name, "envs": batch, "mode": mode, "ms_per_step": ms[mode],
                             "recurrent_speedup": ms["window"] / ms[mode]})
    return rows


def _trainer(name: str, context_len: int, batch_size: int, device: torch.device, size: dict | None, store) -> Trainer:
    model, config = dt_model(name, store, context_len, size, device)
    config = AgentConfig(backbone=config.backbone, context_len=context_len, batch_size=batch_size, steps=10**6)
    return Trainer(model, SegmentSampler(store, context_len, batch_size, device=device, seed=0), config, device)


def _time_in_turns(trainers: dict, steps: int, repeats: int, warmup: int = 1, desc: str = "") -> dict:
    """Median seconds per train_step of each trainer; rounds of `steps` steps, every trainer once per round."""
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.train_step()
        trainer.read_metrics()
    times: dict = {key: [] for key in trainers}
    for _ in tqdm(range(repeats), desc=desc, disable=not desc):
        for key, trainer in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            trainer.read_metrics()  # one host sync: the device has finished
            times[key].append((time.perf_counter() - t0) / steps)
    return {key: statistics.median(t) for key, t in times.items()}


def benchmark_training(backbones=ALL_BACKBONES, steps: int = 20, batch_size: int = 64, context_len: int = 20,
                       device: str | torch.device = "cpu", repeats: int = 3, size: dict | None = None,
                       store=None) -> list[dict]:
    """Training samples/s per backbone (each round runs `steps` steps of every backbone in turn)."""
    store = store if store is not None else load_store(AgentConfig())
    device = torch.device(device)
    trainers = {name: _trainer(name, context_len, batch_size, device, size, store) for name in backbones}
    seconds = _time_in_turns(trainers, max(1, steps // repeats), repeats, desc="agent training")
    reference = seconds.get("transformer")
    return [{"backbone": name, "batch_size": batch_size, "context_len": context_len,
             "ms_per_step": 1e3 * s, "samples_per_s": batch_size / s,
             "vs_transformer": reference / s if reference else ""} for name, s in seconds.items()]


def benchmark_long_context(backbones=ALL_BACKBONES, context_lens: tuple[int, ...] = (20, 100, 250, 500, 1000),
                           tokens: int = 8000, steps: int = 1, repeats: int = 3,
                           device: str | torch.device = "cpu", size: dict | None = None, store=None) -> list[dict]:
    """Training time per timestep at each K, batch = tokens // K (the same timesteps per batch at every K).

    Every (backbone, K) pair is timed in turns with all the others, so a load that comes and goes on a
    shared machine slows every K alike. A timestep is one (R̂, s, a) step of a segment, padded or not
    (the model computes every position)."""
    store = store if store is not None else load_store(AgentConfig())
    device = torch.device(device)
    batches = {k: max(1, tokens // k) for k in context_lens}
    trainers = {(name, k): _trainer(name, k, batches[k], device, size, store) for k in context_lens for name in backbones}
    seconds = _time_in_turns(trainers, steps, repeats, desc="long-context training")
    return [{"backbone": name, "K": k, "batch_size": batches[k], "timesteps_per_batch": batches[k] * k,
             "ms_per_step": 1e3 * s, "us_per_timestep": 1e6 * s / (batches[k] * k)} for (name, k), s in seconds.items()]

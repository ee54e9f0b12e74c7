"""The peer of the peers suite: d3rlpy's DecisionTransformer, timed in its own virtual environment.

    PEER_PYTHON agents/benchmarks/peer_d3rlpy.py --episodes EPISODES.npz [--train-steps 20 ...]

Run by agents/benchmarks/peers.py as a subprocess with the python of an environment that has
d3rlpy 2.8.1 (which pins gymnasium 1.0.0, so it cannot share the project's environment). This file
stands alone: it imports only the standard library, numpy, torch, gymnasium and d3rlpy, never this
project's packages (they are not installed there).

EPISODES.npz holds the dataset as d3rlpy's MDPDataset takes it, already aligned by our loader
(observations[:-1] per episode, so observations[i] is the state in which actions[i] was taken):
observations, actions, rewards, terminals, timeouts (every episode ends with one of the two flags).

What it measures, with d3rlpy's own code:
- training: `fit` (d3rlpy's loop: sample_trajectory_batch + update) for --warmup-steps, then
  --train-steps more timed: samples/s = batch x steps / seconds;
- evaluation: `d3rlpy.metrics.evaluate_transformer_with_environment` (one env, one episode at a
  time, StatefulTransformerWrapper re-running the last K steps) for --eval-episodes episodes on the
  benchmark env: the dataset's env without termination and a --max-steps time limit, built as the
  suite builds ours, so every episode is full length.
The size is the DT paper's as d3rlpy's reproduction script sets it: a one-layer 128-unit state
encoder (the embedding), 3 layers, 1 head, dropout 0.1, context 20, batch 64, global position
encoding, AdamW 1e-4 (weight decay 1e-4, clip 0.25, 10k warm-up), state standardisation, rewards x 0.001.

The last line of stdout is `PEER_RESULT {json}`; a failure exits non-zero with the error on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

RESULT_PREFIX = "PEER_RESULT "
BENCHMARK_ENV = "decision-backbones-peer/NoTermination-v0"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", required=True, help="aligned episodes (.npz: observations actions rewards terminals timeouts)")
    p.add_argument("--env-id", default="InvertedDoublePendulum-v5")
    p.add_argument("--max-steps", type=int, default=1000, help="steps per evaluation episode")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--target", type=float, default=9000.0, help="return to condition on")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--context", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-timestep", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def benchmark_env(env_id: str, max_steps: int):
    """env_id without termination, time limit max_steps, made through gym.make as the suite makes ours."""
    import gymnasium as gym

    class NeverTerminates(gym.Wrapper):
        def step(self, action):
            obs, reward, _terminated, truncated, info = self.env.step(action)
            return obs, reward, False, truncated, info

    class CountsSteps(gym.Wrapper):
        steps = 0

        def step(self, action):
            self.steps += 1
            return self.env.step(action)

    if BENCHMARK_ENV not in gym.registry:
        gym.register(BENCHMARK_ENV, entry_point=lambda **kw: NeverTerminates(gym.make(env_id, **kw).unwrapped))
    return CountsSteps(gym.make(BENCHMARK_ENV, max_episode_steps=max_steps))


def decision_transformer(args: argparse.Namespace):
    import d3rlpy

    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=args.batch, context_size=args.context, max_timestep=args.max_timestep,
        learning_rate=1e-4,
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4, clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=10000)),
        encoder_factory=d3rlpy.models.VectorEncoderFactory([args.embed], exclude_last_activation=True),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        position_encoding_type=d3rlpy.PositionEncodingType.GLOBAL,
        num_heads=args.heads, num_layers=args.layers,
        attn_dropout=args.dropout, resid_dropout=args.dropout, embed_dropout=args.dropout,
    ).create(device="cpu:0")


def measure(args: argparse.Namespace) -> dict:
    import d3rlpy
    import gymnasium
    import numpy as np
    import torch
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.metrics import evaluate_transformer_with_environment

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    data = np.load(args.episodes)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"], timeouts=data["timeouts"])
    dt = decision_transformer(args)

    def fit(steps: int) -> float:
        t0 = time.perf_counter()
        dt.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, logger_adapter=NoopAdapterFactory(),
               show_progress=False, save_interval=10**9)
        return time.perf_counter() - t0

    fit(max(1, args.warmup_steps))  # builds the model and the scalers; not timed
    train_seconds = fit(args.train_steps)

    env = benchmark_env(args.env_id, args.max_steps)
    env.reset(seed=args.seed)
    t0 = time.perf_counter()
    mean_return = evaluate_transformer_with_environment(dt.as_stateful_wrapper(target_return=args.target), env,
                                                        n_trials=args.eval_episodes)
    eval_seconds = time.perf_counter() - t0
    env.close()
    return {
        "d3rlpy": d3rlpy.__version__, "gymnasium": gymnasium.__version__, "torch": torch.__version__,
        "python": sys.version.split()[0], "threads": torch.get_num_threads(), "episodes_in_dataset": len(dataset.episodes),
        "batch_size": args.batch, "train_steps": args.train_steps, "train_seconds": train_seconds,
        "samples_per_s": args.batch * args.train_steps / train_seconds,
        "eval_episodes": args.eval_episodes, "eval_env_steps": env.steps, "eval_seconds": eval_seconds,
        "eval_env_steps_per_s": env.steps / eval_seconds, "eval_mean_return": mean_return,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = measure(args)
    except Exception as e:  # noqa: BLE001 - one line for the suite to report; the traceback is not the user's to read
        print(f"{type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Agent suite: every backbone's evaluation env steps/s, per-step inference latency and training samples/s.

    python scripts/benchmark.py --suite agent

Three tables, one per measurement (evaluation.py, latency.py, training.py describe how each is
taken), and one plot of the throughputs: evaluation env steps/s per method and model ms per env step
per mode, a bar per backbone.
"""

from __future__ import annotations

import torch

from agents.benchmarks.evaluation import benchmark_evaluation
from agents.benchmarks.latency import benchmark_latency
from agents.benchmarks.options import AgentBenchmarkArgs
from agents.benchmarks.training import benchmark_training
from agents.benchmarks.untrained import benchmark_store
from sequence_models.benchmarks.tables import Table


def run(args: AgentBenchmarkArgs, device: torch.device) -> list[Table]:
    store = benchmark_store()
    common = dict(device=device, size=args.model_size)
    evaluation = benchmark_evaluation(store, args.backbones, args.episodes, args.max_steps,
                                      baseline_episodes=args.baseline_episodes, kv_steps=args.eval_kv_steps, **common)
    latency = benchmark_latency(store, args.backbones, args.latency_batches, steps=args.latency_steps,
                                repeats=args.repeats, kv_steps=args.eval_kv_steps, **common)
    training = benchmark_training(store, args.backbones, args.train_steps, args.train_batch, repeats=args.repeats, **common)
    model = f"embed {args.embed}, {args.n_layers} layers, K=20, untrained"
    return [Table("agent_eval", f"Evaluation env steps/s, {args.episodes} episodes x {args.max_steps} steps, speed-up over "
                                f"the DT/CORL loop emulation ({model})", evaluation),
            Table("agent_latency", "Per-step inference latency: model ms per env step for a batch of envs, "
                                   "window vs recurrent (recurrent_speedup = window ms / mode ms)", latency),
            Table("agent_train", f"Training, batch {args.train_batch}, K=20 ({model}); vs_transformer > 1: faster", training)]


def plot(tables: dict[str, list[dict]], plt) -> dict:
    if not (tables.get("agent_eval") or tables.get("agent_latency")):
        return {}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, rows, group, value, ylabel in (
            (axes[0], tables.get("agent_eval") or [], "method", "env_steps_per_s", "evaluation env steps/s"),
            (axes[1], tables.get("agent_latency") or [], "mode", "ms_per_step", "model ms per env step")):
        if group == "mode":
            rows = [{**r, "mode": f"{r['mode']}, {r['envs']} envs"} for r in rows]
        backbones = list(dict.fromkeys(r["backbone"] for r in rows))
        groups = list(dict.fromkeys(r[group] for r in rows))
        width = 0.8 / max(1, len(groups))
        for j, g in enumerate(groups):
            values = {r["backbone"]: r[value] for r in rows if r[group] == g}
            ax.bar([i + j * width for i in range(len(backbones))], [values.get(b, 0) for b in backbones],
                   width, label=g)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(backbones))], backbones, rotation=30)
        ax.set(ylabel=ylabel, yscale="log")
        ax.legend(fontsize=7)
    return {"throughput": fig}

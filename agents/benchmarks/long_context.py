"""Long-context suite: agent training time per timestep at K = 20 ... 1000.

    python scripts/benchmark.py --suite long-context

The trainer's step (training.py) at each K with a constant number of timesteps per batch (batch =
tokens // K), reported as time per timestep. Every (backbone, K) pair is timed in turns with all the
others, so a load that comes and goes on a shared machine slows every K alike. A timestep is one
(R̂, s, a) step of a segment, padded or not (the model computes every position). For recurrent
backbones the cost per timestep should stay flat as K grows; for attention it grows with K. The
ratios put the longest K over the shortest; the target is minGRU and LRU within 2x from K=20 to 1000.
"""

from __future__ import annotations

import torch

from agents.benchmarks.options import ALL_BACKBONES, AgentBenchmarkArgs
from agents.benchmarks.training import time_in_turns
from agents.benchmarks.untrained import benchmark_store, untrained_trainer
from envs.trajectory_store import TrajectoryStore
from sequence_models.benchmarks.tables import Table, ratio, series, target_row

LONG_CONTEXT_TARGET = 2.0  # time per timestep at the longest K within 2x of the shortest, for these:
LONG_CONTEXT_TARGET_BACKBONES = ("mingru", "lru")


def benchmark_long_context(store: TrajectoryStore, backbones=ALL_BACKBONES,
                           context_lens: tuple[int, ...] = (20, 100, 250, 500, 1000), tokens: int = 8000,
                           steps: int = 1, repeats: int = 3, device: str | torch.device = "cpu",
                           size: dict | None = None) -> list[dict]:
    """Training time per timestep at each K, batch = tokens // K (the same timesteps per batch at every K)."""
    device = torch.device(device)
    batches = {k: max(1, tokens // k) for k in context_lens}
    trainers = {(name, k): untrained_trainer(name, store, k, batches[k], size, device)
                for k in context_lens for name in backbones}
    seconds = time_in_turns(trainers, steps, repeats, desc="long-context training")
    return [{"backbone": name, "K": k, "batch_size": batches[k], "timesteps_per_batch": batches[k] * k,
             "ms_per_step": 1e3 * s, "us_per_timestep": 1e6 * s / (batches[k] * k)} for (name, k), s in seconds.items()]


def long_context_ratios(rows: list[dict]) -> list[dict]:
    """Per backbone: time per timestep at the longest K over the shortest (1: flat; attention grows with K)."""
    out = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        mine = sorted((r for r in rows if r["backbone"] == name), key=lambda r: r["K"])
        short, long = mine[0], mine[-1]
        growth = ratio(long["us_per_timestep"], short["us_per_timestep"])
        targeted = name in LONG_CONTEXT_TARGET_BACKBONES
        out.append({"backbone": name, "K_short": short["K"], "K_long": long["K"],
                    "us_per_timestep_short": short["us_per_timestep"], "us_per_timestep_long": long["us_per_timestep"],
                    "ratio": growth, "target": f"<= {LONG_CONTEXT_TARGET:g}" if targeted else "-",
                    "status": ("met" if growth <= LONG_CONTEXT_TARGET else "not met") if targeted and growth != "" else "-"})
    return out


def long_context_targets(rows: list[dict]) -> list[dict]:
    """The long-context targets: minGRU and LRU time per timestep at K=1000 within 2x of K=20."""
    ratios = {r["backbone"]: r for r in long_context_ratios(rows)}
    out = []
    for name in LONG_CONTEXT_TARGET_BACKBONES:
        r = ratios.get(name)
        measured = r["ratio"] if r and (r["K_short"], r["K_long"]) == (20, 1000) else ""
        out.append(target_row(f"{name} agent training, time per timestep K=1000 / K=20", measured,
                              f"<= {LONG_CONTEXT_TARGET:g}", lambda v: v <= LONG_CONTEXT_TARGET,
                              f"needs {name} at K=20 and K=1000"))
    return out


def run(args: AgentBenchmarkArgs, device: torch.device) -> list[Table]:
    rows = benchmark_long_context(benchmark_store(), args.backbones, args.context_lens, args.long_context_tokens,
                                  args.long_context_steps, args.repeats, device, args.model_size)
    return [Table("long_context", f"Agent training time per timestep vs context K (embed {args.embed}, {args.n_layers} "
                                  f"layers; batch = {args.long_context_tokens} // K timesteps)", rows),
            Table("long_context_ratios", "Time per timestep at the longest K / at the shortest", long_context_ratios(rows)),
            Table("long_context_targets", "Targets", long_context_targets(rows))]


def plot(tables: dict[str, list[dict]], plt) -> dict:
    rows = tables.get("long_context")
    if not rows:
        return {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, (xs, ys) in series(rows, ["backbone"], "K", "us_per_timestep").items():
        axes[0].plot(xs, ys, marker="o", label=key[0])
        axes[1].plot(xs, [y / ys[0] for y in ys], marker="o", label=key[0])
    axes[0].set(xscale="log", yscale="log", xlabel="context K (timesteps)", ylabel="training time per timestep (µs)",
                title="agent training, constant timesteps per batch")
    axes[1].set(xscale="log", yscale="log", xlabel="context K (timesteps)", ylabel="time per timestep / at the shortest K",
                title=f"growth with K (target for mingru, lru: <= {LONG_CONTEXT_TARGET:g})")
    axes[1].axhline(LONG_CONTEXT_TARGET, color="red", linewidth=0.8, linestyle="--")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return {"per_timestep": fig}

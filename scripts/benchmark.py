"""Benchmarks, each comparison measured side by side in one run and reported as ratios.

  python scripts/benchmark.py --suite layers           # one layer's fwd+bwd time and memory vs T, every layer and gradient mode
  python scripts/benchmark.py --suite gradient-modes   # GRU / LSTM only: bptt vs dsf vs truncated
  python scripts/benchmark.py --suite precision        # float32 scan error vs a float64 loop as T grows
  python scripts/benchmark.py --suite agent            # every backbone: evaluation env steps/s, per-step latency, training samples/s
  python scripts/benchmark.py --suite long-context     # agent training time per timestep at K = 20 ... 1000
  python scripts/benchmark.py --suite all              # layers (+ their gradient-mode ratios), agent, long-context, precision

Each suite prints the device and versions and markdown tables, and writes under --out-dir
(default benchmarks/) a CSV per table, <suite>.md with every table and PNG plots <suite>_*.png
(sequence_models/benchmarks/tables.py). --suite all adds all.md and all_targets.csv: every target,
its measured ratio and whether it is met. What each suite measures, and how, is in its module:
sequence_models/benchmarks/{layers,gradient_modes,precision}.py, agents/benchmarks/{agent,long_context}.py.
"""

from __future__ import annotations

from agents.benchmarks.suites import Args, run_benchmarks as main
from agents.commands import benchmark

__all__ = ["Args", "main", "benchmark"]

if __name__ == "__main__":
    benchmark()

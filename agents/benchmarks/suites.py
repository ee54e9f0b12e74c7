"""Every benchmark suite behind one command (scripts/benchmark.py, db-benchmark): the layer-level suites
of sequence_models/benchmarks/ and the agent suites here, one Args for all of them. Each comparison
is measured side by side in one run and reported as ratios.

  python scripts/benchmark.py --suite layers           # one layer's fwd+bwd time and memory vs T, every layer and gradient mode
  python scripts/benchmark.py --suite gradient-modes   # GRU / LSTM only: bptt vs dsf vs truncated
  python scripts/benchmark.py --suite precision        # float32 scan error vs a float64 loop as T grows
  python scripts/benchmark.py --suite agent            # every backbone: evaluation env steps/s, per-step latency, training samples/s
  python scripts/benchmark.py --suite long-context     # agent training time per timestep at K = 20 ... 1000
  python scripts/benchmark.py --suite peers            # d3rlpy's DecisionTransformer vs ours (transformer, minGRU): training, evaluation
  python scripts/benchmark.py --suite all              # layers (+ their gradient-mode ratios), agent, long-context, precision

Each suite prints the device and versions and markdown tables, and writes under --out-dir
(default benchmarks/) a CSV per table, <suite>.md with every table and PNG plots <suite>_*.png
(sequence_models/benchmarks/tables.py). --suite all adds all.md and all_targets.csv: every target,
its measured ratio and whether it is met. What each suite measures, and how, is in its module:
sequence_models/benchmarks/{layers,gradient_modes,precision}.py, agents/benchmarks/{agent,long_context,peers}.py.
The peers suite is not part of all: its peer runs in a virtual environment of its own (agents/benchmarks/peers.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from agents.benchmarks.options import AgentBenchmarkArgs
from sequence_models.benchmarks.tables import Table, markdown_table, markdown_sections, write_csv, write_tables

SUITES = {"layers": "sequence_models.benchmarks.layers", "gradient-modes": "sequence_models.benchmarks.gradient_modes",
          "precision": "sequence_models.benchmarks.precision", "agent": "agents.benchmarks.agent",
          "long-context": "agents.benchmarks.long_context", "peers": "agents.benchmarks.peers"}
"""each suite's module (imported when it runs, so --help loads no torch): run(args, device) -> tables, plot"""
ALL = ("layers", "agent", "long-context", "precision")


@dataclass(frozen=True)
class Args(AgentBenchmarkArgs):
    suite: Literal["layers", "gradient-modes", "precision", "agent", "long-context", "peers", "all"] = "layers"
    """which benchmark to run (all: layers, agent, long-context and precision, with one targets table)"""


def run_benchmarks(args: Args) -> None:
    """Run the chosen suite (or all), print and write its tables."""
    import torch

    from sequence_models.benchmarks.machine import describe_machine
    from sequence_models.kernels.backend import use_scan_backend
    from sequence_models.training.device import pick_device

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    device = pick_device(args.device)
    header = f"{describe_machine(device)}; scan backend {use_scan_backend(args.scan_backend, device)}"
    print(header)
    everything: list[Table] = []
    for name in ALL if args.suite == "all" else (args.suite,):
        suite = importlib.import_module(SUITES[name])
        tables = suite.run(args, device)
        write_tables(name.replace("-", "_"), header, tables, args.out_dir, suite.plot if args.plots else None)
        everything += tables
    if args.suite == "all":
        targets = Table("all_targets", "Targets", [r for t in everything if t.name.endswith("_targets") for r in t.rows])
        print(f"\n### Targets (all)\n\n{markdown_table(targets.rows)}")
        write_csv(targets.rows, args.out_dir / "all_targets.csv")
        (args.out_dir / "all.md").write_text(markdown_sections(header, everything + [targets]))
        print(f"wrote {args.out_dir / 'all.md'}, {args.out_dir / 'all_targets.csv'}")

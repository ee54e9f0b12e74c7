"""The papers' claims, reproduced at CPU scale: one command, one table.

  db-claims --claim all --data-dir ../shared/data/tinyshakespeare
  db-claims --claim copying       # minGRU / minLSTM at 1, 2, 3 layers; LRU, transformer, Mamba, S4D
  db-claims --claim dsf           # GRU / LSTM / RNN: BPTT < DSF < truncated (+ DSF on minGRU, minLSTM, LRU)
  db-claims --claim shakespeare   # minGRU, minLSTM, LRU, transformer at one budget
  db-claims --claim agents        # every backbone on builtin/halfcheetah/gaits-v0, 3 seeds, K=20 and K=250
  db-claims --claim copying --smoke   # seconds: checks the machinery, claims nothing

Each claim trains from its preset (train_copy --preset claims-copy, train_lm --preset claims-dsf /
claims-shakespeare, train_agent --preset claims-cheetah), the same budget and seed for every model,
and checks every run's curve is flat over its last quarter. Writes under --out-dir: claims.md (the
claims table: claim, paper, ours, verdict, converged; then each claim's runs), claims.csv,
claims_<claim>_runs.csv, claims_<claim>.png (learning curves from each run's metrics.jsonl), and
the run folders under <out-dir>/runs. Runs go --jobs at a time (default one per core), each in its
own process; a run that finished earlier with the same settings is read back, so the same command
continues an interrupted suite. Exit 0 when every verdict holds, 1 when one does not.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BACKBONES = ("transformer", "mingru", "minlstm", "lru", "gru", "lstm", "rnn", "mamba", "s4d")
"""the agent claim's backbones (agents/benchmarks/claims.py)"""


@dataclass(frozen=True)
class ClaimsArgs:
    claim: Literal["copying", "dsf", "shakespeare", "agents", "all"] = "all"
    """which claim to run (all: every one, in this order)"""
    out_dir: Path = Path("claims")
    """where the table, CSVs, plots and run folders go"""
    data_dir: str | None = None
    """folder holding Tiny Shakespeare (input.txt); default: download into the cache"""
    seed: int = 0
    """seed of the sequence claims' runs"""
    agent_seeds: tuple[int, ...] = (0, 1, 2)
    """seeds of every agent setting"""
    agent_backbones: tuple[str, ...] = BACKBONES
    """backbones of the agent claim (each at K=20 and with whole-episode context)"""
    dsf_linear: bool = True
    """dsf claim: also DSF against BPTT on minGRU, minLSTM and LRU"""
    jobs: int = 0
    """runs at once, each in its own process with its preset's one thread (0: one per CPU core)"""
    smoke: bool = False
    """tiny budgets (seconds): checks the machinery; the verdicts mean nothing"""
    device: str = "auto"
    """where every run trains: auto (CUDA when available), cpu, cuda, cuda:1, ... (--jobs runs share one GPU)"""


def run_claims(args: ClaimsArgs) -> bool:
    """Run the chosen claims, write the table; True when every verdict holds."""
    from agents.benchmarks.claims import agents
    from sequence_models.benchmarks import claims  # (these import torch: --help needs only ClaimsArgs)
    from sequence_models.benchmarks.claim_runs import all_hold, write_claims
    from sequence_models.benchmarks.machine import describe_machine
    from sequence_models.training.device import pick_device

    device = pick_device(args.device)  # checked before any run starts
    names = ("copying", "dsf", "shakespeare", "agents") if args.claim == "all" else (args.claim,)
    runs = args.out_dir / "runs"
    start = time.perf_counter()
    workers = args.jobs or os.cpu_count() or 1
    results = []
    for name in names:
        print(f"claim {name}: {workers} run{'s' * (workers > 1)} at once", flush=True)
        common = dict(smoke=args.smoke, workers=workers, device=str(device))
        if name == "copying":
            results.append(claims.copying(runs, seed=args.seed, **common))
        elif name == "dsf":
            results.append(claims.dsf(runs, args.data_dir, seed=args.seed, linear=args.dsf_linear, **common))
        elif name == "shakespeare":
            results.append(claims.shakespeare(runs, args.data_dir, seed=args.seed, **common))
        else:
            results.append(agents(runs, seeds=args.agent_seeds, backbones=args.agent_backbones, **common))
    threads = f"{os.cpu_count()} cores, runs of one torch thread, {workers} at once"
    machine = describe_machine(device, threads) + ("" if device.type == "cpu" else f"; {workers} runs at once")
    header = (f"# Claims at CPU scale{' (SMOKE: tiny budgets, no verdict means anything)' if args.smoke else ''}\n\n"
              f"{machine}; {time.perf_counter() - start:.0f} s wall time for "
              f"--claim {args.claim}.\n\n" + "\n".join(f"- {r.cost(workers)}" for r in results))
    write_claims(results, args.out_dir, header)
    return all_hold(results)

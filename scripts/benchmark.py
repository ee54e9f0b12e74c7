"""Benchmarks, each measured side by side in one run and reported as ratios.

  python scripts/benchmark.py --suite layers           # one layer's fwd+bwd time and memory vs T
  python scripts/benchmark.py --suite gradient-modes   # GRU / LSTM: bptt vs dsf vs truncated
  python scripts/benchmark.py --suite precision        # float32 scan error vs a float64 loop as T grows
  python scripts/benchmark.py --suite agent            # evaluation vs the DT/CORL loop; training samples/s

Prints markdown tables and writes benchmarks/<suite>.csv. Time and memory are measured as
sequence_models/profiling.py describes: candidates timed in turns, median of --repeats, activation
memory from saved-tensor hooks (saved: kept for backward; peak: most alive at once).
"""

from __future__ import annotations

import csv
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import tyro
from torch import nn
from tqdm import tqdm

from agents.speed import benchmark_evaluation, benchmark_training
from sequence_models.attention import CausalSelfAttention
from sequence_models.classic_rnn import GRU, LSTM
from sequence_models.lru import LRU
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.profiling import Measurement, measure_in_turns
from sequence_models.scan import linear_scan, scan_log_space, scan_reference
from sequence_models.training_run import pick_device


@dataclass(frozen=True)
class Args:
    suite: Literal["layers", "gradient-modes", "precision", "agent"] = "layers"
    """which benchmark to run"""
    lengths: tuple[int, ...] | None = None
    """sequence lengths T (default: 64 256 512 1024 2048 for layers, 128 512 2048 for gradient-modes)"""
    batch: int = 64
    dim: int = 256
    repeats: int = 3
    """timed rounds per point, each running every candidate once (median reported), after one warm-up"""
    looped_gru_max_length: int = 2048
    """skip the Python-looped GRU cell above this T (it is slow by design)"""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... or auto (cuda when available)"""
    cpu_threads: int = 0
    """torch CPU threads (0: torch's default, one per core)"""
    out_dir: Path = Path("benchmarks")
    backbones: tuple[str, ...] = ("transformer", "mingru")
    """agent suite: backbones (DT size: embed 128, 3 layers, K=20, untrained)"""
    episodes: int = 10
    """agent suite: evaluation episodes"""
    max_steps: int = 1000
    """agent suite: steps per episode (termination switched off so every episode is full length)"""
    train_steps: int = 20
    """agent suite: timed training steps per backbone"""


class FusedGRU(nn.Module):
    """torch's nn.GRU (cuDNN / oneDNN kernels): the baseline users have today."""

    def __init__(self, dim: int):
        super().__init__()
        self.rnn = nn.GRU(dim, dim, batch_first=True)

    def forward(self, x):
        return self.rnn(x)


class LoopedGRUCell(nn.Module):
    """A GRU cell called once per step from Python: what sequential RNN code does."""

    def __init__(self, dim: int):
        super().__init__()
        self.cell = nn.GRUCell(dim, dim)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


def layer_factories(dim: int) -> dict[str, Callable[[], nn.Module]]:
    return {
        "minGRU": lambda: MinGRU(dim),
        "minLSTM": lambda: MinLSTM(dim),
        "LRU": lambda: LRU(dim),
        "attention": lambda: CausalSelfAttention(dim, n_heads=4),
        "nn.GRU (fused)": lambda: FusedGRU(dim),
        "GRU cell (looped)": lambda: LoopedGRUCell(dim),
    }


def describe_machine(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"device: {device} ({where}); torch {torch.__version__}; python {sys.version.split()[0]}"


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def memory_columns(result: Measurement) -> dict:
    mib = 2**20
    return {"saved_MiB": result.saved_bytes / mib, "peak_MiB": result.peak_saved_bytes / mib,
            "cuda_peak_MiB": "" if result.cuda_peak_bytes is None else result.cuda_peak_bytes / mib}


def run_layers(args: Args, device: torch.device) -> list[dict]:
    factories = layer_factories(args.dim)
    rows = []
    for length in tqdm(args.lengths or (64, 256, 512, 1024, 2048), desc="layers fwd+bwd"):
        torch.manual_seed(0)
        names = [n for n in factories if not (n == "GRU cell (looped)" and length > args.looped_gru_max_length)]
        layers = {name: factories[name]().to(device) for name in names}
        x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)
        candidates = {name: (lambda layer=layer: layer(x)[0]) for name, layer in layers.items()}
        exclude = [x, *(p for layer in layers.values() for p in layer.parameters())]
        for name, result in measure_in_turns(candidates, device, args.repeats, exclude).items():
            rows.append({"layer": name, "T": length, "ms": 1e3 * result.seconds, **memory_columns(result)})
    return rows


def run_gradient_modes(args: Args, device: torch.device) -> list[dict]:
    """GRU and LSTM layers, one per gradient mode with identical weights, timed in turns."""
    rows = []
    points = [(cell, length) for cell in (GRU, LSTM) for length in (args.lengths or (128, 512, 2048))]
    for cell, length in tqdm(points, desc="gradient modes fwd+bwd"):
        torch.manual_seed(0)
        layers = {mode: cell(args.dim, gradient=mode).to(device) for mode in ("bptt", "dsf", "truncated")}
        for layer in layers.values():
            layer.load_state_dict(layers["bptt"].state_dict(), strict=False)  # bptt has no feedback buffer
        x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)
        candidates = {mode: (lambda layer=layer: layer(x)[0]) for mode, layer in layers.items()}
        exclude = [x, *(p for layer in layers.values() for p in layer.parameters())]
        for mode, result in measure_in_turns(candidates, device, args.repeats, exclude).items():
            rows.append({"cell": cell.__name__, "T": length, "mode": mode, "ms": 1e3 * result.seconds,
                         **memory_columns(result)})
    return rows


def gradient_mode_ratios(rows: list[dict]) -> list[dict]:
    """Speed-up over bptt (bptt time / mode time) and memory as a fraction of bptt's."""
    bptt = {(r["cell"], r["T"]): r for r in rows if r["mode"] == "bptt"}
    return [{"cell": r["cell"], "T": r["T"], "mode": r["mode"],
             "speedup_vs_bptt": bptt[r["cell"], r["T"]]["ms"] / r["ms"],
             "saved_vs_bptt": r["saved_MiB"] / bptt[r["cell"], r["T"]]["saved_MiB"],
             "peak_vs_bptt": r["peak_MiB"] / bptt[r["cell"], r["T"]]["peak_MiB"]}
            for r in rows if r["mode"] != "bptt"]


def layer_ratios(rows: list[dict]) -> list[dict]:
    """Speed-up of each layer over the two GRU baselines at each T."""
    by_key = {(r["layer"], r["T"]): r for r in rows}
    ratios = []
    for row in rows:
        fused = by_key.get(("nn.GRU (fused)", row["T"]))
        looped = by_key.get(("GRU cell (looped)", row["T"]))
        ratios.append({
            "layer": row["layer"], "T": row["T"],
            "speedup_vs_fused_GRU": fused["ms"] / row["ms"] if fused else "",
            "speedup_vs_looped_GRU": looped["ms"] / row["ms"] if looped else "",
            "saved_memory_vs_fused_GRU": row["saved_MiB"] / fused["saved_MiB"] if fused else "",
        })
    return ratios


def run_precision(args: Args, device: torch.device) -> list[dict]:
    """Max relative error of float32 scans against the float64 loop, for minGRU-like coefficients."""
    rows = []
    for length in tqdm((256, 1024, 4096, 16384, 65536), desc="scan precision"):
        g = torch.Generator().manual_seed(0)
        gate = 2 * torch.randn(1, length, 64, generator=g, dtype=torch.float64)
        log_a, log_b = -F.softplus(gate), -F.softplus(-gate)
        exact = scan_reference(log_a.exp(), log_b.exp())

        def error(h32: torch.Tensor) -> float:
            return ((h32.double().cpu() - exact).abs() / exact.abs()).max().item()

        la, lb = log_a.float().to(device), log_b.float().to(device)
        rows.append({
            "T": length,
            "log_space_whole": error(scan_log_space(la, lb, chunk_size=None)),
            "log_space_chunk256": error(scan_log_space(la, lb, chunk_size=256)),
            "linear_chunked": error(linear_scan(la.exp(), lb.exp())),
            "float32_loop": error(scan_reference(la.exp(), lb.exp())),
        })
    return rows


def run_suite(args: Args, device: torch.device) -> list[tuple[str, str, list[dict]]]:
    """(title, csv name, rows) of each table the suite produces."""
    if args.suite == "layers":
        rows = run_layers(args, device)
        return [(f"One layer, fwd+bwd, B={args.batch}, D={args.dim}", "layers", rows),
                ("Ratios (> 1: faster / more memory than the baseline)", "layers_ratios", layer_ratios(rows))]
    if args.suite == "gradient-modes":
        rows = run_gradient_modes(args, device)
        return [(f"One recurrent layer, fwd+bwd, B={args.batch}, D={args.dim}", "gradient_modes", rows),
                ("Ratios to bptt (speed-up > 1: faster; memory < 1: less)", "gradient_modes_ratios",
                 gradient_mode_ratios(rows))]
    if args.suite == "agent":
        evaluation = benchmark_evaluation(args.backbones, args.episodes, args.max_steps)
        training = benchmark_training(args.backbones, args.train_steps, device=str(device))
        return [(f"Evaluation, {args.episodes} episodes x {args.max_steps} steps, speed-up over the DT/CORL loop",
                 "agent_eval", evaluation),
                ("Training, batch 64, K=20", "agent_train", training)]
    return [("Max relative error of float32 scans vs a float64 loop (minGRU-like gates, D=64)", "precision",
             run_precision(args, device))]


def main(args: Args) -> None:
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    device = pick_device(args.device)
    print(describe_machine(device))
    for title, name, rows in run_suite(args, device):
        print(f"\n{title}\n\n{markdown_table(rows, list(rows[0]))}")
        write_csv(rows, args.out_dir / f"{name}.csv")
        print(f"(wrote {args.out_dir / (name + '.csv')})")


if __name__ == "__main__":
    main(tyro.cli(Args))

"""Precision suite: float32 scan error against a float64 loop as T grows.

    python scripts/benchmark.py --suite precision

minGRU-like coefficients (a = σ(-g), b = σ(g) in log space, g ~ N(0, 4), D=64) are scanned in float32
by the log-space scan over the whole sequence and in chunks of 256, by the chunked linear scan, and by
a float32 loop; each column is the max relative error against the float64 reference loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sequence_models.benchmarks.options import BenchmarkArgs
from sequence_models.benchmarks.tables import Table
from sequence_models.scan import linear_scan, scan_log_space, scan_reference


def run_precision(lengths: tuple[int, ...], device: torch.device) -> list[dict]:
    """Max relative error of float32 scans against the float64 loop, for minGRU-like coefficients."""
    rows = []
    for length in tqdm(lengths, desc="scan precision"):
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


def run(args: BenchmarkArgs, device: torch.device) -> list[Table]:
    return [Table("precision", "Max relative error of float32 scans vs a float64 loop (minGRU-like gates, D=64)",
                  run_precision(args.precision_lengths, device))]


def plot(tables: dict[str, list[dict]], plt) -> dict:
    rows = tables.get("precision")
    if not rows:
        return {}
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for column in [c for c in rows[0] if c != "T"]:
        ax.plot([r["T"] for r in rows], [r[column] for r in rows], marker="o", label=column)
    ax.set(xscale="log", yscale="log", xlabel="T", ylabel="max relative error vs float64", title="scan precision (float32)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return {"error": fig}

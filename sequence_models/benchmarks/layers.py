"""Layers suite: one layer's fwd+bwd time and memory against T, every layer and gradient mode, in one run.

    python scripts/benchmark.py --suite layers
    python scripts/benchmark.py --suite layers --layers mingru fused-gru looped-gru --lengths 512   # a subset

Rows come from layer_timing.py (all layers timed in turns at each T). The ratios put each layer
against the two GRU baselines at the same T: speed-up over torch's fused nn.GRU and over the looped
GRU cell (> 1: faster), saved and peak memory over nn.GRU's (< 1: less; the peak is the CUDA
allocator's on a GPU, the saved-tensor peak elsewhere); the gradient-mode ratios are
gradient_modes.py's. The targets table states each speed target of the project, the measured ratio
and whether it is met. The figure is the minGRU paper's: runtime, speed-up and memory against T.
"""

from __future__ import annotations

import torch

from sequence_models.benchmarks.gradient_modes import gradient_mode_ratios, plot_gradient_mode_ratios
from sequence_models.benchmarks.layer_timing import FUSED, LAYERS, LOOPED, peak_memory, run_layers, selected_layers
from sequence_models.benchmarks.options import BenchmarkArgs
from sequence_models.benchmarks.tables import Table, ratio, series, target_row

LAYER_LENGTHS = (64, 256, 512, 1024, 2048, 4096)
CPU_LAYER_LENGTHS = (64, 256, 512, 1024)  # on CPU a pass at T=2048 takes ~a minute per layer: ask for it


def layer_ratios(rows: list[dict]) -> list[dict]:
    """Speed-up of each layer over the two GRU baselines at each T (> 1: faster), memory vs nn.GRU (< 1: less)."""
    by_key = {(r["layer"], r["gradient"], r["T"]): r for r in rows}
    ratios = []
    for row in rows:
        fused = by_key.get((FUSED, "-", row["T"]), {})
        looped = by_key.get((LOOPED, "-", row["T"]), {})
        ratios.append({
            "layer": row["layer"], "gradient": row["gradient"], "T": row["T"],
            "speedup_vs_fused_GRU": ratio(fused.get("ms"), row["ms"]),
            "speedup_vs_looped_GRU": ratio(looped.get("ms"), row["ms"]),
            "saved_memory_vs_fused_GRU": ratio(row["saved_MiB"], fused.get("saved_MiB")),
            "peak_memory_vs_fused_GRU": ratio(peak_memory(row), peak_memory(fused) if fused else ""),
        })
    return ratios


def layer_targets(rows: list[dict], batch: int, dim: int) -> list[dict]:
    """The layer-level speed targets with their measured ratios ("not measured" when a run lacks a point)."""
    where = f"B={batch}, D={dim}" + ("" if (batch, dim) == (64, 256) else " (the target's: B=64, D=256)")

    def at(layer, gradient, length) -> dict:
        return next((r for r in rows if r["layer"] == layer and r["gradient"] == gradient and r["T"] == length), {})

    mingru, fused = at("minGRU", "bptt", 512), at(FUSED, "-", 4096)
    return [
        target_row(f"minGRU fwd+bwd speed-up over fused nn.GRU, T=512, {where}",
                   ratio(at(FUSED, "-", 512).get("ms"), mingru.get("ms")), ">= 1.5",
                   lambda v: v >= 1.5, "needs minGRU and fused-gru at T=512"),
        target_row(f"minGRU fwd+bwd speed-up over the looped GRU cell, T=512, {where}",
                   ratio(at(LOOPED, "-", 512).get("ms"), mingru.get("ms")), ">= 30",
                   lambda v: v >= 30, "needs minGRU and looped-gru at T=512"),
        target_row(f"minGRU peak memory / nn.GRU's, T=4096, {where}",
                   ratio(peak_memory(at("minGRU", "bptt", 4096)) if at("minGRU", "bptt", 4096) else "",
                         peak_memory(fused) if fused else ""), "<= 1",
                   lambda v: v <= 1, "needs minGRU and fused-gru at T=4096: --lengths ... 4096"),
        target_row(f"GRU: DSF speed-up over BPTT, T=2048, {where}",
                   ratio(at("GRU", "bptt", 2048).get("ms"), at("GRU", "dsf", 2048).get("ms")), ">= 2",
                   lambda v: v >= 2, "needs GRU bptt and dsf at T=2048: --lengths ... 2048"),
    ]


def run(args: BenchmarkArgs, device: torch.device) -> list[Table]:
    lengths = args.lengths or (LAYER_LENGTHS if device.type == "cuda" else CPU_LAYER_LENGTHS)
    rows = run_layers(args, selected_layers(args.layers, list(LAYERS)), lengths, device, "layers fwd+bwd")
    return [Table("layers", f"One layer, fwd+bwd, B={args.batch}, D={args.dim} (ms; memory in MiB)", rows),
            Table("layers_ratios", "Ratios to the GRU baselines (speed-up > 1: faster; memory < 1: less)", layer_ratios(rows)),
            Table("layers_gradient_modes", "Gradient modes, ratios to bptt of the same layer (speed-up > 1: faster; memory < 1: less)",
                  gradient_mode_ratios(rows)),
            Table("layers_targets", "Targets", layer_targets(rows, args.batch, args.dim))]


def _label(key: tuple) -> str:
    return " ".join(str(k) for k in key if k not in ("-", "bptt"))


def plot_layers(rows: list[dict], ratios: list[dict], plt):
    """Runtime, speed-up over both GRU baselines and memory against T (exact gradients only), one colour per layer."""
    exact = [r for r in rows if r["gradient"] in ("bptt", "-")]
    ratios = [r for r in ratios if r["gradient"] in ("bptt", "-")]
    memory = "CUDA peak" if any(r["cuda_peak_MiB"] != "" for r in exact) else "saved-tensor peak"
    exact = [{**r, "memory": peak_memory(r)} for r in exact]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys(r["layer"] for r in exact))
    color = {name: cycle[i % len(cycle)] for i, name in enumerate(names)}  # one colour per layer in every panel
    for key, (xs, ys) in series(exact, ["layer"], "T", "ms").items():
        axes[0].plot(xs, ys, marker="o", label=_label(key), color=color[key[0]])
    for key, (xs, ys) in series([r for r in ratios if r["layer"] != FUSED], ["layer"], "T", "speedup_vs_fused_GRU").items():
        axes[1].plot(xs, ys, marker="o", label=_label(key), color=color[key[0]])
        looped = series([r for r in ratios if r["layer"] == key[0]], ["layer"], "T", "speedup_vs_looped_GRU")
        for lx, ly in looped.values():
            axes[1].plot(lx, ly, marker="x", linestyle="--", color=color[key[0]])
    for key, (xs, ys) in series(exact, ["layer"], "T", "memory").items():
        axes[2].plot(xs, ys, marker="o", label=_label(key), color=color[key[0]])
    axes[0].set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="fwd+bwd time (ms)", title="runtime")
    axes[1].set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="speed-up (x)",
                title="speed-up over nn.GRU (solid) and the looped GRU cell (dashed)")
    axes[1].axhline(1.0, color="gray", linewidth=0.8)
    axes[2].set(xscale="log", yscale="log", xlabel="sequence length T", ylabel=f"{memory} memory (MiB)",
                title="memory")
    lengths = sorted({r["T"] for r in exact})
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(lengths, [str(t) for t in lengths])
        ax.minorticks_off()
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    return fig


def plot(tables: dict[str, list[dict]], plt) -> dict:
    figures = {}
    if tables.get("layers"):
        figures["figure"] = plot_layers(tables["layers"], tables["layers_ratios"], plt)
        if tables.get("layers_gradient_modes"):
            figures["gradient_modes"] = plot_gradient_mode_ratios(tables["layers_gradient_modes"], plt)
    return figures

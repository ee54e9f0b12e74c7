"""Gradient-modes suite: each recurrent layer's dsf and truncated gradients against its own bptt.

    python scripts/benchmark.py --suite gradient-modes   # GRU / LSTM (default), T = 128 512 2048

The rows are layer_timing.py's (one fwd+bwd per layer, mode and T, timed in turns); the ratios
compare each non-bptt mode with bptt of the same layer and T: speed-up (> 1: faster) and the saved /
peak activation memory as fractions of bptt's. The layers suite reports the same ratios for every layer.
"""

from __future__ import annotations

import torch

from sequence_models.benchmarks.layer_timing import peak_memory, run_layers, selected_layers
from sequence_models.benchmarks.options import BenchmarkArgs
from sequence_models.benchmarks.tables import Table, ratio, series

DEFAULT_LAYERS = ["gru", "lstm"]
DEFAULT_LENGTHS = (128, 512, 2048)


def gradient_mode_ratios(rows: list[dict]) -> list[dict]:
    """Each non-bptt mode against bptt of the same layer and T: speed-up (> 1: faster), memory fractions."""
    bptt = {(r["layer"], r["T"]): r for r in rows if r["gradient"] == "bptt"}
    return [{"layer": r["layer"], "T": r["T"], "gradient": r["gradient"],
             "speedup_vs_bptt": ratio(bptt[r["layer"], r["T"]]["ms"], r["ms"]),
             "saved_vs_bptt": ratio(r["saved_MiB"], bptt[r["layer"], r["T"]]["saved_MiB"]),
             "peak_vs_bptt": ratio(peak_memory(r), peak_memory(bptt[r["layer"], r["T"]]))}
            for r in rows if r["gradient"] not in ("bptt", "-") and (r["layer"], r["T"]) in bptt]


def plot_gradient_mode_ratios(mode_ratios: list[dict], plt):
    """Speed and peak memory over bptt's against T; colour: layer; solid: dsf, dashed: truncated."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(r["layer"] for r in mode_ratios))
    for ax, column in zip(axes, ("speedup_vs_bptt", "peak_vs_bptt")):
        for key, (xs, ys) in series(mode_ratios, ["layer", "gradient"], "T", column).items():
            ax.plot(xs, ys, marker="o", color=f"C{names.index(key[0]) % 10}",
                    linestyle="-" if key[1] == "dsf" else "--", label=" ".join(key))
    axes[0].set(xscale="log", xlabel="sequence length T", ylabel="speed-up over bptt (x)",
                title="gradient modes: speed")
    axes[1].set(xscale="log", xlabel="sequence length T", ylabel="peak memory / bptt's", title="gradient modes: memory")
    lengths = sorted({r["T"] for r in mode_ratios})
    for ax in axes:
        ax.axhline(1.0, color="gray", linewidth=0.8)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(lengths, [str(t) for t in lengths])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    return fig


def run(args: BenchmarkArgs, device: torch.device) -> list[Table]:
    rows = run_layers(args, selected_layers(args.layers, DEFAULT_LAYERS), args.lengths or DEFAULT_LENGTHS, device,
                      "gradient-modes fwd+bwd")
    return [Table("gradient_modes", f"One recurrent layer, fwd+bwd, B={args.batch}, D={args.dim}", rows),
            Table("gradient_modes_ratios", "Ratios to bptt (speed-up > 1: faster; memory < 1: less)",
                  gradient_mode_ratios(rows))]


def plot(tables: dict[str, list[dict]], plt) -> dict:
    mode_ratios = tables.get("gradient_modes_ratios")
    return {"gradient_modes": plot_gradient_mode_ratios(mode_ratios, plt)} if tables.get("gradient_modes") and mode_ratios else {}

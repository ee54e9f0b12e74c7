"""Benchmarks, each comparison measured side by side in one run and reported as ratios.

  python scripts/benchmark.py --suite layers           # one layer's fwd+bwd time and memory vs T, every layer and gradient mode
  python scripts/benchmark.py --suite gradient-modes   # GRU / LSTM only: bptt vs dsf vs truncated
  python scripts/benchmark.py --suite precision        # float32 scan error vs a float64 loop as T grows
  python scripts/benchmark.py --suite agent            # every backbone: evaluation env steps/s, per-step latency, training samples/s
  python scripts/benchmark.py --suite long-context     # agent training time per timestep at K = 20 ... 1000
  python scripts/benchmark.py --suite all              # layers (+ their gradient-mode ratios), agent, long-context, precision
  python scripts/benchmark.py --suite layers --layers mingru fused-gru looped-gru --lengths 512   # a subset

Each suite prints the device and versions and markdown tables, and writes under --out-dir
(default benchmarks/): a CSV per table (<suite>.csv holds the measurements, <suite>_ratios.csv ...),
<suite>.md with every table, and PNG plots <suite>_*.png when matplotlib is installed
(`pip install -e ".[plots]"`). The targets table states each target of the project's speed work, the
measured ratio and whether it is met.

Time and memory are measured as sequence_models/profiling.py describes: candidates timed in turns,
median of --repeats, activation memory from saved-tensor hooks (saved: kept for backward; peak: most
alive at once), plus the CUDA allocator's peak on a GPU. The memory ratios use the CUDA peak on a GPU
and the saved-tensor peak elsewhere.
"""

from __future__ import annotations

import csv
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import tyro
from torch import nn
from tqdm import tqdm

from agents.speed import (ALL_BACKBONES, benchmark_evaluation, benchmark_latency, benchmark_long_context,
                          benchmark_training)
from sequence_models.attention import CausalSelfAttention
from sequence_models.classic_rnn import GRU, LSTM, RNN
from sequence_models.feedback import GRADIENT_MODES
from sequence_models.lru import LRU
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.benchmarks.profiling import Measurement, measure_in_turns
from sequence_models.kernels.backend import ScanBackend, use_scan_backend
from sequence_models.scan import linear_scan, scan_log_space, scan_reference
from sequence_models.training.device import pick_device

Suite = Literal["layers", "gradient-modes", "precision", "agent", "long-context", "all"]
LAYER_LENGTHS = (64, 256, 512, 1024, 2048, 4096)
CPU_LAYER_LENGTHS = (64, 256, 512, 1024)  # on CPU a pass at T=2048 takes ~a minute per layer: ask for it


@dataclass(frozen=True)
class Args:
    suite: Suite = "layers"
    """which benchmark to run (all: layers, agent, long-context and precision, with one targets table)"""
    lengths: tuple[int, ...] | None = None
    """sequence lengths T (default: layers 64 256 512 1024 2048 4096 on a GPU, 64 256 512 1024 on CPU;
    gradient-modes 128 512 2048)"""
    layers: tuple[str, ...] = ()
    """layers to time (default: all; gradient-modes: gru lstm): mingru minlstm lru attention gru lstm rnn fused-gru looped-gru"""
    gradients: tuple[Literal["bptt", "dsf", "truncated"], ...] = GRADIENT_MODES
    """gradient modes of the recurrent layers"""
    batch: int = 64
    dim: int = 256
    repeats: int = 3
    """timed rounds per point, each running every candidate once (median reported), after one warm-up"""
    precision_lengths: tuple[int, ...] = (256, 1024, 4096, 16384, 65536)
    """precision suite: T"""
    looped_gru_max_length: int = 2048
    """skip the Python-looped GRU cell above this T (it is slow by design)"""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... or auto (cuda when available)"""
    cpu_threads: int = 0
    """torch CPU threads (0: torch's default, one per core; 1 on a shared machine)"""
    scan_backend: ScanBackend = "auto"
    """scan kernels for every layer: auto (fused C++ on CPU, Triton on CUDA), cpu, triton or torch"""
    out_dir: Path = Path("benchmarks")
    plots: bool = True
    """write PNG plots (needs matplotlib: pip install -e ".[plots]")"""

    backbones: tuple[str, ...] = ALL_BACKBONES
    """agent and long-context suites: backbones (untrained, bptt)"""
    embed: int = 128
    """agent and long-context suites: d_model (DT: 128)"""
    n_layers: int = 3
    """agent and long-context suites: layers (DT: 3)"""
    episodes: int = 10
    """agent suite: evaluation episodes, all in one vector env"""
    baseline_episodes: int = 2
    """agent suite: episodes of the one-env DT/CORL loop (its rate does not depend on how many)"""
    max_steps: int = 1000
    """agent suite: steps per episode (termination switched off so every episode is full length)"""
    train_steps: int = 12
    """agent suite: timed training steps per backbone (in --repeats rounds, backbones in turns)"""
    train_batch: int = 64
    """agent suite: training batch (K=20)"""
    latency_batches: tuple[int, ...] = (1, 10)
    """agent suite: batches of envs for the per-step latency"""
    latency_steps: int = 100
    """agent suite: timed model steps per round and mode"""
    context_lens: tuple[int, ...] = (20, 100, 250, 500, 1000)
    """long-context suite: K"""
    long_context_tokens: int = 8000
    """long-context suite: timesteps per batch at every K (batch = this // K: 400 at K=20, 8 at K=1000)"""
    long_context_steps: int = 1
    """long-context suite: timed training steps per round (--repeats rounds, every backbone and K in turns)"""


# -- layers -------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class LayerSpec:
    name: str  # as printed
    build: Callable[[int, str], nn.Module]  # (dim, gradient mode) -> layer
    gradients: tuple[str, ...] = ("-",)  # "-": exact gradients, no mode to choose


LAYERS: dict[str, LayerSpec] = {
    "mingru": LayerSpec("minGRU", lambda d, g: MinGRU(d, gradient=g), GRADIENT_MODES),
    "minlstm": LayerSpec("minLSTM", lambda d, g: MinLSTM(d, gradient=g), GRADIENT_MODES),
    "lru": LayerSpec("LRU", lambda d, g: LRU(d, gradient=g), GRADIENT_MODES),
    "attention": LayerSpec("attention", lambda d, g: CausalSelfAttention(d, n_heads=4)),
    "gru": LayerSpec("GRU", lambda d, g: GRU(d, gradient=g), GRADIENT_MODES),
    "lstm": LayerSpec("LSTM", lambda d, g: LSTM(d, gradient=g), GRADIENT_MODES),
    "rnn": LayerSpec("RNN", lambda d, g: RNN(d, gradient=g), GRADIENT_MODES),
    "fused-gru": LayerSpec("nn.GRU (fused)", lambda d, g: FusedGRU(d)),
    "looped-gru": LayerSpec("GRU cell (looped)", lambda d, g: LoopedGRUCell(d)),
}
FUSED, LOOPED = LAYERS["fused-gru"].name, LAYERS["looped-gru"].name


def selected_layers(args: Args) -> list[str]:
    keys = [k.lower() for k in args.layers] or (["gru", "lstm"] if args.suite == "gradient-modes" else list(LAYERS))
    unknown = [k for k in keys if k not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; choose from: {' '.join(LAYERS)}")
    return keys


def default_lengths(args: Args, device: torch.device) -> tuple[int, ...]:
    if args.lengths:
        return args.lengths
    if args.suite == "gradient-modes":
        return (128, 512, 2048)
    return LAYER_LENGTHS if device.type == "cuda" else CPU_LAYER_LENGTHS


def layer_candidates(keys: list[str], dim: int, gradients, length: int, looped_max: int) -> dict[tuple[str, str], nn.Module]:
    """(layer name, gradient mode) -> layer; the modes of one layer share their weights."""
    layers = {}
    for key in keys:
        spec = LAYERS[key]
        if key == "looped-gru" and length > looped_max:
            continue
        modes = [g for g in spec.gradients if g == "-" or g in gradients]
        first = None
        for mode in modes:
            torch.manual_seed(0)
            layer = spec.build(dim, mode if mode != "-" else "bptt")
            if first is None:
                first = layer
            else:  # bptt has no feedback buffer
                layer.load_state_dict(first.state_dict(), strict=False)
            layers[spec.name, mode] = layer
    return layers


def memory_columns(result: Measurement) -> dict:
    mib = 2**20
    return {"saved_MiB": result.saved_bytes / mib, "peak_MiB": result.peak_saved_bytes / mib,
            "cuda_peak_MiB": "" if result.cuda_peak_bytes is None else result.cuda_peak_bytes / mib}


def run_layers(args: Args, device: torch.device) -> list[dict]:
    """One fwd+bwd of every selected layer (and gradient mode) at each T, timed in turns."""
    keys, rows = selected_layers(args), []
    for length in tqdm(default_lengths(args, device), desc=f"{args.suite} fwd+bwd"):
        layers = {k: m.to(device) for k, m in layer_candidates(keys, args.dim, args.gradients, length,
                                                                args.looped_gru_max_length).items()}
        torch.manual_seed(0)
        x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)
        candidates = {key: (lambda layer=layer: layer(x)[0]) for key, layer in layers.items()}
        exclude = [x, *(p for layer in layers.values() for p in layer.parameters())]
        for (name, mode), result in measure_in_turns(candidates, device, args.repeats, exclude).items():
            rows.append({"layer": name, "gradient": mode, "T": length, "ms": 1e3 * result.seconds,
                         **memory_columns(result)})
    return rows


def _ratio(numerator, denominator):
    """numerator / denominator, or "" when either is missing or the denominator is zero."""
    if numerator in ("", None) or denominator in ("", None) or float(denominator) == 0:
        return ""
    return float(numerator) / float(denominator)


def peak_memory(row: dict):
    """The memory the ratios compare: the CUDA allocator's peak on a GPU, the saved-tensor peak elsewhere."""
    return row["cuda_peak_MiB"] if row.get("cuda_peak_MiB") not in ("", None) else row["peak_MiB"]


def layer_ratios(rows: list[dict]) -> list[dict]:
    """Speed-up of each layer over the two GRU baselines at each T (> 1: faster), memory vs nn.GRU (< 1: less)."""
    by_key = {(r["layer"], r["gradient"], r["T"]): r for r in rows}
    ratios = []
    for row in rows:
        fused = by_key.get((FUSED, "-", row["T"]), {})
        looped = by_key.get((LOOPED, "-", row["T"]), {})
        ratios.append({
            "layer": row["layer"], "gradient": row["gradient"], "T": row["T"],
            "speedup_vs_fused_GRU": _ratio(fused.get("ms"), row["ms"]),
            "speedup_vs_looped_GRU": _ratio(looped.get("ms"), row["ms"]),
            "saved_memory_vs_fused_GRU": _ratio(row["saved_MiB"], fused.get("saved_MiB")),
            "peak_memory_vs_fused_GRU": _ratio(peak_memory(row), peak_memory(fused) if fused else ""),
        })
    return ratios


def gradient_mode_ratios(rows: list[dict]) -> list[dict]:
    """Each non-bptt mode against bptt of the same layer and T: speed-up (> 1: faster), memory fractions."""
    bptt = {(r["layer"], r["T"]): r for r in rows if r["gradient"] == "bptt"}
    return [{"layer": r["layer"], "T": r["T"], "gradient": r["gradient"],
             "speedup_vs_bptt": _ratio(bptt[r["layer"], r["T"]]["ms"], r["ms"]),
             "saved_vs_bptt": _ratio(r["saved_MiB"], bptt[r["layer"], r["T"]]["saved_MiB"]),
             "peak_vs_bptt": _ratio(peak_memory(r), peak_memory(bptt[r["layer"], r["T"]]))}
            for r in rows if r["gradient"] not in ("bptt", "-") and (r["layer"], r["T"]) in bptt]


# -- precision ----------------------------------------------------------------------------------------
def run_precision(args: Args, device: torch.device) -> list[dict]:
    """Max relative error of float32 scans against the float64 loop, for minGRU-like coefficients."""
    rows = []
    for length in tqdm(args.precision_lengths, desc="scan precision"):
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


# -- long context -------------------------------------------------------------------------------------
LONG_CONTEXT_TARGET = 2.0  # time per timestep at the longest K within 2x of the shortest, for these:
LONG_CONTEXT_TARGET_BACKBONES = ("mingru", "lru")


def long_context_ratios(rows: list[dict]) -> list[dict]:
    """Per backbone: time per timestep at the longest K over the shortest (1: flat; attention grows with K)."""
    out = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        mine = sorted((r for r in rows if r["backbone"] == name), key=lambda r: r["K"])
        short, long = mine[0], mine[-1]
        ratio = _ratio(long["us_per_timestep"], short["us_per_timestep"])
        targeted = name in LONG_CONTEXT_TARGET_BACKBONES
        out.append({"backbone": name, "K_short": short["K"], "K_long": long["K"],
                    "us_per_timestep_short": short["us_per_timestep"], "us_per_timestep_long": long["us_per_timestep"],
                    "ratio": ratio, "target": f"<= {LONG_CONTEXT_TARGET:g}" if targeted else "-",
                    "status": ("met" if ratio <= LONG_CONTEXT_TARGET else "not met") if targeted and ratio != "" else "-"})
    return out


# -- targets ------------------------------------------------------------------------------------------
def _row(rows, layer, gradient, length):
    return next((r for r in rows if r["layer"] == layer and r["gradient"] == gradient and r["T"] == length), None)


def _target(text: str, measured, required: str, holds, missing: str) -> dict:
    status = f"not measured ({missing})" if measured == "" else ("met" if holds(measured) else "not met")
    return {"target": text, "required": required, "measured": measured, "status": status}


def target_rows(layer_rows: list[dict] | None, long_rows: list[dict] | None, batch: int, dim: int) -> list[dict]:
    """The speed targets with their measured ratios; only those whose suite ran."""
    out = []
    if layer_rows is not None:
        where = f"B={batch}, D={dim}" + ("" if (batch, dim) == (64, 256) else " (the target's: B=64, D=256)")

        def at(layer, gradient, length):
            return _row(layer_rows, layer, gradient, length) or {}

        mingru = at("minGRU", "bptt", 512)
        out.append(_target(f"minGRU fwd+bwd speed-up over fused nn.GRU, T=512, {where}",
                           _ratio(at(FUSED, "-", 512).get("ms"), mingru.get("ms")), ">= 1.5",
                           lambda v: v >= 1.5, "needs minGRU and fused-gru at T=512"))
        out.append(_target(f"minGRU fwd+bwd speed-up over the looped GRU cell, T=512, {where}",
                           _ratio(at(LOOPED, "-", 512).get("ms"), mingru.get("ms")), ">= 30",
                           lambda v: v >= 30, "needs minGRU and looped-gru at T=512"))
        fused = at(FUSED, "-", 4096)
        out.append(_target(f"minGRU peak memory / nn.GRU's, T=4096, {where}",
                           _ratio(peak_memory(at("minGRU", "bptt", 4096)) if at("minGRU", "bptt", 4096) else "",
                                  peak_memory(fused) if fused else ""), "<= 1",
                           lambda v: v <= 1, "needs minGRU and fused-gru at T=4096: --lengths ... 4096"))
        out.append(_target(f"GRU: DSF speed-up over BPTT, T=2048, {where}",
                           _ratio(at("GRU", "bptt", 2048).get("ms"), at("GRU", "dsf", 2048).get("ms")), ">= 2",
                           lambda v: v >= 2, "needs GRU bptt and dsf at T=2048: --lengths ... 2048"))
    if long_rows is not None:
        ratios = {r["backbone"]: r for r in long_context_ratios(long_rows)}
        for name in LONG_CONTEXT_TARGET_BACKBONES:
            r = ratios.get(name)
            measured = r["ratio"] if r and (r["K_short"], r["K_long"]) == (20, 1000) else ""
            out.append(_target(f"{name} agent training, time per timestep K=1000 / K=20", measured,
                               f"<= {LONG_CONTEXT_TARGET:g}", lambda v: v <= LONG_CONTEXT_TARGET,
                               f"needs {name} at K=20 and K=1000"))
    return out


# -- output -------------------------------------------------------------------------------------------
@dataclass
class Table:
    name: str  # file stem
    title: str
    rows: list[dict] = field(default_factory=list)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = f"{props.name}, {props.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        where = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"
    versions = [f"torch {torch.__version__}", f"python {sys.version.split()[0]}"]
    try:
        import triton

        versions.append(f"triton {triton.__version__}")
    except ImportError:
        pass
    return f"device: {device} ({where}); {'; '.join(versions)}"


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(stem: str, header: str, tables: list[Table], out_dir: Path, plots: bool) -> list[Path]:
    """Print the tables; write <name>.csv per table, <stem>.md with all of them, and <stem>_*.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, sections = [], [header]
    for table in tables:
        text = f"### {table.title}\n\n{markdown_table(table.rows)}"
        print(f"\n{text}")
        sections.append(text)
        write_csv(table.rows, out_dir / f"{table.name}.csv")
        written.append(out_dir / f"{table.name}.csv")
    (out_dir / f"{stem}.md").write_text("\n\n".join(sections) + "\n")
    written.append(out_dir / f"{stem}.md")
    if plots:
        written += write_plots(stem, {t.name: t.rows for t in tables}, out_dir)
    print("\nwrote " + ", ".join(str(p) for p in written))
    return written


# -- plots --------------------------------------------------------------------------------------------
def _series(rows, key_fields, x, y):
    """{key: ([x...], [y...])} sorted by x, skipping empty y."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: r[x]):
        if r[y] in ("", None):
            continue
        xs, ys = out.setdefault(tuple(r[f] for f in key_fields), ([], []))
        xs.append(r[x])
        ys.append(r[y])
    return out


def _label(key: tuple) -> str:
    return " ".join(str(k) for k in key if k not in ("-", "bptt"))


def write_plots(stem: str, tables: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """PNG plots of whichever tables are there; none (and a hint) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('(no plots: matplotlib is not installed; pip install -e ".[plots]")')
        return []
    paths = []
    out_dir.mkdir(parents=True, exist_ok=True)

    def save(fig, name):
        path = out_dir / f"{stem}_{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)

    layers = tables.get("layers") or tables.get("gradient_modes")
    if tables.get("layers"):
        exact = [r for r in tables["layers"] if r["gradient"] in ("bptt", "-")]
        ratios = [r for r in tables["layers_ratios"] if r["gradient"] in ("bptt", "-")]
        memory = "CUDA peak" if any(r["cuda_peak_MiB"] != "" for r in exact) else "saved-tensor peak"
        exact = [{**r, "memory": peak_memory(r)} for r in exact]
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        names = list(dict.fromkeys(r["layer"] for r in exact))
        color = {name: cycle[i % len(cycle)] for i, name in enumerate(names)}  # one colour per layer in every panel
        for key, (xs, ys) in _series(exact, ["layer"], "T", "ms").items():
            axes[0].plot(xs, ys, marker="o", label=_label(key), color=color[key[0]])
        for key, (xs, ys) in _series([r for r in ratios if r["layer"] != FUSED], ["layer"], "T", "speedup_vs_fused_GRU").items():
            axes[1].plot(xs, ys, marker="o", label=_label(key), color=color[key[0]])
            looped = _series([r for r in ratios if r["layer"] == key[0]], ["layer"], "T", "speedup_vs_looped_GRU")
            for lx, ly in looped.values():
                axes[1].plot(lx, ly, marker="x", linestyle="--", color=color[key[0]])
        for key, (xs, ys) in _series(exact, ["layer"], "T", "memory").items():
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
        save(fig, "figure")
    mode_ratios = tables.get("layers_gradient_modes") or tables.get("gradient_modes_ratios")
    if layers and mode_ratios:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        names = list(dict.fromkeys(r["layer"] for r in mode_ratios))
        for ax, column in zip(axes, ("speedup_vs_bptt", "peak_vs_bptt")):  # colour: layer; solid: dsf, dashed: truncated
            for key, (xs, ys) in _series(mode_ratios, ["layer", "gradient"], "T", column).items():
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
        save(fig, "gradient_modes")
    if tables.get("long_context"):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        rows = tables["long_context"]
        for key, (xs, ys) in _series(rows, ["backbone"], "K", "us_per_timestep").items():
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
        save(fig, "per_timestep")
    if tables.get("agent_eval") or tables.get("agent_latency"):
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
        save(fig, "throughput")
    if tables.get("precision"):
        rows = tables["precision"]
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for column in [c for c in rows[0] if c != "T"]:
            ax.plot([r["T"] for r in rows], [r[column] for r in rows], marker="o", label=column)
        ax.set(xscale="log", yscale="log", xlabel="T", ylabel="max relative error vs float64", title="scan precision (float32)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "error")
    return paths


# -- suites -------------------------------------------------------------------------------------------
def layer_tables(args: Args, device: torch.device) -> tuple[list[Table], list[dict]]:
    rows = run_layers(args, device)
    return [Table("layers", f"One layer, fwd+bwd, B={args.batch}, D={args.dim} (ms; memory in MiB)", rows),
            Table("layers_ratios", "Ratios to the GRU baselines (speed-up > 1: faster; memory < 1: less)", layer_ratios(rows)),
            Table("layers_gradient_modes", "Gradient modes, ratios to bptt of the same layer (speed-up > 1: faster; memory < 1: less)",
                  gradient_mode_ratios(rows))], rows


def agent_tables(args: Args, device: torch.device) -> list[Table]:
    from agents.config import AgentConfig
    from agents.run import load_store

    store, size = load_store(AgentConfig()), {"d_model": args.embed, "n_layers": args.n_layers}
    common = dict(device=device, size=size, store=store)
    evaluation = benchmark_evaluation(args.backbones, args.episodes, args.max_steps,
                                      baseline_episodes=args.baseline_episodes, **common)
    latency = benchmark_latency(args.backbones, args.latency_batches, steps=args.latency_steps, repeats=args.repeats, **common)
    training = benchmark_training(args.backbones, args.train_steps, args.train_batch, repeats=args.repeats, **common)
    model = f"embed {args.embed}, {args.n_layers} layers, K=20, untrained"
    return [Table("agent_eval", f"Evaluation env steps/s, {args.episodes} episodes x {args.max_steps} steps, speed-up over "
                                f"the DT/CORL loop ({model})", evaluation),
            Table("agent_latency", "Per-step inference latency: model ms per env step for a batch of envs, "
                                   "window vs recurrent (recurrent_speedup = window ms / mode ms)", latency),
            Table("agent_train", f"Training, batch {args.train_batch}, K=20 ({model}); vs_transformer > 1: faster", training)]


def long_context_tables(args: Args, device: torch.device) -> tuple[list[Table], list[dict]]:
    from agents.config import AgentConfig
    from agents.run import load_store

    rows = benchmark_long_context(args.backbones, args.context_lens, args.long_context_tokens, args.long_context_steps,
                                  args.repeats, device, {"d_model": args.embed, "n_layers": args.n_layers},
                                  load_store(AgentConfig()))
    return [Table("long_context", f"Agent training time per timestep vs context K (embed {args.embed}, {args.n_layers} "
                                  f"layers; batch = {args.long_context_tokens} // K timesteps)", rows),
            Table("long_context_ratios", "Time per timestep at the longest K / at the shortest", long_context_ratios(rows))], rows


def run_suite(args: Args, device: torch.device, header: str) -> None:
    suites = ["layers", "agent", "long-context", "precision"] if args.suite == "all" else [args.suite]
    layer_rows = long_rows = None
    everything: list[Table] = []
    for suite in suites:
        stem = suite.replace("-", "_")
        if suite == "layers":
            tables, layer_rows = layer_tables(args, device)
            tables.append(Table("layers_targets", "Targets", target_rows(layer_rows, None, args.batch, args.dim)))
        elif suite == "gradient-modes":
            rows = run_layers(args, device)
            tables = [Table("gradient_modes", f"One recurrent layer, fwd+bwd, B={args.batch}, D={args.dim}", rows),
                      Table("gradient_modes_ratios", "Ratios to bptt (speed-up > 1: faster; memory < 1: less)",
                            gradient_mode_ratios(rows))]
        elif suite == "agent":
            tables = agent_tables(args, device)
        elif suite == "long-context":
            tables, long_rows = long_context_tables(args, device)
            tables.append(Table("long_context_targets", "Targets", target_rows(None, long_rows, args.batch, args.dim)))
        else:
            tables = [Table("precision", "Max relative error of float32 scans vs a float64 loop (minGRU-like gates, D=64)",
                            run_precision(args, device))]
        write_outputs(stem, header, tables, args.out_dir, args.plots)
        everything += tables
    if args.suite == "all":
        everything.append(Table("all_targets", "Targets", target_rows(layer_rows, long_rows, args.batch, args.dim)))
        print(f"\n### Targets (all)\n\n{markdown_table(everything[-1].rows)}")
        write_csv(everything[-1].rows, args.out_dir / "all_targets.csv")
        sections = [header] + [f"### {t.title}\n\n{markdown_table(t.rows)}" for t in everything]
        (args.out_dir / "all.md").write_text("\n\n".join(sections) + "\n")
        print(f"wrote {args.out_dir / 'all.md'}, {args.out_dir / 'all_targets.csv'}")


def main(args: Args) -> None:
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    device = pick_device(args.device)
    scan = use_scan_backend(args.scan_backend, device)
    header = f"{describe_machine(device)}; scan backend {scan}"
    print(header)
    run_suite(args, device, header)


if __name__ == "__main__":
    main(tyro.cli(Args))

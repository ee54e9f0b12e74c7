"""One layer's forward + backward at each sequence length: the rows the layers and gradient-modes suites share.

Every layer (and each gradient mode of a recurrent one) takes x of shape (B, T, D) and is timed in
turns with the others at the same T, as profiling.py describes: median of --repeats, activation
memory from saved-tensor hooks (saved: kept for backward; peak: most alive at once), plus the CUDA
allocator's peak on a GPU. The modes of one layer share their weights. Two baselines stand for the
GRUs users have today: torch's fused nn.GRU (cuDNN / oneDNN) and a GRU cell looped from Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from sequence_models.attention import CausalSelfAttention
from sequence_models.benchmarks.options import BenchmarkArgs
from sequence_models.benchmarks.profiling import Measurement, measure_in_turns
from sequence_models.classic_rnn import GRU, LSTM, RNN
from sequence_models.gradient_modes import GRADIENT_MODES
from sequence_models.lru import LRU
from sequence_models.mamba import Mamba
from sequence_models.min_rnn import MinGRU, MinLSTM
from sequence_models.s4d import S4D


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
    "mamba": LayerSpec("Mamba", lambda d, g: Mamba(d)),
    "s4d": LayerSpec("S4D", lambda d, g: S4D(d)),
    "gru": LayerSpec("GRU", lambda d, g: GRU(d, gradient=g), GRADIENT_MODES),
    "lstm": LayerSpec("LSTM", lambda d, g: LSTM(d, gradient=g), GRADIENT_MODES),
    "rnn": LayerSpec("RNN", lambda d, g: RNN(d, gradient=g), GRADIENT_MODES),
    "fused-gru": LayerSpec("nn.GRU (fused)", lambda d, g: FusedGRU(d)),
    "looped-gru": LayerSpec("GRU cell (looped)", lambda d, g: LoopedGRUCell(d)),
}
FUSED, LOOPED = LAYERS["fused-gru"].name, LAYERS["looped-gru"].name


def selected_layers(requested: tuple[str, ...], default: list[str]) -> list[str]:
    keys = [k.lower() for k in requested] or default
    unknown = [k for k in keys if k not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; choose from: {' '.join(LAYERS)}")
    return keys


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


def peak_memory(row: dict):
    """The memory the ratios compare: the CUDA allocator's peak on a GPU, the saved-tensor peak elsewhere."""
    return row["cuda_peak_MiB"] if row.get("cuda_peak_MiB") not in ("", None) else row["peak_MiB"]


def run_layers(args: BenchmarkArgs, keys: list[str], lengths: tuple[int, ...], device: torch.device,
               desc: str) -> list[dict]:
    """One fwd+bwd of every selected layer (and gradient mode) at each T, timed in turns."""
    rows = []
    for length in tqdm(lengths, desc=desc):
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

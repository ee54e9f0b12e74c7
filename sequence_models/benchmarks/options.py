"""The benchmark flags every suite shares and those of the layer-level suites (layers, gradient-modes,
precision); tyro turns them into flags. The agent suites add theirs in agents/benchmarks/options.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sequence_models.gradient_modes import GRADIENT_MODES
from sequence_models.kernels.backend import ScanBackend


@dataclass(frozen=True)
class BenchmarkArgs:
    lengths: tuple[int, ...] | None = None
    """sequence lengths T (default: layers 64 256 512 1024 2048 4096 on a GPU, 64 256 512 1024 on CPU;
    gradient-modes 128 512 2048)"""
    layers: tuple[str, ...] = ()
    """layers to time (default: all; gradient-modes: gru lstm): mingru minlstm lru attention mamba s4d gru lstm rnn
    fused-gru looped-gru"""
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

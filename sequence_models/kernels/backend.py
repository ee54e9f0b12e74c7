"""Which scan implementation runs: auto | cpu (fused C++, kernels/cpu.py) | triton (CUDA,
kernels/scan_triton.py, kernels/min_rnn_triton.py) | torch (the chunked PyTorch scan in scan.py).

The choice is per process (the scripts' --scan-backend flag); `scan_backend_for(device, kernel)` is
what linear_scan ("scan") and the minGRU / minLSTM layers ("min_rnn") ask before each call. Before a
Triton kernel first runs on a device it is checked against the PyTorch path (kernels/triton_check.py):
under auto a failure falls back to torch with one warning, under an explicit triton it is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

ScanBackend = Literal["auto", "cpu", "triton", "torch"]
SCAN_BACKENDS: tuple[str, ...] = get_args(ScanBackend)
_backend = "auto"


def set_scan_backend(name: str) -> None:
    """Choose the scan implementation for this process: auto, cpu, triton or torch (see module doc)."""
    global _backend
    if name not in SCAN_BACKENDS:
        raise ValueError(f"unknown scan backend {name!r}; choose one of {', '.join(SCAN_BACKENDS)}")
    _backend = name


def use_scan_backend(name: str, device: torch.device) -> str:
    """set_scan_backend(name), then check it runs on `device` (before any work: on triton, every
    kernel's first-use check runs now); returns what runs there."""
    from .triton_check import KERNELS

    set_scan_backend(name)
    chosen = scan_backend_for(device)
    if chosen == "triton":
        for kernel in KERNELS:
            scan_backend_for(device, kernel)
    return chosen


def get_scan_backend() -> str:
    return _backend


def scan_backend_for(device: torch.device, kernel: str = "scan") -> str:
    """The backend that runs `kernel` ("scan" or "min_rnn") on `device` under the current setting:
    "cpu", "triton" or "torch".

    An explicit choice that cannot run on `device` (cpu kernels for a CUDA tensor, triton on CPU,
    kernels that failed to build, a Triton kernel that failed its first-use check) is an error, not a
    silent fallback.
    """
    from . import cpu as cpu_kernels
    from .triton_check import triton_kernel_works

    if _backend == "torch":
        return "torch"
    on_cpu = device.type == "cpu"
    if _backend == "cpu":
        if not on_cpu:
            raise ValueError(f"scan backend 'cpu' runs CPU tensors only, got a tensor on {device}")
        if cpu_kernels.load() is None:
            raise RuntimeError("scan backend 'cpu' was asked for but its kernels could not be built (see the warning)")
        return "cpu"
    if _backend == "triton":
        if not _triton_available(device):
            raise ValueError(f"scan backend 'triton' needs a CUDA tensor and an importable triton, got {device}")
        triton_kernel_works(kernel, device)  # raises when it fails its check
        return "triton"
    if on_cpu and cpu_kernels.load() is not None:
        return "cpu"
    if _triton_available(device) and triton_kernel_works(kernel, device):
        return "triton"
    return "torch"


def _triton_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    from .scan_triton import triton_available

    return triton_available(device)

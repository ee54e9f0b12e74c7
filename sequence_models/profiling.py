"""Time and memory of one forward + backward pass, measured the same way for every layer.

Activation memory is the total size of the tensors autograd saves for the backward pass (counted
once per storage through saved-tensor hooks): exact, deterministic and the same on CPU and CUDA.
On CUDA the allocator's peak during the pass is reported too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Measurement:
    seconds: float  # median wall time of forward + backward
    activation_bytes: int  # bytes saved for backward
    peak_bytes: int | None  # CUDA allocator peak above the starting point; None on CPU


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd saves while running `forward()`, each storage counted once."""
    seen: dict[tuple, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[(tensor.device, storage.data_ptr())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(seen.values())


def measure_forward_backward(
    forward: Callable[[], torch.Tensor], device: torch.device, repeats: int = 3, warmup: int = 1
) -> Measurement:
    """`forward()` returns the output whose sum is back-propagated; its inputs are rebuilt by the caller."""

    def run() -> None:
        forward().float().sum().backward()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append(time.perf_counter() - start)

    peak = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        _synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    return Measurement(statistics.median(times), saved_activation_bytes(forward), peak)

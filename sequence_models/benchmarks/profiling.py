"""Time and memory of one forward + backward pass, measured the same way for every layer.

Activation memory is counted through saved-tensor hooks, per storage (exact, deterministic and the
same on CPU and CUDA; the input and the parameters are not counted):
  saved  what autograd keeps between the forward and the backward;
  peak   the most saved-tensor memory alive at once over forward + backward, which also counts a
         graph that exists only while a backward runs (DSF's one-step recomputation).
On CUDA the allocator's peak during the pass is reported too.

Candidates are timed in turns (A, B, C, A, B, C, ...) so that a shared, noisy machine slows them
alike; the median is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Measurement:
    seconds: float  # median wall time of forward + backward
    saved_bytes: int  # kept from the forward for the backward
    peak_saved_bytes: int  # most saved-tensor memory alive at once over forward + backward
    cuda_peak_bytes: int | None  # CUDA allocator peak above the starting point; None elsewhere


class SavedTensorMemory:
    """Bytes of saved tensors alive, per storage, while `hooks()` is active; tracks the peak."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self.excluded = {self._key(t) for t in exclude}
        self.count: dict[tuple, int] = {}
        self.live = self.peak = 0

    @staticmethod
    def _key(tensor: torch.Tensor) -> tuple:
        return tensor.device, tensor.untyped_storage().data_ptr()

    def _acquire(self, key: tuple, nbytes: int) -> None:
        self.count[key] = self.count.get(key, 0) + 1
        if self.count[key] == 1:
            self.live += nbytes
            self.peak = max(self.peak, self.live)

    def _release(self, key: tuple, nbytes: int) -> None:
        self.count[key] -= 1
        if self.count[key] == 0:
            self.live -= nbytes

    def hooks(self):
        tracker = self

        class Held:
            """Stands in for a saved tensor; its lifetime is the saved tensor's."""

            __slots__ = ("tensor", "key", "nbytes")

            def __init__(self, tensor: torch.Tensor):
                self.tensor, self.key = tensor, tracker._key(tensor)
                self.nbytes = tensor.untyped_storage().nbytes()
                if self.key not in tracker.excluded:
                    tracker._acquire(self.key, self.nbytes)

            def __del__(self):
                if self.key not in tracker.excluded:
                    tracker._release(self.key, self.nbytes)

        return torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.tensor)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], None], device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    run()
    _synchronize(device)
    return time.perf_counter() - start


def _backward(forward: Callable[[], torch.Tensor]) -> None:
    forward().float().sum().backward()


def saved_memory(forward: Callable[[], torch.Tensor], exclude: Iterable[torch.Tensor] = ()) -> tuple[int, int]:
    """(bytes saved after the forward, peak saved bytes over forward + backward)."""
    tracker = SavedTensorMemory(exclude)
    with tracker.hooks():
        output = forward()
        saved = tracker.live
        output.float().sum().backward()
        del output
    return saved, tracker.peak


def cuda_peak(forward: Callable[[], torch.Tensor], device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    _synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    _backward(forward)
    _synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def measure_in_turns(
    candidates: dict[str, Callable[[], torch.Tensor]],
    device: torch.device,
    repeats: int = 3,
    exclude: Iterable[torch.Tensor] = (),
) -> dict[str, Measurement]:
    """Forward + backward of each candidate (a callable returning the output), timed in turns."""
    exclude = list(exclude)
    # The untimed warm-up pass counts the saved tensors (one pass fewer per candidate: long T on a CPU is slow).
    memory = {name: saved_memory(forward, exclude) for name, forward in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, forward in candidates.items():
            times[name].append(timed(lambda: _backward(forward), device))
    return {name: Measurement(statistics.median(times[name]), *memory[name], cuda_peak(forward, device))
            for name, forward in candidates.items()}

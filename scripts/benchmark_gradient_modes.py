"""GRU and LSTM trained by bptt vs dsf vs truncated: forward + backward time and memory per length.

  python scripts/benchmark_gradient_modes.py                       # B=64, D=256, T in 128 512 2048
  python scripts/benchmark_gradient_modes.py --lengths 128 512 --repeats 5

Per (cell, T) the three modes are timed in turns (mode A, B, C, A, B, C, ...) so that a shared,
noisy CPU slows them alike; the median is reported. Memory, measured through saved-tensor hooks
(exact and the same on CPU and CUDA; parameters and the input are not counted):
  saved_MB  what autograd keeps between the forward and the backward (activation memory);
  peak_MB   the most saved-tensor memory alive at once over forward + backward, which also counts
            DSF's one-step graph that exists only while its backward runs.
On CUDA the allocator's peak over the pass is reported as well (cuda_peak_MB).

Prints a markdown table plus the dsf/bptt and truncated/bptt ratios; writes
benchmarks/gradient_modes.csv.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from sequence_models.classic_rnn import GRU, LSTM

CELLS = {"gru": GRU, "lstm": LSTM}
MODES = ("bptt", "dsf", "truncated")


@dataclass(frozen=True)
class Args:
    lengths: tuple[int, ...] = (128, 512, 2048)
    """sequence lengths T"""
    batch: int = 64
    dim: int = 256
    cells: tuple[str, ...] = ("gru", "lstm")
    repeats: int = 3
    """timed rounds per (cell, T), each running every mode once; the median is reported"""
    device: str = "auto"
    """cpu, cuda, ... or auto (cuda when available)"""
    out_dir: Path = Path("benchmarks")


class SavedTensorMemory:
    """Bytes of saved tensors alive, per storage, while the hooks are installed; tracks the peak."""

    def __init__(self, exclude: list[torch.Tensor]):
        self.excluded = {self._key(t) for t in exclude}
        self.count: dict[tuple, int] = {}
        self.live = self.peak = 0

    @staticmethod
    def _key(tensor: torch.Tensor) -> tuple:
        return tensor.device, tensor.untyped_storage().data_ptr()

    def hooks(self):
        tracker = self

        class Held:
            __slots__ = ("tensor", "key", "nbytes")

            def __init__(self, tensor):
                self.tensor, self.key, self.nbytes = tensor, tracker._key(tensor), tensor.untyped_storage().nbytes()
                if self.key not in tracker.excluded:
                    tracker.count[self.key] = tracker.count.get(self.key, 0) + 1
                    if tracker.count[self.key] == 1:
                        tracker.live += self.nbytes
                        tracker.peak = max(tracker.peak, tracker.live)

            def __del__(self):
                if self.key not in tracker.excluded:
                    tracker.count[self.key] -= 1
                    if tracker.count[self.key] == 0:
                        tracker.live -= self.nbytes

        return torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.tensor)


def memory(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(saved bytes after the forward, peak saved bytes over forward + backward)."""
    tracker = SavedTensorMemory([x, *module.parameters()])
    with tracker.hooks():
        y, _ = module(x)
        saved = tracker.live
        y.float().sum().backward()
    return saved, tracker.peak


def cuda_peak(module: torch.nn.Module, x: torch.Tensor) -> int | None:
    if x.device.type != "cuda":
        return None
    torch.cuda.synchronize(x.device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(x.device)
    base = torch.cuda.memory_allocated(x.device)
    module(x)[0].float().sum().backward()
    torch.cuda.synchronize(x.device)
    return torch.cuda.max_memory_allocated(x.device) - base


def timed(run: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(cell: str, length: int, args: Args, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    modules = {mode: CELLS[cell](args.dim, gradient=mode).to(device) for mode in MODES}
    for module in modules.values():
        module.load_state_dict(modules["bptt"].state_dict(), strict=False)
    x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)

    def run(module):
        module(x)[0].sum().backward()

    for module in modules.values():  # warm-up
        run(module)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode, module in modules.items():
            times[mode].append(timed(lambda: run(module), device))
    rows = []
    for mode, module in modules.items():
        saved, peak = memory(module, x)
        cuda = cuda_peak(module, x)
        rows.append(
            {
                "cell": cell,
                "T": length,
                "mode": mode,
                "ms": round(1000 * statistics.median(times[mode]), 1),
                "saved_MB": round(saved / 2**20, 1),
                "peak_MB": round(peak / 2**20, 1),
                "cuda_peak_MB": None if cuda is None else round(cuda / 2**20, 1),
            }
        )
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Speed-up (bptt time / mode time) and memory fraction (mode / bptt) for dsf and truncated."""
    out = []
    for row in rows:
        if row["mode"] == "bptt":
            continue
        base = next(r for r in rows if r["cell"] == row["cell"] and r["T"] == row["T"] and r["mode"] == "bptt")
        out.append(
            {
                "cell": row["cell"],
                "T": row["T"],
                "mode": row["mode"],
                "speed-up vs bptt": round(base["ms"] / row["ms"], 2),
                "saved vs bptt": round(row["saved_MB"] / base["saved_MB"], 3),
                "peak vs bptt": round(row["peak_MB"] / base["peak_MB"], 3),
            }
        )
    return out


def markdown_table(rows: list[dict]) -> str:
    columns = [c for c in rows[0] if any(r[c] is not None for r in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def run_gradient_modes(args: Args) -> list[dict]:
    """Every (cell, T, mode) row; what scripts/benchmark.py can call as a suite."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    rows = []
    for cell in args.cells:
        for length in args.lengths:
            rows += measure(cell, length, args, device)
            print(markdown_table(rows[-len(MODES) :]).split("\n", 2)[-1], flush=True)
    return rows


def main(args: Args) -> None:
    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    print(f"B={args.batch} D={args.dim} on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = run_gradient_modes(args)
    print("\n" + markdown_table(rows) + "\n\n" + markdown_table(ratios(rows)))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "gradient_modes.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))

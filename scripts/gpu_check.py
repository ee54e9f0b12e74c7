"""Run every GPU-only check in one go (at most 8 minutes) and print one markdown table.

    python scripts/gpu_check.py                      # on a GPU machine: CUDA tests, bf16, training, benchmarks
    python scripts/gpu_check.py --budget-seconds 300 # a shorter slot: later checks are skipped

Checks (sequence_models/benchmarks/gpu_check.py): the CUDA tests of the Triton kernels, bf16 vs fp32
forward of every backbone, 50 training steps of every backbone on the built-in dataset, the layer
benchmark at T=512 (minGRU vs the looped GRU) and DSF vs BPTT at T=2048. Without a CUDA GPU it says
so and exits 0. Exit status 1 when a check fails.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from sequence_models.benchmarks.gpu_check import (BUDGET_SECONDS, NO_GPU_MESSAGE, default_checks, describe_gpu,
                                                  markdown_table, run_checks)


@dataclass(frozen=True)
class Args:
    budget_seconds: float = BUDGET_SECONDS
    """time for all checks together; a check still running at the end is cut off, later ones skipped"""
    work_dir: Path | None = None
    """where the runs and benchmark tables go (default: a fresh temporary folder)"""


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if not torch.cuda.is_available():
        print(NO_GPU_MESSAGE)
        return 0
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    print(f"{describe_gpu()}; outputs in {work_dir}", flush=True)
    start = time.monotonic()
    results = run_checks(default_checks(work_dir), args.budget_seconds)
    print(markdown_table(results))
    print(f"\n{time.monotonic() - start:.0f} s in all")
    return 1 if any(r.status == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

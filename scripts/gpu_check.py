"""`python scripts/gpu_check.py ...` = `db-gpu-check ...` (sequence_models.commands.gpu_check; `db-gpu-check --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from sequence_models.commands import GpuCheckArgs as Args, gpu_check, gpu_check_main as main

__all__ = ["Args", "main", "gpu_check"]

if __name__ == "__main__":
    gpu_check()

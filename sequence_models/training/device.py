"""The device a run uses ('auto' is CUDA when available, else CPU) and whether bf16 autocast runs on it.

Mixed precision (`--amp`) is bf16 autocast: matmuls and linear layers in bfloat16, everything the
layers keep in float32 on purpose (scans, norms, the losses) in float32. It runs on CUDA and on
CPUs that do bfloat16 in hardware (AVX512-BF16 or AMX-BF16); on other CPUs bf16 is emulated and
slower than float32, so the run stays float32 and says so once. The environment variable
DECISION_BACKBONES_CPU_BF16=1 (or 0) overrides the detection: bf16 on any CPU (to check its
numerics where it is emulated, or on a CPU the detection misses), or never.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

import torch

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPU_BF16_OVERRIDE = "DECISION_BACKBONES_CPU_BF16"


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is checked and passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu or auto")
    return device


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """True when the first `flags` line of a /proc/cpuinfo text lists avx512_bf16 or amx_bf16."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return any(flag in NATIVE_BF16_CPU_FLAGS for flag in line.partition(":")[2].split())
    return False


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU does bfloat16 maths in hardware, read once from /proc/cpuinfo (Linux).
    Without /proc/cpuinfo False: bf16 may be emulated there, and float32 is the safe choice.
    DECISION_BACKBONES_CPU_BF16=1 / 0 decides instead."""
    override = os.environ.get(CPU_BF16_OVERRIDE, "")
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise ValueError(f"{CPU_BF16_OVERRIDE} must be 0 or 1, got {override!r}")
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


@functools.cache
def _note_float32_fallback() -> None:
    print("note: --amp asked for, but this CPU has no native bfloat16 (avx512_bf16 / amx_bf16), where bf16 is "
          "slower than float32; running in float32", file=sys.stderr)


def amp_enabled(requested: bool, device: torch.device) -> bool:
    """Whether bf16 autocast runs: requested, on CUDA or on a CPU with native bf16. A CPU without it
    runs float32 and prints one note per process."""
    if not requested:
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu" and cpu_has_native_bf16():
        return True
    _note_float32_fallback()
    return False


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when enabled (see amp_enabled), else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)

"""The line every benchmark report starts with: the device and the versions the numbers were measured on."""

from __future__ import annotations

import platform
import sys

import torch


def describe_machine(device: torch.device, threads: str | None = None) -> str:
    """`threads` replaces the CPU's "N torch threads" where the numbers come from other processes (the
    claims' runs: one thread each)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = f"{props.name}, {props.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        where = f"{platform.processor() or platform.machine()} CPU, {threads or f'{torch.get_num_threads()} torch threads'}"
    versions = [f"torch {torch.__version__}", f"python {sys.version.split()[0]}"]
    try:
        import triton

        versions.append(f"triton {triton.__version__}")
    except ImportError:
        pass
    return f"device: {device} ({where}); {'; '.join(versions)}"

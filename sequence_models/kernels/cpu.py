"""The fused CPU kernels (csrc/scan_cpu.cpp), compiled on first use and cached.

`load()` returns the compiled module, or None when it cannot be built here (no C++ compiler, or
the build failed: one warning says why, and callers fall back to the pure-PyTorch path). The build
goes through torch.utils.cpp_extension (needs a C++ compiler and ninja) into torch's extension
cache (~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR), so it happens once per machine and
torch version: about a minute on 2 cores.

The kernels are raw passes (no autograd); scan.py and min_rnn.py wrap them in autograd Functions.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "scan_cpu.cpp"


def _flags() -> list[str]:
    # -ffast-math lets exp vectorize (libmvec); it is a compile flag only: linking with it would set
    # flush-to-zero for the whole process
    flags = ["-O3", "-fopenmp", "-ffast-math"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


@functools.cache
def load():
    """The compiled kernels, or None (after one warning) where they cannot be built."""
    if os.environ.get("DECISION_BACKBONES_NO_CPU_KERNELS"):
        return None
    try:
        from torch.utils import cpp_extension

        name = f"decision_backbones_scan_cpu_{torch.backends.cpu.get_cpu_capability().lower()}"
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        if not (build_dir / f"{name}.so").exists():
            print(f"building the fused CPU scan kernels into {build_dir} (once per machine, about a minute)...",
                  file=sys.stderr, flush=True)
        return cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=_flags(),
            extra_ldflags=["-fopenmp", "-lmvec"],
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: all mean "use the torch path"
        warnings.warn(
            f"the fused CPU scan kernels could not be built ({type(error).__name__}: {str(error)[:300]}); "
            "using the pure-PyTorch scans instead (slower on CPU, same results)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def _flat(t: torch.Tensor) -> torch.Tensor:
    """(B, T, *features) -> contiguous (B, T, F)."""
    return t.reshape(t.shape[0], t.shape[1], math.prod(t.shape[2:])).contiguous()


def _flat_state(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t.reshape(like.shape[0], like.shape[2]).to(like.dtype).contiguous()


class LinearScan(torch.autograd.Function):
    """h_t = a_t h_{t-1} + b_t (reverse: a_t h_{t+1} + b_t) on (B, T, *features), real or complex.

    a has b's shape, possibly as an expanded view of one diagonal (stride 0 over batch and time):
    that diagonal is then read in place, never copied to (B, T, F). Keeps a, h and the initial
    state for backward, which is one fused reverse pass (no flips, no copies).
    """

    @staticmethod
    def forward(ctx, a, b, initial_state, reverse):
        kernels = load()
        b_flat = _flat(b)
        constant = a.stride(0) == a.stride(1) == 0 and a.shape[0] > 0 and a.shape[1] > 0
        a_flat = a[0, 0].reshape(-1).contiguous() if constant else _flat(a)
        start = _flat_state(initial_state, b_flat)
        h = kernels.scan_forward(a_flat, b_flat, start, reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(a_flat, h, start)
        ctx.shapes = (b.shape, None if initial_state is None else initial_state.shape)  # a has b's shape
        return h.view(b.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        a, h, start = ctx.saved_tensors
        shape, state_shape = ctx.shapes  # a constant diagonal's gradient stays (B, T, F): autograd sums it
        grad_b, grad_a, grad_start = load().scan_backward(
            _flat(grad_h), a, h, start, ctx.reverse, ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        )
        grad_a = grad_a.view(shape) if ctx.needs_input_grad[0] else None
        grad_start = grad_start.view(state_shape) if ctx.needs_input_grad[2] else None
        return grad_a, grad_b.view(shape), grad_start, None


class MinRNNScan(torch.autograd.Function):
    """minGRU or minLSTM gates and recurrence from the input projection, fused in one pass each way.

    projected (B, T, 2H) for cell "mingru" ([k_h | k_z]) or (B, T, 3H) for "minlstm"
    ([k_h | k_f | k_i]); returns the states h (B, T, H). Keeps only projected and h for backward;
    the gates are recomputed there.

    gradient: "bptt" (exact), or DSF's: the backward's carry δ_t = e_t + A ⊙ δ_{t+1} with the
    diagonal `feedback` A ("dsf") or A = 0 ("truncated"), each step's gradient being the one-step
    cell's at δ_t — the same numbers as feedback.state_feedback, in the same single pass.
    """

    @staticmethod
    def forward(ctx, projected, initial_state, cell, normalize, gradient="bptt", feedback=None):
        projected = projected.contiguous()
        start = None if initial_state is None else initial_state.to(projected.dtype).contiguous()
        h = load().min_rnn_forward(cell, projected, start, normalize)
        ctx.cell, ctx.normalize, ctx.gradient = cell, normalize, gradient
        diagonal = feedback.to(projected.dtype).contiguous() if gradient == "dsf" else None
        ctx.save_for_backward(projected, h, start, diagonal)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        projected, h, start, diagonal = ctx.saved_tensors
        grad_projected, grad_start = load().min_rnn_backward(
            ctx.cell, grad_h.contiguous(), projected, h, start, ctx.normalize, ctx.needs_input_grad[1],
            diagonal, ctx.gradient == "bptt",
        )
        return grad_projected, (grad_start if ctx.needs_input_grad[1] else None), None, None, None, None

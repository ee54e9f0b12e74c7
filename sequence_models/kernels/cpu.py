"""The fused CPU kernels (csrc/scan_cpu.cpp), compiled on first use and cached.

`load()` returns the compiled module, or None when it cannot be built here (no C++ compiler, or
the build failed: one warning says why, and callers fall back to the pure-PyTorch path). The build
goes through torch.utils.cpp_extension (needs a C++ compiler and ninja) into torch's extension
cache (~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR): about a minute on 2 cores.

The cached build is named by `build_key`, a hash of the source's contents, the compile and link
flags, the torch version and the CPU capability, never by the checkout's path: ninja compiles a copy
of the source kept in the build folder, so every checkout on a machine with the same source shares
one build (ninja's command line embeds the source path: compiling each checkout's own file would
rebuild over the others), and an edited source gets a new name instead of loading a stale library.

The kernels are raw passes (no autograd); scan.py and min_rnn.py wrap them in autograd Functions.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "scan_cpu.cpp"
EXTENSION_PREFIX = "decision_backbones_scan_cpu"
LINK_FLAGS = ("-fopenmp", "-lmvec")


def compile_flags(capability: str | None = None) -> list[str]:
    """-O3 -ffast-math for speed, but with -fno-finite-math-only: the training loop's NaN guard needs
    NaN and Inf to pass through the kernels, which finite-math-only lets the compiler assume away.
    (exp still vectorizes: scan_cpu.cpp declares glibc's vector exp itself, since math.h only does
    under full -ffast-math.) -ffast-math is a compile flag only: linking with it would set
    flush-to-zero for the whole process."""
    flags = ["-O3", "-fopenmp", "-ffast-math", "-fno-finite-math-only"]
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def build_key(source: bytes, compile_flags: list[str], link_flags: list[str], torch_version: str,
              capability: str, torch_dir: str) -> str:
    """A short hash of everything the compiled library depends on, and nothing else: no checkout's path,
    but torch's install folder (the build command names its headers and libraries, so two virtual
    environments sharing one build would rebuild it each time the other had used it)."""
    digest = hashlib.sha256(source)
    for part in (*compile_flags, "|", *link_flags, "|", torch_version, capability, torch_dir):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def extension_name(cflags: list[str] | None = None) -> str:
    """The cached build's name for this source, these flags (default: compile_flags()), torch (its version
    and install folder) and CPU."""
    capability = torch.backends.cpu.get_cpu_capability()
    cflags = compile_flags(capability) if cflags is None else cflags
    key = build_key(SOURCE.read_bytes(), cflags, list(LINK_FLAGS), torch.__version__, capability,
                    str(Path(torch.__file__).resolve().parent))
    return f"{EXTENSION_PREFIX}_{capability.lower()}_{key}"


def _shared_source(build_dir: Path) -> Path:
    """The source copied into the build folder (written only when missing or different, so its
    mtime, which ninja compares, stays put): the one path every checkout's build command names."""
    text = SOURCE.read_bytes()
    copy = build_dir / SOURCE.name
    if not copy.exists() or copy.read_bytes() != text:
        temporary = copy.with_name(f"{copy.name}.{os.getpid()}.tmp")
        temporary.write_bytes(text)
        os.replace(temporary, copy)
    return copy


def _modified_time(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


def build(cflags: list[str] | None = None):
    """Compile (or load from the cache) the kernels with `cflags` (default: compile_flags()); raises
    on failure. Says so on stderr whenever a compilation actually happens."""
    from torch.utils import cpp_extension

    cflags = compile_flags() if cflags is None else cflags
    name = extension_name(cflags)
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    source = _shared_source(build_dir)
    library = build_dir / f"{name}.so"
    built_at = _modified_time(library)
    announced = built_at is None or built_at < source.stat().st_mtime
    if announced:
        print(f"building the fused CPU scan kernels into {build_dir} (once per machine and source, about a minute)...",
              file=sys.stderr, flush=True)
    module = cpp_extension.load(name=name, sources=[str(source)], extra_cflags=cflags,
                                extra_ldflags=list(LINK_FLAGS), build_directory=str(build_dir), verbose=False)
    if not announced and _modified_time(library) != built_at:
        print(f"rebuilt the fused CPU scan kernels in {build_dir} (ninja found them out of date)",
              file=sys.stderr, flush=True)
    return module


@functools.cache
def load():
    """The compiled kernels, or None (after one warning) where they cannot be built."""
    if os.environ.get("DECISION_BACKBONES_NO_CPU_KERNELS"):
        return None
    try:
        return build()
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


class SelectiveScan(torch.autograd.Function):
    """Mamba's y_t = C_t · h_t, h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t, in one fused pass each way.

    x, delta (B, T, E); A (E, N); B, C (B, T, N); initial_state (B, E, N) or None. Returns y (B, T, E)
    and h_T (B, E, N). Nothing of size (B, T, E, N) is built or kept: forward carries one state per
    channel, backward recomputes one channel's states at a time from the saved inputs.
    """

    @staticmethod
    def forward(ctx, x, delta, A, B, C, initial_state):
        x, delta, A, B, C = (t.contiguous() for t in (x, delta, A, B, C))
        start = None if initial_state is None else initial_state.to(x.dtype).contiguous()
        y, last = load().selective_scan_forward(x, delta, A, B, C, start)
        ctx.save_for_backward(x, delta, A, B, C, start)
        return y, last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_last):
        x, delta, A, B, C, start = ctx.saved_tensors
        grad_y = torch.zeros_like(x) if grad_y is None else grad_y.contiguous()
        grad_last = None if grad_last is None else grad_last.contiguous()
        grads = load().selective_scan_backward(grad_y, grad_last, x, delta, A, B, C, start,
                                               start is not None and ctx.needs_input_grad[5])
        grad_x, grad_delta, grad_A, grad_B, grad_C, grad_start = grads
        return grad_x, grad_delta, grad_A, grad_B, grad_C, (grad_start if ctx.needs_input_grad[5] else None)


class ClassicRNNSequence(torch.autograd.Function):
    """The GRU or Elman RNN time loop in C++, differentiated exactly (BPTT).

    cell "gru" (torch's r, z, n gates), "rnn_tanh" or "rnn_relu"; gi (B, T, G·H) = x W_ihᵀ + b_ih,
    formed by the caller; w_hh (G·H, H), b_hh (G·H) or None, initial_state (B, H) or None; returns
    the states h (B, T, H). The same maths and parameters as torch.nn.GRU / nn.RNN, whose CPU
    kernels record a dozen autograd nodes per step: here each step is one small matmul and one loop
    forward and backward, and dL/dW_hh is one matmul over all steps.
    """

    @staticmethod
    def forward(ctx, cell, gi, w_hh, b_hh, initial_state):
        gi, w_hh = gi.contiguous(), w_hh.contiguous()
        start = None if initial_state is None else initial_state.to(gi.dtype).contiguous()
        h, saved = load().classic_rnn_forward(cell, gi, w_hh, b_hh, start)
        ctx.cell, ctx.has_bias = cell, b_hh is not None
        ctx.save_for_backward(w_hh, h, saved, start)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        w_hh, h, saved, start = ctx.saved_tensors
        grad_gi, grad_gh, grad_start = load().classic_rnn_backward(ctx.cell, grad_h.contiguous(), w_hh, h, saved, start)
        h_previous = torch.cat([torch.zeros_like(h[:, :1]) if start is None else start.unsqueeze(1), h[:, :-1]], dim=1)
        grad_w_hh = grad_gh.flatten(0, 1).T @ h_previous.flatten(0, 1) if ctx.needs_input_grad[2] else None
        grad_b_hh = grad_gh.sum((0, 1)) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return None, grad_gi, grad_w_hh, grad_b_hh, (grad_start if ctx.needs_input_grad[4] else None)

"""Linear recurrences h_t = a_t * h_{t-1} + b_t along dim 1 (time).

Three ways to compute the same thing:

- `scan_reference`: the plain loop. Slow, obviously right; tests compare against it in float64.
- `linear_scan`: a chunked scan for real or complex inputs (LRU, DSF's backward). Each chunk of C
  steps is scanned from a zero state, all chunks at once; the chunk-end states are then joined by the
  same scan, recursively, and each chunk adds its carried-in state times its cumulative decay.
  Work is O(T), Python iterations O(sqrt T), and rounding error grows with the chunk length, not T.
- `scan_log_space`: Heinsen's log-space scan for positive coefficients and values, as minGRU and
  minLSTM use: log h_t = a*_t + logcumsumexp(log b - a*)_t with a*_t = sum_{s<=t} log a_s.
  Its error grows with |a*_t|, i.e. with T; `chunk_size` applies the formula within chunks and
  joins the chunks with `linear_scan`, which bounds the error (see docs in the README).

Every function accepts `initial_state` (B, *feature) of any sign (None: zeros), computes in at least
float32 even under autocast, and is differentiable.

Backends of `linear_scan` (and of minGRU / minLSTM, which fuse their gates into the same pass):
"cpu" runs the fused C++ kernels of kernels/cpu.py (one pass forward, one reverse pass backward,
all cores), "triton" the Triton kernels of kernels/scan_triton.py and kernels/min_rnn_triton.py on CUDA, "torch"
the chunked pure-PyTorch scan here. "auto" (default) picks cpu on CPU tensors where the kernels
build, triton on CUDA where Triton imports and the kernel passes its first-use check
(kernels/triton_check.py), torch otherwise. `kernels.backend.set_scan_backend` (the
scripts' --scan-backend flag) overrides it for the process; every backend computes the same values and
gradients (tests/test_scan_backends.py, tests/test_min_rnn_triton.py).
"""

from __future__ import annotations

import math

import torch

from .kernels.backend import scan_backend_for

_LOW_PRECISION = (torch.float16, torch.bfloat16)

def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in _LOW_PRECISION else t


def _check_shapes(name_a: str, a: torch.Tensor, b: torch.Tensor, initial_state) -> None:
    if b.dim() < 2:
        raise ValueError(f"expected values of shape (batch, time, ...), got shape {tuple(b.shape)}")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError as error:
        raise ValueError(
            f"{name_a} of shape {tuple(a.shape)} does not broadcast to values of shape {tuple(b.shape)}"
        ) from error
    if initial_state is not None:
        expected = (b.shape[0], *b.shape[2:])
        if tuple(initial_state.shape) != expected:
            raise ValueError(
                f"initial_state must have shape (batch, *features) = {expected}, "
                f"got {tuple(initial_state.shape)}"
            )


def scan_reference(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t by a Python loop over time; the ground truth for tests."""
    _check_shapes("a", a, b, initial_state)
    a = a.expand_as(b) if a.shape != b.shape else a
    h = torch.zeros_like(b[:, 0]) if initial_state is None else initial_state.to(b.dtype)
    outputs = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def _default_chunk_size(length: int) -> int:
    return max(2, math.isqrt(length))


def _sequential_in_place(h: torch.Tensor, a: torch.Tensor, initial_state: torch.Tensor | None) -> None:
    if initial_state is not None and h.shape[1] > 0:
        h[:, 0].addcmul_(a[:, 0], initial_state)
    for t in range(1, h.shape[1]):
        h[:, t].addcmul_(a[:, t], h[:, t - 1])


def _scan_in_place(
    h: torch.Tensor, a: torch.Tensor, initial_state: torch.Tensor | None, chunk_size: int | None
) -> torch.Tensor:
    """Turn h (a contiguous copy of b, (B, T, ...)) into the scan's states, in place; no autograd.

    Each chunk is scanned from a zero state (all chunks at once), the chunk-end states are joined by
    the same scan over chunks, and every chunk then adds its carried-in state times its cumulative
    decay.
    """
    batch, length = h.shape[:2]
    features = h.shape[2:]
    chunk = chunk_size or _default_chunk_size(length)
    if length <= chunk:
        _sequential_in_place(h, a, initial_state)
        return h
    n_chunks = length // chunk
    whole = n_chunks * chunk
    shape = (batch, n_chunks, chunk, *features)
    states = h[:, :whole].view(shape)
    a_chunks = a[:, :whole].reshape(shape)
    for i in range(1, chunk):
        states[:, :, i].addcmul_(a_chunks[:, :, i], states[:, :, i - 1])
    decay = torch.cumprod(a_chunks, dim=2)
    ends = _scan_in_place(states[:, :, -1].clone(memory_format=torch.contiguous_format), decay[:, :, -1], initial_state, None)
    states[:, 1:].addcmul_(decay[:, 1:], ends[:, :-1].unsqueeze(2))
    if initial_state is not None:
        states[:, 0].addcmul_(decay[:, 0], initial_state.unsqueeze(1))
    if whole < length:
        _sequential_in_place(h[:, whole:], a[:, whole:], ends[:, -1])
    return h


def _join_chunks(
    chunk_decay: torch.Tensor,
    chunk_states: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry states across chunks, differentiably (the log-space scan's second level).

    chunk_decay, chunk_states: (B, n_chunks, C, ...), each chunk scanned from zero.
    Returns the full states (B, n_chunks, C, ...) and the state after the last chunk.
    """
    ends = _LinearScan.apply(chunk_decay[:, :, -1], chunk_states[:, :, -1], initial_state, None)
    start = torch.zeros_like(ends[:, :1]) if initial_state is None else initial_state.unsqueeze(1).to(ends.dtype)
    carried_in = torch.cat([start, ends[:, :-1]], dim=1)
    return chunk_states + chunk_decay * carried_in.unsqueeze(2), ends[:, -1]


class _LinearScan(torch.autograd.Function):
    """The scan with its own backward: dL/dh_t = e_t + conj(a_{t+1}) dL/dh_{t+1}, a reverse scan.

    Only a, h and the initial state are kept for backward (no graph through the chunk loops), so
    memory is two tensors the size of the input and the backward is one more scan.
    """

    @staticmethod
    def forward(ctx, a, b, initial_state, chunk_size):
        h = _scan_in_place(b.clone(memory_format=torch.contiguous_format), a, initial_state, chunk_size)
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(a, h, initial_state)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        a, h, initial_state = ctx.saved_tensors
        a_next_reversed = torch.cat([torch.zeros_like(a[:, :1]), a.flip(1)[:, :-1]], dim=1).conj()
        grad_total = _scan_in_place(grad_h.flip(1).contiguous(), a_next_reversed, None, ctx.chunk_size).flip(1)
        start = torch.zeros_like(h[:, :1]) if initial_state is None else initial_state.unsqueeze(1)
        h_previous = torch.cat([start, h[:, :-1]], dim=1)
        grad_a = grad_total * h_previous.conj() if ctx.needs_input_grad[0] else None
        grad_initial = a[:, 0].conj() * grad_total[:, 0] if ctx.needs_input_grad[2] else None
        return grad_a, grad_total, grad_initial, None


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    *,
    reverse: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t for real or complex tensors of shape (B, T, ...).

    `a` broadcasts to `b` (e.g. a constant diagonal of shape (D,)). `reverse=True` runs from the
    last step to the first (h_t = a_t * h_{t+1} + b_t), as DSF's backward needs.
    `chunk_size` (torch backend only) defaults to about sqrt(T).
    """
    _check_shapes("a", a, b, initial_state)
    if chunk_size is not None and chunk_size < 2:
        raise ValueError(f"chunk_size must be at least 2, got {chunk_size}")
    a, b = at_least_float32(a), at_least_float32(b)
    a = a.expand_as(b).to(torch.promote_types(a.dtype, b.dtype))
    b = b.to(a.dtype)
    if initial_state is not None:
        initial_state = at_least_float32(initial_state).to(a.dtype)
    backend = scan_backend_for(b.device)
    if backend == "cpu":
        from .kernels.cpu import LinearScan

        return LinearScan.apply(a, b, initial_state, reverse)
    if backend == "triton":
        from .kernels.scan_triton import triton_linear_scan

        return triton_linear_scan(a, b, initial_state, reverse=reverse)
    if reverse:
        return _LinearScan.apply(a.flip(1), b.flip(1), initial_state, chunk_size).flip(1)
    return _LinearScan.apply(a, b, initial_state, chunk_size)


def _heinsen(log_a: torch.Tensor, log_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-space scan from a zero state along dim -2 of (..., T, D): (cumulative log decay, h)."""
    log_decay = torch.cumsum(log_a, dim=-2)
    log_h = log_decay + torch.logcumsumexp(log_b - log_decay, dim=-2)
    return log_decay, torch.exp(log_h)


def scan_log_space(
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    *,
    chunk_size: int | None = 256,
) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t given log a_t and log b_t (so a, b > 0), returning h (not log h).

    Shapes (B, T, D). `initial_state` (B, D) may have any sign: it enters linearly as
    h_t += exp(a*_t) * h_0. `chunk_size=None` applies Heinsen's formula over the whole sequence
    (error grows with T); a chunk size bounds it.
    """
    _check_shapes("log_a", log_a, log_b, initial_state)
    if log_a.shape != log_b.shape or log_b.dim() != 3:
        raise ValueError(
            f"log_a and log_b must both be (batch, time, features), got {tuple(log_a.shape)} and {tuple(log_b.shape)}"
        )
    if log_a.is_complex() or log_b.is_complex():
        raise ValueError("scan_log_space takes real log-coefficients; use linear_scan for complex inputs")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive or None, got {chunk_size}")
    log_a, log_b = at_least_float32(log_a), at_least_float32(log_b)
    if initial_state is not None:
        initial_state = at_least_float32(initial_state).to(log_b.dtype)
    batch, length, features = log_b.shape
    if chunk_size is None or length <= chunk_size:
        log_decay, h = _heinsen(log_a, log_b)
        if initial_state is not None:
            h = h + torch.exp(log_decay) * initial_state.unsqueeze(1)
        return h

    n_chunks = length // chunk_size
    whole = n_chunks * chunk_size
    shape = (batch, n_chunks, chunk_size, features)
    log_decay, local = _heinsen(log_a[:, :whole].reshape(shape), log_b[:, :whole].reshape(shape))
    states, last = _join_chunks(torch.exp(log_decay), local, initial_state)
    states = states.reshape(batch, whole, features)
    if whole == length:
        return states
    tail = scan_log_space(log_a[:, whole:], log_b[:, whole:], last, chunk_size=None)
    return torch.cat([states, tail], dim=1)

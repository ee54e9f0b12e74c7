"""Fused Triton kernels for minGRU and minLSTM: gates and recurrence in one pass each way.

The CUDA analogue of the CPU kernels min_gru_* / min_lstm_* in csrc/scan_cpu.cpp and of their
autograd wrapper cpu_kernels.MinRNNScan: the same signature, the same numbers.

- `TritonMinRNNScan.apply(projected, initial_state, cell, normalize, gradient="bptt", feedback=None)`
  projected (B, T, 2H) for cell "mingru" ([k_h | k_z]) or (B, T, 3H) for "minlstm"
  ([k_h | k_f | k_i]); initial_state (B, H) or None (zeros); returns the states h (B, T, H).

minGRU:  z = σ(k_z),  h_t = (1 − z) h_{t−1} + z g(k_h)
minLSTM: f = σ(k_f),  i = σ(k_i),  (f', i') = (f / (f + i), 1 − f / (f + i)) if normalize else (f, i),
         h_t = f' h_{t−1} + i' g(k_h)
with g(x) = x + 1/2 for x ≥ 0 and σ(x) otherwise.

Kernel design: one program per (batch row, block of BLOCK features), walking the T steps in order:
it loads one step's gate pre-activations for its block (coalesced along the features), updates the
state in registers and stores h_t. The backward walks the steps from T − 1 down to 0, recomputing
the gates from `projected` and reading h_{t−1} from the saved states, and carries
    total_t = grad_t + carry,  carry ← total_t · (a_t  [bptt] | feedback  [dsf] | 0  [truncated])
(a_t = 1 − z or f'), which is DSF's backward with the one-step cell when gradient is "dsf" or
"truncated" — as in the C++. The carry left after step 0 is the initial state's gradient. Only
projected, h, the initial state (and the feedback diagonal) are saved.

Arithmetic is in float32 for float16 / bfloat16 / float32 inputs (projected is cast to float32
first, as the CPU path does through scan.at_least_float32, so h is float32) and in float64 for
float64. Tensors must be on a CUDA device, or on the CPU with the Triton interpreter switched on
(TRITON_INTERPRET=1, read at launch), which is how the tests run the kernels without a GPU.
"""

from __future__ import annotations

import torch

from ..scan import at_least_float32
from .scan_triton import interpreter_enabled, triton_available

try:  # Triton is optional: CPU-only installs and non-Linux platforms may not have it.
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - any failure to import means "not available"
    triton = None
    tl = None

__all__ = ["TritonMinRNNScan", "triton_available", "CELLS", "GRADIENTS"]

CELLS = {"mingru": 2, "minlstm": 3}  # gate pre-activations per unit
GRADIENTS = ("bptt", "dsf", "truncated")
_MAX_BLOCK = 256


if triton is not None:

    # As in scan_triton.py: core builtins only (tl.exp, tl.where, tl.load, ...), no
    # triton.language.standard @jit helpers (tl.sigmoid, tl.zeros, ...), which break the interpreter
    # when TRITON_INTERPRET is switched on after triton is imported. The math is written inline.

    def _forward_kernel(
        k_ptr, init_ptr, h_ptr,
        T, H, n_feature_blocks,
        LSTM: tl.constexpr, NORMALIZE: tl.constexpr, HAS_INIT: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """h_t for one (batch row, feature block), t = 0 .. T-1; contiguous k (B, T, G*H), h (B, T, H)."""
        pid = tl.program_id(0)
        pid_b = (pid // n_feature_blocks).to(tl.int64)
        pid_f = pid % n_feature_blocks
        feats = pid_f * BLOCK + tl.arange(0, BLOCK)
        mask = feats < H
        feats = feats.to(tl.int64)
        width = H
        if LSTM:
            k_stride = 3 * width
        else:
            k_stride = 2 * width
        k_row = k_ptr + pid_b * T * k_stride + feats
        h_row = h_ptr + pid_b * T * width + feats

        state = tl.full([BLOCK], 0, dtype=h_ptr.dtype.element_ty)
        if HAS_INIT:
            state = tl.load(init_ptr + pid_b * width + feats, mask=mask, other=0.0)
        for _ in range(0, T):
            hidden = tl.load(k_row, mask=mask, other=0.0)
            candidate = tl.where(hidden >= 0, hidden + 0.5, 1.0 / (1.0 + tl.exp(-hidden)))
            if LSTM:
                f = 1.0 / (1.0 + tl.exp(-tl.load(k_row + width, mask=mask, other=0.0)))
                i = 1.0 / (1.0 + tl.exp(-tl.load(k_row + 2 * width, mask=mask, other=0.0)))
                if NORMALIZE:
                    f_out = f / (f + i)
                    i_out = 1.0 - f_out
                else:
                    f_out = f
                    i_out = i
                state = f_out * state + i_out * candidate
            else:
                z = 1.0 / (1.0 + tl.exp(-tl.load(k_row + width, mask=mask, other=0.0)))
                state = (1.0 - z) * state + z * candidate
            tl.store(h_row, state, mask=mask)
            k_row += k_stride
            h_row += width

    def _backward_kernel(
        grad_ptr, k_ptr, h_ptr, init_ptr, feedback_ptr, grad_k_ptr, grad_init_ptr,
        T, H, n_feature_blocks,
        LSTM: tl.constexpr, NORMALIZE: tl.constexpr, HAS_INIT: tl.constexpr, EXACT: tl.constexpr,
        HAS_FEEDBACK: tl.constexpr, GRAD_INIT: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """Gradients w.r.t. k (and the initial state) for one (batch row, feature block), t = T-1 .. 0.

        carry = total * (a_t if EXACT) + total * feedback (if HAS_FEEDBACK); neither: 0 (truncated).
        """
        pid = tl.program_id(0)
        pid_b = (pid // n_feature_blocks).to(tl.int64)
        pid_f = pid % n_feature_blocks
        feats = pid_f * BLOCK + tl.arange(0, BLOCK)
        mask = feats < H
        feats = feats.to(tl.int64)
        width = H
        if LSTM:
            k_stride = 3 * width
        else:
            k_stride = 2 * width
        last = pid_b * T + T - 1  # int64: the row of step T-1
        k_row = k_ptr + last * k_stride + feats
        gk_row = grad_k_ptr + last * k_stride + feats
        h_row = h_ptr + last * width + feats
        g_row = grad_ptr + last * width + feats

        carry = tl.full([BLOCK], 0, dtype=h_ptr.dtype.element_ty)
        h_first = tl.full([BLOCK], 0, dtype=h_ptr.dtype.element_ty)
        if HAS_INIT:
            h_first = tl.load(init_ptr + pid_b * width + feats, mask=mask, other=0.0)
        if HAS_FEEDBACK:
            diagonal = tl.load(feedback_ptr + feats, mask=mask, other=0.0)
        for step in range(0, T):
            t = T - 1 - step
            total = tl.load(g_row, mask=mask, other=0.0) + carry
            # h_{t-1}: the saved state one row up, or the initial state (zeros) at t = 0
            not_first = (feats * 0 + t) > 0  # a block, not a scalar: the triton 3.9 interpreter's masks must be
            h_previous = tl.load(h_row - width, mask=mask & not_first, other=0.0)
            h_previous = tl.where(not_first, h_previous, h_first)
            hidden = tl.load(k_row, mask=mask, other=0.0)
            sig_hidden = 1.0 / (1.0 + tl.exp(-hidden))
            candidate = tl.where(hidden >= 0, hidden + 0.5, sig_hidden)
            candidate_grad = tl.where(hidden >= 0, 1.0, sig_hidden * (1.0 - sig_hidden))
            if LSTM:
                f = 1.0 / (1.0 + tl.exp(-tl.load(k_row + width, mask=mask, other=0.0)))
                i = 1.0 / (1.0 + tl.exp(-tl.load(k_row + 2 * width, mask=mask, other=0.0)))
                if NORMALIZE:
                    f_out = f / (f + i)
                    i_out = 1.0 - f_out
                    # i' = 1 - f': dL/df' = total (h_prev - candidate); df'/df = i/(f+i)^2, df'/di = -f/(f+i)^2
                    grad_f_out = total * (h_previous - candidate)
                    inverse_sum_squared = 1.0 / ((f + i) * (f + i))
                    grad_f = grad_f_out * i * inverse_sum_squared
                    grad_i = -grad_f_out * f * inverse_sum_squared
                else:
                    f_out = f
                    i_out = i
                    grad_f = total * h_previous
                    grad_i = total * candidate
                tl.store(gk_row, total * i_out * candidate_grad, mask=mask)
                tl.store(gk_row + width, grad_f * f * (1.0 - f), mask=mask)
                tl.store(gk_row + 2 * width, grad_i * i * (1.0 - i), mask=mask)
                a = f_out
            else:
                z = 1.0 / (1.0 + tl.exp(-tl.load(k_row + width, mask=mask, other=0.0)))
                tl.store(gk_row, total * z * candidate_grad, mask=mask)
                tl.store(gk_row + width, total * (candidate - h_previous) * z * (1.0 - z), mask=mask)
                a = 1.0 - z
            if EXACT:
                carry = total * a
            elif HAS_FEEDBACK:
                carry = total * diagonal
            else:
                carry = tl.full([BLOCK], 0, dtype=h_ptr.dtype.element_ty)
            k_row -= k_stride
            gk_row -= k_stride
            h_row -= width
            g_row -= width
        if GRAD_INIT:
            tl.store(grad_init_ptr + pid_b * width + feats, carry, mask=mask)

    _KERNELS: dict[tuple[str, bool], object] = {}

    def _kernel(name: str):
        """The jitted kernel, built on first use for the current interpreter setting (so
        TRITON_INTERPRET can be set after this module is imported)."""
        key = (name, interpreter_enabled())
        if key not in _KERNELS:
            _KERNELS[key] = triton.jit(_forward_kernel if name == "forward" else _backward_kernel)
        return _KERNELS[key]


def _block_size(batch: int, features: int) -> int:
    block = min(_MAX_BLOCK, max(4, triton.next_power_of_2(features)))
    # Few rows: smaller feature blocks give more programs to spread over the GPU.
    while block > 32 and batch * triton.cdiv(features, block) < 256:
        block //= 2
    return block


def _launch(name: str, device: torch.device, batch: int, width: int, args: tuple, flags: dict) -> None:
    block = _block_size(batch, width)
    n_feature_blocks = triton.cdiv(width, block)
    grid = (batch * n_feature_blocks,)
    launch = dict(flags, BLOCK=block)
    if not interpreter_enabled():
        launch["num_warps"] = max(1, min(4, block // 32))
    kernel = _kernel(name)
    if device.type == "cuda":
        with torch.cuda.device(device):
            kernel[grid](*args, n_feature_blocks, **launch)
    else:
        kernel[grid](*args, n_feature_blocks, **launch)


def _check(projected: torch.Tensor, initial_state: torch.Tensor | None, cell: str, gradient: str, feedback) -> int:
    if triton is None:
        raise RuntimeError("triton is not installed; use cpu_kernels.MinRNNScan or the PyTorch scan instead")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}; choose one of {', '.join(GRADIENTS)}")
    if projected.dim() != 3 or projected.shape[2] % CELLS[cell]:
        raise ValueError(
            f"projected must be (batch, time, {CELLS[cell]} * hidden) for {cell}, got {tuple(projected.shape)}"
        )
    if not projected.is_floating_point():
        raise ValueError(f"projected must be a floating-point tensor, got {projected.dtype}")
    width = projected.shape[2] // CELLS[cell]
    if initial_state is not None and tuple(initial_state.shape) != (projected.shape[0], width):
        raise ValueError(
            f"initial_state must have shape (batch, hidden) = {(projected.shape[0], width)}, "
            f"got {tuple(initial_state.shape)}"
        )
    if gradient == "dsf" and (feedback is None or tuple(feedback.shape) != (width,)):
        raise ValueError(f"gradient 'dsf' needs a feedback diagonal of shape ({width},)")
    for t in (initial_state, feedback if gradient == "dsf" else None):
        if t is not None and t.device != projected.device:
            raise ValueError(f"all tensors must be on {projected.device}, got one on {t.device}")
    if projected.device.type == "cuda" or (projected.device.type == "cpu" and interpreter_enabled()):
        return width
    raise ValueError(
        f"the Triton minGRU / minLSTM kernel runs on CUDA tensors, got a tensor on {projected.device} "
        "(on CPU only with the Triton interpreter, TRITON_INTERPRET=1)"
    )


class TritonMinRNNScan(torch.autograd.Function):
    """minGRU or minLSTM gates and recurrence from the input projection, fused in one Triton pass
    each way; the same signature and numbers as cpu_kernels.MinRNNScan (see the module doc).

    gradient: "bptt" (exact), "dsf" (carry δ_t = e_t + feedback ⊙ δ_{t+1}) or "truncated"
    (carry 0), each step's gradient being the one-step cell's at δ_t. Returns gradients for
    projected and the initial state only.
    """

    @staticmethod
    def forward(ctx, projected, initial_state, cell, normalize, gradient="bptt", feedback=None):
        width = _check(projected, initial_state, cell, gradient, feedback)
        ctx.dtypes = (projected.dtype, None if initial_state is None else initial_state.dtype)
        projected = at_least_float32(projected).contiguous()
        batch, length = projected.shape[:2]
        start = None if initial_state is None else initial_state.to(projected.dtype).contiguous()
        h = torch.empty(batch, length, width, dtype=projected.dtype, device=projected.device)
        if h.numel():
            _launch(
                "forward", projected.device, batch, width,
                (projected, start if start is not None else h, h, length, width),
                dict(LSTM=cell == "minlstm", NORMALIZE=bool(normalize), HAS_INIT=start is not None),
            )
        ctx.cell, ctx.normalize, ctx.gradient = cell, bool(normalize), gradient
        diagonal = feedback.detach().to(projected.dtype).contiguous() if gradient == "dsf" else None
        ctx.save_for_backward(projected, h, start, diagonal)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        projected, h, start, diagonal = ctx.saved_tensors
        batch, length, width = h.shape
        need_initial = ctx.needs_input_grad[1]
        grad_h = grad_h.to(h.dtype).contiguous()
        grad_projected = torch.empty_like(projected)
        grad_start = torch.zeros(batch, width, dtype=h.dtype, device=h.device) if need_initial else None
        if h.numel():
            _launch(
                "backward", h.device, batch, width,
                (
                    grad_h, projected, h,
                    start if start is not None else h,
                    diagonal if diagonal is not None else h,
                    grad_projected,
                    grad_start if grad_start is not None else h,
                    length, width,
                ),
                dict(
                    LSTM=ctx.cell == "minlstm", NORMALIZE=ctx.normalize, HAS_INIT=start is not None,
                    EXACT=ctx.gradient == "bptt", HAS_FEEDBACK=diagonal is not None, GRAD_INIT=need_initial,
                ),
            )
        projected_dtype, start_dtype = ctx.dtypes
        grad_projected = grad_projected.to(projected_dtype) if ctx.needs_input_grad[0] else None
        if grad_start is not None:
            grad_start = grad_start.to(start_dtype)
        return grad_projected, grad_start, None, None, None, None

"""A Triton kernel for the linear scan h_t = a_t * h_{t-1} + b_t along dim 1 (time), with its own autograd.

The GPU path of `sequence_models.scan.linear_scan`; the same recurrence, the same conventions:

- `triton_available(device)`: True when triton imports and `device` is a CUDA device; never raises.
- `triton_linear_scan(a, b, initial_state=None, reverse=False)`: differentiable scan.
- `triton_linear_scan_no_grad(...)`: the raw kernel, no autograd (e.g. DSF's reverse scan of gradients).

Kernel design: one program per (batch row, block of BLOCK features), walking the T steps in
order, CHUNK steps at a time: it loads a (CHUNK, BLOCK) tile of a and of b (coalesced along the
features, all of the tile's loads in flight together, which is what hides memory latency when there
are few programs), scans the tile along time in registers (tl.associative_scan of the (a, b) pairs),
adds the carried-in state times the tile's cumulative coefficient, stores the tile and carries its
last row on. The scan is memory-bound (two loads and one store per element), and this reads and
writes every element once. Arithmetic is in the input's precision (float32 for float32 / complex64,
float64 for float64 / complex128). `REVERSE` walks t from T-1 down to 0, so reversed scans need no
flips or copies; odd T and feature counts are masked.

Complex inputs are read through `torch.view_as_real` (re/im interleaved) and the complex multiply
is done in the kernel. The backward is the same kernel run the other way, with the coefficient of
the neighbouring step and conjugated:
    g_t = e_t + conj(a_{t+1}) g_{t+1},  grad_b = g,  grad_a_t = g_t conj(h_{t-1}),  grad_h0 = conj(a_0) g_0
(h_{-1} = initial_state or 0; mirrored for reverse=True). grad_a is computed in the same pass.
Only a, h and the initial state are saved for backward.

Tensors must be on a CUDA device, or on the CPU with the Triton interpreter switched on
(environment variable TRITON_INTERPRET=1, read when a scan is launched), which is how the tests
run the kernel on machines without a GPU.
"""

from __future__ import annotations

import os

import torch

try:  # Triton is optional: CPU-only installs and non-Linux platforms may not have it.
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - any failure to import means "not available"
    triton = None
    tl = None

__all__ = [
    "triton_available",
    "triton_linear_scan",
    "triton_linear_scan_no_grad",
    "interpreter_enabled",
]

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
_MAX_BLOCK = 256
_MAX_CHUNK = 16


def triton_available(device: torch.device | str | None) -> bool:
    """True only when triton imports and `device` is a CUDA device (where the kernel compiles). Never raises."""
    try:
        if triton is None or device is None:
            return False
        return torch.device(device).type == "cuda" and torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a question, not a command: answer False on anything odd
        return False


def interpreter_enabled() -> bool:
    """True when the Triton interpreter is switched on (TRITON_INTERPRET=1): kernels then run on CPU tensors."""
    if triton is None:
        return False
    try:
        return bool(triton.knobs.runtime.interpret)
    except AttributeError:  # older triton without knobs
        return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


if triton is not None:

    # The kernel uses only core builtins and the helpers here, not triton.language.standard's @jit
    # functions (tl.zeros, tl.sum, ...): those are built when triton is imported, and break the
    # interpreter if TRITON_INTERPRET is switched on later (the tests do that per test).

    @triton.jit
    def _combine_real(a_left, b_left, a_right, b_right):
        """(a, b) pairs compose as x -> a x + b: the left step first, then the right one."""
        return a_left * a_right, a_right * b_left + b_right

    @triton.jit
    def _combine_complex(ar_left, ai_left, br_left, bi_left, ar_right, ai_right, br_right, bi_right):
        return (
            ar_left * ar_right - ai_left * ai_right,
            ar_left * ai_right + ai_left * ar_right,
            ar_right * br_left - ai_right * bi_left + br_right,
            ar_right * bi_left + ai_right * br_left + bi_right,
        )

    @triton.jit
    def _add(x, y):
        return x + y

    def _scan_kernel(
        a_ptr, b_ptr, init_ptr, out_ptr, hs_ptr, hs_init_ptr, grad_a_ptr,
        T, F, n_feature_blocks,
        sa_b, sa_t, sa_f, sb_b, sb_t, sb_f, so_b, so_t, so_f,
        HAS_INIT: tl.constexpr, REVERSE: tl.constexpr, SHIFT_A: tl.constexpr, CONJ_A: tl.constexpr,
        IS_COMPLEX: tl.constexpr, GRAD_A: tl.constexpr, HAS_HS_INIT: tl.constexpr,
        BLOCK: tl.constexpr, CHUNK: tl.constexpr,
    ):
        """h_t = c_t * h_prev + b_t over t in time order (or reversed), for one (batch, feature block).

        Walks the sequence CHUNK steps at a time: loads a (CHUNK, BLOCK) tile of a and of b (all
        loads of a tile in flight at once), scans the tile along time in registers
        (tl.associative_scan of the (a, b) pairs), adds the carried-in state times the tile's
        cumulative coefficient, stores the tile and carries its last row on.

        c_t is a_t, or a at the previous step in the walking direction (SHIFT_A; 0 at the first
        step), conjugated if CONJ_A. Strides are in real scalars; complex values are (re, im)
        pairs, im at +1. out, hs and grad_a share the strides so_*; init and hs_init are
        contiguous (B, F[, 2]): strides (so_t, so_f). With GRAD_A (the backward), also writes
        grad_a_t = out_t * conj(hs at the next step in the walking direction), hs_init (or 0) past
        the end: the gradient w.r.t. the forward's a.
        """
        pid = tl.program_id(0)
        pid_b = (pid // n_feature_blocks).to(tl.int64)
        pid_f = pid % n_feature_blocks
        feats = pid_f * BLOCK + tl.arange(0, BLOCK)
        mask = feats < F
        feats = feats.to(tl.int64)
        rows = tl.arange(0, CHUNK)
        last_row = (rows == CHUNK - 1)[:, None]

        a_row = a_ptr + pid_b * sa_b + feats[None, :] * sa_f
        b_row = b_ptr + pid_b * sb_b + feats[None, :] * sb_f
        o_row = out_ptr + pid_b * so_b + feats[None, :] * so_f

        hr = tl.full([BLOCK], 0, dtype=out_ptr.dtype.element_ty)
        hi = tl.full([BLOCK], 0, dtype=out_ptr.dtype.element_ty)
        if HAS_INIT:
            i_p = init_ptr + pid_b * so_t + feats * so_f
            hr = tl.load(i_p, mask=mask, other=0.0)
            if IS_COMPLEX:
                hi = tl.load(i_p + 1, mask=mask, other=0.0)
        if GRAD_A:
            hs_row = hs_ptr + pid_b * so_b + feats[None, :] * so_f
            ga_row = grad_a_ptr + pid_b * so_b + feats[None, :] * so_f
            if HAS_HS_INIT:
                hs_init_tile = hs_init_ptr + pid_b * so_t + feats[None, :] * so_f + rows[:, None] * 0

        for start in range(0, T, CHUNK):
            step = start + rows  # position in walking order
            valid = step < T
            if REVERSE:
                t = (T - 1 - step).to(tl.int64)
                t_prev = t + 1
                t_next = t - 1
            else:
                t = step.to(tl.int64)
                t_prev = t - 1
                t_next = t + 1
            tile = valid[:, None] & mask[None, :]
            # Past the end: the identity step (a = 1, b = 0), so the last row carries the state.
            if SHIFT_A:  # the coefficient of the previous step; none before the first
                first = (step == 0)[:, None]
                ar = tl.load(a_row + t_prev[:, None] * sa_t, mask=tile & (step > 0)[:, None], other=1.0)
                ar = tl.where(first, 0.0, ar)
                if IS_COMPLEX:
                    ai = tl.load(a_row + t_prev[:, None] * sa_t + 1, mask=tile & (step > 0)[:, None], other=0.0)
            else:
                ar = tl.load(a_row + t[:, None] * sa_t, mask=tile, other=1.0)
                if IS_COMPLEX:
                    ai = tl.load(a_row + t[:, None] * sa_t + 1, mask=tile, other=0.0)
            br = tl.load(b_row + t[:, None] * sb_t, mask=tile, other=0.0)
            o_tile = o_row + t[:, None] * so_t
            if IS_COMPLEX:
                bi = tl.load(b_row + t[:, None] * sb_t + 1, mask=tile, other=0.0)
                if CONJ_A:
                    ai = -ai
                cum_r, cum_i, loc_r, loc_i = tl.associative_scan((ar, ai, br, bi), 0, _combine_complex)
                new_r = loc_r + cum_r * hr[None, :] - cum_i * hi[None, :]
                new_i = loc_i + cum_r * hi[None, :] + cum_i * hr[None, :]
                tl.store(o_tile, new_r, mask=tile)
                tl.store(o_tile + 1, new_i, mask=tile)
                hi = tl.reduce(tl.where(last_row, new_i, 0.0), 0, _add)
            else:
                cum_r, loc_r = tl.associative_scan((ar, br), 0, _combine_real)
                new_r = loc_r + cum_r * hr[None, :]
                tl.store(o_tile, new_r, mask=tile)
            hr = tl.reduce(tl.where(last_row, new_r, 0.0), 0, _add)

            if GRAD_A:  # grad_a_t = g_t * conj(h at the next step); hs_init (or 0) past the end
                inside = tile & (step < T - 1)[:, None]
                hs_tile = hs_row + t_next[:, None] * so_t
                pr = tl.load(hs_tile, mask=inside, other=0.0)
                if IS_COMPLEX:
                    pi = tl.load(hs_tile + 1, mask=inside, other=0.0)
                if HAS_HS_INIT:
                    past_end = tile & (step == T - 1)[:, None]
                    pr += tl.load(hs_init_tile, mask=past_end, other=0.0)
                    if IS_COMPLEX:
                        pi += tl.load(hs_init_tile + 1, mask=past_end, other=0.0)
                ga_tile = ga_row + t[:, None] * so_t
                if IS_COMPLEX:
                    tl.store(ga_tile, new_r * pr + new_i * pi, mask=tile)
                    tl.store(ga_tile + 1, new_i * pr - new_r * pi, mask=tile)
                else:
                    tl.store(ga_tile, new_r * pr, mask=tile)

    _KERNELS: dict[bool, object] = {}

    def _kernel():
        """The jitted kernel, built on first use for the current interpreter setting (so
        TRITON_INTERPRET can be set after this module is imported)."""
        interpret = interpreter_enabled()
        if interpret not in _KERNELS:
            _KERNELS[interpret] = triton.jit(_scan_kernel)
        return _KERNELS[interpret]


def _check_inputs(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None) -> None:
    if triton is None:
        raise RuntimeError("triton is not installed; use sequence_models.scan.linear_scan instead")
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise ValueError("a and b must be tensors")
    if b.dim() < 2:
        raise ValueError(f"expected b of shape (batch, time, *features), got shape {tuple(b.shape)}")
    if b.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"triton_linear_scan supports float32, float64, complex64 and complex128, got {b.dtype} "
            "(cast half precision to float32 first)"
        )
    if a.dtype != b.dtype:
        raise ValueError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(
            f"a must have the shape of b {tuple(b.shape)} (expand a broadcast a first), got {tuple(a.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")
    if initial_state is not None:
        expected = (b.shape[0], *b.shape[2:])
        if tuple(initial_state.shape) != expected:
            raise ValueError(
                f"initial_state must have shape (batch, *features) = {expected}, got {tuple(initial_state.shape)}"
            )
        if initial_state.dtype != b.dtype:
            raise ValueError(f"initial_state must have dtype {b.dtype}, got {initial_state.dtype}")
        if initial_state.device != b.device:
            raise ValueError(f"initial_state must be on {b.device}, got {initial_state.device}")
    if b.device.type == "cuda":
        return
    if b.device.type == "cpu" and interpreter_enabled():
        return
    raise ValueError(
        f"the Triton scan runs on CUDA tensors, got a tensor on {b.device} "
        "(on CPU only with the Triton interpreter, TRITON_INTERPRET=1)"
    )


def _as_real_3d(x: torch.Tensor, batch: int, length: int, features: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """x (B, T, *features) -> a real tensor to hand the kernel, and its (batch, time, feature) strides
    in real scalars. Views when possible (expanded stride-0 `a`, a transposed gradient), copies otherwise."""
    x = x.reshape(batch, length, features)
    if x.is_complex():
        x = torch.view_as_real(x.resolve_conj().resolve_neg())
    return x, (x.stride(0), x.stride(1), x.stride(2))


def _flat_state(x: torch.Tensor | None, batch: int, features: int) -> torch.Tensor | None:
    if x is None:
        return None
    x = x.reshape(batch, features)
    if x.is_complex():
        x = torch.view_as_real(x.resolve_conj().resolve_neg())
    return x.contiguous()


def _block_size(batch: int, features: int) -> int:
    block = min(_MAX_BLOCK, max(4, triton.next_power_of_2(features)))
    # Few rows: smaller feature blocks give more programs to spread over the GPU.
    while block > 32 and batch * triton.cdiv(features, block) < 256:
        block //= 2
    return block


def _chunk_size(length: int) -> int:
    """Steps per tile: enough loads in flight per thread to hide memory latency, few registers."""
    return max(2, min(_MAX_CHUNK, triton.next_power_of_2(length)))


def _launch(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None,
    *,
    reverse: bool,
    adjoint_of: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    shift_conj: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the kernel. Returns (out, grad_a) shaped like b; grad_a only with `adjoint_of` = (h, h0)."""
    batch, length = b.shape[:2]
    features = 1
    for size in b.shape[2:]:
        features *= size
    is_complex = b.is_complex()
    out = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    grad_a = torch.empty_like(out) if adjoint_of is not None else None
    if out.numel() == 0:
        return out, grad_a

    a_real, a_strides = _as_real_3d(a, batch, length, features)
    b_real, b_strides = _as_real_3d(b, batch, length, features)
    init = _flat_state(initial_state, batch, features)
    out_real = torch.view_as_real(out) if is_complex else out
    hs_real = hs_init = grad_a_real = None
    if adjoint_of is not None:
        hs, hs_initial = adjoint_of
        hs_real = _as_real_3d(hs.contiguous(), batch, length, features)[0]
        hs_init = _flat_state(hs_initial, batch, features)
        grad_a_real = torch.view_as_real(grad_a) if is_complex else grad_a
    # Unused pointer arguments still need a tensor; the constexpr flags keep the kernel off them.
    dummy = out_real

    block = _block_size(batch, features)
    n_feature_blocks = triton.cdiv(features, block)
    grid = (batch * n_feature_blocks,)
    kernel = _kernel()
    launch = dict(
        HAS_INIT=init is not None,
        REVERSE=bool(reverse),
        SHIFT_A=shift_conj,
        CONJ_A=shift_conj and is_complex,
        IS_COMPLEX=is_complex,
        GRAD_A=adjoint_of is not None,
        HAS_HS_INIT=hs_init is not None,
        BLOCK=block,
        CHUNK=_chunk_size(length),
    )
    if not interpreter_enabled():
        launch["num_warps"] = max(1, min(8, block // 32))
    args = (
        a_real, b_real,
        init if init is not None else dummy,
        out_real,
        hs_real if hs_real is not None else dummy,
        hs_init if hs_init is not None else dummy,
        grad_a_real if grad_a_real is not None else dummy,
        length, features, n_feature_blocks,
        *a_strides, *b_strides, *out_real.view(batch, length, -1).stride()[:2], 2 if is_complex else 1,
    )
    if b.device.type == "cuda":
        with torch.cuda.device(b.device):
            kernel[grid](*args, **launch)
    else:
        kernel[grid](*args, **launch)
    return out, grad_a


def triton_linear_scan_no_grad(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """The raw kernel, outside autograd: h_t = a_t * h_{t-1} + b_t (reverse: h_t = a_t * h_{t+1} + b_t,
    `initial_state` then being h_T).

    a, b: (B, T, *features), same shape and dtype (float32, float64, complex64 or complex128); `a`
    may be a stride-0 expanded view. initial_state: (B, *features) or None (zeros). Returns a new
    contiguous tensor shaped like b. Nothing is recorded for autograd.
    """
    _check_inputs(a, b, initial_state)
    with torch.no_grad():
        return _launch(a.detach(), b.detach(), None if initial_state is None else initial_state.detach(), reverse=reverse)[0]


class _TritonLinearScan(torch.autograd.Function):
    """Forward: one kernel launch. Backward: one launch of the same kernel the other way, which
    computes dL/db and dL/da together. Saves only a, h and the initial state."""

    @staticmethod
    def forward(ctx, a, b, initial_state, reverse):
        h, _ = _launch(a, b, initial_state, reverse=reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(a, h, initial_state)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        a, h, initial_state = ctx.saved_tensors
        need_a, need_b, need_initial = ctx.needs_input_grad[:3]
        grad_total, grad_a = _launch(
            a,
            grad_h,
            None,
            reverse=not ctx.reverse,
            adjoint_of=(h, initial_state) if need_a else None,
            shift_conj=True,
        )
        grad_initial = None
        if need_initial:
            edge = -1 if ctx.reverse else 0
            grad_initial = a[:, edge].conj() * grad_total[:, edge]
        return grad_a, grad_total if need_b else None, grad_initial, None


def triton_linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along dim 1 by the Triton kernel, differentiable in a, b and initial_state.

    a, b: (B, T, *features), same shape and dtype: float32, float64, complex64 or complex128
    (broadcast `a` must be expanded by the caller; a stride-0 `expand` view is read in place and
    autograd sums its gradient back). initial_state: (B, *features) of the same dtype, or None
    (zeros). `reverse=True` runs from the last step to the first: h_t = a_t * h_{t+1} + b_t, the
    initial state entering at t = T-1. Tensors on a CUDA device (or on the CPU under the Triton
    interpreter). Raises ValueError for unsupported dtypes, shapes or devices.
    """
    _check_inputs(a, b, initial_state)
    return _TritonLinearScan.apply(a, b, initial_state, bool(reverse))

"""Mamba ("Mamba: Linear-Time Sequence Modeling with Selective State Spaces", Gu & Dao 2023).

One Mamba block (the reference's `mamba_simple.Mamba`), E = expand · d_model inner channels, N states each:

    [x, z]  = in_proj(u)                                      (B, T, 2E): x first, then the gate z
    x       = SiLU(causal depthwise conv1d(x))                kernel d_conv, over time
    [δ, B, C] = x_proj(x)                                     δ (dt_rank), B (N), C (N): input-dependent
    Δ       = softplus(dt_proj(δ))                            (B, T, E); dt_proj.bias = softplus⁻¹(dt₀)
    A       = −exp(A_log)                                     (E, N), real diagonal; S4D-real init A = −(1..N)
    h_t     = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t            (B, T, E, N): ZOH for A, Euler for B
    y_t     = C_t · h_t + D ⊙ x_t                             sum over n; D is the skip
    out     = out_proj(y ⊙ SiLU(z))

On CPU with the fused kernels (the default there) the scan is one C++ pass each way
(kernels/cpu.py SelectiveScan): discretization, recurrence and readout together, one (N) state per
channel in registers, the backward recomputing one channel's states at a time, so nothing of size
(B, T, E, N) is ever built. Elsewhere (CUDA, or --scan-backend torch) the recurrence, linear in h with
coefficients from the input alone, is one `linear_scan` over (B, T, E·N) features (parallel in time;
Triton or the chunked PyTorch scan). The (B, T, E, N) tensors are then the only large ones: the scan
runs over time chunks of at most `scan_chunk_elements` elements, and when a sequence needs more than
one chunk and gradients are on, each chunk is checkpointed (recomputed in backward), so the graph
keeps only the (B, T, E) inputs of each chunk, never the (B, T, E, N) states of the whole sequence.

State (carried by `forward` and `step`): `MambaState(conv, ssm)`, conv = the last d_conv − 1 inputs
of the convolution (B, d_conv − 1, E), oldest first; ssm = h (B, E, N), the reference's ssm_state.

Parameter names and shapes are the reference's (in_proj, conv1d, x_proj, dt_proj, A_log, D,
out_proj), so its state dicts load as they are. A_log, D and dt_proj.bias are not weight-decayed
there (`_no_weight_decay`); the project's rule must skip them too (A_log is 2-D: it needs its name
in the no-decay list).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .causal_conv import causal_depthwise_conv, causal_depthwise_conv_step
from .kernels.backend import scan_backend_for
from .scan import at_least_float32, linear_scan
from .shapes import check_sequence, check_state, check_step


class MambaState(NamedTuple):
    conv: torch.Tensor  # (B, d_conv - 1, E): the last inputs of the causal conv, oldest first
    ssm: torch.Tensor  # (B, E, N): h


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y: x = y + log(1 − exp(−y))."""
    return y + torch.log(-torch.expm1(-y))


def selective_scan(
    x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """y_t = C_t · h_t with h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t, in parallel over time.

    x, delta (B, T, E); A (E, N); B, C (B, T, N); initial_state (B, E, N) or None (zeros).
    Returns y (B, T, E) (no D skip, no gate) and the last state h_T (B, E, N).
    """
    decay = torch.exp(delta.unsqueeze(-1) * A)  # (B, T, E, N)
    drive = (delta * x).unsqueeze(-1) * B.unsqueeze(2)  # (B, T, E, N)
    h = linear_scan(decay, drive, initial_state)
    y = torch.einsum("bten,btn->bte", h, C)
    return y, h[:, -1].clone()  # a copy, so the (B, T, E, N) states are not kept alive by the carry


class Mamba(nn.Module):
    scan_chunk_elements = 2**24  # largest (B, chunk, E, N) tensor one scan chunk builds (64 MiB in float32)

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        conv_bias: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        if d_model <= 0 or d_state <= 0 or d_conv < 1 or expand <= 0:
            raise ValueError(
                f"Mamba needs d_model, d_state, expand > 0 and d_conv >= 1, got d_model={d_model}, "
                f"d_state={d_state}, d_conv={d_conv}, expand={expand}"
            )
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Mamba needs 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if dt_rank is not None and dt_rank <= 0:
            raise ValueError(f"dt_rank must be positive (or None for ceil(d_model / 16)), got {dt_rank}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = max(1, int(expand * d_model))
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        E, N = self.d_inner, d_state

        self.in_proj = nn.Linear(d_model, 2 * E, bias=bias)
        # padding is ours (the carried conv state, or zeros), so the layer itself pads nothing
        self.conv1d = nn.Conv1d(E, E, kernel_size=d_conv, groups=E, bias=conv_bias)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E, bias=True)
        # the reference's init: dt_proj keeps the variance of δ; its bias makes Δ = softplus(bias) log-uniform
        # in [dt_min, dt_max] at δ = 0
        dt_init_std = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inverse_softplus(dt.clamp(min=dt_init_floor)))
        # S4D-real: A_n = −n, n = 1..N, the same for every channel
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, d_model, bias=bias)

    # ---- the pieces both paths share ----

    def A(self) -> torch.Tensor:
        return -torch.exp(at_least_float32(self.A_log))

    def _selection(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Δ (…, E), B (…, N), C (…, N) from the conv output x (…, E): what makes the SSM selective."""
        low_rank_dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(low_rank_dt)), B, C

    def _gated(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(y + D ⊙ x) ⊙ SiLU(z), in at least float32."""
        return (y + self.D * x) * F.silu(at_least_float32(z))

    # ---- the contract ----

    def init_state(self, batch_size: int, device=None, dtype=None) -> MambaState:
        ssm_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        return MambaState(
            torch.zeros(batch_size, self.d_conv - 1, self.d_inner, device=device, dtype=dtype),
            torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=ssm_dtype),
        )

    def _check_state(self, state, batch_size: int) -> None:
        if state is None:
            return
        if not (isinstance(state, tuple) and len(state) == 2):
            raise ValueError(f"Mamba: state must be a MambaState(conv, ssm), got {type(state).__name__}")
        check_state(state[0], (batch_size, self.d_conv - 1, self.d_inner), "Mamba (conv)")
        check_state(state[1], (batch_size, self.d_inner, self.d_state), "Mamba (ssm)")

    def forward(self, u: torch.Tensor, state: MambaState | None = None) -> tuple[torch.Tensor, MambaState]:
        check_sequence(u, self.d_model, "Mamba")
        self._check_state(state, u.shape[0])
        batch, length, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)
        conv_state = (torch.zeros(batch, self.d_conv - 1, self.d_inner, device=u.device, dtype=x.dtype)
                      if state is None else state.conv.to(x.dtype))
        x, conv_state = causal_depthwise_conv(x, conv_state, self.conv1d)
        x = F.silu(x)
        delta, B, C = self._selection(x)
        with torch.autocast(device_type=u.device.type, enabled=False):
            x, delta, B, C = (at_least_float32(t) for t in (x, delta, B, C))
            y, ssm_state = self._scan(x, delta, B, C, None if state is None else state.ssm)
            gated = self._gated(y, x, z)
        return self.out_proj(gated).to(u.dtype), MambaState(conv_state, ssm_state)

    def _scan(self, x, delta, B, C, initial_state):
        """The fused CPU kernel, or selective_scan over time chunks of at most scan_chunk_elements
        (checkpointed when chunked)."""
        if x.device.type == "cpu" and scan_backend_for(x.device) == "cpu":
            from .kernels.cpu import SelectiveScan

            # SelectiveScan casts the initial state to x's dtype itself
            return SelectiveScan.apply(x, delta.to(x.dtype), self.A().to(x.dtype), B.to(x.dtype), C.to(x.dtype),
                                       initial_state)
        batch, length, _ = x.shape
        chunk = max(1, self.scan_chunk_elements // (batch * self.d_inner * self.d_state))
        if length <= chunk:
            return selective_scan(x, delta, self.A(), B, C, initial_state)
        A, state, outputs = self.A(), initial_state, []
        for start in range(0, length, chunk):
            piece = slice(start, start + chunk)
            args = (x[:, piece], delta[:, piece], A, B[:, piece], C[:, piece], state)
            if torch.is_grad_enabled():
                y, state = checkpoint(selective_scan, *args, use_reentrant=False)
            else:
                y, state = selective_scan(*args)
            outputs.append(y)
        return torch.cat(outputs, dim=1), state

    def step(self, u_t: torch.Tensor, state: MambaState | None) -> tuple[torch.Tensor, MambaState]:
        """One token, O(1): the conv over the carried window, one update of h."""
        check_step(u_t, self.d_model, "Mamba")
        self._check_state(state, u_t.shape[0])
        if state is None:
            state = self.init_state(u_t.shape[0], device=u_t.device, dtype=u_t.dtype)
        x_t, z_t = self.in_proj(u_t).chunk(2, dim=-1)
        x_t, conv_state = causal_depthwise_conv_step(x_t, state.conv, self.conv1d)
        x_t = F.silu(x_t)
        delta, B, C = self._selection(x_t)
        with torch.autocast(device_type=u_t.device.type, enabled=False):
            x_t, delta, B, C = (at_least_float32(t) for t in (x_t, delta, B, C))
            h = torch.exp(delta.unsqueeze(-1) * self.A()) * state.ssm + (delta * x_t).unsqueeze(-1) * B.unsqueeze(1)
            gated = self._gated(torch.einsum("ben,bn->be", h, C), x_t, z_t)
        return self.out_proj(gated).to(u_t.dtype), MambaState(conv_state, h)

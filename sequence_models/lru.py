"""Linear Recurrent Unit ("Resurrecting Recurrent Neural Networks for Long Sequences",
Orvieto et al. 2023).

    h_t = λ ⊙ h_{t−1} + γ ⊙ (B x_t),   y_t = Re(C h_t) + D ⊙ x_t
    λ = exp(−exp(ν_log) + i·exp(θ_log)),   γ = exp(γ_log), initialised to sqrt(1 − |λ|²)

Eigenvalues start uniformly on the ring r_min ≤ |λ| ≤ r_max with phase θ in [0, max_phase].
B and C are complex, stored as real/imaginary pairs so that optimisers and checkpoints see only
real tensors; the parameter names match the paper's reference code. Defaults (r_min 0, r_max 1,
max_phase 2π) are those of the reference code's LRU layer.

`gradient="dsf"` or `"truncated"` keeps the exact scan for the forward and trains the recurrence
through DSF's backward (sequence_models/feedback.py) with a real diagonal feedback A.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .feedback import active_feedback, add_gradient_mode, state_feedback
from .scan import at_least_float32, linear_scan
from .shapes import check_sequence, check_state, check_step


def ring_init(state_dim: int, r_min: float, r_max: float, max_phase: float, generator=None):
    """(nu_log, theta_log, gamma_log) with |λ|² uniform on [r_min², r_max²] and θ uniform on [0, max_phase]."""
    if not 0.0 <= r_min <= r_max <= 1.0:
        raise ValueError(f"LRU needs 0 <= r_min <= r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if max_phase <= 0:
        raise ValueError(f"LRU needs max_phase > 0, got {max_phase}")
    tiny = 1e-6  # keeps log() finite where a uniform draw lands exactly on 0
    u1 = torch.rand(state_dim, generator=generator, dtype=torch.float64).clamp_min(tiny)
    u2 = torch.rand(state_dim, generator=generator, dtype=torch.float64).clamp_min(tiny)
    radius_sq = (u1 * (r_max**2 - r_min**2) + r_min**2).clamp(tiny, 1 - tiny)
    nu_log = torch.log(-0.5 * torch.log(radius_sq))
    theta_log = torch.log(max_phase * u2)
    gamma_log = 0.5 * torch.log1p(-radius_sq)
    return nu_log.float(), theta_log.float(), gamma_log.float()


class LRU(nn.Module):
    def __init__(
        self,
        dim: int,
        state_dim: int | None = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2 * math.pi,
        gradient: str = "bptt",
        **feedback_options,
    ):
        super().__init__()
        if dim <= 0 or (state_dim is not None and state_dim <= 0):
            raise ValueError(f"dim and state_dim must be positive, got dim={dim}, state_dim={state_dim}")
        self.dim = dim
        self.state_dim = state_dim or dim
        n = self.state_dim
        nu_log, theta_log, gamma_log = ring_init(n, r_min, r_max, max_phase)
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(theta_log)
        self.gamma_log = nn.Parameter(gamma_log)
        self.B_re = nn.Parameter(torch.randn(n, dim) / math.sqrt(2 * dim))
        self.B_im = nn.Parameter(torch.randn(n, dim) / math.sqrt(2 * dim))
        self.C_re = nn.Parameter(torch.randn(dim, n) / math.sqrt(n))
        self.C_im = nn.Parameter(torch.randn(dim, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(dim))
        add_gradient_mode(self, n, gradient, **feedback_options)

    def eigenvalues(self) -> torch.Tensor:
        return torch.polar(torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """γ ⊙ (B x) as a complex tensor, computed in float32 whatever the autocast dtype.

        One real matmul with re/im rows interleaved, viewed as complex without a copy."""
        gamma = torch.exp(self.gamma_log)[:, None]
        weight = torch.stack([self.B_re * gamma, self.B_im * gamma], dim=1).reshape(2 * self.state_dim, self.dim)
        projected = at_least_float32(x) @ weight.T
        return torch.view_as_complex(projected.unflatten(-1, (self.state_dim, 2)))

    def _output(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Re(C h) + D ⊙ x = [C_re, −C_im] · [Re h, Im h] + D ⊙ x, one real matmul."""
        weight = torch.stack([self.C_re, -self.C_im], dim=2).reshape(self.dim, 2 * self.state_dim)
        y = torch.view_as_real(h).flatten(-2) @ weight.T + self.D * at_least_float32(x)
        return y.to(x.dtype)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.state_dim, device=device, dtype=complex_dtype)

    def _check_state(self, state, batch_size: int) -> None:
        if state is not None:
            check_state(state, (batch_size, self.state_dim), "LRU")
            if not state.is_complex():
                raise ValueError("LRU: state must be complex (as returned by forward or init_state)")

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, self.dim, "LRU")
        self._check_state(state, x.shape[0])
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self._states(x, state) if self.gradient == "bptt" else self._states_with_feedback(x, state)
            return self._output(h, x), h[:, -1]

    def _states(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return linear_scan(self.eigenvalues(), self._input(x), state)

    def _states_with_feedback(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """dsf / truncated: the exact states by the scan without a graph; the backward is DSF's
        (feedback.py, with a real diagonal A) through the one-step cell h_t = λ h_{t-1} + γ B x_t.
        C and D sit outside the recurrence and get exact gradients."""
        with torch.no_grad():
            h = self._states(x, state)

        def cell(x_flat: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
            return self.eigenvalues() * previous + self._input(x_flat)

        cell_parameters = [self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im]
        return state_feedback(cell, x, h, state, active_feedback(self), cell_parameters)

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_step(x_t, self.dim, "LRU")
        self._check_state(state, x_t.shape[0])
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            h = self._input(x_t)
            if state is not None:
                h = self.eigenvalues() * state + h
            return self._output(h, x_t), h

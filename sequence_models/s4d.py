"""S4D, the diagonal state-space layer ("On the Parameterization and Initialization of Diagonal State
Space Models", Gu, Gupta, Goel & Ré 2022).

Each of the H channels u is its own linear system with N/2 complex modes (their conjugates are
implied, hence the factor 2 in the output):

    A_n   = −exp(log_A_real_n) + i·A_imag_n                   (H, N/2), Re A < 0
    Δ     = exp(log_dt)                                      (H,), log_dt ~ U[log dt_min, log dt_max]
    Ā     = exp(Δ A),   B̄ = (Ā − 1) / A · B                  zero-order hold; B = 1 (C absorbs it)
    h_t   = Ā ⊙ h_{t−1} + B̄ u_t                             (B, H, N/2), complex
    y_t   = 2 Re(Σ_n C_n h_{t,n}) + D ⊙ u_t
    out_t = GLU(output_linear(GELU(y_t)))                     GLU(a, b) = a ⊙ σ(b)

The system is time-invariant, so `forward` runs it as the reference does, as a causal convolution
with the kernel K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l), l = 0..T−1, built from the Vandermonde matrix
Ā_n^l = exp(l Δ A_n) (H, N/2, T), and never materialises the (B, T, H, N/2) states. The convolution is
a Toeplitz matmul up to `direct_convolution_max_length` steps and an FFT past it (O(T log T)).
A state h_0 carried in adds 2 Re(Σ_n C_n Ā_n^{t+1} h_{0,n}) to y_t, and the state after T steps is
h_T = Ā^T h_0 + Σ_l Ā^{T−1−l} B̄ u_l, so chunks chain exactly; `step` runs the recurrence, O(1) per
token. Past `scan_chunk_elements` the convolution runs over time chunks, each checkpointed under grad.

Initialisations of A (Re A = −1/2 in both, n = 0..N/2 − 1):
    lin: Im A_n = π n                       (S4D-Lin, the default)
    inv: Im A_n = N/π · (N / (2n + 1) − 1)  (S4D-Inv)

Parameter names are the reference's (state-spaces/s4, models/s4/s4d.py) less the `kernel.` prefix:
log_dt (H,), log_A_real (H, N/2), A_imag (H, N/2), C (H, N/2, 2) (a complex tensor as real pairs),
D (H,); `output_linear` is an nn.Linear(H, 2H) where the reference has a Conv1d(H, 2H, 1) (its weight
is this one's with a trailing axis of 1). The reference trains log_dt, log_A_real and A_imag without
weight decay (and at a smaller learning rate); the project's rule must skip them too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .scan import at_least_float32
from .shapes import check_sequence, check_state, check_step

S4D_INITS: tuple[str, ...] = ("lin", "inv")


def s4d_imaginary_init(d_state: int, init: str) -> torch.Tensor:
    """Im A_n for n = 0..N/2 − 1: S4D-Lin (π n) or S4D-Inv (N/π (N/(2n+1) − 1))."""
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":
        return math.pi * n
    if init == "inv":
        return d_state / math.pi * (d_state / (2 * n + 1) - 1)
    raise ValueError(f"unknown S4D init {init!r}; choose one of: {', '.join(S4D_INITS)}")


class S4D(nn.Module):
    scan_chunk_elements = 2**24  # most complex elements, H (N/2 + B) per step, of one chunk's Vandermonde and FFTs
    # up to this many steps the convolution is a Toeplitz matmul (exactly causal; the layer's forward + backward
    # at B = 32, H = 64 on one CPU thread: 1.3-2x faster than by FFT at T = 32..96, ~1.1x at 128..192, even at
    # 256), past it an FFT (causal up to rounding; O(T log T), 1.1x faster at 384 and ever more after)
    direct_convolution_max_length = 256

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        init: str = "lin",
    ):
        super().__init__()
        if d_model <= 0 or d_state < 2 or d_state % 2:
            raise ValueError(
                f"S4D needs d_model > 0 and an even d_state >= 2 (N/2 complex modes), got d_model={d_model}, "
                f"d_state={d_state}"
            )
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"S4D needs 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        imaginary = s4d_imaginary_init(d_state, init)  # checks init first
        self.d_model, self.d_state, self.modes = d_model, d_state, d_state // 2
        H, M = d_model, self.modes
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.log_A_real = nn.Parameter(torch.full((H, M), math.log(0.5)))
        self.A_imag = nn.Parameter(imaginary.float().repeat(H, 1))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, M, dtype=torch.complex64)))
        self.D = nn.Parameter(torch.randn(H))
        self.output_linear = nn.Linear(H, 2 * H)

    def _A_and_dt_A(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, ΔA), complex (H, N/2)."""
        A = torch.complex(-torch.exp(at_least_float32(self.log_A_real)), at_least_float32(self.A_imag))
        return A, torch.exp(at_least_float32(self.log_dt)).unsqueeze(-1) * A

    def discretized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Ā, B̄) = (exp(ΔA), (exp(ΔA) − 1)/A), complex (H, N/2), by zero-order hold with B = 1."""
        A, dt_A = self._A_and_dt_A()
        A_bar = torch.exp(dt_A)
        return A_bar, (A_bar - 1) / A

    def _head(self, y: torch.Tensor) -> torch.Tensor:
        return F.glu(self.output_linear(F.gelu(y)), dim=-1)

    def _output(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """GLU(output_linear(GELU(2 Re(C h) + D u))); Re(C h) = C_re h_re − C_im h_im as one real contraction."""
        C = at_least_float32(self.C)
        C_pairs = torch.stack([C[..., 0], -C[..., 1]], dim=-1)  # (H, N/2, 2)
        return self._head(2 * (torch.view_as_real(h) * C_pairs).sum((-1, -2)) + self.D * u)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.d_model, self.modes, device=device, dtype=complex_dtype)

    def _check_state(self, state, batch_size: int) -> None:
        if state is not None:
            check_state(state, (batch_size, self.d_model, self.modes), "S4D")
            if not state.is_complex():
                raise ValueError("S4D: state must be complex (as returned by forward or init_state)")

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(u, self.d_model, "S4D")
        self._check_state(state, u.shape[0])
        with torch.autocast(device_type=u.device.type, enabled=False):
            u32 = at_least_float32(u)
            batch, length, _ = u.shape
            chunk = max(1, self.scan_chunk_elements // (self.d_model * (self.modes + batch)))
            if length <= chunk:
                y, state = self._chunk(u32, state)
                return y.to(u.dtype), state
            # long sequences: chunk by chunk, each checkpointed under grad (recomputed in backward), so neither
            # the graph nor one pass holds the (H, N/2, T) Vandermonde or the (B, 2T, H) FFTs of all T steps
            outputs = []
            for start in range(0, length, chunk):
                piece = u32[:, start:start + chunk]
                if torch.is_grad_enabled():
                    y, state = checkpoint(self._chunk, piece, state, use_reentrant=False)
                else:
                    y, state = self._chunk(piece, state)
                outputs.append(y)
            return torch.cat(outputs, dim=1).to(u.dtype), state

    def _chunk(self, u: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs (B, T, H) of one stretch of time and the state after it, by convolution; complex products
        as real matmuls with [Re z, −Im z] (Re(z w) = z_re w_re − z_im w_im) against the Vandermonde's pairs."""
        length = u.shape[1]
        A, dt_A = self._A_and_dt_A()
        B_bar = (torch.exp(dt_A) - 1) / A
        C = torch.view_as_complex(at_least_float32(self.C))
        powers = powers_as_real_pairs(dt_A, length)  # (H, N, T + 1)
        kernel = 2 * torch.matmul(conjugate_pairs(C * B_bar).unsqueeze(1), powers[..., :length]).squeeze(1)  # (H, T)
        y = causal_convolution(u, kernel, self.direct_convolution_max_length) + self.D * u
        # h_T = Ā^T h_0 + B̄ Σ_l Ā^{T−1−l} u_l; the sum as u reversed in time against Ā^0..Ā^{T−1}
        summed = torch.matmul(u.flip(1).permute(2, 0, 1), powers[..., :length].mT)  # (H, B, N)
        new_state = B_bar * torch.complex(*summed.permute(1, 0, 2).chunk(2, dim=-1))
        if state is not None:  # y_t += 2 Re(Σ_n C_n Ā_n^{t+1} h_0,n)
            y = y + 2 * torch.matmul(conjugate_pairs(C * state).transpose(0, 1), powers[..., 1:]).permute(1, 2, 0)
            new_state = new_state + torch.exp(length * dt_A) * state
        return self._head(y), new_state

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_step(u_t, self.d_model, "S4D")
        self._check_state(state, u_t.shape[0])
        with torch.autocast(device_type=u_t.device.type, enabled=False):
            u32 = at_least_float32(u_t)
            A_bar, B_bar = self.discretized()
            h = B_bar * u32.unsqueeze(-1)
            if state is not None:
                h = A_bar * state + h
            return self._output(h, u32).to(u_t.dtype), h


def powers_as_real_pairs(dt_A: torch.Tensor, length: int) -> torch.Tensor:
    """The Vandermonde Ā^l = exp(l ΔA), l = 0..length, as (H, N, length + 1): N/2 real parts then N/2 imaginary
    parts, exp(l Re ΔA) · (cos, sin)(l Im ΔA) (real exp, cos and sin are much faster than complex exp on CPU)."""
    steps = torch.arange(length + 1, device=dt_A.device, dtype=dt_A.real.dtype)
    magnitude = torch.exp(dt_A.real.unsqueeze(-1) * steps)
    phase = dt_A.imag.unsqueeze(-1) * steps
    return torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)


def conjugate_pairs(z: torch.Tensor) -> torch.Tensor:
    """[Re z, −Im z] along the last axis, so that Re(z · w) = conjugate_pairs(z) · [Re w, Im w]."""
    return torch.cat([z.real, -z.imag], dim=-1)


def causal_convolution(u: torch.Tensor, kernel: torch.Tensor, direct_max_length: int) -> torch.Tensor:
    """y_t = Σ_{l ≤ t} K_l u_{t−l} per channel, u (B, T, H), K (H, T). Up to direct_max_length steps a Toeplitz
    matmul, exactly causal (its zeros stay zeros); past it an FFT of length ≥ 2T (zero-padded, so nothing
    wraps around), causal up to rounding, along the last axis (along T in (B, T, H), pocketfft is ~1.7x slower)."""
    length = u.shape[1]
    if length <= direct_max_length:
        # windows[h, i, t] = K_{t+i−(T−1)} (0 at negative lags), windows of K zero-padded on the left; against
        # u reversed in time, i = T−1−s, that is y_t = Σ_s u_s K_{t−s} (flipping u costs less than the windows)
        windows = F.pad(kernel, (length - 1, 0)).unfold(-1, length, 1)  # (H, T, T)
        return torch.matmul(u.flip(1).permute(2, 0, 1), windows).permute(1, 2, 0)
    n = 1 << (2 * length - 1).bit_length()  # ≥ 2T, a power of two: 1.8-2.5x faster than 2T of odd factors
    spectrum = torch.fft.rfft(u.transpose(1, 2), n=n) * torch.fft.rfft(kernel, n=n)
    return torch.fft.irfft(spectrum, n=n)[..., :length].transpose(1, 2)

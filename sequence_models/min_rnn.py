"""minGRU and minLSTM ("Were RNNs All We Needed?", Feng et al. 2024).

Both are h_t = a_t ⊙ h_{t-1} + b_t with a_t, b_t > 0 computed from x_t alone, so the whole
sequence is one parallel scan. Each layer defines its log-coefficients once; `forward` scans them,
`step` applies one update, so the two paths cannot drift apart.

`scan="log"` is the paper's log-space (Heinsen) scan on `log_coefficients`; `scan="linear"`
(default) runs the chunked linear scan on `coefficients` (the same equations, fewer elementwise
operations), which is faster on CPU and more accurate in float32 (a_t in (0, 1) keeps the linear recurrence a convex combination, so it cannot
overflow): see `python scripts/benchmark.py --suite precision`.

`gradient="dsf"` or `"truncated"` keeps the exact scan for the forward and trains through DSF's
backward (sequence_models/feedback.py) with the one-step cell h_t = a(x_t) h_{t-1} + b(x_t);
`"bptt"` (default) differentiates the scan exactly.

minGRU:  z = σ(k_z),  h̃ = g(k_h),  h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃
minLSTM: f = σ(k_f),  i = σ(k_i),  h̃ = g(k_h),  (f, i) ← (f, i) / (f + i)  [normalize=True],
         h_t = f ⊙ h_{t−1} + i ⊙ h̃
with g(x) = x + 0.5 for x ≥ 0 and σ(x) otherwise (keeps h̃ positive, so log h̃ exists).

Parameter layout follows lucidrains/minGRU-pytorch: `to_hidden_and_gate` (hidden half first) or
`to_hidden_and_gates` (hidden, forget, input thirds), no bias; `to_out` projects back when the
expansion factor makes the inner width differ from the model width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .feedback import active_feedback, add_gradient_mode, state_feedback
from .kernels.backend import scan_backend_for
from .scan import at_least_float32, linear_scan, scan_log_space
from .shapes import check_sequence, check_state, check_step


def g(x: torch.Tensor) -> torch.Tensor:
    """g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise, as relu(x) + sigmoid(min(x, 0)) (no branches)."""
    return F.relu(x) + torch.sigmoid(x.clamp(max=0))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x), g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise (continuous at 0)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


SCANS = ("linear", "log")
LOG_SPACE_CHUNK = 256  # bounds the log-space scan's float32 error (it grows with the chunk length)


def inner_width(dim: int, expansion: float) -> int:
    if expansion <= 0:
        raise ValueError(f"expansion must be > 0, got {expansion}")
    return max(1, int(round(dim * expansion)))


class _MinRNN(nn.Module):
    """Shared body: input projection → log-coefficients → scan (or one step) → output projection.

    Options shared by both layers: expansion (inner width / dim), learned_init_state, scan
    ("linear" | "log"), gradient ("bptt" | "dsf" | "truncated") and the feedback_* options of
    feedback.add_gradient_mode.
    """

    fused_cell = ""  # the cell name of cpu_kernels.MinRNNScan / min_rnn_triton.TritonMinRNNScan
    normalize = False  # MinLSTM's f/(f+i) option; the fused kernels read it for both cells

    def __init__(
        self,
        dim: int,
        expansion: float = 1.0,
        learned_init_state: bool = False,
        scan: str = "linear",
        gradient: str = "bptt",
        **feedback_options,
    ):
        super().__init__()
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
        self.scan = scan
        self.dim = dim
        self.inner = inner_width(dim, expansion)
        self.to_out = nn.Linear(self.inner, dim, bias=False) if self.inner != dim else nn.Identity()
        self.initial_state = nn.Parameter(torch.zeros(self.inner)) if learned_init_state else None
        add_gradient_mode(self, self.inner, gradient, **feedback_options)

    def coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) of h_t = a_t h_{t-1} + b_t from the input projection."""
        raise NotImplementedError

    def log_coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log a, log b), the same equations in log space (for scan="log")."""
        raise NotImplementedError

    def project(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        if self.initial_state is not None:
            return self.initial_state.to(device=device, dtype=dtype).expand(batch_size, -1).clone()
        return torch.zeros(batch_size, self.inner, device=device, dtype=dtype)

    def _start(self, state: torch.Tensor | None, batch_size: int) -> torch.Tensor | None:
        if state is not None:
            check_state(state, (batch_size, self.inner), type(self).__name__)
            return state
        if self.initial_state is not None:
            return self.initial_state.expand(batch_size, -1)
        return None

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        check_sequence(x, self.dim, type(self).__name__)
        h0 = self._start(state, x.shape[0])
        backend = scan_backend_for(x.device, kernel="min_rnn") if self.scan == "linear" else None
        if backend in ("cpu", "triton"):
            h = self._fused_states(x, h0, backend)
        elif self.gradient == "bptt":
            h = self._states(x, h0)
        else:
            h = self._states_with_feedback(x, h0)
        return self.to_out(h.to(x.dtype)), h[:, -1]

    def _fused_states(self, x: torch.Tensor, h0: torch.Tensor | None, backend: str = "cpu") -> torch.Tensor:
        """The fused kernel of `backend` ("cpu": csrc/scan_cpu.cpp, "triton": min_rnn_triton.py on
        CUDA): gates + recurrence in one pass, and its backward (exact, or DSF's) in one."""
        if backend == "triton":
            from .kernels.min_rnn_triton import TritonMinRNNScan as MinRNNScan
        else:
            from .kernels.cpu import MinRNNScan

        projected = at_least_float32(self.project(x))
        h0 = None if h0 is None else h0.to(projected.dtype)
        feedback = getattr(self, "feedback", None)
        return MinRNNScan.apply(projected, h0, self.fused_cell, self.normalize, self.gradient, feedback)

    def _states(self, x: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        if self.scan == "log":
            return scan_log_space(*self.log_coefficients(self.project(x)), h0, chunk_size=LOG_SPACE_CHUNK)
        return linear_scan(*self.coefficients(self.project(x)), h0)

    def _states_with_feedback(self, x: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        """dsf / truncated off the fused kernels: the exact states by the scan without a graph; the
        backward is DSF's (feedback.py) through the one-step cell h_t = a(x_t) h_{t-1} + b(x_t)."""
        with torch.no_grad():
            h = self._states(x, h0)

        def cell(x_flat: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
            a, b = self.coefficients(self.project(x_flat))
            return a * previous + b

        cell_parameters = [p for name, p in self.named_parameters() if not name.startswith(("to_out.", "initial_state"))]
        return state_feedback(cell, x, h, h0, active_feedback(self), cell_parameters)

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_step(x_t, self.dim, type(self).__name__)
        h = self._start(state, x_t.shape[0])
        a, b = self.coefficients(self.project(x_t))
        h_new = b if h is None else a * at_least_float32(h) + b
        return self.to_out(h_new.to(x_t.dtype)), h_new


class MinGRU(_MinRNN):
    fused_cell = "mingru"

    def __init__(self, dim: int, **options):
        super().__init__(dim, **options)
        self.to_hidden_and_gate = nn.Linear(dim, 2 * self.inner, bias=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_hidden_and_gate(x)

    def coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, gate = at_least_float32(projected).chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        return 1 - z, z * g(hidden)

    def log_coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, gate = at_least_float32(projected).chunk(2, dim=-1)
        log_one_minus_z = -F.softplus(gate)
        log_z = -F.softplus(-gate)
        return log_one_minus_z, log_z + log_g(hidden)


class MinLSTM(_MinRNN):
    fused_cell = "minlstm"

    def __init__(self, dim: int, normalize: bool = True, **options):
        super().__init__(dim, **options)
        self.normalize = normalize
        self.to_hidden_and_gates = nn.Linear(dim, 3 * self.inner, bias=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_hidden_and_gates(x)

    def log_gates(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log f', log i'): normalised so that f' + i' = 1 when `normalize`, else log σ of each gate."""
        _, forget, input_ = at_least_float32(projected).chunk(3, dim=-1)
        if self.normalize:
            # log f/(f+i) = -softplus(log i - log f), with log σ(k) = -softplus(-k)
            difference = F.softplus(-forget) - F.softplus(-input_)
            return -F.softplus(difference), -F.softplus(-difference)
        return -F.softplus(-forget), -F.softplus(-input_)

    def gates(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f', i'): f' + i' = 1 when `normalize`, else σ of each gate."""
        _, forget, input_ = at_least_float32(projected).chunk(3, dim=-1)
        f, i = torch.sigmoid(forget), torch.sigmoid(input_)
        if self.normalize:
            f = f / (f + i)
            return f, 1 - f
        return f, i

    def coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = at_least_float32(projected).chunk(3, dim=-1)[0]
        f, i = self.gates(projected)
        return f, i * g(hidden)

    def log_coefficients(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = at_least_float32(projected).chunk(3, dim=-1)[0]
        log_f, log_i = self.log_gates(projected)
        return log_f, log_i + log_g(hidden)

"""Classic recurrent mixers: Elman RNN, GRU, LSTM, each trainable by exact BPTT, DSF or truncated BPTT.

Each layer holds one `torch.nn.RNN` / `GRU` / `LSTM` (one layer, batch_first), so the forward is
torch's fused kernel (cuDNN, oneDNN; on CPU the GRU and RNN run the project's C++ time loop instead,
the same maths on the same parameters: see `_recurrence`) and the parameter names are the standard
`rnn.weight_ih_l0`, `rnn.weight_hh_l0`, `rnn.bias_ih_l0`, `rnn.bias_hh_l0`. `to_out` projects hidden → dim when the
hidden size differs from the model width (Identity otherwise).

gradient = "bptt":      the fused module, differentiated exactly.
gradient = "dsf":       the fused module runs without a graph; the backward is DSF's (feedback.py):
                        δ_t = e_t + A ⊙ δ_{t+1} by a reverse parallel scan, then one batched call of
                        torch's own cell (torch._VF.gru_cell / lstm_cell / rnn_*_cell, the same
                        maths and parameters as the fused module) over all B·T pairs (x_t, h_{t−1}).
gradient = "truncated": the same with A = 0.
`feedback` (the buffer A) exists under dsf and truncated (unused by the latter) and is checkpointed.

State: a tensor (B, state_dim). RNN and GRU: h (state_dim = hidden). LSTM: [h; c] concatenated
(state_dim = 2·hidden), which is also DSF's recurrent state, as in the DSF paper; the LSTM's output
y_t is h_t alone (projected by `to_out`), its cell state c_t is only carried. Under DSF, gradients
reach c_t only through the one-step cell and through a loss on the returned final state: a
diagonal A never mixes the h and c halves.

`step` is the fused module on one time step in every mode (exact if differentiated).
"""

from __future__ import annotations

import torch
from torch import nn

from .feedback import active_feedback, add_gradient_mode, state_feedback
from .gradient_modes import FeedbackInit, GradientMode
from .kernels.backend import scan_backend_for
from .scan import linear_scan
from .shapes import check_sequence, check_state, check_step


class _ClassicRNN(nn.Module):
    rnn_class: type[nn.RNNBase]
    state_factor = 1
    cpu_kernel_cell = ""  # the C++ time loop's cell on CPU (kernels/cpu.py), or "" for torch's module everywhere

    def __init__(
        self,
        dim: int,
        hidden: int | None = None,
        gradient: GradientMode = "bptt",
        feedback_init: FeedbackInit = "linspace",
        feedback_low: float = 0.0,
        feedback_high: float = 1.0,
        feedback_constant: float = 0.5,
        **rnn_options,
    ):
        super().__init__()
        if dim <= 0 or (hidden is not None and hidden <= 0):
            raise ValueError(f"dim and hidden must be positive, got dim={dim}, hidden={hidden}")
        self.dim = dim
        self.hidden = hidden or dim
        self.rnn = self.rnn_class(dim, self.hidden, num_layers=1, batch_first=True, **rnn_options)
        self.to_out = nn.Linear(self.hidden, dim, bias=False) if self.hidden != dim else nn.Identity()
        self.state_dim = self.state_factor * self.hidden
        add_gradient_mode(self, self.state_dim, gradient, feedback_init, feedback_low, feedback_high, feedback_constant)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.state_dim, device=device, dtype=dtype)

    # state layout: ours (B, state_dim) <-> torch's (1, B, hidden) or a pair of them for the LSTM
    def _to_torch(self, state: torch.Tensor | None):
        return None if state is None else state.unsqueeze(0).contiguous()

    def _from_torch(self, last) -> torch.Tensor:
        return last.squeeze(0)

    def _fused(self, x: torch.Tensor, state: torch.Tensor | None):
        """The fused recurrence on x (B, T, dim) from our state: (outputs, torch's last state).

        On CPU under autocast the recurrence runs in float32 with autocast off: oneDNN has no bf16
        LSTM primitive for CPUs without native bf16, and the recurrence, like the scans, stays float32."""
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self._recurrence(x.float(), None if state is None else state.float())
        return self._recurrence(x, state)

    def _recurrence(self, x: torch.Tensor, state: torch.Tensor | None):
        """torch's module (cuDNN, oneDNN), or on CPU for the GRU and Elman RNN the project's C++ time
        loop (kernels/cpu.py ClassicRNNSequence: the same maths and parameters, several times faster
        to differentiate than torch's CPU GRU / RNN, which record a dozen autograd nodes per step)."""
        steps_on_cpu = x.device.type == "cpu" and x.shape[1] > 0
        if self.cpu_kernel_cell and steps_on_cpu and scan_backend_for(x.device) == "cpu":
            from .kernels.cpu import ClassicRNNSequence

            w_ih, w_hh, b_ih, b_hh = self._weights()
            gi = nn.functional.linear(x, w_ih, b_ih)
            h = ClassicRNNSequence.apply(self.cpu_kernel_cell, gi, w_hh, b_hh, state)
            return h, h[:, -1].unsqueeze(0)
        return self.rnn(x, self._to_torch(state))

    def _cell(self, x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """One step for N independent pairs: x (N, dim), previous (N, state_dim) -> (N, state_dim)."""
        raise NotImplementedError

    def _exact_states(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """All states (B, T, state_dim) from the fused module, without a graph."""
        with torch.no_grad():
            return self._fused(x, state)[0]

    def _check(self, x: torch.Tensor, state: torch.Tensor | None) -> None:
        check_sequence(x, self.dim, type(self).__name__)
        if state is not None:
            check_state(state, (x.shape[0], self.state_dim), type(self).__name__)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x, state)
        if self.gradient == "bptt" or not torch.is_grad_enabled():
            out, last = self._fused(x, state)
            return self.to_out(out), self._from_torch(last)
        states = self._exact_states(x, state)
        states = state_feedback(self._cell, x, states, state, active_feedback(self), list(self.rnn.parameters()))
        return self.to_out(states[..., : self.hidden]), states[:, -1]

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_step(x_t, self.dim, type(self).__name__)
        if state is not None:
            check_state(state, (x_t.shape[0], self.state_dim), type(self).__name__)
        out, last = self._fused(x_t.unsqueeze(1), state)
        return self.to_out(out[:, 0]), self._from_torch(last)

    def _weights(self):
        rnn = self.rnn
        return rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0 if rnn.bias else None, rnn.bias_hh_l0 if rnn.bias else None

    def extra_repr(self) -> str:
        return f"gradient={self.gradient!r}"


class RNN(_ClassicRNN):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) (or relu)."""

    rnn_class = nn.RNN

    def __init__(self, dim: int, hidden: int | None = None, gradient: GradientMode = "bptt", nonlinearity: str = "tanh", **options):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(dim, hidden, gradient, nonlinearity=nonlinearity, **options)
        self.cpu_kernel_cell = f"rnn_{nonlinearity}"

    def _cell(self, x, previous):
        step = torch._VF.rnn_tanh_cell if self.rnn.nonlinearity == "tanh" else torch._VF.rnn_relu_cell
        return step(x, previous, *self._weights())


class GRU(_ClassicRNN):
    """torch's GRU: r, z, n gates; h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}."""

    rnn_class = nn.GRU
    cpu_kernel_cell = "gru"

    def _cell(self, x, previous):
        return torch._VF.gru_cell(x, previous, *self._weights())


class LSTM(_ClassicRNN):
    """torch's LSTM; the state is [h; c] (2·hidden), the output h."""

    rnn_class = nn.LSTM
    state_factor = 2

    def _to_torch(self, state):
        if state is None:
            return None
        h, c = state.unsqueeze(0).chunk(2, dim=-1)
        return h.contiguous(), c.contiguous()

    def _from_torch(self, last):
        return torch.cat([last[0].squeeze(0), last[1].squeeze(0)], dim=-1)

    def _cell(self, x, previous):
        h, c = previous.chunk(2, dim=-1)
        h_new, c_new = torch._VF.lstm_cell(x, (h, c), *self._weights())
        return torch.cat([h_new, c_new], dim=-1)

    def _exact_states(self, x, state):
        """[h; c] for every step: h from the fused module; c_t = f_t c_{t−1} + i_t g_t is linear in
        c once the gates (functions of x_t and h_{t−1}) are known, so one batched gate evaluation
        and a parallel scan recover it. The last c is the fused module's own."""
        with torch.no_grad():
            h, (_, c_last) = self._fused(x, state)
            h0, c0 = (None, None) if state is None else state.chunk(2, dim=-1)
            h_previous = torch.cat([torch.zeros_like(h[:, :1]) if h0 is None else h0.unsqueeze(1).to(h), h[:, :-1]], 1)
            w_ih, w_hh, b_ih, b_hh = self._weights()
            gates = nn.functional.linear(x, w_ih, b_ih) + nn.functional.linear(h_previous, w_hh, b_hh)
            i, f, g, _ = gates.chunk(4, dim=-1)
            c = linear_scan(torch.sigmoid(f), torch.sigmoid(i) * torch.tanh(g), c0).to(h.dtype)
            c[:, -1] = c_last.squeeze(0)
            return torch.cat([h, c], dim=-1)

"""A causal depthwise convolution over time with its state carried: the last kernel − 1 inputs.

    y_t = b + Σ_{j<k} w_j ⊙ x_{t−j}        per channel; x_{<0} is the carried state (zeros at the start)

Mamba runs its inputs through one (mamba.py); a residual block can put one before its mixer
(`--backbone.conv-kernel K`, backbone.py), as lucidrains' minGRU blocks do with K = 3.
"""

from __future__ import annotations

import torch
from torch import nn

from .shapes import check_state


def causal_depthwise_conv(x: torch.Tensor, past: torch.Tensor, conv1d: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, C), past (B, k − 1, C) oldest first -> y (B, T, C) and the new past (B, k − 1, C)."""
    window = torch.cat([past.to(x.dtype), x], dim=1)  # the causal left context, then the inputs
    y = conv1d(window.transpose(1, 2)).transpose(1, 2)
    return y, window[:, window.shape[1] - past.shape[1]:]


def causal_depthwise_conv_step(x_t: torch.Tensor, past: torch.Tensor,
                               conv1d: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: x_t (B, C), past (B, k − 1, C) -> y_t (B, C) and the new past; O(k) per token, the same
    as causal_depthwise_conv on a sequence of one."""
    window = torch.cat([past.to(x_t.dtype), x_t.unsqueeze(1)], dim=1)  # (B, k, C), oldest first
    y_t = torch.einsum("bkc,ck->bc", window, conv1d.weight[:, 0])
    if conv1d.bias is not None:
        y_t = y_t + conv1d.bias
    return y_t, window[:, 1:]


class CausalConv(nn.Module):
    """causal_depthwise_conv as a layer: forward(x, state) -> (y, state), step O(kernel) per token."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        if channels <= 0 or kernel < 1:
            raise ValueError(f"CausalConv needs channels > 0 and kernel >= 1, got {channels} and {kernel}")
        self.channels, self.kernel = channels, kernel
        self.conv1d = nn.Conv1d(channels, channels, kernel_size=kernel, groups=channels)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.kernel - 1, self.channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        check_state(state, (x.shape[0], self.kernel - 1, self.channels), "CausalConv")
        return causal_depthwise_conv(x, state, self.conv1d)

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        check_state(state, (x_t.shape[0], self.kernel - 1, self.channels), "CausalConv")
        return causal_depthwise_conv_step(x_t, state, self.conv1d)

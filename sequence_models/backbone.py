"""The residual stack around any token mixer (the mixer comes from a config: backbone_configs.py).

    x ← x + dropout(mixer(Norm(x)))
    x ← x + dropout(MLP(Norm(x)))        (skipped when mlp_ratio = 0)
    y = Norm(x)

Norm is LayerNorm, or RMSNorm with `norm="rms"` (the config's field). With `conv_kernel` K > 0 each
block first adds a causal depthwise convolution of its input, x ← x + conv_K(x), and its state is
BlockState(conv = the last K − 1 inputs, mixer = the mixer's state); without, the mixer's state alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from .backbone_configs import BackboneConfig
from .causal_conv import CausalConv
from .shapes import check_sequence, check_step


class BlockState(NamedTuple):
    conv: torch.Tensor  # (B, K - 1, d_model): the convolution's last inputs
    mixer: Any


NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm}


class ResidualBlock(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp_ratio: float, dropout: float, norm: str = "layer",
                 conv_kernel: int = 0):
        super().__init__()
        self.conv = CausalConv(d_model, conv_kernel) if conv_kernel else None
        self.norm_mixer = NORMS[norm](d_model)
        self.mixer = mixer
        hidden = int(round(mlp_ratio * d_model))
        self.norm_mlp = NORMS[norm](d_model) if hidden else None
        self.mlp = (
            nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model)) if hidden else None
        )
        self.dropout = nn.Dropout(dropout)

    def _mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mlp is None else x + self.dropout(self.mlp(self.norm_mlp(x)))

    def init_state(self, batch_size: int, device=None, dtype=None) -> Any:
        mixer = self.mixer.init_state(batch_size, device=device, dtype=dtype)
        return mixer if self.conv is None else BlockState(self.conv.init_state(batch_size, device, dtype), mixer)

    def _split(self, state: Any) -> tuple[Any, Any]:
        if self.conv is None or state is None:
            return None, state
        if not isinstance(state, BlockState):
            raise ValueError(f"a block with a convolution carries a BlockState(conv, mixer), got {type(state).__name__}")
        return state

    def forward(self, x: torch.Tensor, state: Any = None, **mixer_kwargs: Any) -> tuple[torch.Tensor, Any]:
        conv_state, state = self._split(state)
        if self.conv is not None:
            convolved, conv_state = self.conv(x, conv_state)
            x = x + convolved
        mixed, state = self.mixer(self.norm_mixer(x), state, **mixer_kwargs)
        out = self._mlp_residual(x + self.dropout(mixed))
        return out, (state if self.conv is None else BlockState(conv_state, state))

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        conv_state, state = self._split(state)
        if self.conv is not None:
            convolved, conv_state = self.conv.step(x_t, conv_state)
            x_t = x_t + convolved
        mixed, state = self.mixer.step(self.norm_mixer(x_t), state)
        out = self._mlp_residual(x_t + self.dropout(mixed))
        return out, (state if self.conv is None else BlockState(conv_state, state))


class Backbone(nn.Module):
    """A stack of residual blocks; `state` is a list with one entry per block."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(
            ResidualBlock(config.build_mixer(), config.d_model, config.mlp_ratio, config.dropout, config.norm,
                          config.conv_kernel)
            for _ in range(config.n_layers)
        )
        self.norm = NORMS[config.norm](config.d_model)

    def init_state(self, batch_size: int, device=None, dtype=None) -> list[Any]:
        return [block.init_state(batch_size, device=device, dtype=dtype) for block in self.blocks]

    def _layer_states(self, state: list[Any] | None) -> list[Any]:
        if state is None:
            return [None] * len(self.blocks)
        if not isinstance(state, (list, tuple)) or len(state) != len(self.blocks):
            raise ValueError(f"state must be a list with one entry per layer ({len(self.blocks)}), got {type(state).__name__}")
        return list(state)

    def forward(
        self, x: torch.Tensor, state: list[Any] | None = None, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[Any]]:
        check_sequence(x, self.config.d_model, "Backbone")
        mixer_kwargs = {}
        if padding_mask is not None:
            if not self.config.uses_padding_mask:
                raise ValueError(
                    f"backbone {self.config.name!r} is causal and takes no padding mask: pad on the right "
                    "(valid steps first) and mask the loss instead"
                )
            mixer_kwargs["padding_mask"] = padding_mask
        new_state = []
        for block, layer_state in zip(self.blocks, self._layer_states(state)):
            x, layer_state = block(x, layer_state, **mixer_kwargs)
            new_state.append(layer_state)
        return self.norm(x), new_state

    def step(self, x_t: torch.Tensor, state: list[Any] | None) -> tuple[torch.Tensor, list[Any]]:
        check_step(x_t, self.config.d_model, "Backbone")
        new_state = []
        for block, layer_state in zip(self.blocks, self._layer_states(state)):
            x_t, layer_state = block.step(x_t, layer_state)
            new_state.append(layer_state)
        return self.norm(x_t), new_state


def build_backbone(config: BackboneConfig) -> Backbone:
    return Backbone(config)

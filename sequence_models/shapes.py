"""Shape checks shared by every layer: a wrong shape is a ValueError naming what was expected,
raised before any compute."""

from __future__ import annotations

import torch


def check_sequence(x: torch.Tensor, width: int, layer: str) -> None:
    if x.dim() != 3 or x.shape[-1] != width:
        raise ValueError(f"{layer}.forward expects x of shape (batch, time, {width}), got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{layer}.forward got an empty sequence (time = 0)")


def check_step(x_t: torch.Tensor, width: int, layer: str) -> None:
    if x_t.dim() != 2 or x_t.shape[-1] != width:
        raise ValueError(f"{layer}.step expects x_t of shape (batch, {width}), got {tuple(x_t.shape)}")


def check_state(state: torch.Tensor, expected: tuple[int, ...], layer: str) -> None:
    if not isinstance(state, torch.Tensor) or tuple(state.shape) != tuple(expected):
        got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
        raise ValueError(f"{layer}: state must have shape {tuple(expected)}, got {got}")

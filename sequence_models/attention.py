"""Causal multi-head self-attention, GPT-2 style (nanoGPT's layout: `c_attn`, `c_proj`).

The state is a KV cache: `forward(x, state)` attends over the cached keys plus the new ones, so a
sequence split into chunks gives the same output as one call, and `step` is one token at a time.
No positional embedding lives here: the Decision Transformer gets positions from its timestep
embedding, and language models add their own.

Padding: `padding_mask` (B, T) marks real tokens True; padded keys are never attended to. Every
query may always attend to itself, so a query whose visible keys are all padding (left padding)
gives a finite, ignorable output instead of NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import check_sequence, check_step


class KVCache(NamedTuple):
    keys: torch.Tensor  # (B, heads, S, head_dim)
    values: torch.Tensor  # (B, heads, S, head_dim)
    valid: torch.Tensor  # (B, S) bool: False where the cached token was padding


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int = 1, dropout: float = 0.0, bias: bool = True):
        """`dropout` applies to the attention weights; the residual stack drops the layer's output."""
        super().__init__()
        if dim <= 0 or n_heads <= 0 or dim % n_heads != 0:
            raise ValueError(f"dim ({dim}) must be a positive multiple of n_heads ({n_heads})")
        self.dim, self.n_heads, self.dropout = dim, n_heads, dropout
        self.c_attn = nn.Linear(dim, 3 * dim, bias=bias)
        self.c_proj = nn.Linear(dim, dim, bias=bias)

    def init_state(self, batch_size: int, device=None, dtype=None) -> KVCache:
        empty = torch.zeros(batch_size, self.n_heads, 0, self.dim // self.n_heads, device=device, dtype=dtype)
        return KVCache(empty, empty.clone(), torch.zeros(batch_size, 0, dtype=torch.bool, device=device))

    def _check_state(self, state, batch_size: int) -> None:
        if state is None:
            return
        expected = (batch_size, self.n_heads, self.dim // self.n_heads)
        if not isinstance(state, KVCache) or (state.keys.shape[0], state.keys.shape[1], state.keys.shape[3]) != expected:
            raise ValueError(
                f"CausalSelfAttention: state must be a KVCache with keys of shape (batch, heads, S, head_dim) "
                f"= ({batch_size}, {self.n_heads}, S, {self.dim // self.n_heads})"
            )

    def forward(
        self, x: torch.Tensor, state: KVCache | None = None, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        check_sequence(x, self.dim, "CausalSelfAttention")
        batch, length, _ = x.shape
        self._check_state(state, batch)
        if padding_mask is not None and tuple(padding_mask.shape) != (batch, length):
            raise ValueError(f"padding_mask must have shape (batch, time) = {(batch, length)}, got {tuple(padding_mask.shape)}")

        q, k, v = self.c_attn(x).split(self.dim, dim=-1)
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        valid = torch.ones(batch, length, dtype=torch.bool, device=x.device) if padding_mask is None else padding_mask.bool()
        if state is not None:
            k = torch.cat([state.keys.to(k.dtype), k], dim=2)
            v = torch.cat([state.values.to(v.dtype), v], dim=2)
            valid = torch.cat([state.valid, valid], dim=1)
        past = k.shape[2] - length
        dropout = self.dropout if self.training else 0.0

        if past == 0 and padding_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            query_pos = torch.arange(past, past + length, device=x.device)[:, None]
            key_pos = torch.arange(past + length, device=x.device)[None, :]
            mask = (key_pos <= query_pos) & (valid[:, None, :] | (key_pos == query_pos))  # (B, T, S)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], dropout_p=dropout)

        y = y.transpose(1, 2).reshape(batch, length, self.dim)
        return self.c_proj(y), KVCache(k, v, valid)

    def step(self, x_t: torch.Tensor, state: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        check_step(x_t, self.dim, "CausalSelfAttention")
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state

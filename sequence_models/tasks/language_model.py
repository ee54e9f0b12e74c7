"""A language-model head around any registered backbone.

    tokens ─► token embedding (+ learned position embedding, transformer only) ─► dropout
           ─► Backbone (any registry name, any gradient mode; ends in its final LayerNorm)
           ─► output Linear (tied to the token embedding, or its own weight) ─► logits

The transformer mixer has no positional information of its own (the Decision Transformer
convention), so for it a learned position embedding is added by default; recurrent mixers are
ordered by construction and get none unless asked. The norm before the output layer is the
backbone's final LayerNorm, so none is added here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..backbone import build_backbone
from ..backbone_configs import BackboneConfig


POSITIONAL_EMBEDDING = {"auto": None, "on": True, "off": False}
"""The tasks' --positional-embedding flag -> LanguageModel's positional_embedding (None: the transformer only)."""


def detach_state(state: Any) -> Any:
    """The same state with every tensor detached (truncated BPTT between consecutive batches)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # NamedTuple, e.g. a KV cache
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


class LanguageModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        backbone: BackboneConfig,
        tie_weights: bool = True,
        positional_embedding: bool | None = None,
        max_len: int = 1024,
    ):
        """`positional_embedding=None` means: on for the transformer, off otherwise. `max_len` bounds
        the positions the embedding covers (it is unused without one)."""
        super().__init__()
        d = backbone.d_model
        self.vocab_size, self.max_len = vocab_size, max_len
        self.token_embedding = nn.Embedding(vocab_size, d)
        use_positions = backbone.name == "transformer" if positional_embedding is None else positional_embedding
        self.position_embedding = nn.Embedding(max_len, d) if use_positions else None
        self.dropout = nn.Dropout(backbone.dropout)
        self.backbone = build_backbone(backbone)
        self.output = nn.Linear(d, vocab_size, bias=False)
        # GPT-2's initialisation for the embeddings and the output layer; the backbone keeps its own.
        for module in (self.token_embedding, self.position_embedding, self.output):
            if module is not None:
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if tie_weights:
            self.output.weight = self.token_embedding.weight

    @property
    def tied(self) -> bool:
        return self.output.weight is self.token_embedding.weight

    def init_state(self, batch_size: int, device=None, dtype=None) -> Any:
        return self.backbone.init_state(batch_size, device=device, dtype=dtype)

    def _embed(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        x = self.token_embedding(tokens)
        if self.position_embedding is not None:
            T = tokens.shape[-1] if tokens.dim() == 2 else 1
            if position + T > self.max_len:
                raise ValueError(
                    f"positions {position}..{position + T - 1} exceed the position embedding's max_len "
                    f"{self.max_len}: raise max_len, shorten the context, or reset the state more often"
                )
            positions = torch.arange(position, position + T, device=tokens.device)
            x = x + self.position_embedding(positions)  # (T, d) against (B, T, d), or (1, d) against (B, d)
        return self.dropout(x)

    def forward(self, tokens: torch.Tensor, state: Any = None, position: int = 0) -> tuple[torch.Tensor, Any]:
        """tokens (B, T) int64 -> logits (B, T, vocab), state. `position` is the index of tokens[:, 0]
        in the sequence that `state` continues (only the position embedding reads it)."""
        if tokens.dim() != 2:
            raise ValueError(f"LanguageModel.forward expects tokens of shape (batch, time), got {tuple(tokens.shape)}")
        y, state = self.backbone(self._embed(tokens, position), state)
        return self.output(y), state

    def step(self, token: torch.Tensor, state: Any, position: int = 0) -> tuple[torch.Tensor, Any]:
        """token (B,) -> logits (B, vocab), state: one step, O(1) in the length for recurrent backbones."""
        y, state = self.backbone.step(self._embed(token, position), state)
        return self.output(y), state

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n_new: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples `n_new` tokens after `prompt` (B, T): one parallel pass over the prompt, then steps."""
        logits, state = self(prompt)
        logits, position, out = logits[:, -1], prompt.shape[1], [prompt]
        for _ in range(n_new):
            logits = logits.float() / max(temperature, 1e-6)
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            out.append(token)
            logits, state = self.step(token[:, 0], state, position)
            position += 1
        return torch.cat(out, dim=1)

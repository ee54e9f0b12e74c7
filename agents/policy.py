"""Policy: a DecisionModel acting step by step for a batch of envs, holding each episode's inference state.

One object keeps what an episode needs between env steps (as d3rlpy's StatefulTransformerWrapper
does), so the evaluator, the DT/CORL baseline loop and the latency benchmark step the model the
same way. All envs of the batch are at the same timestep (they start and step together), so a
window needs no padding.

Modes.
  window     each step re-runs the last K steps (3K-1 tokens R̂ s a ... R̂ s) from a fresh backbone
             state, as DT does. For t < K the window is just the steps so far.
  recurrent  each step feeds the new tokens (a_{t-1}, R̂_t, s_t) and carries the backbone state over
             the whole episode: O(1) per step for recurrent backbones, a KV cache for the transformer.
             The transformer's cache keeps the last `kv_steps` steps (-1: K, the span it was trained
             on: every query then sees at most 3K-1 tokens, as in training, and a step costs O(K));
             kv_steps=0 keeps the whole episode (O(t) per step, attention beyond the trained span).
             After a step the cache is cut to 3·kv_steps-4 tokens, so that the next step's 3 new
             tokens make 3·kv_steps-1: exactly a kv_steps-step window (token_layout "step": kv_steps-1,
             then 1 new token).
Both give the same actions for the first K steps (the same tokens, one causal computation; with
kv_steps >= K no cache entry is dropped before step K).

Return-to-go: act takes the unscaled R̂_t; it is multiplied by return_scale before embedding (as DT).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.model import DecisionModel
from sequence_models.attention import KVCache
from sequence_models.backbone import BlockState

MODES = ("window", "recurrent")


def trim_kv_cache(carry: Any, keep_tokens: int) -> Any:
    """The backbone state with every layer's KV cache cut to its last keep_tokens tokens (others untouched)."""
    if not isinstance(carry, list):
        return carry

    def trim(c: KVCache) -> KVCache:
        start = c.keys.shape[2] - keep_tokens
        return KVCache(c.keys[:, :, start:], c.values[:, :, start:], c.valid[:, start:])

    def layer(c: Any) -> Any:
        if isinstance(c, BlockState):  # a block with a convolution: its mixer's state inside
            return c._replace(mixer=layer(c.mixer))
        return trim(c) if isinstance(c, KVCache) and c.keys.shape[2] > keep_tokens else c

    return [layer(c) for c in carry]


class Policy:
    """The model's actions for `batch_size` envs stepping together; reset() before every new episode."""

    def __init__(self, model: DecisionModel, mode: str, batch_size: int, context_len: int, kv_steps: int = -1,
                 return_scale: float = 1e-3):
        if mode not in MODES:
            raise ValueError(f"mode must be 'window' or 'recurrent', got {mode!r}")
        if batch_size < 1 or context_len < 1 or kv_steps < -1:
            raise ValueError(f"need batch_size >= 1, context_len >= 1, kv_steps >= -1; got {batch_size}, "
                             f"{context_len}, {kv_steps}")
        self.model, self.mode, self.context_len, self.return_scale = model, mode, context_len, return_scale
        self.device = next(model.parameters()).device
        kv_steps = context_len if kv_steps == -1 else kv_steps
        self.kv_keep_tokens = model.kv_keep_tokens(kv_steps) if kv_steps else None  # None: keep the whole episode
        self.reset(batch_size)

    def reset(self, batch_size: int | None = None) -> None:
        """Forget the episode (the window history or the carried state); optionally change the batch size."""
        self.batch_size = batch_size or self.batch_size
        b, model, device = self.batch_size, self.model, self.device
        self.states = torch.zeros(b, 0, model.obs_dim, device=device)
        self.actions = torch.zeros(b, 0, model.act_dim, device=device)
        self.returns_to_go = torch.zeros(b, 0, 1, device=device)
        self.timesteps = torch.zeros(b, 0, dtype=torch.long, device=device)
        self.carry, self.previous_action, self.previous_timestep = None, None, None

    @torch.no_grad()
    def act(self, observation, return_to_go, timestep: int) -> torch.Tensor:
        """The actions (batch_size, act_dim) at `timestep` for raw env observations (batch_size, obs_dim)
        and unscaled returns-to-go (batch_size,); the previous call must have been the previous timestep."""
        b, device = self.batch_size, self.device
        state = self.model.normalize_states(torch.as_tensor(observation, dtype=torch.float32, device=device))
        scaled = np.asarray(return_to_go, dtype=np.float64) * self.return_scale
        r = torch.as_tensor(scaled, dtype=torch.float32, device=device).reshape(-1).expand(b)[:, None]
        t = torch.full((b,), timestep, dtype=torch.long, device=device)
        if self.mode == "recurrent":
            return self._recurrent(r, state, t)
        return self._window(r, state, t)

    def _recurrent(self, r: torch.Tensor, state: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        action, self.carry = self.model.recurrent_actions(r, state, t, self.previous_action, self.previous_timestep,
                                                          self.carry)
        if self.kv_keep_tokens is not None:  # before the next call adds a_t, R̂_{t+1}, s_{t+1}
            self.carry = trim_kv_cache(self.carry, self.kv_keep_tokens)
        self.previous_action, self.previous_timestep = action, t
        return action

    def _window(self, r: torch.Tensor, state: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        keep = self.context_len - 1

        def append(history: torch.Tensor, new: torch.Tensor) -> torch.Tensor:  # the last K steps, new one included
            return torch.cat([history[:, -keep:] if keep else history[:, :0], new[:, None]], dim=1)

        self.states = append(self.states, state)
        self.returns_to_go = append(self.returns_to_go, r)
        self.timesteps = append(self.timesteps, t)
        self.actions = append(self.actions, torch.zeros(self.batch_size, self.model.act_dim, device=self.device))
        action = self.model.window_actions(self.returns_to_go, self.states, self.actions, self.timesteps)
        self.actions[:, -1] = action
        return action

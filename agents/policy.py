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

Per step the Policy does only the model's work: it runs under torch.inference_mode (no autograd
bookkeeping), the window lives in buffers allocated once per episode (WindowBuffer), nothing reads a
device value back (the caller's copy of the actions is the one host sync), and with amp the model
runs under the training core's bf16 autocast where the device does bf16 natively
(sequence_models.training.device.amp_enabled); actions come back float32 either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.model import DecisionModel
from sequence_models.attention import KVCache
from sequence_models.backbone import BlockState
from sequence_models.training.device import amp_enabled, autocast

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


class WindowBuffer:
    """The last `context_len` steps of B envs in tensors of 2·context_len slots, allocated once.

    A step writes the next slot; when the slots run out, the last context_len−1 steps move to the
    front (one copy every context_len+1 steps), so the window is always one slice of each buffer."""

    def __init__(self, batch_size: int, context_len: int, obs_dim: int, act_dim: int, device: torch.device):
        slots = 2 * context_len
        self.context_len = context_len
        self.states = torch.zeros(batch_size, slots, obs_dim, device=device)
        self.actions = torch.zeros(batch_size, slots, act_dim, device=device)
        self.returns_to_go = torch.zeros(batch_size, slots, 1, device=device)
        self.timesteps = torch.zeros(batch_size, slots, dtype=torch.long, device=device)
        self.end = 0

    def clear(self) -> None:
        self.end = 0

    def push(self, return_to_go: torch.Tensor, state: torch.Tensor, timestep: int) -> None:
        """Add one step (its action zero until set_last_action)."""
        buffers = (self.states, self.actions, self.returns_to_go, self.timesteps)
        if self.end == self.states.shape[1]:
            keep = self.context_len - 1
            for buffer in buffers:  # the source slots lie after the destination ones: no overlap
                buffer[:, :keep] = buffer[:, self.end - keep:self.end]
            self.end = keep
        self.states[:, self.end] = state
        self.returns_to_go[:, self.end] = return_to_go
        self.timesteps[:, self.end] = timestep
        self.actions[:, self.end] = 0
        self.end += 1

    def window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(returns_to_go, states, actions, timesteps) of the last context_len steps (all of them before that)."""
        span = slice(max(0, self.end - self.context_len), self.end)
        return self.returns_to_go[:, span], self.states[:, span], self.actions[:, span], self.timesteps[:, span]

    def set_last_action(self, action: torch.Tensor) -> None:
        self.actions[:, self.end - 1] = action


class Policy:
    """The model's actions for `batch_size` envs stepping together; reset() before every new episode.

    amp: run the model under bf16 autocast where the device does bf16 natively (else float32)."""

    def __init__(self, model: DecisionModel, mode: str, batch_size: int, context_len: int, kv_steps: int = -1,
                 return_scale: float = 1e-3, amp: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode must be 'window' or 'recurrent', got {mode!r}")
        if batch_size < 1 or context_len < 1 or kv_steps < -1:
            raise ValueError(f"need batch_size >= 1, context_len >= 1, kv_steps >= -1; got {batch_size}, "
                             f"{context_len}, {kv_steps}")
        self.model, self.mode, self.context_len, self.return_scale = model, mode, context_len, return_scale
        self.device = next(model.parameters()).device
        self.use_amp = amp_enabled(amp, self.device)
        kv_steps = context_len if kv_steps == -1 else kv_steps
        self.kv_keep_tokens = model.kv_keep_tokens(kv_steps) if kv_steps else None  # None: keep the whole episode
        self.batch_size, self.window = 0, None
        self.reset(batch_size)

    @torch.inference_mode()
    def reset(self, batch_size: int | None = None) -> None:
        """Forget the episode (the window history or the carried state); optionally change the batch size."""
        batch_size = batch_size or self.batch_size
        if self.mode == "window" and (self.window is None or batch_size != self.batch_size):
            self.window = WindowBuffer(batch_size, self.context_len, self.model.obs_dim, self.model.act_dim, self.device)
        elif self.window is not None:
            self.window.clear()
        self.batch_size = batch_size
        self.carry, self.previous_action, self.previous_timestep = None, None, None

    @torch.inference_mode()
    def act(self, observation, return_to_go, timestep: int) -> torch.Tensor:
        """The actions (batch_size, act_dim), float32, at `timestep` for raw env observations (batch_size, obs_dim)
        and unscaled returns-to-go (batch_size,); the previous call must have been the previous timestep."""
        b, device = self.batch_size, self.device
        state = self.model.normalize_states(torch.as_tensor(observation, dtype=torch.float32, device=device))
        scaled = np.asarray(return_to_go, dtype=np.float64) * self.return_scale
        r = torch.as_tensor(scaled, dtype=torch.float32, device=device).reshape(-1).expand(b)[:, None]
        with autocast(device, self.use_amp):
            action = self._recurrent(r, state, timestep) if self.mode == "recurrent" else self._window(r, state, timestep)
        return action.float()

    def _recurrent(self, r: torch.Tensor, state: torch.Tensor, timestep: int) -> torch.Tensor:
        t = torch.full((self.batch_size,), timestep, dtype=torch.long, device=self.device)
        action, self.carry = self.model.recurrent_actions(r, state, t, self.previous_action, self.previous_timestep,
                                                          self.carry)
        if self.kv_keep_tokens is not None:  # before the next call adds a_t, R̂_{t+1}, s_{t+1}
            self.carry = trim_kv_cache(self.carry, self.kv_keep_tokens)
        self.previous_action, self.previous_timestep = action, t
        return action

    def _window(self, r: torch.Tensor, state: torch.Tensor, timestep: int) -> torch.Tensor:
        self.window.push(r, state, timestep)
        action = self.model.window_actions(*self.window.window())
        self.window.set_last_action(action)
        return action

"""DecisionModel: Decision Transformer tokenisation around any registered backbone.

    step t ─► (R̂_t, s_t, a_t), each through its own Linear, plus a learned timestep embedding,
              then one LayerNorm             ─► 3 tokens per step, interleaved R̂_1 s_1 a_1 R̂_2 ...
           ─► Backbone (causal: transformer, mingru, minlstm, lru, gru, lstm, rnn, mamba, s4d; any gradient mode)
           ─► the s_t token's output ─► Linear ─► tanh, scaled to the action bounds ─► â_t

`token_layout="step"` (AgentConfig's default; "dt" is the DT-paper presets') makes one token per step
instead: the same three Linears summed, embed(R̂_t) + embed(s_t) + embed(a_{t−1}) + time, one LayerNorm
(a_{−1} = 0 at a segment's or an episode's first step), and â_t is read from that token. A recurrent
layer then sees R̂_t in the same update as s_t rather than one state update earlier; the parameters are
the same. A window's first token has a_{t−1} = 0 as a training segment's has, so past step K a
transformer's KV cache of kv_steps steps (which keeps the true a_{t−1} of its oldest token) is no longer
the same computation as a window.

States come in normalised with the dataset's mean/std and are clipped to ±state_clip here, in
training and evaluation alike: a dimension that is constant in the dataset (std ≈ 1e-6) would
otherwise turn a tiny difference at evaluation time into a huge input. The mean/std and action
bounds are buffers, so a checkpoint carries everything evaluation needs.

Inference (see agents/evaluator.py): `window_actions` re-runs the last K steps as DT does;
`recurrent_actions` feeds only the new tokens and carries the backbone state (a KV cache for the
transformer), O(1) per step for recurrent backbones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from sequence_models.backbone import build_backbone
from sequence_models.backbone_configs import BackboneConfig

TOKEN_LAYOUTS = ("dt", "step")


class DecisionModel(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        backbone: BackboneConfig,
        max_ep_len: int = 1000,
        action_low: np.ndarray | float = -1.0,
        action_high: np.ndarray | float = 1.0,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
        state_clip: float = 10.0,
        token_layout: str = "dt",
    ):
        super().__init__()
        if obs_dim <= 0 or act_dim <= 0 or max_ep_len <= 0:
            raise ValueError(f"obs_dim, act_dim and max_ep_len must be positive, got {obs_dim}, {act_dim}, {max_ep_len}")
        if state_clip <= 0:
            raise ValueError(f"state_clip must be > 0, got {state_clip}")
        if token_layout not in TOKEN_LAYOUTS:
            raise ValueError(f"token_layout must be one of {', '.join(TOKEN_LAYOUTS)}, got {token_layout!r}")
        self.token_layout = token_layout
        d = backbone.d_model
        self.obs_dim, self.act_dim, self.max_ep_len, self.state_clip = obs_dim, act_dim, max_ep_len, state_clip
        self.backbone_config = backbone
        self.embed_timestep = nn.Embedding(max_ep_len, d)
        self.embed_return = nn.Linear(1, d)
        self.embed_state = nn.Linear(obs_dim, d)
        self.embed_action = nn.Linear(act_dim, d)
        self.embed_norm = nn.LayerNorm(d)
        self.backbone = build_backbone(backbone)
        self.predict_action = nn.Linear(d, act_dim)
        # GPT-2's small init: a unit-variance random vector per timestep (torch's default) would add an
        # arbitrary offset to every token at timesteps the data rarely shows, a bias the policy then carries.
        nn.init.normal_(self.embed_timestep.weight, std=0.02)

        def vector(value, size: int, default: float) -> torch.Tensor:
            value = default if value is None else value
            return torch.as_tensor(np.broadcast_to(np.asarray(value, dtype=np.float32), (size,)).copy())

        self.register_buffer("state_mean", vector(state_mean, obs_dim, 0.0))
        self.register_buffer("state_std", vector(state_std, obs_dim, 1.0))
        self.register_buffer("action_low", vector(action_low, act_dim, -1.0))
        self.register_buffer("action_high", vector(action_high, act_dim, 1.0))
        if not torch.all(self.action_high > self.action_low):
            raise ValueError("action_high must exceed action_low in every dimension")

    # -- tokens ---------------------------------------------------------------------------------
    def normalize_states(self, raw_states: torch.Tensor) -> torch.Tensor:
        """Raw env observations -> what the model was trained on (mean/std normalised, clipped)."""
        return ((raw_states - self.state_mean) / self.state_std).clamp(-self.state_clip, self.state_clip)

    def _time(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.embed_timestep(timesteps.clamp(0, self.max_ep_len - 1))

    def return_tokens(self, returns_to_go: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """(..., 1) scaled R̂ -> (..., d)."""
        return self.embed_norm(self.embed_return(returns_to_go) + self._time(timesteps))

    def state_tokens(self, states: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """(..., obs_dim) normalised states -> (..., d); clipping here makes it idempotent."""
        states = states.clamp(-self.state_clip, self.state_clip)
        return self.embed_norm(self.embed_state(states) + self._time(timesteps))

    def action_tokens(self, actions: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.embed_norm(self.embed_action(actions) + self._time(timesteps))

    def tokens(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """(B, T, ·) inputs -> (B, 3T, d) tokens ordered R̂_1, s_1, a_1, R̂_2, ...

        The same tokens as return_tokens / state_tokens / action_tokens, with the timestep embedding
        looked up once and one LayerNorm call for the three modalities (fewer ops in training)."""
        states = states.clamp(-self.state_clip, self.state_clip)
        stacked = torch.stack(
            [self.embed_return(returns_to_go), self.embed_state(states), self.embed_action(actions)], dim=2,
        )  # (B, T, 3, d)
        return self.embed_norm(stacked + self._time(timesteps).unsqueeze(2)).flatten(1, 2)

    def step_tokens(self, returns_to_go, states, previous_actions, timesteps) -> torch.Tensor:
        """token_layout "step": (..., ·) inputs -> (..., d), one token per step from R̂_t, s_t, a_{t-1}."""
        states = states.clamp(-self.state_clip, self.state_clip)
        summed = self.embed_return(returns_to_go) + self.embed_state(states) + self.embed_action(previous_actions)
        return self.embed_norm(summed + self._time(timesteps))

    def _previous_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, act_dim) a_t -> a_{t-1}, zeros at the first step."""
        return torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)

    def kv_keep_tokens(self, kv_steps: int) -> int:
        """Tokens a KV cache keeps after a step so that the next step's tokens make a kv_steps-step window."""
        return max(0, kv_steps - 1) if self.token_layout == "step" else max(0, 3 * kv_steps - 4)

    def action_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone output at a state token -> action within [action_low, action_high]."""
        unit = torch.tanh(self.predict_action(hidden))
        return self.action_low + (unit + 1) * 0.5 * (self.action_high - self.action_low)

    # -- training -------------------------------------------------------------------------------
    def forward(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """Predicted actions (B, T, act_dim), â_t from the s_t token (which sees R̂_≤t, s_≤t, a_<t)."""
        if self.token_layout == "step":
            hidden, _ = self.backbone(self.step_tokens(returns_to_go, states, self._previous_actions(actions), timesteps))
            return self.action_head(hidden)
        hidden, _ = self.backbone(self.tokens(returns_to_go, states, actions, timesteps))
        return self.action_head(hidden[:, 1::3])

    # -- inference ------------------------------------------------------------------------------
    def window_actions(self, returns_to_go, states, actions, timesteps) -> torch.Tensor:
        """The action for the last step of a window (B, T, ·) whose last action is not known yet.

        Runs the 3T-1 tokens R̂_1 s_1 a_1 ... R̂_T s_T from a fresh state (as DT re-runs its context), or
        the T step tokens (token_layout "step"; the last action is not read)."""
        if self.token_layout == "step":
            tokens = self.step_tokens(returns_to_go, states, self._previous_actions(actions), timesteps)
        else:
            tokens = self.tokens(returns_to_go, states, actions, timesteps)[:, :-1]
        hidden, _ = self.backbone(tokens)
        return self.action_head(hidden[:, -1])

    def recurrent_actions(
        self,
        return_to_go: torch.Tensor,
        state: torch.Tensor,
        timestep: torch.Tensor,
        previous_action: torch.Tensor | None,
        previous_timestep: torch.Tensor | None,
        carry: Any,
    ) -> tuple[torch.Tensor, Any]:
        """One env step with the backbone state carried: feeds [a_{t-1}], R̂_t, s_t and returns (â_t, carry).

        return_to_go (B, 1), state (B, obs_dim) normalised, timestep (B,); previous_action is None on
        the first step. One backbone call per env step (2 or 3 tokens; 1 in token_layout "step")."""
        if self.token_layout == "step":
            previous = state.new_zeros(state.shape[0], self.act_dim) if previous_action is None else previous_action
            token = self.step_tokens(return_to_go, state, previous, timestep)
            hidden, carry = self.backbone(token.unsqueeze(1), carry)
            return self.action_head(hidden[:, -1]), carry
        new = [self.return_tokens(return_to_go, timestep), self.state_tokens(state, timestep)]
        if previous_action is not None:
            new.insert(0, self.action_tokens(previous_action, previous_timestep))
        hidden, carry = self.backbone(torch.stack(new, dim=1), carry)
        return self.action_head(hidden[:, -1]), carry

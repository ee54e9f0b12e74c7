"""SegmentSampler: batches of K-step segments from a TrajectoryStore, as Decision Transformer trains on.

Sampling. Episodes are drawn with probability proportional to their length (every step equally
likely to be in a batch, as DT does). `segment_start="any"` (DT's and CORL's way, default): the start
is uniform over the episode's steps, so segments that start within K of the end are shorter than K.
`segment_start="fit"`: the start is uniform over 0 .. max(length - K, 0), so a segment is K steps
whenever the episode has them, and with K >= the episode length every segment is the WHOLE episode
(long-context training without mostly-padded segments).

Padding. RIGHT padding: the valid steps come first, padding after, and `mask` is True on valid steps.
The backbones are causal, so outputs at valid positions never see the padding, and recurrent models
need no key mask; the loss must be masked. Padded positions hold zeros (states, actions,
returns-to-go) and timestep 0.

Everything lives on `device` (states already normalised, returns-to-go already scaled), and sampling
is a few vectorised tensor ops drawn from a seeded torch.Generator on that device: no host work, no
Python loop per sample. state_dict()/load_state_dict() save and restore the generator, so a resumed
run draws exactly the batches the uninterrupted run would have drawn.

Data-parallel training (rank, world_size): every rank draws the same GLOBAL batch of
batch_size x world_size segments from the shared seed and keeps rows [rank·B, (rank+1)·B), so N
ranks at batch B see exactly what one process at batch N·B sees (only the drawing, a few scalars per
segment, is repeated; each rank gathers only its own rows). `global_valid` counts the valid steps of
the whole global batch, so a loss normalised by it averages over ranks to the global mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from envs.trajectory_store import TrajectoryStore

SEGMENT_STARTS = ("any", "fit")


@dataclass
class SegmentBatch:
    states: torch.Tensor  # (B, K, obs_dim) float32, normalised with the store's state_mean/state_std
    actions: torch.Tensor  # (B, K, act_dim) float32, raw (within the action bounds)
    returns_to_go: torch.Tensor  # (B, K, 1) float32, undiscounted, times return_scale
    timesteps: torch.Tensor  # (B, K) int64, step within the episode, clipped to max_ep_len - 1
    mask: torch.Tensor  # (B, K) bool, True on valid steps (a prefix of each row: right padding)
    episode_indices: torch.Tensor  # (B,) int64, which episode each row comes from
    starts: torch.Tensor  # (B,) int64, the first step of each segment within its episode
    global_valid: torch.Tensor | None = None  # () int64, valid steps in the global batch (all ranks); None: mask.sum()

    def to(self, device) -> "SegmentBatch":
        return SegmentBatch(**{k: v if v is None else v.to(device, non_blocking=True) for k, v in self.__dict__.items()})


class SegmentSampler:
    def __init__(
        self,
        store: TrajectoryStore,
        context_len: int = 20,
        batch_size: int = 64,
        return_scale: float = 1e-3,
        max_ep_len: int | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        segment_start: str = "any",
    ):
        if segment_start not in SEGMENT_STARTS:
            raise ValueError(f"segment_start must be one of {SEGMENT_STARTS}, got {segment_start!r}")
        self.segment_start = segment_start
        if context_len < 1 or batch_size < 1:
            raise ValueError(f"context_len and batch_size must be >= 1, got {context_len} and {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
        self.rank, self.world_size = rank, world_size
        self.context_len, self.batch_size, self.return_scale = context_len, batch_size, return_scale
        self.max_ep_len = max_ep_len if max_ep_len is not None else store.max_episode_steps
        self.device = torch.device(device)
        self.state_mean = torch.as_tensor(store.state_mean, device=self.device)
        self.state_std = torch.as_tensor(store.state_std, device=self.device)

        states = torch.as_tensor(store.states, device=self.device)
        states = (states - self.state_mean) / self.state_std  # the model normalises env observations the same way
        # One padding row at index N: padded positions gather it, so no masking of values is needed.
        pad = lambda x: torch.cat([x, torch.zeros_like(x[:1])])  # noqa: E731
        self._states = pad(states)
        self._actions = pad(torch.as_tensor(store.actions, device=self.device))
        self._rtg = pad(torch.as_tensor(store.returns_to_go * return_scale, dtype=torch.float32, device=self.device))
        timesteps = np.minimum(store.timesteps, self.max_ep_len - 1)
        self._timesteps = pad(torch.as_tensor(timesteps, dtype=torch.int64, device=self.device))
        self._episode_starts = torch.as_tensor(store.episode_starts[:-1], dtype=torch.int64, device=self.device)
        self._episode_lengths = torch.as_tensor(store.episode_lengths, dtype=torch.int64, device=self.device)
        self._episode_probs = self._episode_lengths.to(torch.float64) / float(store.num_steps)
        self._pad_index = store.num_steps
        self._offsets = torch.arange(context_len, device=self.device)
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def sample(self, batch_size: int | None = None) -> SegmentBatch:
        """This rank's `batch_size` rows of the global batch (batch_size x world_size rows, one shared stream)."""
        b = batch_size or self.batch_size
        n = b * self.world_size
        episodes = torch.multinomial(self._episode_probs, n, replacement=True, generator=self.generator)
        lengths = self._episode_lengths[episodes]
        u = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        if self.segment_start == "fit":  # uniform over 0 .. max(length - K, 0)
            choices = (lengths - self.context_len).clamp_min(0) + 1
            starts = torch.minimum((u * choices).long(), choices - 1)
        else:
            starts = torch.minimum((u * lengths).long(), lengths - 1)  # uniform over 0 .. length-1
        global_valid = (lengths - starts).clamp_max(self.context_len).sum()
        if self.world_size > 1:
            mine = slice(self.rank * b, (self.rank + 1) * b)
            episodes, lengths, starts = episodes[mine], lengths[mine], starts[mine]
        mask = self._offsets[None, :] < (lengths - starts)[:, None]  # (B, K): a prefix of valid steps
        rows = torch.where(mask, (self._episode_starts[episodes] + starts)[:, None] + self._offsets, self._pad_index)
        return SegmentBatch(
            states=self._states[rows],
            actions=self._actions[rows],
            returns_to_go=self._rtg[rows].unsqueeze(-1),
            timesteps=self._timesteps[rows],
            mask=mask,
            episode_indices=episodes,
            starts=starts,
            global_valid=global_valid,
        )

    def state_dict(self) -> dict:
        return {"seed": self.seed, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.generator.set_state(state["generator"])
